//! Repeating jobs: max, cancellation, failures inside a chain.

use bsjobs_tests::{counts, counts_now, eventually, server, spawn_worker, until};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static MAX_RUNS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_max", repeat = "1s", max = 3)]
async fn three_times() {
    MAX_RUNS.lock().unwrap().push(Instant::now());
}

static FOREVER_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "r_forever", repeat = "1s")]
async fn forever(sleep_ms: u64) {
    FOREVER_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails every other call: each run needs one retry.
#[bsjobs::job(tube = "r_flaky", repeat = "1s", max = 2, retries = 3, backoff = "1s")]
async fn flaky() -> Result<(), String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if n % 2 == 0 {
        Err(format!("call {n} fails"))
    } else {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_job_runs_max_times_one_interval_apart_then_ends() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_max"]);
    let handle = ThreeTimes::new().client(&client).enqueue().await.unwrap();
    assert!(handle.chain.is_some(), "repeating jobs get a chain id");
    assert!(
        eventually(Duration::from_secs(8), || MAX_RUNS.lock().unwrap().len()
            == 3)
        .await
    );
    // Give a fourth run every chance to happen: it must not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = MAX_RUNS.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    for w in runs.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(900) && gap < Duration::from_millis(1600),
            "gap {gap:?}"
        );
    }
    assert_eq!(
        counts(&client, "r_max").await.live(),
        0,
        "the chain is over: no job left"
    );
    let token_tube = format!("bsjobs.chain.{}", handle.chain.as_deref().unwrap());
    assert_eq!(
        counts(&client, &token_tube).await.live(),
        0,
        "the chain's token went with its last run"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_during_a_run_stops_it() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_forever"]);
    let handle = Forever::new(700).client(&client).enqueue().await.unwrap();
    // Wait for the second run to be in progress (first run, 1 s sleep, second).
    assert!(
        eventually(Duration::from_secs(6), || FOREVER_RUNS
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    let deleted_now = handle.cancel(&client).await.unwrap();
    assert!(
        !deleted_now,
        "the job in progress is reserved, not deleted on the spot"
    );
    let at_cancel = FOREVER_RUNS.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        FOREVER_RUNS.load(Ordering::SeqCst),
        at_cancel,
        "no run after cancel"
    );
    assert_eq!(
        counts(&client, "r_forever").await.live(),
        0,
        "no job of the chain is left"
    );
    let marker = format!("bsjobs.cancel.{}", handle.chain.unwrap());
    assert_eq!(
        counts(&client, &marker).await.live(),
        0,
        "the cancel marker was cleaned up"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_and_do_not_count_toward_max() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_flaky"]);
    Flaky::new().client(&client).enqueue().await.unwrap();
    // Two successful runs, each after one failure: four calls.
    assert!(
        eventually(Duration::from_secs(12), || FLAKY_CALLS
            .load(Ordering::SeqCst)
            == 4)
        .await
    );
    assert!(
        eventually(Duration::from_secs(3), || counts_now(&client, "r_flaky")
            .live()
            == 0)
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        FLAKY_CALLS.load(Ordering::SeqCst),
        4,
        "max = 2 successful runs"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_that_has_not_run_deletes_it_at_once() {
    let (_srv, client) = server();
    let handle = ThreeTimes::new()
        .delay(Duration::from_secs(60))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        handle.cancel(&client).await.unwrap(),
        "the waiting job was deleted"
    );
    assert_eq!(counts(&client, "r_max").await.live(), 0);
    let marker = format!("bsjobs.cancel.{}", handle.chain.unwrap());
    assert_eq!(
        counts(&client, &marker).await.live(),
        0,
        "no marker is needed"
    );
}

static CHAIN_CALLS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_count", repeat = "1s", max = 4, retries = 2, backoff = "1s")]
async fn counted(fail_on_call: u32) -> Result<(), String> {
    let mut calls = CHAIN_CALLS.lock().unwrap();
    calls.push(0);
    // Calls are 1-based; the call `fail_on_call` fails once.
    if calls.len() == fail_on_call as usize {
        return Err("one failure".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_is_a_new_job_and_the_chain_keeps_its_count() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_count"]);
    // Calls: ok, fail, ok (retry), ok, ok = 4 successful runs in 5 calls.
    let first = Counted::new(2).client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || CHAIN_CALLS
            .lock()
            .unwrap()
            .len()
            == 5)
        .await
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        CHAIN_CALLS.lock().unwrap().len(),
        5,
        "4 successful runs (max) + 1 retried failure"
    );
    assert_eq!(counts(&client, "r_count").await.live(), 0);
    // The worker still watches the tube, so it exists. Jobs: the first and
    // one replacement per run or retry but the last.
    let st = client.stats_tube(0, "r_count").await.unwrap();
    assert_eq!(st.total_jobs, 5);
    assert!(client.peek(0, first.id).await.unwrap().is_none());
    sd.trigger();
    h.await.unwrap().unwrap();
}

static TWIN_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_twin", repeat = "1s")]
async fn twinned(tag: String) {
    TWIN_RUNS.lock().unwrap().push(tag);
}

fn twin_runs(tag: &str) -> usize {
    TWIN_RUNS
        .lock()
        .unwrap()
        .iter()
        .filter(|t| *t == tag)
        .count()
}

/// What a beanstalkd crash between the `put` of a chain's next job and the
/// `delete` of the current one leaves behind, built by hand: an old job of
/// the chain, and a second job of the current generation. Both must go
/// without running, and the chain go on as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twins_a_server_crash_leaves_are_deleted_unrun_and_the_chain_stays_one() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_twin"]);
    let handle = Twinned::new("main".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let chain = handle.chain.clone().unwrap();
    assert!(eventually(Duration::from_secs(3), || twin_runs("main") == 1).await);
    // The first step made the token: generation 1 is the newest.
    let token_tube = format!("bsjobs.chain.{chain}");
    let token_gen = || async {
        let buried = client.peek_buried(0, &token_tube).await.unwrap();
        let (id, _) = match buried {
            Some(t) => t,
            None => client.peek_ready(0, &token_tube).await.unwrap()?,
        };
        Some(client.stats_job(0, id).await.unwrap().pri)
    };
    assert!(
        until(Duration::from_secs(2), || async {
            token_gen().await == Some(1)
        })
        .await,
        "token at generation 1 after the first run"
    );
    let body = |tag: &str, gen: u32| {
        format!(r#"{{"v":1,"args":{{"tag":"{tag}"}},"chain":"{chain}","gen":{gen}}}"#).into_bytes()
    };
    // The job that ran, back after a crash (gen 0): older than the token.
    client
        .put("r_twin", 0, 0, 60, body("old", 0))
        .await
        .unwrap();
    // A second job of the current generation, due after the real one.
    client
        .put("r_twin", 0, 2, 60, body("twin", 1))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(6), || twin_runs("main") >= 4).await,
        "the chain runs on"
    );
    assert_eq!(twin_runs("old"), 0, "a job older than the token never runs");
    assert_eq!(
        twin_runs("twin"),
        0,
        "the later twin is older than the token by the time it is due"
    );
    assert!(
        until(Duration::from_secs(3), || async {
            counts(&client, "r_twin").await.live() == 1
        })
        .await,
        "one live job: the chain did not fork"
    );
    let gen = token_gen().await.unwrap();
    assert!(gen >= 4, "the token follows the chain: generation {gen}");
    sd.trigger();
    h.await.unwrap().unwrap();
}
