//! Worker and enqueue settings the README documents, end to end: the grace
//! period running out, the default concurrency of 32 and per-tube
//! overrides, `.ttr(d)`/`.priority(p)` kept by later runs and retries, and
//! the default connect (1 s) and I/O (5 s) timeouts.

use bsjobs::{Client, Shutdown, Worker};
use bsjobs_tests::{counts, eventually, server, spawn_configured};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Grace period.
// ---------------------------------------------------------------------------

static STUCK_STARTED: AtomicUsize = AtomicUsize::new(0);
static STUCK_DONE: AtomicUsize = AtomicUsize::new(0);

#[bsjobs::job(tube = "s_stuck", ttr = "60s", retries = 0)]
async fn stuck(ms: u64) {
    STUCK_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    STUCK_DONE.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_grace_period_runs_out_unfinished_jobs_are_released() {
    let (srv, client) = server();
    let mut long = Vec::new();
    for _ in 0..2 {
        long.push(
            Stuck::new(20_000)
                .client(&client)
                .enqueue()
                .await
                .unwrap()
                .id,
        );
    }
    let short = Stuck::new(300).client(&client).enqueue().await.unwrap().id;
    let sd = Shutdown::new();
    let worker = Worker::from_url(&srv.url())
        .unwrap()
        .tubes(["s_stuck"])
        .grace(Duration::from_secs(1))
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    assert!(
        eventually(Duration::from_secs(10), || STUCK_STARTED
            .load(Ordering::SeqCst)
            == 3)
        .await
    );
    let t = Instant::now();
    sd.trigger();
    let r = tokio::time::timeout(Duration::from_secs(15), h)
        .await
        .expect("run() returns once the grace period is over");
    let took = t.elapsed();
    r.unwrap().expect("run() returns Ok");
    let left = counts(&client, "s_stuck").await;
    let mut releases = Vec::new();
    for id in &long {
        let st = client.stats_job(0, *id).await.unwrap();
        releases.push((st.state.to_string(), st.releases));
    }
    println!(
        "grace: run() returned {:.2}s after shutdown (grace 1 s, jobs 20 s), left={left:?}, long jobs {releases:?}",
        took.as_secs_f64()
    );
    assert!(
        took >= Duration::from_millis(900),
        "in-flight jobs get the grace period: returned after {took:?}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the 20 s jobs are not waited for: returned after {took:?}"
    );
    assert_eq!(
        STUCK_DONE.load(Ordering::SeqCst),
        1,
        "only the short job finished"
    );
    assert!(
        matches!(
            client.peek(0, short).await,
            Ok(None) | Err(bsjobs::Error::NotFound)
        ),
        "the short job finished within the grace period and was deleted"
    );
    assert_eq!(
        (left.ready, left.reserved),
        (2, 0),
        "the unfinished jobs are ready again"
    );
    for (state, n) in &releases {
        assert_eq!(
            (state.as_str(), *n),
            ("ready", 1),
            "released by the worker, not by a dropped connection"
        );
    }
}

// ---------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------

static WIDE_NOW: AtomicUsize = AtomicUsize::new(0);
static WIDE_PEAK: AtomicUsize = AtomicUsize::new(0);
static WIDE_DONE: AtomicUsize = AtomicUsize::new(0);
static NARROW_NOW: AtomicUsize = AtomicUsize::new(0);
static NARROW_PEAK: AtomicUsize = AtomicUsize::new(0);
static NARROW_DONE: AtomicUsize = AtomicUsize::new(0);

async fn occupy(now: &AtomicUsize, peak: &AtomicUsize, done: &AtomicUsize, ms: u64) {
    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
    peak.fetch_max(n, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    now.fetch_sub(1, Ordering::SeqCst);
    done.fetch_add(1, Ordering::SeqCst);
}

#[bsjobs::job(tube = "s_wide")]
async fn wide(ms: u64) {
    occupy(&WIDE_NOW, &WIDE_PEAK, &WIDE_DONE, ms).await;
}

#[bsjobs::job(tube = "s_narrow")]
async fn narrow(ms: u64) {
    occupy(&NARROW_NOW, &NARROW_PEAK, &NARROW_DONE, ms).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_defaults_to_32_per_tube_and_a_tube_can_override_it() {
    let (srv, client) = server();
    for r in client
        .enqueue_many((0..40).map(|_| Wide::new(600).client(&client)))
        .await
    {
        r.unwrap();
    }
    for r in client
        .enqueue_many((0..8).map(|_| Narrow::new(300).client(&client)))
        .await
    {
        r.unwrap();
    }
    let (sd, h) = spawn_configured(
        Worker::from_url(&srv.url())
            .unwrap()
            .tube_concurrency("s_narrow", 3),
        &["s_wide", "s_narrow"],
    );
    assert!(
        eventually(Duration::from_secs(20), || WIDE_DONE.load(Ordering::SeqCst)
            == 40
            && NARROW_DONE.load(Ordering::SeqCst) == 8)
        .await,
        "every job runs"
    );
    let (wide, narrow) = (
        WIDE_PEAK.load(Ordering::SeqCst),
        NARROW_PEAK.load(Ordering::SeqCst),
    );
    println!("concurrency: default tube peak {wide}, overridden tube (3) peak {narrow}");
    assert_eq!(wide, 32, "the default concurrency per tube");
    assert_eq!(narrow, 3, "the per-tube override");
    sd.trigger();
    h.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------
// Per-call priority and TTR, kept by later runs and retries.
// ---------------------------------------------------------------------------

static REP_RUNS: AtomicUsize = AtomicUsize::new(0);

#[bsjobs::job(tube = "s_rep", repeat = "1s", max = 3, ttr = "30s", priority = 500)]
async fn rep() {
    REP_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[bsjobs::job(
    tube = "s_fail",
    retries = 1,
    backoff = "30s",
    ttr = "30s",
    priority = 500
)]
async fn fails() -> Result<(), String> {
    Err("no".into())
}

/// (pri, ttr) of the delayed job of `tube`, once there is one and nothing else.
async fn waiting(client: &Client, tube: &str) -> (u32, u32) {
    assert!(
        eventually(Duration::from_secs(10), || {
            let c = bsjobs_tests::counts_now(client, tube);
            c.delayed == 1 && c.ready == 0 && c.reserved == 0
        })
        .await,
        "a job of {tube} waits"
    );
    let (id, _) = client
        .peek_delayed(0, tube)
        .await
        .unwrap()
        .expect("delayed job");
    let st = client.stats_job(0, id).await.unwrap();
    (st.pri, st.ttr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_call_priority_and_ttr_are_kept_for_later_runs_and_retries() {
    let (srv, client) = server();
    // What enqueue puts: whole seconds, rounded up, at least one.
    let h = Rep::new()
        .ttr(Duration::from_millis(8500))
        .priority(9)
        .delay(Duration::from_secs(60))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let st = client.stats_job(0, h.id).await.unwrap();
    assert_eq!((st.pri, st.ttr), (9, 9), ".ttr(8.5 s) puts 9 s");
    client.delete(0, h.id).await.unwrap();
    let h = Rep::new()
        .ttr(Duration::ZERO)
        .delay(Duration::from_secs(60))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let st = client.stats_job(0, h.id).await.unwrap();
    assert_eq!(
        (st.pri, st.ttr),
        (500, 1),
        ".ttr(0) puts 1 s, priority from the attribute"
    );
    client.delete(0, h.id).await.unwrap();

    let (sd, w) = spawn_configured(Worker::from_url(&srv.url()).unwrap(), &["s_rep", "s_fail"]);
    Rep::new()
        .ttr(Duration::from_secs(9))
        .priority(9)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    Fails::new()
        .ttr(Duration::from_secs(8))
        .priority(8)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let retry = waiting(&client, "s_fail").await;
    let mut runs = Vec::new();
    for n in 1..=2 {
        assert!(
            eventually(Duration::from_secs(10), || REP_RUNS.load(Ordering::SeqCst)
                >= n)
            .await
        );
        runs.push(waiting(&client, "s_rep").await);
        // Wait for the waiting run to be taken before looking again.
        assert!(
            eventually(Duration::from_secs(10), || REP_RUNS.load(Ordering::SeqCst)
                > n)
            .await,
            "run {} happens",
            n + 1
        );
    }
    println!("pri/ttr: retry {retry:?}, runs 2 and 3 {runs:?}");
    assert_eq!(
        retry,
        (8, 8),
        "the retry keeps the per-call priority and TTR"
    );
    assert_eq!(
        runs,
        [(9, 9), (9, 9)],
        "later runs keep the per-call priority and TTR"
    );
    sd.trigger();
    w.await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------
// Default client timeouts.
// ---------------------------------------------------------------------------

/// A loopback listener whose accept queue is full: a new connection's SYN
/// is dropped, so connecting hangs.
fn full_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    use std::os::fd::FromRawFd;
    let listener = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        let r = libc::bind(
            fd,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "bind");
        assert_eq!(libc::listen(fd, 0), 0, "listen");
        std::net::TcpListener::from_raw_fd(fd)
    };
    let addr = listener.local_addr().unwrap();
    let mut fill = Vec::new();
    // Fill the queue until a connection attempt no longer completes.
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(s) => fill.push(s),
            Err(_) => break,
        }
    }
    (listener, fill)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_timeouts_are_1s_to_connect_and_5s_for_a_reply() {
    // Connect: a server whose accept queue is full.
    let (full, _fill) = full_listener();
    let connect = Client::new(&format!("beanstalk://{}", full.local_addr().unwrap())).unwrap();
    // I/O: a server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let io = Client::new(&format!("beanstalk://{}", silent.local_addr().unwrap())).unwrap();
    let timed = |c: Client| async move {
        let t = Instant::now();
        let r = c.put("default", 0, 0, 10, b"x".to_vec()).await;
        (t.elapsed(), r)
    };
    let ((c_took, c_res), (i_took, i_res)) = tokio::join!(timed(connect), timed(io));
    println!(
        "default-timeouts: full accept queue -> {:.2}s {:?}; silent server -> {:.2}s {:?}",
        c_took.as_secs_f64(),
        c_res.as_ref().map_err(|e| e.to_string()),
        i_took.as_secs_f64(),
        i_res.as_ref().map_err(|e| e.to_string()),
    );
    let c_err = c_res.expect_err("connecting to a full server fails");
    assert!(matches!(c_err, bsjobs::Error::Connect { .. }), "{c_err}");
    assert!(
        c_took >= Duration::from_millis(950) && c_took < Duration::from_millis(3000),
        "connect timeout 1 s: failed after {c_took:?}"
    );
    i_res.expect_err("a silent server's put fails");
    assert!(
        i_took >= Duration::from_millis(4900) && i_took < Duration::from_secs(8),
        "I/O timeout 5 s: failed after {i_took:?}"
    );
}
