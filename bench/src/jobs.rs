//! The jobs the bench enqueues and its worker children run. Every handler
//! only counts or records when it started, so that what is measured is
//! bsjobs and beanstalkd, not the work.

use bsjobs::hook::{CurrentJob, Event, Hook, Outgoing};
// `HandlerFuture` is not re-exported by the facade (only `__private`).
use bsjobs_core::job::HandlerFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static NOOP_DONE: AtomicU64 = AtomicU64::new(0);
static NOOP_TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
type Signal = Mutex<Option<tokio::sync::oneshot::Sender<Instant>>>;
static NOOP_SIGNAL: Signal = Mutex::new(None);

/// Resolves with the instant the `n`-th no-op handler ran.
pub(crate) fn noop_signal(n: u64) -> tokio::sync::oneshot::Receiver<Instant> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    *NOOP_SIGNAL.lock().unwrap() = Some(tx);
    NOOP_TARGET.store(n, Ordering::Relaxed);
    rx
}

/// Counts one handler run towards [`noop_signal`]: every drained job calls it.
fn count_done() {
    let done = NOOP_DONE.fetch_add(1, Ordering::Relaxed) + 1;
    if done == NOOP_TARGET.load(Ordering::Relaxed) {
        if let Some(tx) = NOOP_SIGNAL.lock().unwrap().take() {
            let _ = tx.send(Instant::now());
        }
    }
}

/// The drained job: does nothing but count.
#[bsjobs::job(tube = "bench_noop")]
pub(crate) async fn noop(n: u64) {
    let _ = n;
    count_done();
}

// ─────────── the lifecycle scenario's jobs and hooks (issue 12) ───────────

/// The no-op job taking the worker's [`bsjobs::JobContext`].
#[bsjobs::job(tube = "bench_ctx")]
pub(crate) async fn with_ctx(n: u64, ctx: bsjobs::JobContext) {
    let _ = (n, ctx.attempt);
    count_done();
}

/// The no-op job, unique per argument for an hour.
#[bsjobs::job(tube = "bench_unique", unique_for = "1h")]
pub(crate) async fn unique(n: u64) {
    let _ = n;
    count_done();
}

/// Fails at once with no retry: the worker buries it with its error record.
#[bsjobs::job(tube = "bench_fail", retries = 0)]
pub(crate) async fn fail(n: u64) -> Result<(), String> {
    count_done();
    Err(format!("job {n} fails on purpose"))
}

/// The job of `--job NAME` in the enqueue child.
pub(crate) fn job_by_name(name: &str) -> fn(u64) -> bsjobs::Enqueue {
    match name {
        "noop" => Noop::new,
        "ctx" => WithCtx::new,
        "unique" => Unique::new,
        "fail" => Fail::new,
        other => panic!("unknown --job {other:?} (noop, ctx, unique, fail)"),
    }
}

/// The client hook of the lifecycle scenario: one `meta` entry per job.
pub(crate) struct TagHook;

impl Hook for TagHook {
    fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
        job.set_meta("bench", "lifecycle");
        Ok(())
    }
}

static HOOK_WRAPPED: AtomicU64 = AtomicU64::new(0);
static HOOK_TAGGED: AtomicU64 = AtomicU64::new(0);
static HOOK_STARTED: AtomicU64 = AtomicU64::new(0);
static HOOK_SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static HOOK_RUN_NS: AtomicU64 = AtomicU64::new(0);

/// The worker hook of the lifecycle scenario: an `around` wrapper that
/// times each run and counts the jobs carrying [`TagHook`]'s entry, and
/// `on_event` counting starts and successes.
pub(crate) struct CountHook;

impl Hook for CountHook {
    fn around(&self, job: &CurrentJob, run: HandlerFuture) -> HandlerFuture {
        HOOK_WRAPPED.fetch_add(1, Ordering::Relaxed);
        if job.meta.as_ref().and_then(|m| m.get("bench")).is_some() {
            HOOK_TAGGED.fetch_add(1, Ordering::Relaxed);
        }
        Box::pin(async move {
            let t0 = Instant::now();
            let out = run.await;
            HOOK_RUN_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
            out
        })
    }

    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::Started { .. } => HOOK_STARTED.fetch_add(1, Ordering::Relaxed),
            Event::Succeeded { .. } => HOOK_SUCCEEDED.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// `HOOK wrapped=… tagged=… started=… succeeded=… run_ns=…`: what
/// [`CountHook`] saw in this process.
pub(crate) fn hook_line() -> String {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "HOOK wrapped={} tagged={} started={} succeeded={} run_ns={}",
        get(&HOOK_WRAPPED),
        get(&HOOK_TAGGED),
        get(&HOOK_STARTED),
        get(&HOOK_SUCCEEDED),
        get(&HOOK_RUN_NS)
    )
}

