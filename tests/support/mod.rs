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
