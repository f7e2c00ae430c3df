//! Fault tests: real worker processes (`tests/bin/fault_worker.rs`) and a real
//! beanstalkd, killed and restarted while they work.
//!
//! Every handler appends `start`/`done` lines to a ledger file, and the tests
//! append the faults they inject (see `tests/support/ledger.rs`); the figures
//! (lost, duplicated, unexpected) come from that ledger and from the server.
//! Everything runs on loopback, is bounded in time and count, and stops by
//! itself; child processes are killed on drop, even when an assertion fails,
//! and the scratch directory is kept (and named on stderr) only on failure.
//!
//! ```text
//! cargo test -p bsjobs-tests --test faults -- --nocapture
//! BSJOBS_SOAK_JOBS=20000 BSJOBS_SOAK_SECS=60 cargo test -p bsjobs-tests --test faults soak -- --nocapture
//! ```
//! Soak knobs: `BSJOBS_SOAK_JOBS` (default 3000), `BSJOBS_SOAK_SECS` (fault
//! phase, default 12), `BSJOBS_SOAK_WORKERS` (default 3), `BSJOBS_SOAK_SEED`
//! (fault schedule; printed with the figures).

use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, ClientConfig, JobId};
use bsjobs_tests::ledger::{Entry, Ledger, Tally};
use bsjobs_tests::{eventually, until};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WORKER_BIN: &str = env!("CARGO_BIN_EXE_fault-worker");

/// The jobs of `tests/bin/fault_worker.rs`, declared again so that the tests
/// enqueue them with the typed API. Keep tubes, parameters and options in
/// step with that file; the bodies here never run.
mod jobs {
    #[bsjobs::job(tube = "f_soak", ttr = "3s", retries = 3, backoff = "1s")]
    pub async fn soak(n: u64, ms: u64) {
        let _ = (n, ms);
    }

    #[bsjobs::job(tube = "f_chain", repeat = "1s", ttr = "2s")]
    pub async fn chain(tag: String) {
        let _ = tag;
    }

    #[bsjobs::job(tube = "f_chain_max", repeat = "1s", max = 3, ttr = "2s")]
    pub async fn chain_max(tag: String) {
        let _ = tag;
    }

    #[bsjobs::job(tube = "f_long", ttr = "2s", retries = 0)]
    pub async fn long(n: u64) {
        let _ = n;
    }

    #[bsjobs::job(tube = "f_tight", ttr = "1s", retries = 0)]
    pub async fn tight(n: u64, ms: u64) {
        let _ = (n, ms);
    }

    #[bsjobs::job(tube = "f_good", retries = 0)]
    pub async fn good(n: u64) {
        let _ = n;
    }

    #[bsjobs::job(tube = "f_panics", retries = 0)]
    pub async fn panics(n: u64) {
        let _ = n;
    }

    #[bsjobs::job(tube = "f_slow", ttr = "30s", retries = 0)]
    pub async fn slow(n: u64, ms: u64) {
        let _ = (n, ms);
    }
}

use jobs::{Chain, ChainMax, Good, Long, Panics, Slow, Soak, Tight};

// ---------------------------------------------------------------------------
// Scaffolding: scratch directory, worker processes, a small PRNG.
// ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir; removed on drop unless the
/// test is failing, in which case it is kept for inspection.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "bsjobs-faults-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "faults: kept {} (ledger, worker logs, binlog) for inspection",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How to start a fault-worker.
#[derive(Clone)]
struct Spec {
    url: String,
    ledger: PathBuf,
    tubes: &'static str,
    concurrency: usize,
    logs: PathBuf,
}

impl Spec {
    fn new(srv: &Beanstalkd, ledger: &Ledger, scratch: &Scratch, tubes: &'static str) -> Spec {
        Spec {
            url: srv.url(),
            ledger: ledger.path().to_owned(),
            tubes,
            concurrency: 4,
            logs: scratch.dir.clone(),
        }
    }

    fn concurrency(mut self, n: usize) -> Spec {
        self.concurrency = n;
        self
    }

    fn log(&self, slot: usize) -> PathBuf {
        self.logs.join(format!("worker-{slot}.log"))
    }

    /// Starts a worker process; its stderr (the logs) is appended to
    /// `worker-<slot>.log`.
    fn spawn(&self, slot: usize) -> Proc {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(slot))
            .expect("worker log");
        let mut cmd = Command::new(WORKER_BIN);
        cmd.env("BSJOBS_URL", &self.url)
            .env("FAULT_LEDGER", &self.ledger)
            .env("FAULT_TUBES", self.tubes)
            .env("FAULT_CONCURRENCY", self.concurrency.to_string())
            .env("RUST_LOG", "info")
            // A panicking handler logs two lines, not a backtrace.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // Dies with the test thread even if the test process is killed
            // before the guards run.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {WORKER_BIN}: {e}"));
        Proc {
            pid: child.id(),
            child,
        }
    }
}

/// A child process that is killed and reaped on drop.
struct Proc {
    child: Child,
    pid: u32,
}

impl Proc {
    /// Whether it still runs (`None`) or how it ended.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    fn sigterm(&self) {
        let r = unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(r, 0, "kill -TERM {}", self.pid);
    }

    /// Waits up to `limit` for the process to end.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A set of worker processes, one per slot, that can be killed and respawned.
struct Workers {
    spec: Spec,
    slots: Vec<Proc>,
    kills: usize,
    /// Kills whose process was running and died of the SIGKILL.
    confirmed_kills: usize,
    /// Workers that ended without being killed: each is a runtime failure.
    crashes: Vec<String>,
}

impl Workers {
    fn start(spec: Spec, n: usize) -> Workers {
        let slots = (0..n).map(|i| spec.spawn(i)).collect();
        Workers {
            spec,
            slots,
            kills: 0,
            confirmed_kills: 0,
            crashes: Vec::new(),
        }
    }