/// Latency samples by series name: (sent, enqueue → handler start), in ns.
type Series = Mutex<BTreeMap<&'static str, Vec<(u64, u64)>>>;
static SERIES: Series = Mutex::new(BTreeMap::new());

/// Nanoseconds since the epoch: the clock every latency probe carries (the
/// bench and its children share the machine's clock).
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn record(series: &'static str, sent_ns: u64) {
    let d = now_ns().saturating_sub(sent_ns);
    SERIES
        .lock()
        .unwrap()
        .entry(series)
        .or_default()
        .push((sent_ns, d));
}

/// Every series recorded in this process.
pub(crate) fn series() -> BTreeMap<&'static str, Vec<(u64, u64)>> {
    SERIES.lock().unwrap().clone()
}

#[bsjobs::job(tube = "bench_lat")]
pub(crate) async fn lat(sent_ns: u64) {
    record("LAT", sent_ns);
}

/// `hold_ms > 0`: the long job (prints `HOLDING`, sleeps, records nothing);
/// otherwise a probe of phase 0 (idle worker) or 1 (long job in flight).
#[bsjobs::job(tube = "bench_pickup")]
pub(crate) async fn pickup(sent_ns: u64, phase: u32, hold_ms: u64) {
    if hold_ms > 0 {
        println!("HOLDING");
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    } else if phase == 0 {
        record("PICKUP_IDLE", sent_ns);
    } else {
        record("PICKUP_BUSY", sent_ns);
    }
}

static CHAIN_RUNS: AtomicU64 = AtomicU64::new(0);

/// Runs of the chain jobs in this process.
pub(crate) fn chain_runs() -> u64 {
    CHAIN_RUNS.load(Ordering::Relaxed)
}

/// A chain that lives on the server between runs an hour apart.
#[bsjobs::job(tube = "bench_hourly", repeat = "1h")]
pub(crate) async fn hourly(i: u64) {
    let _ = i;
    CHAIN_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// A chain that runs every second.
#[bsjobs::job(tube = "bench_secondly", repeat = "1s")]
pub(crate) async fn secondly(i: u64) {
    let _ = i;
    CHAIN_RUNS.fetch_add(1, Ordering::Relaxed);
}

// Written out one by one: `#[bsjobs::job]` on a function whose name comes
// from a `macro_rules!` fragment fails to compile (bsjobs-macros/src/expand.rs
// spans `__bsjobs_args` with the function name's span, which a declarative
// macro's hygiene then hides).
#[bsjobs::job(tube = "bench_idle0")]
async fn idle0(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle1")]
async fn idle1(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle2")]
async fn idle2(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle3")]
async fn idle3(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle4")]
async fn idle4(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle5")]
async fn idle5(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle6")]
async fn idle6(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle7")]
async fn idle7(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle8")]
async fn idle8(sent_ns: u64) {
    record("IDLE", sent_ns);
}
#[bsjobs::job(tube = "bench_idle9")]
async fn idle9(sent_ns: u64) {
    record("IDLE", sent_ns);
}

/// The ten tubes of the idle worker.
pub(crate) const IDLE_TUBES: [&str; 10] = [
    Idle0::TUBE,
    Idle1::TUBE,
    Idle2::TUBE,
    Idle3::TUBE,
    Idle4::TUBE,
    Idle5::TUBE,
    Idle6::TUBE,
    Idle7::TUBE,
    Idle8::TUBE,
    Idle9::TUBE,
];

/// A probe for idle tube `i % 10`.
pub(crate) fn idle_job(i: usize, sent_ns: u64) -> bsjobs::Enqueue {
    let jobs: [fn(u64) -> bsjobs::Enqueue; 10] = [
        Idle0::new,
        Idle1::new,
        Idle2::new,
        Idle3::new,
        Idle4::new,
        Idle5::new,
        Idle6::new,
        Idle7::new,
        Idle8::new,
        Idle9::new,
    ];
    jobs[i % 10](sent_ns)
}
