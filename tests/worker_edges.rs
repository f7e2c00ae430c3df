//! Worker behaviour at the edges: a per-call TTR shorter than the run,
//! priorities kept on release, a forced shutdown, and new jobs picked up at
//! once while long ones run.

use bsjobs::proto::stats::JobState;
use bsjobs_tests::{counts, server, spawn_configured, spawn_worker, until};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SHORT_TTR_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "e_short_ttr", ttr = "60s")]
async fn outlives_its_ttr(ms: u64) {
    SHORT_TTR_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// The producer chose a TTR shorter than the run (the attribute says 60 s):
/// touches follow the job's real TTR, so no second worker (here: a second
/// slot of the same worker) runs it at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_call_ttr_shorter_than_the_run_gives_no_second_run() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["e_short_ttr"]);
    let handle = OutlivesItsTtr::new(3500)
        .ttr(Duration::from_secs(1))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    // A foreign producer's TTR (no `ttr` in the envelope) counts too.
    let foreign = client
        .put("e_short_ttr", 0, 0, 1, br#"{"args":{"ms":3500}}"#.to_vec())
        .await
        .unwrap();
    assert!(
        until(Duration::from_secs(8), || async {
            counts(&client, "e_short_ttr").await.live() == 0
        })
        .await
    );
    assert_eq!(
        SHORT_TTR_RUNS.load(Ordering::SeqCst),
        2,
        "each job ran once"
    );
    let _ = (handle, foreign);
    sd.trigger();
    h.await.unwrap().unwrap();
}

static SLOW_STARTED: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "e_slow", priority = 1024)]
async fn slow(ms: u64) {
    SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Jobs released at shutdown keep their own priority, whether the worker
/// learned it while they ran or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_released_at_shutdown_keep_their_priority() {
    let (srv, client) = server();
    let a = client
        .put("e_slow", 5, 0, 60, br#"{"args":{"ms":20000}}"#.to_vec())
        .await
        .unwrap();
    let b = client
        .put("e_slow", 7, 0, 60, br#"{"args":{"ms":20000}}"#.to_vec())
        .await
        .unwrap();
    let sd = bsjobs::Shutdown::new();
    let worker = bsjobs::Worker::from_url(&srv.url())
        .unwrap()
        .tubes(["e_slow"])
        .grace(Duration::from_millis(100))
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    assert!(
        until(Duration::from_secs(3), || async {
            SLOW_STARTED.load(Ordering::SeqCst) == 2
        })
        .await
    );
    sd.trigger();
    h.await.unwrap().unwrap();
    for (id, pri) in [(a, 5), (b, 7)] {
        let s = client.stats_job(0, id).await.unwrap();
        assert_eq!((s.state, s.pri), (JobState::Ready, pri), "job {id}");
    }
}

static FORCED_STARTED: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "e_forced")]
async fn very_slow() {
    FORCED_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// A second signal ends the grace period at once: unfinished jobs are
/// released and the worker returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_shutdown_releases_at_once() {
    let (srv, client) = server();
    let handle = VerySlow::new().client(&client).enqueue().await.unwrap();
    let sd = bsjobs::Shutdown::new();
    let worker = bsjobs::Worker::from_url(&srv.url())
        .unwrap()
        .tubes(["e_forced"])
        .grace(Duration::from_secs(60))
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    assert!(
        until(Duration::from_secs(3), || async {
            FORCED_STARTED.load(Ordering::SeqCst) == 1
        })
        .await
    );
    sd.trigger();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!h.is_finished(), "the grace period lets the job run on");
    assert_eq!(
        client.stats_job(0, handle.id).await.unwrap().state,
        JobState::Reserved
    );
    sd.force();
    tokio::time::timeout(Duration::from_secs(10), h)
        .await
        .expect("a forced worker returns")
        .unwrap()
        .unwrap();
    assert_eq!(
        client.stats_job(0, handle.id).await.unwrap().state,
        JobState::Ready,
        "released, not left to its TTR"
    );
}

static STARTS: Mutex<Option<HashMap<u32, Instant>>> = Mutex::new(None);

#[bsjobs::job(tube = "e_pickup")]
async fn picked(n: u32, ms: u64) {
    STARTS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(n, Instant::now());
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Enqueue → start latencies of `count` short jobs put one at a time.
async fn pickups(client: &bsjobs::Client, first: u32, count: u32) -> Vec<Duration> {
    let mut out = Vec::new();
    for n in first..first + count {
        let t = Instant::now();
        Picked::new(n, 1).client(client).enqueue().await.unwrap();
        let started = loop {
            if let Some(s) = STARTS.lock().unwrap().as_ref().and_then(|m| m.get(&n)) {
                break *s;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        out.push(started.saturating_duration_since(t));
        tokio::time::sleep(Duration::from_millis(30 + u64::from(n % 7) * 3)).await;
    }
    out.sort();
    out
}

/// With a long job of the same tube in flight, a new job starts as fast as
/// on an idle worker, not at the next look at the tube.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_jobs_start_at_once_while_a_long_job_runs() {
    let (srv, client) = server();
    let (sd, h) = spawn_configured(
        bsjobs::Worker::from_url(&srv.url()).unwrap().concurrency(8),
        &["e_pickup"],
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = pickups(&client, 0, 15).await;
    Picked::new(1000, 15_000)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        until(Duration::from_secs(3), || async {
            STARTS
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|m| m.contains_key(&1000))
        })
        .await
    );
    let busy = pickups(&client, 100, 15).await;
    let p50 = |v: &[Duration]| v[v.len() / 2];
    println!(
        "pickup p50 idle {:?} busy {:?}; max idle {:?} busy {:?}",
        p50(&idle),
        p50(&busy),
        idle.last().unwrap(),
        busy.last().unwrap()
    );
    // Polling every 50 ms gave a busy median near 25 ms.
    let bound = p50(&idle) * 4 + Duration::from_millis(8);
    assert!(
        p50(&busy) < bound,
        "busy p50 {:?} vs idle p50 {:?}",
        p50(&busy),
        p50(&idle)
    );
    sd.force();
    h.await.unwrap().unwrap();
}

static TWO_SERVER_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "e_two")]
async fn on_two_servers() {
    TWO_SERVER_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// One dead server in the URL does not slow the reserve loops of a live
/// one, and the worker reports each server's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_does_not_hold_up_a_live_one_and_status_says_which() {
    let (srv, client) = server();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let url = format!("beanstalk://{},{dead}", srv.addr());
    let mut worker = bsjobs::Worker::from_url(&url).unwrap();
    let status = worker.status();
    let (sd, h) = spawn_configured(worker, &["e_two"]);
    let t = Instant::now();
    OnTwoServers::new().client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(3), || async {
            TWO_SERVER_RUNS.load(Ordering::SeqCst) == 1
        })
        .await
    );
    println!("job on the live server ran {:?} after enqueue", t.elapsed());
    assert!(
        until(Duration::from_secs(3), || async {
            let s = status.servers();
            s[0].up && !s[1].up && s[1].last_error.is_some()
        })
        .await,
        "{:?}",
        status.servers()
    );
    let s = status.servers();
    assert_eq!(s[0].addr, srv.addr());
    assert_eq!(s[1].addr, dead);
    sd.trigger();
    h.await.unwrap().unwrap();
}
