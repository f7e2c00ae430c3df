//! Cron jobs: exactly one chain whatever the number of workers, one run per
//! tick, catch-up, schedule changes, and a fault test with worker processes
//! killed and beanstalkd killed and restarted on its binlog.
//!
//! ```text
//! BSJOBS_CRON_SECS=60 cargo test -p bsjobs-tests --test cron faults -- --nocapture
//! ```

use bsjobs::testing::Beanstalkd;
use bsjobs::Client;
use bsjobs_tests::{counts, until};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static RUNS: Mutex<Vec<(&'static str, i64)>> = Mutex::new(Vec::new());

fn record(tube: &'static str) {
    let tick = bsjobs::current_job().and_then(|j| j.tick).unwrap_or(-1);
    RUNS.lock().unwrap().push((tube, tick));
}

fn runs(tube: &str) -> Vec<i64> {
    RUNS.lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == tube)
        .map(|(_, tick)| *tick)
        .collect()
}

#[bsjobs::job(tube = "c_every", cron = "* * * * * *")]
async fn c_every() {
    record("c_every");
}

#[bsjobs::job(tube = "c_hand", cron = "*/2 * * * * *")]
async fn c_hand() {
    record("c_hand");
}

#[bsjobs::job(tube = "c_move", cron = "* * * * * *")]
async fn c_move() {
    record("c_move");
}

#[bsjobs::job(tube = "c_skip", cron = "*/2 * * * * *", catch_up = "none")]
async fn c_skip() {
    record("c_skip");
}

#[bsjobs::job(tube = "c_catch", cron = "*/2 * * * * *")]
async fn c_catch() {
    record("c_catch");
}

fn unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn workers(
    url: &str,
    tube: &str,
    n: usize,
) -> Vec<(
    bsjobs::Shutdown,
    tokio::task::JoinHandle<Result<(), bsjobs::Error>>,
)> {
    (0..n)
        .map(|_| {
            let sd = bsjobs::Shutdown::new();
            let w = bsjobs::Worker::from_url(url)
                .unwrap()
                .tubes([tube.to_owned()])
                .grace(Duration::from_secs(2))
                .shutdown(sd.clone());
            (sd, tokio::spawn(w.run()))
        })
        .collect()
}

async fn stop_all(
    ws: Vec<(
        bsjobs::Shutdown,
        tokio::task::JoinHandle<Result<(), bsjobs::Error>>,
    )>,
) {
    for (sd, _) in &ws {
        sd.trigger();
    }
    for (_, h) in ws {
        h.await.unwrap().unwrap();
    }
}

/// Jobs of the cron token tube that are tokens of `tube`'s cron job.
async fn tokens_of(srv: &Beanstalkd, tube: &str) -> usize {
    // Tokens are kept buried: kick them, hold them all for a moment, and
    // bury them again with their priority.
    let mut c = bsjobs::proto::Connection::connect(&srv.addr(), &bsjobs::ClientConfig::default())
        .await
        .unwrap();
    use bsjobs::proto::{Command, Response};
    c.request(&Command::Use("bsjobs.cron")).await.unwrap();
    c.request(&Command::Kick(100_000)).await.unwrap();
    c.request(&Command::Watch("bsjobs.cron")).await.unwrap();
    c.request(&Command::Ignore("default")).await.unwrap();
    let mut mine = 0;
    let mut held = Vec::new();
    while let Response::Reserved { id, body } =
        c.request(&Command::ReserveWithTimeout(0)).await.unwrap()
    {
        if String::from_utf8_lossy(&body).contains(&format!("\"cron\":\"{tube}\"")) {
            mine += 1;
        }
        held.push(id);
    }
    for id in held {
        let pri = match c.request(&Command::StatsJob(id)).await.unwrap() {
            Response::Ok(yaml) => bsjobs::proto::stats::JobStats::parse(&yaml).unwrap().pri,
            r => panic!("{r:?}"),
        };
        c.request(&Command::Bury { id, pri }).await.unwrap();
    }
    mine
}

#[bsjobs::job(tube = "c_durable", cron = "* * * * * *")]
async fn c_durable() {
    record("c_durable");
}