    /// Lines of all worker logs that contain `needle`.
    fn log_count(&self, needle: &str) -> usize {
        let Ok(dir) = std::fs::read_dir(&self.spec.logs) else {
            return 0;
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("worker-"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|text| text.lines().filter(|l| l.contains(needle)).count())
            .sum()
    }

    fn slot_of(&self, pid: u32) -> Option<usize> {
        self.slots.iter().position(|p| p.pid == pid)
    }

    /// SIGKILLs the worker in `slot` and starts a new one there; the ledger
    /// gets `kill-begin`/`kill-end` around the kill.
    fn kill(&mut self, slot: usize, ledger: &Ledger) -> u32 {
        self.check();
        let pid = self.slots[slot].pid;
        ledger.fault(&format!("kill-begin {pid}"));
        let p = &mut self.slots[slot];
        let alive = p.exited().is_none();
        let _ = p.child.kill();
        let status = p.child.wait();
        ledger.fault(&format!("kill-end {pid}"));
        self.slots[slot] = self.spec.spawn(slot);
        self.kills += 1;
        {
            use std::os::unix::process::ExitStatusExt;
            if alive && status.is_ok_and(|s| s.signal() == Some(libc::SIGKILL)) {
                self.confirmed_kills += 1;
            }
        }
        pid
    }

    /// Records (and replaces) any worker that ended by itself.
    fn check(&mut self) {
        for slot in 0..self.slots.len() {
            if let Some(status) = self.slots[slot].exited() {
                let pid = self.slots[slot].pid;
                self.crashes.push(format!(
                    "worker pid {pid} (slot {slot}) exited by itself: {status}; log tail:\n{}",
                    tail(&self.spec.log(slot), 15)
                ));
                self.slots[slot] = self.spec.spawn(slot);
            }
        }
    }
}

/// The last `n` lines of a text file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// xorshift64*: a reproducible fault schedule without extra dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn secs(&mut self, lo: f64, hi: f64) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(lo + (hi - lo) * unit)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// Waits until the server answers again (after a restart).
async fn wait_for_server(client: &Client) {
    assert!(
        until(Duration::from_secs(10), || async {
            client.stats(0).await.is_ok()
        })
        .await,
        "beanstalkd answers again after its restart"
    );
}

/// Jobs of `tube` that are alive: ready, delayed or reserved. `None` when the
/// server does not answer.
async fn live(client: &Client, tube: &str) -> Option<u64> {
    match client.stats_tube(0, tube).await {
        Ok(s) => Some(s.current_jobs_ready + s.current_jobs_delayed + s.current_jobs_reserved),
        Err(bsjobs::Error::NotFound) => Some(0),
        Err(_) => None,
    }
}

async fn buried(client: &Client, tube: &str) -> u64 {
    match client.stats_tube(0, tube).await {
        Ok(s) => s.current_jobs_buried,
        Err(bsjobs::Error::NotFound) => 0,
        Err(e) => panic!("stats-tube {tube}: {e}"),
    }
}

/// Waits until `n` connections watch `tube` (the workers are up and reserving).
async fn wait_watching(client: &Client, tube: &str, n: u64) {
    assert!(
        until(Duration::from_secs(10), || async {
            client
                .stats_tube(0, tube)
                .await
                .is_ok_and(|s| s.current_watching >= n)
        })
        .await,
        "{n} worker(s) watch {tube}"
    );
}

fn count(ledger: &Ledger, f: impl Fn(&Entry) -> bool) -> usize {
    ledger.read().iter().filter(|e| f(e)).count()
}

/// The last `start`/`done` entry of `job` in the ledger.
fn last_of(ledger: &Ledger, job: &str) -> Option<Entry> {
    ledger
        .read()
        .into_iter()
        .rev()
        .find(|e| e.is_start_of(job) || e.is_done_of(job))
}

// ---------------------------------------------------------------------------
// 1. Crash soak.
// ---------------------------------------------------------------------------

struct SoakParams {
    label: &'static str,
    jobs: u64,
    secs: f64,
    workers: usize,
    faults: bool,
    seed: u64,
}

/// Jobs each soak worker runs at once.
const SOAK_CONCURRENCY: usize = 8;

/// How long after its `done` a soak job may still run again when a fault
/// strikes: its delete goes out in the worker's next write, normally within
/// milliseconds; 500 ms allows for a loaded machine. A rerun of a job that
/// finished earlier than this before the fault is a bug (its delete was held
/// back or lost), not a consequence of the fault.
const DELETE_WINDOW: Duration = Duration::from_millis(500);

/// Handler time of soak job `n`: 1–30 ms, spread by a multiplicative hash.
fn work_ms(n: u64) -> u64 {
    1 + (n.wrapping_mul(2_654_435_761) >> 7) % 30
}

/// Enqueues soak jobs `range` in one batch; a job whose put fails is put
/// again (and the ledger notes that it may now exist twice).
async fn enqueue_soak(
    client: &Client,
    ledger: &Ledger,
    range: Range<u64>,
    ids: &mut Vec<(u64, JobId)>,
    retries: &mut usize,
) {
    let batch = range
        .clone()
        .map(|n| Soak::new(n, work_ms(n)).client(client));
    let results = client.enqueue_many(batch).await;
    assert_eq!(results.len(), (range.end - range.start) as usize);
    for (n, r) in range.zip(results) {
        match r {
            Ok(h) => ids.push((n, h.id)),
            Err(first) => {
                *retries += 1;
                ledger.fault(&format!("enqueue-retry {n}"));
                let end = Instant::now() + Duration::from_secs(15);
                loop {
                    match Soak::new(n, work_ms(n)).client(client).enqueue().await {
                        Ok(h) => {
                            ids.push((n, h.id));
                            break;
                        }
                        Err(e) if Instant::now() < end => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("enqueue soak {n}: {first}; then {e}"),
                    }
                }
            }
        }
    }
}

async fn run_soak(p: SoakParams) {
    let t0 = Instant::now();
    let scratch = Scratch::new(p.label);
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let mut srv = Beanstalkd::builder().binlog(scratch.path("binlog")).start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_soak").concurrency(SOAK_CONCURRENCY);
    let mut workers = Workers::start(spec, p.workers);
    let mut rng = Rng::new(p.seed);
    let mut ids: Vec<(u64, JobId)> = Vec::with_capacity(p.jobs as usize);
    let mut enqueue_retries = 0;
    let mut restarts = 0;
    let mut next = 0u64;

    if !p.faults {
        while next < p.jobs {
            let end = (next + 1000).min(p.jobs);
            enqueue_soak(&client, &ledger, next..end, &mut ids, &mut enqueue_retries).await;
            next = end;
        }
    } else {
        // Jobs are fed at a steady rate over 80% of the fault phase, so work
        // is in flight when the faults strike; workers are SIGKILLed every
        // 0.7–2 s and beanstalkd is killed once per 20 s (at least once).
        let phase = Duration::from_secs_f64(p.secs);
        let feed = phase.mul_f64(0.8);
        let server_faults = ((p.secs / 20.0) as usize).max(1);
        let restart_at: Vec<Duration> = (1..=server_faults)
            .map(|i| phase.mul_f64(i as f64 / (server_faults + 1) as f64))
            .collect();
        let mut next_kill = rng.secs(0.5, 1.5);
        let start = Instant::now();
        loop {
            let now = start.elapsed();
            let due = if now >= feed {
                p.jobs
            } else {
                (p.jobs as f64 * now.as_secs_f64() / feed.as_secs_f64()) as u64
            };
            while next < due {
                let end = due.min(next + 1000);
                enqueue_soak(&client, &ledger, next..end, &mut ids, &mut enqueue_retries).await;
                next = end;
            }
            if now >= next_kill && now < phase {
                let slot = rng.below(workers.slots.len());
                workers.kill(slot, &ledger);
                next_kill = now + rng.secs(0.7, 2.0);
            }
            if restarts < restart_at.len() && now >= restart_at[restarts] {
                ledger.fault("server-kill");
                srv.kill();
                std::thread::sleep(rng.secs(0.3, 1.0));
                srv.restart();
                ledger.fault("server-restart");
                restarts += 1;
                wait_for_server(&client).await;
            }
            workers.check();
            if now >= phase && next >= p.jobs {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Drain: every job done and the tube empty, or the deadline.
    let enqueued: Vec<u64> = ids.iter().map(|x| x.0).collect();
    let drain_limit = Duration::from_secs(30) + Duration::from_millis(p.jobs * 2);
    let drain_start = Instant::now();
    let mut tally;
    loop {
        workers.check();
        tally = Tally::compute_timed("soak", &enqueued, &ledger.read_lines(), DELETE_WINDOW);
        if tally.missing.is_empty() && live(&client, "f_soak").await == Some(0) {
            break;
        }
        if drain_start.elapsed() > drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = t0.elapsed();

    // A missing job still in the server is stuck; one that is gone is lost.
    let mut by_n: HashMap<u64, Vec<JobId>> = HashMap::new();
    for (n, id) in &ids {
        by_n.entry(*n).or_default().push(*id);
    }
    let (mut lost, mut stuck) = (Vec::new(), Vec::new());
    for n in &tally.missing {
        let mut present = false;
        for id in &by_n[n] {
            present |= matches!(client.peek(0, *id).await, Ok(Some(_)));
        }
        if present {
            stuck.push(*n);
        } else {
            lost.push(*n);
        }
    }
    let buried_left = buried(&client, "f_soak").await;
    let live_left = live(&client, "f_soak").await;
    println!(
        "{}: jobs={} workers={} kills={} (confirmed {}) restarts={} lost={} stuck={} dup={} (explained {}) \
         reruns={} unexplained_reruns={} max_reruns_per_kill={} max_reruns_per_restart={} \
         enqueue_excused={} unexpected={} enqueue_retries={} crashes={} buried={} live={:?} \
         elapsed={:.1}s seed={}",
        p.label,
        tally.enqueued,
        p.workers,
        workers.kills,
        workers.confirmed_kills,
        restarts,
        lost.len(),
        stuck.len(),
        tally.duplicated.len(),
        tally.explained_duplicates(),
        tally.reruns,
        tally.unexplained_reruns.len(),
        tally.max_per_kill(),
        tally.max_per_server_fault(),
        tally.enqueue_excused,
        tally.unexpected.len(),
        enqueue_retries,
        workers.crashes.len(),
        buried_left,
        live_left,
        elapsed.as_secs_f64(),
        p.seed,
    );
    let few = |v: &[u64]| v.iter().take(20).copied().collect::<Vec<_>>();
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    assert_eq!(tally.enqueued as u64, p.jobs, "every job was enqueued");
    assert!(lost.is_empty(), "lost jobs (first 20): {:?}", few(&lost));
    assert!(
        stuck.is_empty(),
        "jobs never completed but still in the server (first 20): {:?}",
        few(&stuck)
    );
    assert!(
        tally.unexpected.is_empty(),
        "runs of jobs never enqueued: {:?}",
        &tally.unexpected[..tally.unexpected.len().min(20)]
    );
    assert_eq!(tally.garbled, 0, "garbled ledger lines");
    assert!(
        tally.unexplained_duplicates.is_empty(),
        "jobs completed twice with no fault to explain it (first 20): {:?}",
        few(&tally.unexplained_duplicates)
    );
    assert!(
        tally.unexplained_reruns.is_empty(),
        "jobs started twice with no fault to explain it (first 20): {:?}",
        few(&tally.unexplained_reruns)
    );
    assert_eq!(buried_left, 0, "no soak job fails, so none is buried");
    assert_eq!(
        live_left,
        Some(0),
        "the drain ends with an empty tube (no leftover twin, nothing delayed)"
    );
    // A kill can only make the jobs its worker held run again: those
    // running and those whose delete had not gone out. Twice the
    // concurrency is a generous ceiling; a worker that holds back deletes
    // blows through it.
    let per_kill = 2 * SOAK_CONCURRENCY;
    assert!(
        tally.max_per_kill() <= per_kill,
        "one worker kill made {} jobs run again (at most {per_kill} expected): {:?}",
        tally.max_per_kill(),
        tally.per_fault
    );
    let per_restart = 2 * SOAK_CONCURRENCY * p.workers;
    assert!(
        tally.max_per_server_fault() <= per_restart,
        "one server restart made {} jobs run again (at most {per_restart} expected)",
        tally.max_per_server_fault()
    );
    if p.faults {
        // The schedule kills a worker every 0.7–2 s from 0.5–1.5 s on; allow
        // for a slow loop and the server restart's pause.
        let min_kills = ((p.secs - 3.0) / 2.1).floor().max(1.0) as usize;
        assert!(
            workers.kills >= min_kills,
            "only {} worker kills in {}s (at least {min_kills} scheduled)",
            workers.kills,
            p.secs
        );
        assert_eq!(
            workers.confirmed_kills, workers.kills,
            "every kill hit a running worker that died of SIGKILL"
        );
        let min_restarts = ((p.secs / 20.0) as usize).max(1);
        assert_eq!(restarts, min_restarts, "server restarts that happened");
    }
    if !p.faults {
        assert!(
            tally.duplicated.is_empty() && tally.reruns == 0,
            "a fault-free run runs every job once: dup {:?}",
            few(&tally.duplicated)
        );
    }
}

fn seed() -> u64 {
    env_or(
        "BSJOBS_SOAK_SEED",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_worker_kills_and_a_server_restart_loses_nothing() {
    run_soak(SoakParams {
        label: "soak",
        jobs: env_or("BSJOBS_SOAK_JOBS", 3000),
        secs: env_or("BSJOBS_SOAK_SECS", 12.0),
        workers: env_or("BSJOBS_SOAK_WORKERS", 3),
        faults: true,
        seed: seed(),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_control_without_faults_runs_every_job_once() {
    run_soak(SoakParams {
        label: "soak-control",
        jobs: env_or("BSJOBS_SOAK_JOBS", 3000),
        secs: 0.0,
        workers: env_or("BSJOBS_SOAK_WORKERS", 3),
        faults: false,
        seed: 0,
    })
    .await;
}

// ---------------------------------------------------------------------------
// 2. Repeating chain under faults.
// ---------------------------------------------------------------------------

/// Samples the live jobs of a tube every 50 ms in the background.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Option<u64>>>,
}

impl Sampler {
    fn start(url: &str, tube: &'static str) -> Sampler {
        let client = Client::new(url).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Acquire) {
                samples.push(live(&client, tube).await);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        });
        Sampler { stop, task }
    }

    async fn finish(self) -> Samples {
        self.stop.store(true, Ordering::Release);
        Samples(self.task.await.unwrap())
    }
}

struct Samples(Vec<Option<u64>>);

impl Samples {
    fn answered(&self) -> usize {
        self.0.iter().flatten().count()
    }

    /// Samples with no live job at all.
    fn zeros(&self) -> usize {
        self.0.iter().filter(|s| **s == Some(0)).count()
    }

    /// The largest count seen in two samples in a row. A run's successor is
    /// put just before the run is deleted, so a single sample may catch both
    /// (two live jobs for a moment); a fork shows in every sample after it.
    /// The longest run of consecutive samples with more than one live job.
    fn longest_above_one(&self) -> usize {
        let mut best = 0;
        let mut cur = 0;
        for s in &self.0 {
            if s.is_some_and(|n| n > 1) {
                cur += 1;
                best = best.max(cur);
            } else if s.is_some() {
                cur = 0;
            }
        }
        best
    }

    fn max_confirmed(&self) -> u64 {
        self.0
            .windows(2)
            .filter_map(|w| Some(w[0]?.min(w[1]?)))
            .max()
            .unwrap_or(0)
    }

    /// The largest single sample.
    fn max(&self) -> u64 {
        self.0.iter().flatten().copied().max().unwrap_or(0)
    }
}

/// Waits until the last `job` entry in the ledger is a `start` (a run is in
/// progress) and returns the pid running it.
async fn wait_mid_run(ledger: &Ledger, job: &str, limit: Duration) -> u32 {
    let end = Instant::now() + limit;
    loop {
        if let Some(Entry::Start { pid, .. }) = last_of(ledger, job) {
            return pid;
        }
        assert!(
            Instant::now() < end,
            "no run of {job} started within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the last `job` entry is a `done` (the chain waits in the
/// delayed state) and returns the pid that ran it.
async fn wait_between_runs(ledger: &Ledger, job: &str, limit: Duration) -> u32 {
    let end = Instant::now() + limit;
    loop {
        if let Some(Entry::Done { pid, .. }) = last_of(ledger, job) {
            return pid;
        }
        assert!(
            Instant::now() < end,
            "no run of {job} ended within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every live job of `tube` (ids 1..=300 are scanned: enough for these
/// tests), as `id state run=<envelope run> ...`: shows how a chain forked.
async fn live_jobs(client: &Client, tube: &str) -> Vec<String> {
    let mut out = Vec::new();
    for id in 1..=300 {
        let Ok(s) = client.stats_job(0, id).await else {
            continue;
        };
        if s.tube != tube || s.state == bsjobs::proto::stats::JobState::Buried {
            continue;
        }
        let env = match client.peek(0, id).await {
            Ok(Some(body)) => serde_json::from_slice::<serde_json::Value>(&body).ok(),
            _ => None,
        };
        let field = |k: &str| {
            env.as_ref()
                .and_then(|v| v.get(k).and_then(|r| r.as_u64()))
                .unwrap_or(0)
        };
        out.push(format!(
            "id={id} {} run={} gen={} age={}s time_left={}s reserves={}",
            s.state,
            field("run"),
            field("gen"),
            s.age,
            s.time_left,
            s.reserves
        ));
    }
    out
}

/// The live count once it has settled: two equal samples 100 ms apart.
async fn settled_live(client: &Client, tube: &str) -> u64 {
    let mut last = None;
    for _ in 0..50 {
        let now = live(client, tube).await;
        if let Some(n) = now.filter(|_| now == last) {
            return n;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("live count of {tube} did not settle: last {last:?}");
}

/// Samples (about 60 ms apart) a leftover of a killed step may stay live:
/// one repeat interval (1 s) and its pickup, with room for a loaded machine.
const LEFTOVER_SAMPLES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_chain_survives_worker_kills_and_a_server_restart() {
    let t0 = Instant::now();
    let scratch = Scratch::new("chain");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let mut srv = Beanstalkd::builder().binlog(scratch.path("binlog")).start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_chain").concurrency(2);
    let mut workers = Workers::start(spec, 2);
    Chain::new("c1".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let runs = || count(&ledger, |e| e.is_done_of("chain"));
    assert!(
        eventually(Duration::from_secs(10), || runs() >= 2).await,
        "the chain runs twice before the faults begin"
    );
    let sampler = Sampler::start(&srv.url(), "f_chain");

    // A: SIGKILL the worker in the middle of a run.
    let pid = wait_mid_run(&ledger, "chain", Duration::from_secs(5)).await;
    let slot = workers.slot_of(pid).expect("the pid is one of ours");
    workers.kill(slot, &ledger);
    let r = runs();
    assert!(
        eventually(Duration::from_secs(10), || runs() >= r + 2).await,
        "the chain runs on after a worker was killed mid-run"
    );

    // B: SIGKILL the worker that ran it last, while the chain is delayed.
    let pid = wait_between_runs(&ledger, "chain", Duration::from_secs(5)).await;
    if let Some(slot) = workers.slot_of(pid) {
        workers.kill(slot, &ledger);
    }
    let r = runs();
    assert!(
        eventually(Duration::from_secs(10), || runs() >= r + 2).await,
        "the chain runs on after a worker was killed between runs"
    );

    // C: SIGKILL beanstalkd in the middle of a run; restart it on its binlog.
    wait_mid_run(&ledger, "chain", Duration::from_secs(5)).await;
    ledger.fault("server-kill");
    srv.kill();
    std::thread::sleep(Duration::from_millis(1500));
    srv.restart();
    ledger.fault("server-restart");
    wait_for_server(&client).await;
    let r = runs();
    assert!(
        eventually(Duration::from_secs(10), || runs() >= r + 2).await,
        "the chain runs on after beanstalkd was restarted"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let samples = sampler.finish().await;
    let final_live = settled_live(&client, "f_chain").await;
    let jobs = live_jobs(&client, "f_chain").await;
    let buried_left = buried(&client, "f_chain").await;
    workers.check();
    println!(
        "chain: runs={} starts={} kills={} restarts=1 samples={} answered={} max_live={} \
         max_live_confirmed={} zero_live={} final_live={} buried={} crashes={} elapsed={:.1}s",
        runs(),
        count(&ledger, |e| e.is_start_of("chain")),
        workers.kills,
        samples.0.len(),
        samples.answered(),
        samples.max(),
        samples.max_confirmed(),
        samples.zeros(),
        final_live,
        buried_left,
        workers.crashes.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    // A step puts the next job, then (once it exists) moves the token and
    // deletes the current one: a worker killed between the two writes
    // leaves that next job, which the token does not name, next to the
    // rerun of the current one. It never runs (deleted unrun when it comes
    // due, one interval later), so the chain does not fork: no run is
    // doubled beyond one rerun per fault, and the leftover lives at most
    // about one interval.
    let starts = count(&ledger, |e| e.is_start_of("chain"));
    assert!(
        starts <= runs() + workers.kills + 1,
        "runs doubled beyond the faults: starts={starts} runs={} kills={}",
        runs(),
        workers.kills
    );
    assert!(
        samples.longest_above_one() <= LEFTOVER_SAMPLES && final_live <= 1,
        "the chain forked: live jobs {jobs:#?}, samples {:?}",
        samples.0
    );
    assert_eq!(
        samples.zeros(),
        0,
        "the chain had no live job at some point: {:?}",
        samples.0
    );
    assert_eq!(
        final_live, 1,
        "exactly one live job of the chain at the end"
    );
    assert_eq!(buried_left, 0);
}

/// Blocks until the ledger holds more than `seen` `done` lines of `job`,
/// polling every 200 µs; returns the pid of the newest one.
fn wait_next_done(ledger: &Ledger, job: &str, seen: usize, limit: Duration) -> (usize, u32) {
    let end = Instant::now() + limit;
    loop {
        let entries = ledger.read();
        let dones: Vec<u32> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Done { job: j, pid, .. } if j == job => Some(*pid),
                _ => None,
            })
            .collect();
        if dones.len() > seen {
            return (dones.len(), *dones.last().unwrap());
        }
        assert!(Instant::now() < end, "no new run of {job} within {limit:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The most fragile moment of a chain: a run has just ended and the worker is
/// putting the next run and deleting this one. Kill the worker, or
/// beanstalkd, within a few milliseconds of the handler's return, again and
/// again; the chain must neither fork nor die.
///
/// Reading a failure: two live jobs with the same `run` number mean that
/// beanstalkd executed the `put` of the next run and was killed before it
/// executed the `delete` of the current one (two commands, two binlog
/// records): after the restart both the successor and the current run
/// (reserved, so restored as ready) exist, and each goes on as a chain.
/// `BSJOBS_CHAIN_KILL=worker|server|both` and `BSJOBS_CHAIN_ROUNDS` (default
/// 8) narrow or lengthen the hunt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_chain_survives_worker_kills_right_after_a_run() {
    chain_edge("worker").await;
}

/// beanstalkd killed within milliseconds of a run's end: the chain must
/// neither die nor stay forked. The next run is a `put` and the end of this
/// one a `delete`, and a crash between them keeps both; the chain's token
/// (`worker/chain.rs`) makes the older one go unrun, so once the twins have
/// come due (a few seconds after the last fault) one job is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_chain_never_dies_when_beanstalkd_is_killed_right_after_a_run() {
    chain_edge("server").await;
}

async fn chain_edge(default_mode: &str) {
    let t0 = Instant::now();
    let rounds: usize = env_or("BSJOBS_CHAIN_ROUNDS", 8);
    // Which process to kill: "worker", "server", or "both" (alternating).
    let mode: String = env_or("BSJOBS_CHAIN_KILL", default_mode.to_owned());
    let mut rng = Rng::new(seed());
    let seed0 = rng.0;
    let scratch = Scratch::new("chain-edge");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let mut srv = Beanstalkd::builder().binlog(scratch.path("binlog")).start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_chain").concurrency(2);
    let mut workers = Workers::start(spec, 2);
    Chain::new("edge".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let mut seen = 0;
    let mut server_kills = 0;
    for round in 0..rounds {
        let (n, pid) = wait_next_done(&ledger, "chain", seen, Duration::from_secs(10));
        seen = n;
        std::thread::sleep(Duration::from_micros(rng.below(3000) as u64));
        let kill_worker = match mode.as_str() {
            "worker" => true,
            "server" => false,
            _ => round % 2 == 0,
        };
        if kill_worker {
            if let Some(slot) = workers.slot_of(pid) {
                workers.kill(slot, &ledger);
            }
        } else {
            ledger.fault("server-kill");
            srv.kill();
            srv.restart();
            ledger.fault("server-restart");
            server_kills += 1;
            wait_for_server(&client).await;
        }
    }
    // Let every consequence play out, then watch: a twin is due one repeat
    // interval (1 s) after the step that made it, and steps go on for a
    // moment after the last fault (a rerun, a reconnect of up to 1 s).
    let last_fault = Instant::now();
    for _ in 0..2 {
        seen = wait_next_done(&ledger, "chain", seen, Duration::from_secs(10)).0;
    }
    tokio::time::sleep_until((last_fault + Duration::from_secs(4)).into()).await;
    let sampler = Sampler::start(&srv.url(), "f_chain");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let samples = sampler.finish().await;
    let final_live = settled_live(&client, "f_chain").await;
    let jobs = live_jobs(&client, "f_chain").await;
    workers.check();
    println!(
        "chain-edge: rounds={rounds} worker_kills={} server_kills={server_kills} runs={} starts={} \
         samples={} max_live={} max_live_confirmed={} zero_live={} final_live={final_live} \
         buried={} twins_dropped={} elapsed={:.1}s seed={seed0}",
        workers.kills,
        count(&ledger, |e| e.is_done_of("chain")),
        count(&ledger, |e| e.is_start_of("chain")),
        samples.0.len(),
        samples.max(),
        samples.max_confirmed(),
        samples.zeros(),
        buried(&client, "f_chain").await,
        workers.log_count("twin left by a server crash"),
        t0.elapsed().as_secs_f64()
    );
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    assert!(
        samples.max_confirmed() <= 1 && final_live <= 1,
        "the chain forked: final {final_live}, live jobs {jobs:#?}, samples {:?}",
        samples.0
    );
    assert!(
        samples.zeros() == 0 && final_live >= 1,
        "the chain died: final {final_live}, samples {:?}",
        samples.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_chain_with_max_runs_exactly_max_times_without_faults() {
    let t0 = Instant::now();
    let scratch = Scratch::new("chain-max");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_chain_max").concurrency(2);
    let mut workers = Workers::start(spec, 2);
    let sampler = Sampler::start(&srv.url(), "f_chain_max");
    ChainMax::new("m1".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let max = ChainMax::OPTIONS.max.unwrap() as usize;
    let runs = || count(&ledger, |e| e.is_done_of("chain_max"));
    assert!(
        eventually(Duration::from_secs(3 * max as u64 + 5), || runs() >= max).await,
        "the chain runs {max} times"
    );
    assert!(
        until(Duration::from_secs(3), || async {
            live(&client, "f_chain_max").await == Some(0)
        })
        .await,
        "the chain ends after {max} runs"
    );
    // Longer than one repeat interval: a run past max would show.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let samples = sampler.finish().await;
    workers.check();
    let starts = count(&ledger, |e| e.is_start_of("chain_max"));
    let final_live = settled_live(&client, "f_chain_max").await;
    println!(
        "chain-max: max={max} runs={} starts={starts} samples={} max_live_confirmed={} final_live={final_live} elapsed={:.1}s",
        runs(),
        samples.0.len(),
        samples.max_confirmed(),
        t0.elapsed().as_secs_f64()
    );
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    assert_eq!((runs(), starts), (max, max), "exactly max runs, each once");
    assert!(samples.max_confirmed() <= 1, "{:?}", samples.0);
    assert_eq!(final_live, 0, "no job left after max runs");
    assert_eq!(buried(&client, "f_chain_max").await, 0);
}

// ---------------------------------------------------------------------------
// 3. A job that runs three times its TTR.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_three_times_its_ttr_runs_once() {
    let t0 = Instant::now();
    let scratch = Scratch::new("long");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    // Two workers with spare slots: a job whose TTR ran out would be handed
    // out again at once.
    let spec = Spec::new(&srv, &ledger, &scratch, "f_long").concurrency(2);
    let mut workers = Workers::start(spec, 2);
    wait_watching(&client, "f_long", 2).await;
    let h = Long::new(1).client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || count(&ledger, |e| e
            .is_start_of("long"))
            == 1)
        .await,
        "the long job starts"
    );
    // While it runs (6 s against a 2 s TTR), beanstalkd must never time it out.
    let mut checks = 0;
    let mut timeouts = 0;
    while count(&ledger, |e| e.is_done_of("long")) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the long job finishes"
        );
        if let Ok(s) = client.stats_job(0, h.id).await {
            checks += 1;
            timeouts = timeouts.max(s.timeouts);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        until(Duration::from_secs(5), || async {
            matches!(client.peek(0, h.id).await, Ok(None))
        })
        .await,
        "the long job is deleted after its run"
    );
    // A second run would have started by now if TTR had passed.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let starts = count(&ledger, |e| e.is_start_of("long"));
    let dones = count(&ledger, |e| e.is_done_of("long"));
    workers.check();
    println!(
        "long: ttr=2s run=6s starts={starts} dones={dones} stats_checks={checks} timeouts={timeouts} elapsed={:.1}s",
        t0.elapsed().as_secs_f64()
    );
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    assert_eq!((starts, dones), (1, 1), "ran once");
    assert_eq!(timeouts, 0, "beanstalkd never timed the job out");
}

// ---------------------------------------------------------------------------
// 4. Bad input mixed with good jobs.
// ---------------------------------------------------------------------------

/// Bodies no worker can run, with a name for messages.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let deep_arrays = |depth: usize| {
        format!(
            "{{\"args\":{{\"n\":{}1{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        )
        .into_bytes()
    };
    vec![
        ("empty", Vec::new()),
        ("not json", b"not json at all".to_vec()),
        ("truncated json", br#"{"args":{"n":1}"#.to_vec()),
        ("json null", b"null".to_vec()),
        ("json array", b"[1,2,3]".to_vec()),
        ("no args", br#"{"v":1}"#.to_vec()),
        ("args wrong type", br#"{"args":{"n":"seven"}}"#.to_vec()),
        ("args missing field", br#"{"args":{}}"#.to_vec()),
        ("negative n", br#"{"args":{"n":-1}}"#.to_vec()),
        ("fractional n", br#"{"args":{"n":1.5}}"#.to_vec()),
        ("future version", br#"{"v":2,"args":{"n":1}}"#.to_vec()),
        (
            "run not a number",
            br#"{"args":{"n":1},"run":"x"}"#.to_vec(),
        ),
        ("non-utf8 bytes", b"\xff\xfe\xfd\xfc".to_vec()),
        (
            "non-utf8 in string",
            b"{\"args\":{\"n\":1},\"chain\":\"\xc3\x28\"}".to_vec(),
        ),
        ("deep arrays in args", deep_arrays(20_000)),
        (
            "deep objects as args",
            format!(
                "{{\"args\":{}1{}}}",
                "{\"a\":".repeat(8_000),
                "}".repeat(8_000)
            )
            .into_bytes(),
        ),
        (
            "deep arrays as args",
            format!("{{\"args\":{}{}}}", "[".repeat(30_000), "]".repeat(30_000)).into_bytes(),
        ),
    ]
}

/// Log lines of `log` that say job `id` was buried.
fn burying_lines(log: &str, id: JobId) -> usize {
    let needle = format!("id={id}");
    log.lines()
        .filter(|l| l.contains("burying"))
        .filter(|l| {
            l.match_indices(&needle).any(|(i, m)| {
                !l[i + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_buried_and_the_same_worker_runs_every_good_one() {
    let t0 = Instant::now();
    let scratch = Scratch::new("bad");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_good,f_panics").concurrency(4);
    let log_path = spec.log(0);
    let mut workers = Workers::start(spec, 1);
    let pid = workers.slots[0].pid;
    wait_watching(&client, "f_good", 1).await;

    let bad = bad_bodies();
    let mut bad_ids = Vec::new();
    let mut good = Vec::new();
    for (i, (name, body)) in bad.iter().enumerate() {
        let id = client
            .put("f_good", 1024, 0, 30, body.clone())
            .await
            .unwrap_or_else(|e| panic!("put {name}: {e}"));
        bad_ids.push((*name, id));
        Good::new(i as u64).client(&client).enqueue().await.unwrap();
        good.push(i as u64);
        if i % 6 == 0 {
            let h = Panics::new(i as u64)
                .client(&client)
                .enqueue()
                .await
                .unwrap();
            bad_ids.push(("handler panics", h.id));
        }
    }
    let bad_count = bad_ids.len() as u64;
    assert!(
        eventually(Duration::from_secs(10), || count(&ledger, |e| e
            .is_done_of("good"))
            >= good.len())
        .await,
        "every good job completes"
    );
    assert!(
        until(Duration::from_secs(10), || async {
            buried(&client, "f_good").await + buried(&client, "f_panics").await == bad_count
        })
        .await,
        "every bad job is buried"
    );
    let tally = Tally::compute("good", &good, &ledger.read());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let per_job: Vec<(&str, JobId, usize)> = bad_ids
        .iter()
        .map(|(name, id)| (*name, *id, burying_lines(&log, *id)))
        .collect();
    let burying_total = log.lines().filter(|l| l.contains("burying")).count();
    let alive = workers.slots[0].exited().is_none();
    println!(
        "bad-input: bad={bad_count} good={} completed={} dup={} buried={} burying_log_lines={burying_total} \
         same_pid={} alive={alive} elapsed={:.1}s",
        good.len(),
        tally.completed,
        tally.duplicated.len(),
        buried(&client, "f_good").await + buried(&client, "f_panics").await,
        workers.slots[0].pid == pid,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        alive,
        "the worker survived the bad jobs; log tail:\n{}",
        tail(&log_path, 20)
    );
    assert_eq!(workers.slots[0].pid, pid, "the same worker process");
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    assert!(tally.missing.is_empty() && tally.duplicated.is_empty());
    for (name, id, lines) in &per_job {
        assert_eq!(
            *lines, 1,
            "bad job {name} (id {id}) is buried with exactly one log line"
        );
    }
    assert_eq!(
        burying_total as u64, bad_count,
        "one burying line per bad job, none for good ones"
    );
    assert_eq!(live(&client, "f_good").await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_soon_replies_are_handled_while_a_job_runs_past_its_ttr() {
    // A job with TTR 1 s runs 3 s. beanstalkd answers every reserve on the
    // worker's connection with DEADLINE_SOON while that job is within a
    // second of its deadline (always, with TTR 1 s) and the tube is empty.
    // The worker must take that as "touch now", not as an error: the job
    // runs once, other jobs of the tube still run, the connection stays.
    let scratch = Scratch::new("deadline");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_tight").concurrency(4);
    let log_path = spec.log(0);
    let mut workers = Workers::start(spec, 1);
    let pid = workers.slots[0].pid;
    wait_watching(&client, "f_tight", 1).await;
    let long = Tight::new(0, 3000).client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || count(&ledger, |e| e
            .is_start_of("tight"))
            == 1)
        .await,
        "the long job starts"
    );
    // Short jobs arrive while the long one runs past its TTR.
    let mut short = Vec::new();
    for n in 1..=4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Tight::new(n, 10).client(&client).enqueue().await.unwrap();
        short.push(n);
    }
    let mid_run = client.stats_job(0, long.id).await.ok();
    let mut all = short.clone();
    all.push(0);
    assert!(
        eventually(Duration::from_secs(10), || Tally::compute(
            "tight",
            &all,
            &ledger.read()
        )
        .missing
        .is_empty())
        .await,
        "every job finishes"
    );
    assert!(
        until(Duration::from_secs(5), || async {
            live(&client, "f_tight").await == Some(0)
        })
        .await,
        "the tube empties"
    );
    let tally = Tally::compute("tight", &all, &ledger.read());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let bad_lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("unexpected reply")
                || l.contains("unavailable")
                || l.contains("no longer reserved")
                || l.contains("ERROR")
        })
        .collect();
    println!(
        "deadline-soon: long job mid-run {:?}, reruns={} dup={} suspicious_log_lines={}",
        mid_run
            .as_ref()
            .map(|s| (s.state.to_string(), s.reserves, s.timeouts)),
        tally.reruns,
        tally.duplicated.len(),
        bad_lines.len()
    );
    assert_eq!(workers.slots[0].exited(), None, "the worker runs on");
    assert_eq!(workers.slots[0].pid, pid);
    assert!(workers.crashes.is_empty(), "{}", workers.crashes.join("\n"));
    let mid_run = mid_run.expect("the long job exists while it runs");
    assert_eq!(
        (mid_run.reserves, mid_run.timeouts),
        (1, 0),
        "the long job stayed reserved by its worker, touched in time"
    );
    assert_eq!(tally.reruns, 0, "every job ran once");
    assert!(
        bad_lines.is_empty(),
        "the worker logged trouble ({} lines, first 10):\n{}",
        bad_lines.len(),
        bad_lines[..bad_lines.len().min(10)].join("\n")
    );
}

// ---------------------------------------------------------------------------
// 5. Server down.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_fails_in_bounded_time_when_no_server_answers() {
    // Nothing listens: refused at once, with the default settings.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::new(&format!("beanstalk://127.0.0.1:{port}")).unwrap();
    let t = Instant::now();
    let e = Good::new(1).client(&client).enqueue().await.unwrap_err();
    let refused = t.elapsed();
    assert!(matches!(e, bsjobs::Error::Connect { .. }), "refused: {e}");
    assert!(
        refused < Duration::from_secs(2),
        "refused after {refused:?}"
    );

    // A listener that accepts and never answers: the configured timeouts bound it.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = ClientConfig {
        servers: vec![hole.local_addr().unwrap().to_string()],
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let client = Client::with_config(config);
    let t = Instant::now();
    let e = Good::new(1).client(&client).enqueue().await.unwrap_err();
    let silent = t.elapsed();
    assert!(
        silent >= Duration::from_millis(900) && silent < Duration::from_millis(2500),
        "silent server: {e} after {silent:?}"
    );

    // A server that dies: the next enqueue fails quickly, and the client
    // works again once the server is back.
    let mut srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    Good::new(1).client(&client).enqueue().await.unwrap();
    srv.kill();
    let t = Instant::now();
    let mut errors = Vec::new();
    for _ in 0..3 {
        errors.push(Good::new(2).client(&client).enqueue().await.unwrap_err());
    }
    let dead = t.elapsed();
    assert!(
        dead < Duration::from_secs(3),
        "3 enqueues to a dead server took {dead:?}"
    );
    srv.restart();
    let back = Good::new(3).client(&client).enqueue().await;
    println!(
        "enqueue-down: refused={:.3}s silent={:.3}s (connect 0.5s + io 1s) dead_x3={:.3}s after_restart={} errors={:?}",
        refused.as_secs_f64(),
        silent.as_secs_f64(),
        dead.as_secs_f64(),
        if back.is_ok() { "ok" } else { "err" },
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    back.expect("the client reconnects once the server is back");
    drop(hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_the_server_being_down_and_resumes() {
    let t0 = Instant::now();
    let scratch = Scratch::new("down");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let mut srv = Beanstalkd::builder().binlog(scratch.path("binlog")).start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_good").concurrency(4);
    let log_path = spec.log(0);
    let mut workers = Workers::start(spec, 1);
    let pid = workers.slots[0].pid;
    let mut enqueued: Vec<u64> = Vec::new();
    for n in 0..10 {
        Good::new(n).client(&client).enqueue().await.unwrap();
        enqueued.push(n);
    }
    let done = |ledger: &Ledger, e: &[u64]| Tally::compute("good", e, &ledger.read());
    assert!(
        eventually(Duration::from_secs(5), || done(&ledger, &enqueued)
            .missing
            .is_empty())
        .await,
        "jobs run before the outage"
    );
    // Due while the server is down; kept by the binlog.
    Good::new(100)
        .delay(Duration::from_secs(2))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    enqueued.push(100);

    srv.kill();
    let down = Duration::from_secs(4);
    std::thread::sleep(down);
    assert!(
        workers.slots[0].exited().is_none(),
        "the worker outlives the outage; log tail:\n{}",
        tail(&log_path, 20)
    );
    srv.restart();
    let back = Instant::now();
    wait_for_server(&client).await;
    for n in 200..210 {
        Good::new(n).client(&client).enqueue().await.unwrap();
        enqueued.push(n);
    }
    assert!(
        eventually(Duration::from_secs(10), || done(&ledger, &enqueued)
            .missing
            .is_empty())
        .await,
        "jobs run after the outage: missing {:?}",
        done(&ledger, &enqueued).missing
    );
    let resumed = back.elapsed();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let unavailable = log.lines().filter(|l| l.contains("unavailable")).count();
    let reconnected = log.lines().filter(|l| l.contains("reconnected")).count();
    let tally = done(&ledger, &enqueued);
    println!(
        "server-down: down={:.1}s resumed_in={:.2}s completed={}/{} dup={} unavailable_log_lines={unavailable} \
         reconnected_log_lines={reconnected} same_pid={} elapsed={:.1}s",
        down.as_secs_f64(),
        resumed.as_secs_f64(),
        tally.completed,
        tally.enqueued,
        tally.duplicated.len(),
        workers.slots[0].pid == pid,
        t0.elapsed().as_secs_f64()
    );
    assert!(workers.slots[0].exited().is_none(), "the worker still runs");
    assert_eq!(workers.slots[0].pid, pid, "the same worker process");
    assert!(tally.duplicated.is_empty(), "{:?}", tally.duplicated);
    assert!(reconnected >= 1, "the worker logs its reconnection");
    assert!(
        unavailable <= down.as_secs() as usize + 3,
        "the outage is logged at most about once a second, not flooded: {unavailable} lines"
    );
}

// ---------------------------------------------------------------------------
// 6. Shutdown.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_jobs_reserves_nothing_new_and_exits_0() {
    let scratch = Scratch::new("sigterm");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_slow").concurrency(2);
    let log_path = spec.log(0);
    let mut workers = Workers::start(spec, 1);
    for n in 0..2 {
        Slow::new(n, 2000).client(&client).enqueue().await.unwrap();
    }
    assert!(
        eventually(Duration::from_secs(5), || count(&ledger, |e| e
            .is_start_of("slow"))
            == 2)
        .await,
        "both slow jobs start"
    );
    for n in 10..15 {
        Slow::new(n, 10).client(&client).enqueue().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    workers.slots[0].sigterm();
    let status = workers.slots[0].wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    let entries = ledger.read();
    let done: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Done { job, key, .. } if job == "slow" => key.parse().ok(),
            _ => None,
        })
        .collect();
    let started_later = entries
        .iter()
        .filter(|e| {
            matches!(e, Entry::Start { job, key, .. }
                if job == "slow" && key.parse::<u64>().is_ok_and(|n| n >= 10))
        })
        .count();
    let st = client.stats_tube(0, "f_slow").await.unwrap();
    println!(
        "sigterm-busy: exit={status:?} took={:.2}s in_flight_done={done:?} later_started={started_later} \
         ready={} reserved={}",
        took.as_secs_f64(),
        st.current_jobs_ready,
        st.current_jobs_reserved
    );
    let status = status.expect("the worker exits after SIGTERM");
    assert!(
        status.success(),
        "exit status 0, got {status}; log tail:\n{}",
        tail(&log_path, 20)
    );
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "exited once the in-flight jobs finished: {took:?}"
    );
    let mut done = done;
    done.sort_unstable();
    assert_eq!(done, [0, 1], "the in-flight jobs finished");
    assert_eq!(started_later, 0, "nothing new was reserved");
    assert_eq!(
        (st.current_jobs_ready, st.current_jobs_reserved),
        (5, 0),
        "the later jobs wait for the next worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_an_idle_worker_promptly() {
    let scratch = Scratch::new("idle");
    let ledger = Ledger::open(scratch.path("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let spec = Spec::new(&srv, &ledger, &scratch, "f_slow,f_good").concurrency(2);
    let log_path = spec.log(0);
    let mut workers = Workers::start(spec, 1);
    wait_watching(&client, "f_slow", 1).await;
    wait_watching(&client, "f_good", 1).await;
    // Let it settle into its blocking reserves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    workers.slots[0].sigterm();
    let status = workers.slots[0].wait_exit(Duration::from_secs(10));
    let took = t.elapsed();
    println!(
        "sigterm-idle: exit={status:?} took={:.3}s",
        took.as_secs_f64()
    );
    let status = status.expect("the idle worker exits after SIGTERM");
    assert!(
        status.success(),
        "exit status 0, got {status}; log tail:\n{}",
        tail(&log_path, 20)
    );
    assert!(took < Duration::from_secs(1), "idle worker took {took:?}");
}
