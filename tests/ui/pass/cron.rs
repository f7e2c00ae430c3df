//! Cron schedules: 5 and 6 fields, names, a zone, both catch-up choices,
//! with the options a cron job may have.
#![deny(warnings, missing_docs, unreachable_pub)]

use bsjobs::CatchUp;

/// Weekday mornings in Berlin.
#[bsjobs::job(cron = "0 9 * * MON-FRI", tz = "Europe/Berlin")]
pub async fn morning_report() {}

#[bsjobs::job(
    cron = "*/5 * * * * *",
    catch_up = "none",
    tube = "tick",
    priority = 5,
    ttr = "10s",
    retries = 1,
    backoff = "1s",
    timeout = "4s"
)]
fn every_five_seconds() -> Result<(), std::io::Error> {
    Ok(())
}

#[bsjobs::job(cron = "@daily", catch_up = "one", tz = "UTC")]
fn nightly() {}

fn main() {
    let o = MorningReport::OPTIONS;
    assert_eq!(o.cron, Some("0 9 * * MON-FRI"));
    assert_eq!(o.tz, Some("Europe/Berlin"));
    assert_eq!(o.catch_up, CatchUp::One);
    let o = EveryFiveSeconds::OPTIONS;
    assert_eq!((o.cron, o.tz, o.catch_up), (Some("*/5 * * * * *"), None, CatchUp::None));
    assert_eq!((o.priority, o.ttr, o.retries, o.backoff, o.timeout), (5, 10, 1, 1, Some(4)));
    assert_eq!(Nightly::OPTIONS.repeat, None);
    let _ = (morning_report, every_five_seconds, nightly);
}