/// The token's state after a restart: its priority and state, read with a
/// raw connection (tokens are the only jobs of `bsjobs.cron`).
async fn token_state(srv: &Beanstalkd) -> (bsjobs::proto::stats::JobState, u32, u64) {
    use bsjobs::proto::{Command, Response};
    let mut c = bsjobs::proto::Connection::connect(&srv.addr(), &bsjobs::ClientConfig::default())
        .await
        .unwrap();
    c.request(&Command::Use("bsjobs.cron")).await.unwrap();
    let id = match c.request(&Command::PeekBuried).await.unwrap() {
        Response::Found { id, .. } => id,
        _ => match c.request(&Command::PeekReady).await.unwrap() {
            Response::Found { id, .. } => id,
            r => panic!("no token: {r:?}"),
        },
    };
    match c.request(&Command::StatsJob(id)).await.unwrap() {
        Response::Ok(yaml) => {
            let s = bsjobs::proto::stats::JobStats::parse(&yaml).unwrap();
            (s.state, s.pri, id)
        }
        r => panic!("{r:?}"),
    }
}

/// A cron token is kept buried, so beanstalkd's binlog has its priority:
/// after a kill -9 and a restart it still names the chain's current job.
/// (A token put back with `release`, as before, came back from the binlog
/// with an older priority, naming a job long gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_token_keeps_naming_its_job_across_a_server_restart() {
    bsjobs_tests::init_tracing();
    let dir = std::env::temp_dir().join(format!("bsjobs-cron-token-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut srv = Beanstalkd::builder().binlog(&dir).start();
    let client = Client::new(&srv.url()).unwrap();
    let ws = workers(&srv.url(), "c_durable", 1);
    assert!(
        until(Duration::from_secs(10), || async {
            runs("c_durable").len() >= 3
        })
        .await
    );
    stop_all(ws).await;
    let (state, pri, token) = token_state(&srv).await;
    assert_eq!(state, bsjobs::proto::stats::JobState::Buried);
    let current = client
        .peek_delayed(0, "c_durable")
        .await
        .unwrap()
        .expect("next run")
        .0;
    assert_eq!(pri, current as u32, "the token names the waiting run");
    srv.kill();
    srv.restart();
    let client = Client::new(&srv.url()).unwrap();
    let (state, pri, again) = token_state(&srv).await;
    assert_eq!(
        (state, pri, again),
        (
            bsjobs::proto::stats::JobState::Buried,
            current as u32,
            token
        )
    );
    assert!(
        client.stats_job(0, current).await.is_ok(),
        "the job it names is there"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Five workers started at the same instant make one chain: one run per
/// tick, one job in the tube, one token; a restart of every worker adds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_starting_at_once_make_exactly_one_chain() {
    bsjobs_tests::init_tracing();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let ws = workers(&srv.url(), "c_every", 5);
    tokio::time::sleep(Duration::from_millis(4500)).await;
    stop_all(ws).await;
    let ws = workers(&srv.url(), "c_every", 5);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop_all(ws).await;
    let ticks = runs("c_every");
    let mut per: BTreeMap<i64, usize> = BTreeMap::new();
    for t in &ticks {
        *per.entry(*t).or_default() += 1;
    }
    println!("runs per tick: {per:?}");
    assert!(ticks.len() >= 5, "{ticks:?}");
    assert!(per.values().all(|&n| n == 1), "a tick ran twice: {per:?}");
    assert!(!per.contains_key(&-1), "every run knows its tick");
    let c = counts(&client, "c_every").await;
    assert_eq!(c.live(), 1, "one chain: {c:?}");
    assert_eq!(tokens_of(&srv, "c_every").await, 1, "one token");
}

/// A cron job enqueued by hand runs once, now; the schedule's own chain
/// stays the only chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_job_enqueued_by_hand_runs_once_and_adds_no_chain() {
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let ws = workers(&srv.url(), "c_hand", 1);
    assert!(
        until(Duration::from_secs(5), || async {
            !runs("c_hand").is_empty()
        })
        .await,
        "the schedule runs"
    );
    CHand::new().client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            runs("c_hand").contains(&-1)
        })
        .await,
        "the manual run happens"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop_all(ws).await;
    let r = runs("c_hand");
    assert_eq!(
        r.iter().filter(|&&t| t == -1).count(),
        1,
        "one manual run: {r:?}"
    );
    assert_eq!(counts(&client, "c_hand").await.live(), 1, "one chain");
}

