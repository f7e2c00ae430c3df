//! The worker runtime end to end: #[job] functions, enqueue, bsjobs worker,
//! against a real beanstalkd.

use bsjobs::{Shutdown, Worker};
use bsjobs_tests::{counts_now, eventually, raw, server, spawn_configured};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// (tube, label, when the handler started).
static LOG: Mutex<Vec<(&'static str, String, Instant)>> = Mutex::new(Vec::new());

fn record(tube: &'static str, label: String) {
    LOG.lock().unwrap().push((tube, label, Instant::now()));
}

fn events(tube: &str) -> Vec<(String, Instant)> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == tube)
        .map(|e| (e.1.clone(), e.2))
        .collect()
}

#[bsjobs::job(tube = "t_timing")]
async fn timing(label: String) {
    record("t_timing", label);
}

#[bsjobs::job(tube = "t_prio")]
async fn prio(label: String) {
    record("t_prio", label);
}

#[bsjobs::job(tube = "t_foreign")]
async fn foreign(name: String, times: u32) {
    record("t_foreign", format!("{name}x{times}"));
}

#[bsjobs::job(tube = "t_plain")]
fn plain(n: u64) -> Result<(), String> {
    record("t_plain", n.to_string());
    Ok(())
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[bsjobs::job(tube = "t_conc")]
async fn conc(ms: u64) {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    PEAK.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    record("t_conc", ms.to_string());
}

#[bsjobs::job(tube = "t_slow")]
async fn slow(label: String, ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    record("t_slow", label);
}

#[bsjobs::job(tube = "t_good")]
async fn good(n: u32) {
    record("t_good", n.to_string());
}

fn spawn_worker(
    url: &str,
    tubes: &[&str],
    concurrency: usize,
) -> (Shutdown, tokio::task::JoinHandle<Result<(), bsjobs::Error>>) {
    spawn_configured(
        Worker::from_url(url).unwrap().concurrency(concurrency),
        tubes,
    )
}

async fn stop(sd: Shutdown, h: tokio::task::JoinHandle<Result<(), bsjobs::Error>>) {
    sd.trigger();
    tokio::time::timeout(Duration::from_secs(10), h)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_delayed_and_scheduled_jobs_run_on_time() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_timing"], 4);
    let t0 = Instant::now();
    Timing::new("now".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    Timing::new("delay2".into())
        .delay(Duration::from_secs(2))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    Timing::new("at1".into())
        .at(SystemTime::now() + Duration::from_secs(1))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    Timing::new("past".into())
        .at(SystemTime::now() - Duration::from_secs(60))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(6), || events("t_timing").len() == 4).await);
    let at: HashMap<String, Duration> = events("t_timing")
        .into_iter()
        .map(|(l, t)| (l, t - t0))
        .collect();
    // beanstalkd counts whole seconds: allow its one-second grain.
    assert!(at["now"] < Duration::from_millis(500), "{at:?}");
    assert!(at["past"] < Duration::from_millis(500), "{at:?}");
    assert!(
        at["at1"] >= Duration::from_millis(900) && at["at1"] < Duration::from_millis(2600),
        "{at:?}"
    );
    assert!(
        at["delay2"] >= Duration::from_millis(1900) && at["delay2"] < Duration::from_millis(3600),
        "{at:?}"
    );
    stop(sd, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_order_ready_jobs() {
    let (srv, client) = server();
    for (label, p) in [("low", 2000), ("high", 1), ("mid", 500), ("default", 1024)] {
        Prio::new(label.into())
            .priority(p)
            .client(&client)
            .enqueue()
            .await
            .unwrap();
    }
    // One at a time, so the order of starts is the order of reserves.
    let (sd, h) = spawn_worker(&srv.url(), &["t_prio"], 1);
    assert!(eventually(Duration::from_secs(5), || events("t_prio").len() == 4).await);
    let order: Vec<String> = events("t_prio").into_iter().map(|e| e.0).collect();
    assert_eq!(order, ["high", "mid", "default", "low"]);
    stop(sd, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_producer_enqueues_with_a_raw_put() {
    let (srv, _client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_foreign"], 2);
    // What a Python or PHP producer would send: the documented envelope.
    let mut c = raw(&srv).await;
    c.request(&bsjobs::proto::Command::Use("t_foreign"))
        .await
        .unwrap();
    let body = br#"{"args":{"name":"py","times":3}}"#;
    let r = c
        .request(&bsjobs::proto::Command::Put {
            pri: 0,
            delay: 0,
            ttr: 30,
            body,
        })
        .await
        .unwrap();
    assert!(matches!(r, bsjobs::proto::Response::Inserted(_)), "{r:?}");
    assert!(
        eventually(Duration::from_secs(5), || events("t_foreign")
            .iter()
            .any(|e| e.0 == "pyx3"))
        .await
    );
    stop(sd, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_functions_run_on_the_blocking_pool() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_plain"], 2);
    Plain::new(42).client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || events("t_plain")
            .iter()
            .any(|e| e.0 == "42"))
        .await
    );
    stop(sd, h).await;
    assert_eq!(
        client
            .stats_tube(0, "t_plain")
            .await
            .unwrap()
            .current_jobs_ready,
        0
    );
}

static BLOCK_NOW: AtomicUsize = AtomicUsize::new(0);
static BLOCK_PEAK: AtomicUsize = AtomicUsize::new(0);
static BLOCK_DONE: AtomicUsize = AtomicUsize::new(0);

/// A plain job that holds its thread for `ms`.
#[bsjobs::job(tube = "t_block")]
fn block(ms: u64) {
    let now = BLOCK_NOW.fetch_add(1, Ordering::SeqCst) + 1;
    BLOCK_PEAK.fetch_max(now, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(ms));
    BLOCK_NOW.fetch_sub(1, Ordering::SeqCst);
    BLOCK_DONE.fetch_add(1, Ordering::SeqCst);
}

static NAP_DONE: AtomicUsize = AtomicUsize::new(0);

/// The async control: waits `ms` without holding a thread.
#[bsjobs::job(tube = "t_nap")]
async fn nap(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    NAP_DONE.fetch_add(1, Ordering::SeqCst);
}

/// Runs a ticker on the runtime while `n` jobs of `enqueue` run to
/// `done() == n`; returns the ticker's longest gap beyond its 5 ms period
/// and how long the jobs took.
async fn ticker_gap_while(
    n: usize,
    enqueue: impl std::future::Future<Output = ()>,
    done: impl Fn() -> usize,
) -> (Duration, Duration) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let ticker = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while !flag.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let now = Instant::now();
            worst = worst.max((now - last).saturating_sub(Duration::from_millis(5)));
            last = now;
        }
        worst
    });
    let t = Instant::now();
    enqueue.await;
    assert!(
        eventually(Duration::from_secs(20), || done() >= n).await,
        "{n} jobs finish"
    );
    let took = t.elapsed();
    stop.store(true, Ordering::Release);
    (ticker.await.unwrap(), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_jobs_do_not_stall_async_work_on_the_runtime() {
    // Two runtime threads, like a small worker box. Four plain jobs that
    // each hold a thread for 700 ms must run on the blocking pool: run on
    // the runtime's own threads, they would stop every other task on it
    // (a ticker here) for about a second.
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_block", "t_nap"], 8);
    let (control, control_took) = ticker_gap_while(
        4,
        async {
            for r in client
                .enqueue_many((0..4).map(|_| Nap::new(700).client(&client)))
                .await
            {
                r.unwrap();
            }
        },
        || NAP_DONE.load(Ordering::SeqCst),
    )
    .await;
    let (plain, plain_took) = ticker_gap_while(
        4,
        async {
            for r in client
                .enqueue_many((0..4).map(|_| Block::new(700).client(&client)))
                .await
            {
                r.unwrap();
            }
        },
        || BLOCK_DONE.load(Ordering::SeqCst),
    )
    .await;
    let peak = BLOCK_PEAK.load(Ordering::SeqCst);
    println!(
        "plain-vs-async: ticker's worst gap with 4 async jobs {:.1} ms (took {:.0} ms), \
         with 4 plain jobs {:.1} ms (took {:.0} ms), plain jobs at once {peak}",
        control.as_secs_f64() * 1e3,
        control_took.as_secs_f64() * 1e3,
        plain.as_secs_f64() * 1e3,
        plain_took.as_secs_f64() * 1e3,
    );
    // Blocking both runtime threads stalls the ticker for ≥ 700 ms; the
    // blocking pool leaves it as free as the async control, give or take
    // the noise of a loaded machine.
    assert!(
        plain < control + Duration::from_millis(300),
        "plain jobs stalled async work: worst ticker gap {plain:?} vs {control:?} with async jobs"
    );
    assert!(
        peak >= 3,
        "plain jobs run side by side on the blocking pool, not two at a time: peak {peak}"
    );
    stop(sd, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_n_runs_n_at_once() {
    let (srv, client) = server();
    let jobs = (0..20).map(|_| Conc::new(300).client(&client));
    for r in client.enqueue_many(jobs).await {
        r.unwrap();
    }
    let (sd, h) = spawn_worker(&srv.url(), &["t_conc"], 5);
    assert!(eventually(Duration::from_secs(10), || events("t_conc").len() == 20).await);
    assert_eq!(
        PEAK.load(Ordering::SeqCst),
        5,
        "exactly the configured concurrency ran at once"
    );
    stop(sd, h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_work_and_reserves_nothing_new() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_slow"], 2);
    for i in 0..2 {
        Slow::new(format!("inflight{i}"), 800)
            .client(&client)
            .enqueue()
            .await
            .unwrap();
    }
    // Wait until both are reserved, then queue more and shut down.
    assert!(
        eventually(Duration::from_secs(5), || {
            counts_now(&client, "t_slow").reserved == 2
        })
        .await
    );
    for i in 0..3 {
        Slow::new(format!("later{i}"), 10)
            .client(&client)
            .enqueue()
            .await
            .unwrap();
    }
    let t = Instant::now();
    stop(sd, h).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stopped after in-flight work, took {:?}",
        t.elapsed()
    );
    let done: Vec<String> = events("t_slow").into_iter().map(|e| e.0).collect();
    assert!(
        done.contains(&"inflight0".to_owned()) && done.contains(&"inflight1".to_owned()),
        "{done:?}"
    );
    assert!(
        !done.iter().any(|l| l.starts_with("later")),
        "nothing new was started: {done:?}"
    );
    let st = client.stats_tube(0, "t_slow").await.unwrap();
    assert_eq!(
        (st.current_jobs_ready, st.current_jobs_reserved),
        (3, 0),
        "later jobs wait, in-flight ones are deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_buried_and_the_worker_keeps_running() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["t_good"], 4);
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        br#"{"args":{"n":"not a number"}}"#.to_vec(),
        br#"{"args":{}}"#.to_vec(),
        br#"{"v":99,"args":{"n":1}}"#.to_vec(),
        format!(
            "{{\"args\":{{\"n\":{}1{}}}}}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        )
        .into_bytes(),
    ];
    for (i, b) in bad.iter().enumerate() {
        client.put("t_good", 0, 0, 30, b.clone()).await.unwrap();
        Good::new(i as u32).client(&client).enqueue().await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || events("t_good").len()
            == bad.len())
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || counts_now(&client, "t_good")
            .buried
            == bad.len() as u64)
        .await
    );
    assert!(!h.is_finished(), "the worker is still running");
    stop(sd, h).await;
}

#[tokio::test]
async fn unknown_tube_is_refused_at_start() {
    let e = Worker::from_url("beanstalk://127.0.0.1:1")
        .unwrap()
        .tubes(["no_such_tube"])
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(e, bsjobs::Error::UnknownTube(ref t) if t == "no_such_tube"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_many_answers_every_job_in_order() {
    let (_srv, client) = server();
    let jobs = (0..2500u32).map(|i| {
        if i == 1500 {
            // 70 kB of arguments: over beanstalkd's default job size.
            Good::new(i).client(&client).priority(1)
        } else {
            Good::new(i).client(&client)
        }
    });
    let mut jobs: Vec<_> = jobs.collect();
    jobs.insert(1200, Timing::new("x".repeat(70_000)).client(&client));
    let out = client.enqueue_many(jobs).await;
    assert_eq!(out.len(), 2501);
    assert!(
        matches!(out[1200], Err(bsjobs::Error::JobTooBig { .. })),
        "{:?}",
        out[1200]
    );
    let ids: Vec<u64> = out
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|h| h.id))
        .collect();
    assert_eq!(ids.len(), 2500);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "results come back in order"
    );
    assert_eq!(
        client
            .stats_tube(0, "t_good")
            .await
            .unwrap()
            .current_jobs_ready,
        2500
    );
}
