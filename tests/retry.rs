//! Failures: retries with backoff, burial, kicking, panics and timeouts.

use bsjobs_tests::{counts, counts_now, eventually, server, spawn_worker};
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

static BACKOFF_CALLS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "f_backoff", retries = 60, backoff = "10s")]
async fn backs_off(n: u32) -> Result<(), String> {
    BACKOFF_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("fails {n}"))
}

/// Waits for the worker to fail the one job in `f_backoff` and returns the
/// replacement it scheduled: (id, envelope, `stats-job`). Deletes the
/// replacement, so the tube is empty again.
async fn replacement(
    client: &bsjobs::Client,
) -> (u64, serde_json::Value, bsjobs::proto::stats::JobStats) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let c = counts(client, "f_backoff").await;
        if c.delayed == 1 && c.ready == 0 && c.reserved == 0 {
            break;
        }
        assert!(Instant::now() < end, "no retry was scheduled: {c:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (id, body) = client
        .peek_delayed(0, "f_backoff")
        .await
        .unwrap()
        .expect("the retry");
    let stats = client.stats_job(0, id).await.unwrap();
    client.delete(0, id).await.unwrap();
    (id, serde_json::from_slice(&body).unwrap(), stats)
}

/// The documented range of the delay before retry `attempt` with base
/// `base`: `base·2^(attempt-1)` capped at one hour, jittered into its upper
/// half (whole seconds).
fn documented(base: u64, attempt: u32) -> std::ops::RangeInclusive<u64> {
    let full = (base << (attempt - 1).min(30)).min(3600);
    full.div_ceil(2)..=full
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delays_double_with_jitter_in_the_upper_half_and_cap_at_one_hour() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["f_backoff"]);
    // The first failure of a job enqueued the ordinary way.
    let first = BacksOff::new(0).client(&client).enqueue().await.unwrap();
    let (_, env, st) = replacement(&client).await;
    assert_eq!(env["attempt"], 1, "{env}");
    assert_eq!(env["prev"], first.id, "{env}");
    let mut seen = vec![(1, st.delay)];
    // Later failures: a job whose envelope says `attempt` failures came
    // before (as a retry of the worker's own carries), so the next retry is
    // number attempt + 1. Several jobs per attempt to see the jitter.
    let mut plan: Vec<u32> = (1..=12).collect();
    plan.extend([0, 0, 0, 0, 11, 11, 11, 11, 30, 30, 30, 30]);
    for (i, prior) in plan.into_iter().enumerate() {
        let body = format!(r#"{{"args":{{"n":{}}},"attempt":{prior}}}"#, i + 1);
        let put = client
            .put("f_backoff", 1024, 0, 60, body.into_bytes())
            .await
            .unwrap();
        let (_, env, st) = replacement(&client).await;
        assert_eq!(env["attempt"], prior + 1, "{env}");
        assert_eq!(env["prev"], put, "{env}");
        assert!(
            st.time_left <= i64::from(st.delay) && st.time_left >= i64::from(st.delay) - 3,
            "the retry waits its delay: {st:?}"
        );
        seen.push((prior + 1, st.delay));
    }
    println!("backoff (attempt, delay s): {seen:?}");
    for &(attempt, delay) in &seen {
        let range = documented(10, attempt);
        assert!(
            range.contains(&u64::from(delay)),
            "retry {attempt} with backoff 10 s waits {delay} s, documented {range:?}"
        );
    }
    // Jitter: the same attempt does not always wait the same time.
    for attempt in [12, 31] {
        let delays: std::collections::BTreeSet<u32> = seen
            .iter()
            .filter(|s| s.0 == attempt)
            .map(|s| s.1)
            .collect();
        assert!(
            delays.len() > 1,
            "retry {attempt} waited {delays:?} every time: no jitter"
        );
    }
    assert_eq!(
        BACKOFF_CALLS.load(Ordering::SeqCst),
        25,
        "every job ran once and is waiting for its retry"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}