/// A waiting run at a time the schedule no longer gives (a deploy changed
/// the expression) is moved to the schedule's next tick at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_schedule_applies_without_cleanup() {
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    // The chain as an older schedule left it: next run in an hour.
    let token = client
        .put(
            "bsjobs.cron",
            0,
            0,
            60,
            br#"{"bsjobs":"cron-token","cron":"c_move"}"#.to_vec(),
        )
        .await
        .unwrap();
    let body = format!(
        r#"{{"args":{{}},"chain":"cron:c_move","tok":{token},"tick":{}}}"#,
        unix() + 3600
    );
    let old = client
        .put("c_move", 1024, 3600, 60, body.into_bytes())
        .await
        .unwrap();
    let ws = workers(&srv.url(), "c_move", 1);
    assert!(
        until(Duration::from_secs(5), || async {
            runs("c_move").len() >= 2
        })
        .await,
        "the new schedule runs"
    );
    stop_all(ws).await;
    assert!(
        client.peek(0, old).await.unwrap().is_none(),
        "the old run is gone"
    );
    assert_eq!(counts(&client, "c_move").await.live(), 1);
    assert_eq!(tokens_of(&srv, "c_move").await, 1);
}

/// Ticks missed while no worker ran: one catch-up run by default, none with
/// `catch_up = "none"` (for a run more than a minute late).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_ticks_are_caught_up_once_or_skipped() {
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    for (tube, name) in [("c_catch", "c_catch"), ("c_skip", "c_skip")] {
        let token = client
            .put(
                "bsjobs.cron",
                0,
                0,
                60,
                format!(r#"{{"bsjobs":"cron-token","cron":"{name}"}}"#).into_bytes(),
            )
            .await
            .unwrap();
        // Due ten minutes ago: every tick since was missed.
        let body = format!(
            r#"{{"args":{{}},"chain":"cron:{name}","tok":{token},"tick":{}}}"#,
            unix() - 600
        );
        client
            .put(tube, 1024, 0, 60, body.into_bytes())
            .await
            .unwrap();
    }
    let started = unix();
    let ws = workers(&srv.url(), "c_catch", 1);
    let ws2 = workers(&srv.url(), "c_skip", 1);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop_all(ws).await;
    stop_all(ws2).await;
    let caught = runs("c_catch");
    let skipped = runs("c_skip");
    println!("catch_up=one runs {caught:?}; catch_up=none runs {skipped:?}; started {started}");
    assert_eq!(
        caught.iter().filter(|&&t| t < started).count(),
        1,
        "one catch-up run for all missed ticks"
    );
    assert!(
        skipped.iter().all(|&t| t >= started),
        "the late run was skipped: {skipped:?}"
    );
    assert!(!skipped.is_empty(), "the schedule goes on after the skip");
}

// ---------------------------------------------------------------------------
// Fault test: worker processes and a beanstalkd kill.
// ---------------------------------------------------------------------------

use bsjobs_tests::KillOnDrop as Proc;

