//! Shared helpers for the integration tests: a real beanstalkd per test,
//! logging, and small waits.

pub mod ledger;

use bsjobs::testing::Beanstalkd;
use std::time::{Duration, Instant};

/// Logs to the test's captured output; `RUST_LOG` filters (default `warn`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A child process (a producer, a worker) killed and reaped when dropped,
/// so that a failing test leaves no process behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a fresh beanstalkd on a free loopback port and a client for it.
pub fn server() -> (Beanstalkd, bsjobs::Client) {
    init_tracing();
    let server = Beanstalkd::start();
    let client = bsjobs::Client::new(&server.url()).expect("client");
    (server, client)
}

/// Opens a raw protocol connection to `server`.
pub async fn raw(server: &Beanstalkd) -> bsjobs::proto::Connection {
    bsjobs::proto::Connection::connect(&server.addr(), &bsjobs::ClientConfig::default())
        .await
        .expect("connect")
}

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls an async condition every 20 ms until it holds or `limit` passes;
/// returns whether it held.
pub async fn until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker for `tubes` on `url` with the default concurrency, stopped by
/// the returned signal.
pub fn spawn_worker(
    url: &str,
    tubes: &[&str],
) -> (
    bsjobs::Shutdown,
    tokio::task::JoinHandle<Result<(), bsjobs::Error>>,
) {
    spawn_configured(bsjobs::Worker::from_url(url).expect("url"), tubes)
}

/// Like [`spawn_worker`], with a worker configured by the caller.
pub fn spawn_configured(
    worker: bsjobs::Worker,
    tubes: &[&str],
) -> (
    bsjobs::Shutdown,
    tokio::task::JoinHandle<Result<(), bsjobs::Error>>,
) {
    let sd = bsjobs::Shutdown::new();
    let w = worker
        .tubes(tubes.iter().copied())
        .grace(Duration::from_secs(5))
        .shutdown(sd.clone());
    (sd, tokio::spawn(w.run()))
}

/// Jobs of `tube` in each state, 0 for a tube that does not exist.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Ready.
    pub ready: u64,
    /// Delayed.
    pub delayed: u64,
    /// Reserved.
    pub reserved: u64,
    /// Buried.
    pub buried: u64,
}

impl Counts {
    /// Every job of the tube, whatever its state.
    pub fn live(&self) -> u64 {
        self.ready + self.delayed + self.reserved + self.buried
    }
}

/// Reads the counts of `tube`.
pub async fn counts(client: &bsjobs::Client, tube: &str) -> Counts {
    match client.stats_tube(0, tube).await {
        Ok(s) => Counts {
            ready: s.current_jobs_ready,
            delayed: s.current_jobs_delayed,
            reserved: s.current_jobs_reserved,
            buried: s.current_jobs_buried,
        },
        Err(bsjobs::Error::NotFound) => Counts::default(),
        Err(e) => panic!("stats-tube {tube}: {e}"),
    }
}

/// [`counts`] from synchronous code, such as an [`eventually`] condition.
pub fn counts_now(client: &bsjobs::Client, tube: &str) -> Counts {
    let (client, tube) = (client.clone(), tube.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move { counts(&client, &tube).await })
    })
    .join()
    .expect("stats thread")
}
