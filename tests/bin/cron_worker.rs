//! A worker process for `tests/cron.rs`: one cron job ticking every second.
//! Each run appends `<tick> <pid> <start unix ms>` to the file named by
//! `BSJOBS_CRON_LEDGER`. Runs until SIGTERM (or SIGKILL by the test).

use std::io::Write as _;

#[bsjobs::job(tube = "cf_tick", cron = "* * * * * *", ttr = "5s")]
async fn every_second() {
    let job = bsjobs::current_job().expect("inside a job");
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let path = std::env::var("BSJOBS_CRON_LEDGER").expect("BSJOBS_CRON_LEDGER");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let line = format!("{} {} {ms}\n", job.tick.unwrap_or(-1), std::process::id());
    f.write_all(line.as_bytes()).unwrap();
    // Long enough for a kill to land inside a run now and then.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
}

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    bsjobs::Worker::from_env()?
        .grace(std::time::Duration::from_secs(2))
        .run()
        .await
}
