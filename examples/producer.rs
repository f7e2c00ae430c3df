//! A producer: enqueues immediate, delayed, scheduled and repeating jobs.
//!
//! ```sh
//! BSJOBS_URL=beanstalk://127.0.0.1:11300 cargo run -p bsjobs-examples --example producer
//! ```

use bsjobs_examples::{Heartbeat, NightlyReport, ResizeImage, SendEmail, Size};
use std::time::{Duration, SystemTime};

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    // Immediate: arguments are typed; a wrong type is a compile error.
    let job = SendEmail::enqueue("ada@example.com".into(), "Welcome".into()).await?;
    println!("enqueued email as job {}", job.id);

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

    // Failing: retried once, then buried for an operator.
    NightlyReport::enqueue("2026-11-26".into()).await?;
    Ok(())
}
