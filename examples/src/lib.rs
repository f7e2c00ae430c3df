//! Jobs shared by the example producer and worker: the file an application
//! would keep in a crate (or module) that both binaries link.
//!
//! Every `#[bsjobs::job]` here is registered with the worker simply by being
//! linked into it; there is no registration list to keep in sync.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

static START: OnceLock<Instant> = OnceLock::new();

/// Logs to stdout, filtered by `RUST_LOG` (else `default_filter`), with ANSI
/// colours only when stdout is a terminal: a log written to a file or a pipe
/// (systemd, `| tee`, a log shipper) gets plain text.
pub fn init_logging(default_filter: &str, with_target: bool) {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_target(with_target)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

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

/// Syncs a user's profile; one sync per user at a time, and none again
/// within a minute of the last enqueue (`unique_for`).
#[bsjobs::job(tube = "sync_user", unique_for = "1m")]
pub async fn sync_user(user: u64) {
    println!("[{:5.2}s] synced user {user}", elapsed());
}

/// What the producer example enqueues: one job of each kind. Returns the
/// handle of the failing report, which ends up buried.
pub async fn enqueue_examples() -> Result<bsjobs::JobHandle, bsjobs::Error> {
    // Immediate: arguments are typed; a wrong type is a compile error.
    let job = SendEmail::enqueue("ada@example.com".into(), "Welcome".into()).await?;
    println!("[{:5.2}s] enqueued email as job {}", elapsed(), job.id);

    // Delayed, with per-call options.
    SendEmail::new("bob@example.com".into(), "Your trial ends soon".into())
        .delay(Duration::from_secs(2))
        .priority(5)
        .enqueue()
        .await?;

    // Scheduled for a wall-clock time.
    ResizeImage::new(
        "cat.png".into(),
        Size {
            width: 640,
            height: 480,
        },
    )
    .at(SystemTime::now() + Duration::from_secs(3))
    .enqueue()
    .await?;

    // Repeating: every second, three times (see #[job(repeat, max)]).
    Heartbeat::enqueue("api".into()).await?;

    // Unique: the second enqueue puts nothing and returns the first job.
    let first = SyncUser::enqueue(42).await?;
    let again = SyncUser::enqueue(42).await?;
    println!(
        "[{:5.2}s] sync_user(42) enqueued as job {}; again: existing = {}, job {}",
        elapsed(),
        first.id,
        again.existing,
        again.id
    );

    // Failing: retried once, then buried for an operator.
    NightlyReport::enqueue("2026-11-26".into()).await
}
