//! Every argument, every function shape, and a crate that denies warnings
//! and missing docs: the generated items must not trip either lint.
#![deny(warnings, missing_docs, unreachable_pub)]

use std::fmt;

/// Why mail failed.
#[derive(Debug)]
pub struct MailError;

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mail failed")
    }
}

/// Sends one email.
#[bsjobs::job(
    tube = "email",
    priority = 10,
    ttr = "60s",
    delay = "10s",
    retries = 3,
    backoff = "5s",
    timeout = "5m",
    unique_for = "1h"
)]
pub async fn email(to: String, n: u32) -> Result<(), MailError> {
    let _ = (to, n);
    Ok(())
}

/// Repeats.
#[bsjobs::job(repeat = "1h30m", max = 5, crate = "::bsjobs")]
pub fn heartbeat() {}

#[bsjobs::job(tube = "a-b+c/d;e.f$g_h(i)", ttr = 1, delay = 0)]
fn private_job(mut count: u64, r#type: Option<String>) -> std::io::Result<()> {
    count += 1;
    let _ = (count, r#type);
    Ok(())
}

mod nested {
    #[bsjobs::job]
    pub(crate) async fn in_module(items: Vec<(String, u8)>) -> () {
        let _ = items;
    }
}

/// Re-exported under another name, for `crate = "..."`.
pub mod reexport {
    pub use ::bsjobs as inner;
}

#[bsjobs::job(crate = "crate::reexport::inner")]
fn renamed_crate() {}

#[cfg(any())]
#[bsjobs::job]
fn compiled_out(x: NoSuchType) {}

fn main() {
    let _ = Email::new("a@b.c".to_owned(), 1);
    let _ = Heartbeat::new();
    let _ = PrivateJob::new(1, None);
    let _ = nested::InModule::new(vec![]);
    let _ = RenamedCrate::TUBE;
    let _ = (email, heartbeat, private_job, renamed_crate);
}
