//! Failures: retries with backoff, burial, kicking, panics and timeouts.

use bsjobs_tests::{counts_now, eventually, server, spawn_worker};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static FAIL_AT: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "f_always", retries = 2, backoff = "1s")]
async fn always_fails(reason: String) -> Result<(), String> {
    FAIL_AT.lock().unwrap().push(Instant::now());
    Err(reason)
}

static PANICS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "f_panic", retries = 1, backoff = "1s")]
async fn panics() {
    PANICS.fetch_add(1, Ordering::SeqCst);
    panic!("handler blew up");
}

static SLOW_STARTS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "f_timeout", retries = 0, timeout = "1s")]
async fn too_slow() {
    SLOW_STARTS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
}

static AFTER_PANIC: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "f_ok")]
async fn fine() {
    AFTER_PANIC.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_backoff_then_bury_and_a_kick_grants_new_attempts() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["f_always"]);
    let job = AlwaysFails::new("smtp down".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    // retries = 2: three attempts, then buried.
    assert!(
        eventually(Duration::from_secs(10), || counts_now(&client, "f_always")
            .buried
            == 1)
        .await
    );
    let at = FAIL_AT.lock().unwrap().clone();
    assert_eq!(at.len(), 3, "1 attempt + 2 retries");
    // backoff 1 s, doubling with jitter into its upper half: ≥ 1 s then ≥ 1 s.
    assert!(
        at[1] - at[0] >= Duration::from_millis(900),
        "{:?}",
        at[1] - at[0]
    );
    assert!(
        at[2] - at[1] >= Duration::from_millis(900),
        "{:?}",
        at[2] - at[1]
    );
    // The buried job is the last replacement of the first: an operator can
    // find it, see the attempts in its envelope, and kick it.
    let (id, body) = client
        .peek_buried(0, "f_always")
        .await
        .unwrap()
        .expect("a buried job");
    assert_ne!(id, job.id, "each retry is a new job");
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("smtp down") && body.contains("\"attempt\":2"),
        "{body}"
    );
    client.kick_job(0, id).await.unwrap();
    assert!(
        eventually(Duration::from_secs(12), || FAIL_AT.lock().unwrap().len()
            == 6)
        .await
    );
    assert!(
        eventually(Duration::from_secs(3), || counts_now(&client, "f_always")
            .buried
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        FAIL_AT.lock().unwrap().len(),
        6,
        "a kick grants one more full budget"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_count_as_failures() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["f_timeout"]);
    TooSlow::new().client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || counts_now(&client, "f_timeout")
            .buried
            == 1)
        .await
    );
    assert_eq!(
        SLOW_STARTS.load(Ordering::SeqCst),
        1,
        "retries = 0: one attempt"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_then_buried_and_the_worker_survives() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["f_panic", "f_ok"]);
    Panics::new().client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(6), || counts_now(&client, "f_panic")
            .buried
            == 1)
        .await
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        2,
        "retries = 1: two attempts"
    );
    Fine::new().client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(3), || AFTER_PANIC
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert!(!h.is_finished());
    sd.trigger();
    h.await.unwrap().unwrap();
}
