//! A step that beanstalkd refuses loses nothing: the job is kept, buried,
//! with the reason logged (issue 9, item 1).

use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, ClientConfig};
use bsjobs_tests::{counts, spawn_worker, until};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The server's job size limit in these tests (`-z`).
const LIMIT: usize = 2000;

static BIG_CALLS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "x_big", retries = 3, backoff = "1s")]
async fn big(payload: String) -> Result<(), String> {
    BIG_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("fails ({} bytes)", payload.len()))
}

static DRAIN_CALLS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "x_drain", retries = 3, backoff = "1s")]
async fn drained(n: u32) -> Result<(), String> {
    DRAIN_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("job {n} fails"))
}

static CHAIN_CALLS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "x_chain", repeat = "1s", max = 3)]
async fn big_chain(payload: String) {
    let _ = payload;
    CHAIN_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn limited() -> (Beanstalkd, Client) {
    let srv = Beanstalkd::builder().max_job_size(LIMIT).start();
    let client = Client::with_config(ClientConfig {
        max_job_size: LIMIT,
        ..ClientConfig::from_url(&srv.url()).unwrap()
    });
    (srv, client)
}

/// A payload whose first envelope fits the limit and whose replacement
/// (with `attempt`, `prev`, `gen`, or `run`) does not.
fn near_limit(overhead: usize) -> String {
    "x".repeat(LIMIT - overhead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_too_big_for_the_server_keeps_the_job_buried() {
    let (srv, client) = limited();
    let handle = Big::new(near_limit(125))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let body = client.peek(0, handle.id).await.unwrap().unwrap();
    let (sd, h) = spawn_worker(&srv.url(), &["x_big"]);
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "x_big").await.buried == 1
        })
        .await,
        "the job is kept, buried"
    );
    let (id, kept) = client.peek_buried(0, "x_big").await.unwrap().unwrap();
    println!(
        "ledger: JOB_TOO_BIG retry -> job {id} kept buried in x_big ({} bytes, same body: {})",
        kept.len(),
        kept == body
    );
    assert_eq!(id, handle.id, "the job itself, not a copy");
    assert_eq!(kept, body, "body unchanged");
    assert_eq!(BIG_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(counts(&client, "x_big").await.live(), 1, "nothing else");
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_refused_by_a_draining_server_keep_every_job() {
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    for n in 0..3 {
        Drained::new(n)
            .delay(Duration::from_secs(1))
            .client(&client)
            .enqueue()
            .await
            .unwrap();
    }
    // Drain mode: beanstalkd refuses every put from now on.
    let pid = srv.pid().expect("running") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    let (sd, h) = spawn_worker(&srv.url(), &["x_drain"]);
    assert!(
        until(Duration::from_secs(6), || async {
            counts(&client, "x_drain").await.buried == 3
        })
        .await,
        "all three kept: {:?}",
        counts(&client, "x_drain").await
    );
    println!(
        "ledger: DRAINING retries -> 3 of 3 jobs kept buried in x_drain after {} runs",
        DRAIN_CALLS.load(Ordering::SeqCst)
    );
    assert_eq!(counts(&client, "x_drain").await.live(), 3);
    assert_eq!(DRAIN_CALLS.load(Ordering::SeqCst), 3);
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_next_run_is_refused_keeps_its_job_and_token() {
    let (srv, client) = limited();
    // Room for the first envelope (120 bytes around the payload with chain
    // id, token id, due and enqueue times), not for the `run`, `prev` and
    // `gen` of the next run.
    let handle = BigChain::new(near_limit(135))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let token = handle.token.unwrap();
    let (sd, h) = spawn_worker(&srv.url(), &["x_chain"]);
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "x_chain").await.buried == 1
        })
        .await,
        "the job is kept, buried"
    );
    let (id, _) = client.peek_buried(0, "x_chain").await.unwrap().unwrap();
    assert_eq!(id, handle.id);
    assert_eq!(CHAIN_CALLS.load(Ordering::SeqCst), 1);
    let t = client.stats_job(0, token).await.unwrap();
    assert_eq!(t.tube, "bsjobs.chains");
    assert_eq!(u64::from(t.pri), 0, "the token still names the first job");
    assert_eq!(
        t.state,
        bsjobs::proto::stats::JobState::Buried,
        "the token is not left reserved or ready"
    );
    println!("ledger: JOB_TOO_BIG next run -> job {id} kept buried, token {token} still names it");
    sd.trigger();
    h.await.unwrap().unwrap();
}
