//! Raw jobs of every shape, with and without a context, async and plain.
#![deny(warnings, missing_docs, unreachable_pub)]

use bsjobs::JobContext;

/// Bytes as they are.
#[bsjobs::job(tube = "legacy_mail", raw)]
pub async fn legacy_mail(body: Vec<u8>) -> Result<(), String> {
    let _ = body;
    Ok(())
}

#[bsjobs::job(raw, retries = 2, backoff = "1s", timeout = "30s", delay = "5s", priority = 1)]
fn text(ctx: JobContext, text: String) {
    let _ = (ctx, text);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Purchase {
    id: u64,
}

#[bsjobs::job(raw, tube = "orders")]
async fn order(order: Purchase, _: JobContext) {
    let _ = order.id;
}

#[bsjobs::job(raw)]
fn any_pattern((a, b): (u32, u32)) {
    let _ = (a, b);
}

fn main() {
    let _ = LegacyMail::new(b"bytes".to_vec());
    let _ = Text::new("text".to_owned());
    let _ = Order::new(Purchase { id: 1 });
    let _ = AnyPattern::new((1, 2));
    text(JobContext::new("text", 1), "direct".into());
    let _ = (legacy_mail, order, any_pattern);
}
