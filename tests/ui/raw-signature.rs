// A raw job takes its body as exactly one owned parameter (plus an optional
// `JobContext`).
use bsjobs::JobContext;

#[bsjobs::job(raw)]
async fn no_body() {}

#[bsjobs::job(raw)]
async fn context_but_no_body(ctx: JobContext) {
    let _ = ctx;
}

#[bsjobs::job(raw)]
fn two_bodies(subject: String, ctx: JobContext, text: String, n: u32) {
    let _ = (subject, ctx, text, n);
}

#[bsjobs::job(raw)]
fn borrowed_bytes(body: &[u8]) {
    let _ = body;
}

#[bsjobs::job(raw)]
fn borrowed_text(text: &str) {
    let _ = text;
}

fn main() {}
