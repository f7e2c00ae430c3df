//! A worker process for the fault tests (`tests/faults.rs`), killed and
//! restarted by them at will.
//!
//! Environment:
//! - `BSJOBS_URL`: the beanstalkd to work for;
//! - `FAULT_LEDGER`: the ledger file every handler appends `start`/`done` to;
//! - `FAULT_TUBES`: comma-separated tubes to run (default: all of them);
//! - `FAULT_CONCURRENCY`: jobs per tube at once (default 8);
//! - `RUST_LOG`: log filter (default `info`); logs go to stderr.
//!
//! Exits 0 after a clean shutdown (SIGINT/SIGTERM), 1 if the worker fails.
//! The job declarations are mirrored in `tests/faults.rs` (for enqueueing):
//! keep tubes, parameters and options identical.

use bsjobs_tests::ledger::Ledger;
use std::sync::OnceLock;
use std::time::Duration;

fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let path = std::env::var("FAULT_LEDGER").expect("FAULT_LEDGER names the ledger file");
        Ledger::open(&path).unwrap_or_else(|e| panic!("open ledger {path}: {e}"))
    })
}

/// The soak job: `ms` of work, recorded in the ledger.
#[bsjobs::job(tube = "f_soak", ttr = "3s", retries = 3, backoff = "1s")]
async fn soak(n: u64, ms: u64) {
    ledger().start("soak", n);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ledger().done("soak", n);
}

/// A chain that runs every second, forever.
#[bsjobs::job(tube = "f_chain", repeat = "1s", ttr = "2s")]
async fn chain(tag: String) {
    ledger().start("chain", &tag);
    tokio::time::sleep(Duration::from_millis(400)).await;
    ledger().done("chain", &tag);
}

/// A chain that runs every second, `max = 3` times.
#[bsjobs::job(tube = "f_chain_max", repeat = "1s", max = 3, ttr = "2s")]
async fn chain_max(tag: String) {
    ledger().start("chain_max", &tag);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ledger().done("chain_max", &tag);
}

/// Runs three times its TTR: only touches keep it from being handed out again.
#[bsjobs::job(tube = "f_long", ttr = "2s", retries = 0)]
async fn long(n: u64) {
    ledger().start("long", n);
    tokio::time::sleep(Duration::from_secs(6)).await;
    ledger().done("long", n);
}

/// TTR of one second: while it runs, beanstalkd answers the worker's
/// reserves on this connection with `DEADLINE_SOON`.
#[bsjobs::job(tube = "f_tight", ttr = "1s", retries = 0)]
async fn tight(n: u64, ms: u64) {
    ledger().start("tight", n);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ledger().done("tight", n);
}

/// A well-behaved job, run between bad ones.
#[bsjobs::job(tube = "f_good", retries = 0)]
async fn good(n: u64) {
    ledger().start("good", n);
    ledger().done("good", n);
}

/// Panics in its handler; with no retries it is buried at once.
#[bsjobs::job(tube = "f_panics", retries = 0)]
async fn panics(n: u64) {
    ledger().start("panics", n);
    panic!("fault-worker: panics({n}) panics on purpose");
}

/// A job that takes `ms`, for the shutdown tests.
#[bsjobs::job(tube = "f_slow", ttr = "30s", retries = 0)]
async fn slow(n: u64, ms: u64) {
    ledger().start("slow", n);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ledger().done("slow", n);
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    // Open the ledger before any job runs, so a bad path fails at start.
    let _ = ledger();
    let mut worker = match bsjobs::Worker::from_env() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("fault-worker: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(tubes) = std::env::var("FAULT_TUBES") {
        worker = worker.tubes(tubes.split(',').map(str::trim).filter(|t| !t.is_empty()));
    }
    let concurrency = std::env::var("FAULT_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8);
    worker = worker.concurrency(concurrency);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(worker.run()) {
        Ok(()) => {
            eprintln!("fault-worker {}: clean exit", std::process::id());
        }
        Err(e) => {
            eprintln!("fault-worker: {e}");
            std::process::exit(1);
        }
    }
}
