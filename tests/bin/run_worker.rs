//! A worker binary whose `main` is what the README tells users to write,
//! for the tests of `bsjobs::run()`, SIGINT, `BSJOBS_URL` and
//! `Client::set_global` (`tests/process.rs`). Each mode runs in its own
//! process because the process-wide client and the signal handlers are
//! process-wide.
//!
//! Modes (first argument):
//! - `run`: `bsjobs::run().await` (exit 0 on `Ok`, 1 on `Err`);
//! - `enqueue TEXT`: `Note::enqueue(TEXT, 0)` without `.client`, prints the job id;
//! - `enqueue-global URL TEXT`: `Client::set_global(Client::new(URL))`, then the same;
//! - `defaults`: prints the settings `BSJOBS_URL` gives (or their defaults).
//!
//! Environment: `BSJOBS_URL`; `RUN_LEDGER`, the ledger the jobs append to.

use bsjobs_tests::ledger::Ledger;
use std::sync::OnceLock;
use std::time::Duration;

fn ledger() -> &'static Ledger {
    static LEDGER: OnceLock<Ledger> = OnceLock::new();
    LEDGER.get_or_init(|| {
        let path = std::env::var("RUN_LEDGER").expect("RUN_LEDGER names the ledger file");
        Ledger::open(&path).unwrap_or_else(|e| panic!("open ledger {path}: {e}"))
    })
}

/// Records `text`, taking `ms`.
#[bsjobs::job(tube = "rw_note")]
async fn note(text: String, ms: u64) {
    ledger().start("note", &text);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ledger().done("note", &text);
}

/// A plain job in another tube: `run()` must run it too.
#[bsjobs::job(tube = "rw_plain")]
fn plain_note(text: String) {
    ledger().start("plain", &text);
    ledger().done("plain", &text);
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["run"] => bsjobs::run().await.map(|()| "clean exit".to_owned()),
        ["enqueue", text] => Note::enqueue(text.to_string(), 0)
            .await
            .map(|h| format!("id={}", h.id)),
        ["enqueue-global", url, text] => {
            let client = bsjobs::Client::new(url).expect("client");
            assert!(bsjobs::Client::set_global(client), "no global client yet");
            Note::enqueue(text.to_string(), 0)
                .await
                .map(|h| format!("id={}", h.id))
        }
        ["defaults"] => bsjobs::Client::global().map(|c| {
            let c = c.config();
            format!(
                "servers={:?} connect_timeout={:?} io_timeout={:?}",
                c.servers, c.connect_timeout, c.io_timeout
            )
        }),
        _ => {
            eprintln!("usage: run-worker run | enqueue TEXT | enqueue-global URL TEXT | defaults");
            std::process::exit(2);
        }
    };
    match result {
        Ok(out) => println!("{out}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