fn spawn_worker(url: &str, ledger: &std::path::Path, log: &std::path::Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_cron-worker"))
            .env("BSJOBS_URL", url)
            .env("BSJOBS_CRON_LEDGER", ledger)
            .env(
                "RUST_LOG",
                std::env::var("BSJOBS_CRON_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cron-worker"),
    )
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_cron_ticks_run_once_per_tick_through_worker_and_server_kills() {
    let secs: u64 = std::env::var("BSJOBS_CRON_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir =
        std::env::temp_dir().join(format!("bsjobs-cron-{}-{}", std::process::id(), unix_ms()));
    std::fs::create_dir_all(dir.join("binlog")).unwrap();
    let ledger = dir.join("ledger");
    let log = dir.join("workers.log");
    let mut srv = Beanstalkd::builder().binlog(dir.join("binlog")).start();
    let url = srv.url();
    let client = Client::new(&url).unwrap();
    // Five workers started at the same instant.
    let mut procs: Vec<Proc> = (0..5).map(|_| spawn_worker(&url, &ledger, &log)).collect();
    let t0 = Instant::now();
    let mut faults: Vec<(i64, i64)> = Vec::new(); // (from ms, to ms)
    let mut kills = 0;
    let mut server_killed = false;
    let mut rng = fastrand_seed();
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(1500 + rng() % 2000)).await;
        if !server_killed && t0.elapsed() > Duration::from_secs(secs / 2) {
            let from = unix_ms();
            srv.kill();
            tokio::time::sleep(Duration::from_millis(1500)).await;
            srv.restart();
            faults.push((from, unix_ms()));
            server_killed = true;
            continue;
        }
        let i = (rng() % procs.len() as u64) as usize;
        let at = unix_ms();
        procs[i] = spawn_worker(&url, &ledger, &log); // the old one is killed on drop
        kills += 1;
        faults.push((at, at));
    }
    // Let the chain settle, then stop every worker gracefully.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = unix();
    for p in &procs {
        unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
    }
    for p in &mut procs {
        let _ = p.0.wait();
    }
    let text = std::fs::read_to_string(&ledger).unwrap_or_default();
    let mut per: BTreeMap<i64, usize> = BTreeMap::new();
    let mut starts: Vec<i64> = Vec::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        let tick: i64 = f.next().unwrap().parse().unwrap();
        let _pid = f.next();
        starts.push(f.next().unwrap().parse().unwrap());
        *per.entry(tick).or_default() += 1;
    }
    let first = *per.keys().next().expect("the cron job ran");
    // A fault "falls inside" tick T when it happened within [T-1 s, T+3 s]
    // (a run in progress, or its step not yet written).
    let near_fault = |t: i64| {
        faults
            .iter()
            .any(|&(a, b)| a / 1000 - 3 <= t && t <= b / 1000 + 1)
    };
    // The server's outage lasts, for the schedule, until the first run
    // after the restart: that one run catches up every tick in between.
    let down = faults.iter().find(|(a, b)| b > a).map(|&(a, b)| {
        let caught = starts
            .iter()
            .copied()
            .filter(|&s| s >= b)
            .min()
            .unwrap_or(b);
        // Workers reconnect with backoff (up to 1 s) and the catch-up run
        // then schedules the next tick after now: ticks up to a few seconds
        // after the restart are covered by that one run.
        (a, caught.max(b + 3000))
    });
    if let Some((_, b)) = faults.iter().find(|(a, b)| b > a) {
        assert!(
            starts.iter().any(|&s| s > *b && s <= b + 6000),
            "the chain resumed within 6 s of the restart"
        );
    }
    let mut missing = Vec::new();
    let mut unexplained_twice = Vec::new();
    for t in first..end - 2 {
        let n = per.get(&t).copied().unwrap_or(0);
        let in_outage = down.is_some_and(|(a, b)| a / 1000 - 1 <= t && t <= b / 1000);
        if n == 0 && !in_outage {
            missing.push(t);
        }
        if n > 1 && !near_fault(t) {
            unexplained_twice.push(t);
        }
    }
    let twice = per.values().filter(|&&n| n > 1).count();
    let live = counts(&client, "cf_tick").await.live();
    println!(
        "cron faults: {secs} s, 5 workers, {kills} worker kills, server killed: {server_killed}; \
         ticks {} run {} times, ticks run twice {twice} (unexplained {}), missing {} ({missing:?}), live chain jobs {live}",
        per.len(),
        per.values().sum::<usize>(),
        unexplained_twice.len(),
        missing.len()
    );
    if live != 1 || !missing.is_empty() {
        dump_jobs(&srv).await;
    }
    assert!(kills >= 3, "faults happened");
    assert!(server_killed);
    assert!(
        missing.is_empty(),
        "ticks with no run: {missing:?} of {per:?}; faults {faults:?}"
    );
    assert!(
        unexplained_twice.is_empty(),
        "ticks run twice without a fault: {unexplained_twice:?}"
    );
    assert_eq!(live, 1, "exactly one chain at the end");
    assert_eq!(tokens_of(&srv, "cf_tick").await, 1, "exactly one token");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Prints every job of the server (id, tube, state, priority, body), for a
/// failed fault run.
async fn dump_jobs(srv: &Beanstalkd) {
    use bsjobs::proto::{Command, Response};
    let mut c = bsjobs::proto::Connection::connect(&srv.addr(), &bsjobs::ClientConfig::default())
        .await
        .unwrap();
    let mut top = 0;
    c.request(&Command::Use("bsjobs.dump")).await.unwrap();
    if let Response::Inserted(id) = c
        .request(&Command::Put {
            pri: 0,
            delay: 0,
            ttr: 1,
            body: b"x",
        })
        .await
        .unwrap()
    {
        top = id;
        c.request(&Command::Delete(id)).await.unwrap();
    }
    for id in 1..top {
        if let Response::Ok(yaml) = c.request(&Command::StatsJob(id)).await.unwrap() {
            let s = bsjobs::proto::stats::JobStats::parse(&yaml).unwrap();
            let body = match c.request(&Command::Peek(id)).await.unwrap() {
                Response::Found { body, .. } => String::from_utf8_lossy(&body).into_owned(),
                r => format!("{r:?}"),
            };
            println!("job {id}: {} {:?} pri {} {body}", s.tube, s.state, s.pri);
        }
    }
}

/// A small xorshift generator seeded from the clock (printed for reruns).
fn fastrand_seed() -> impl FnMut() -> u64 {
    let mut x = std::env::var("BSJOBS_CRON_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(unix_ms() as u64 | 1);
    println!("cron fault seed {x}");
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
