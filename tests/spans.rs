//! A job's log lines carry the job's span (`job{tube=… id=…}`), for plain
//! `fn` jobs (run on tokio's blocking pool) as for `async fn` jobs.

use bsjobs_tests::{eventually, server, spawn_worker};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Everything the subscriber writes, for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured() -> &'static Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Captured::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    })
}

fn lines_with(text: &str) -> Vec<String> {
    let log = captured().0.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

#[bsjobs::job(tube = "sp_plain")]
fn resize_image(n: u32) {
    tracing::info!(n, "resizing image");
}

#[bsjobs::job(tube = "sp_async")]
async fn charge_card(n: u32) {
    tracing::info!(n, "charging card");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_async_jobs_log_inside_the_job_span() {
    captured();
    let (srv, client) = server();
    let plain = ResizeImage::new(7).client(&client).enqueue().await.unwrap();
    let asy = ChargeCard::new(8).client(&client).enqueue().await.unwrap();
    let (sd, w) = spawn_worker(&srv.url(), &["sp_plain", "sp_async"]);
    assert!(
        eventually(Duration::from_secs(10), || {
            !lines_with("resizing image").is_empty() && !lines_with("charging card").is_empty()
        })
        .await,
        "both jobs ran"
    );
    sd.trigger();
    w.await.unwrap().unwrap();
    // The async job is the control: its line is inside the span.
    let line = &lines_with("charging card")[0];
    assert!(
        line.contains(&format!("job{{tube=\"sp_async\" id={}}}", asy.id)),
        "async job: {line}"
    );
    let line = &lines_with("resizing image")[0];
    assert!(
        line.contains(&format!("job{{tube=\"sp_plain\" id={}}}", plain.id)),
        "plain fn job: {line}"
    );
}
