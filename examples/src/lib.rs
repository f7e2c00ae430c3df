//! Jobs shared by the example producer and worker: the file an application
//! would keep in a crate (or module) that both binaries link.
//!
//! Every `#[bsjobs::job]` here is registered with the worker simply by being
//! linked into it; there is no registration list to keep in sync.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since the program started, for readable demo output.
pub fn elapsed() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// An error type of the application; any `Display` type works.
#[derive(Debug)]
pub struct MailError(pub String);

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mail error: {}", self.0)
    }
}

/// Sends an email (here: prints it).
#[bsjobs::job(tube = "email", priority = 10, ttr = "60s")]
pub async fn send_email(to: String, subject: String) -> Result<(), MailError> {
    if to.is_empty() {
        return Err(MailError("no recipient".into()));
    }
    println!("[{:5.2}s] email to {to}: {subject}", elapsed());
    Ok(())
}

/// A parameter may be any `Serialize + Deserialize` type.
#[derive(Debug, Serialize, Deserialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A plain (non-async) function runs on tokio's blocking pool.
#[bsjobs::job]
pub fn resize_image(path: String, size: Size) {
    std::thread::sleep(Duration::from_millis(50));
    println!(
        "[{:5.2}s] resized {path} to {}x{}",
        elapsed(),
        size.width,
        size.height
    );
}

/// Runs every second, three times in all.
#[bsjobs::job(tube = "heartbeat", repeat = "1s", max = 3)]
pub async fn heartbeat(service: String) {
    println!("[{:5.2}s] heartbeat of {service}", elapsed());
}

/// Always fails: retried once after a second, then buried.
#[bsjobs::job(tube = "report", retries = 1, backoff = "1s")]
pub async fn nightly_report(day: String) -> Result<(), String> {
    println!("[{:5.2}s] report for {day}: trying…", elapsed());
    Err(format!("the data warehouse is down (day {day})"))
}
