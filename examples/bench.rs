//! Throughput, latency and idle cost of bsjobs, each figure next to the
//! ceiling that a minimal client over the same sans-IO protocol layer reaches
//! on the same machine, in the same run.
//!
//! ```text
//! cargo run --release -p bsjobs-examples --example bench -- [--jobs N] [--quick] [--full]
//! ```
//!
//! Every scenario gets a fresh beanstalkd on a free 127.0.0.1 port (so no
//! backlog leaks from one into the next). Workers run in a child process of
//! this same binary (`--worker-only`), so their RSS and CPU time can be read
//! from `/proc/<pid>` without the producer's; generated `Job::enqueue` calls
//! run in a child too (`--enqueue-only`), with the process-wide client.
//! Every child process (beanstalkd and ours) is killed on drop, on panic too,
//! and dies with this process (`PR_SET_PDEATHSIG`).

use bsjobs::proto::stats::ServerStats;
use bsjobs::proto::{Command, Connection, Response};
use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, ClientConfig, Shutdown, Worker};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ───────────────────────────── jobs ─────────────────────────────

static NOOP_DONE: AtomicU64 = AtomicU64::new(0);
static NOOP_TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
type Signal = Mutex<Option<tokio::sync::oneshot::Sender<Instant>>>;
static NOOP_SIGNAL: Signal = Mutex::new(None);

/// The drained job: does nothing but count.
#[bsjobs::job(tube = "bench_noop")]
async fn noop(n: u64) {
    let _ = n;
    let done = NOOP_DONE.fetch_add(1, Ordering::Relaxed) + 1;
    if done == NOOP_TARGET.load(Ordering::Relaxed) {
        if let Some(tx) = NOOP_SIGNAL.lock().unwrap().take() {
            let _ = tx.send(Instant::now());
        }
    }
}

/// (sent, enqueue → handler start), in ns.
static LAT: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
static IDLE_LAT: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

fn record(into: &Mutex<Vec<(u64, u64)>>, sent_ns: u64) {
    let d = now_ns().saturating_sub(sent_ns);
    into.lock().unwrap().push((sent_ns, d));
}

#[bsjobs::job(tube = "bench_lat")]
async fn lat(sent_ns: u64) {
    record(&LAT, sent_ns);
}

#[bsjobs::job(tube = "bench_idle0")]
async fn idle0(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle1")]
async fn idle1(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle2")]
async fn idle2(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle3")]
async fn idle3(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle4")]
async fn idle4(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle5")]
async fn idle5(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle6")]
async fn idle6(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle7")]
async fn idle7(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle8")]
async fn idle8(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}
#[bsjobs::job(tube = "bench_idle9")]
async fn idle9(sent_ns: u64) {
    record(&IDLE_LAT, sent_ns);
}

const IDLE_TUBES: [&str; 10] = [
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

fn idle_job(i: usize, sent_ns: u64) -> bsjobs::Enqueue {
    match i % 10 {
        0 => Idle0::new(sent_ns),
        1 => Idle1::new(sent_ns),
        2 => Idle2::new(sent_ns),
        3 => Idle3::new(sent_ns),
        4 => Idle4::new(sent_ns),
        5 => Idle5::new(sent_ns),
        6 => Idle6::new(sent_ns),
        7 => Idle7::new(sent_ns),
        8 => Idle8::new(sent_ns),
        _ => Idle9::new(sent_ns),
    }
}

// ───────────────────────────── entry ─────────────────────────────

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    // For experiments: BENCH_WORKER_THREADS=n sets the runtime's worker threads.
    if let Some(n) = std::env::var("BENCH_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    if args.iter().any(|a| a == "--worker-only") {
        rt.block_on(worker_child(&args));
    } else if args.iter().any(|a| a == "--enqueue-only") {
        rt.block_on(enqueue_child(&args));
    } else if args.iter().any(|a| a == "--prefill-only") {
        // For profiling a worker by hand: `--prefill-only --addr 127.0.0.1:P --jobs N`.
        let addr = arg(&args, "--addr").expect("--addr").to_owned();
        let n = arg_u64(&args, "--jobs").expect("--jobs");
        let (k, s) = rt.block_on(raw_put(&addr, NOOP, n, None));
        println!("prefilled {k} jobs into {NOOP} in {s:.3} s");
    } else if args.iter().any(|a| a == "--raw-drain-only") {
        // For profiling by hand: `--raw-drain-only --addr 127.0.0.1:P --depth D --window W`.
        let addr = arg(&args, "--addr").expect("--addr").to_owned();
        let depth = arg_u64(&args, "--depth").unwrap_or(2) as usize;
        let window = arg_u64(&args, "--window").unwrap_or(250) as usize;
        let (k, s) = rt.block_on(raw_drain(&addr, NOOP, (depth, window), None));
        println!("drained {k} jobs in {s:.3} s: {:.0} jobs/s", k as f64 / s);
    } else {
        let opts = Opts::parse(&args);
        rt.block_on(bench(opts));
    }
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn arg_u64(args: &[String], name: &str) -> Option<u64> {
    arg(args, name).map(|v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} wants a number, got {v:?}"))
    })
}

// ───────────────────────────── child: worker ─────────────────────────────

/// `--worker-only --url U --tubes a,b --concurrency N|default [--expect N] [--skip K]`
///
/// Prints `READY`, then (with `--expect`) `DONE …` once that many noop jobs
/// ran and the tube is empty; stops on `stop` or EOF on stdin, then prints
/// the latencies it recorded and `BYE`.
async fn worker_child(args: &[String]) {
    let url = arg(args, "--url").expect("--url").to_owned();
    let tubes: Vec<String> = arg(args, "--tubes")
        .expect("--tubes")
        .split(',')
        .map(str::to_owned)
        .collect();
    let expect = arg_u64(args, "--expect").unwrap_or(0);
    let skip = arg_u64(args, "--skip").unwrap_or(0) as usize;
    let stop_rx = stdin_stop();

    let sd = Shutdown::new();
    let mut w = Worker::from_url(&url)
        .expect("worker url")
        .tubes(tubes.clone())
        .shutdown(sd.clone());
    if let Some(c) = arg(args, "--concurrency").filter(|c| *c != "default") {
        w = w.concurrency(c.parse().expect("--concurrency"));
    }
    let (tx, done_rx) = tokio::sync::oneshot::channel();
    if expect > 0 {
        *NOOP_SIGNAL.lock().unwrap() = Some(tx);
        NOOP_TARGET.store(expect, Ordering::Relaxed);
    }
    let rss0 = proc_status_kb("self", "VmRSS");
    let t0 = Instant::now();
    let run = tokio::spawn(w.run());
    println!("READY rss_kb={rss0}");

    if expect > 0 {
        let at = done_rx.await.expect("handler signal");
        let handlers_s = at.duration_since(t0).as_secs_f64();
        // The tube is empty once the last deletes are in: poll for it.
        let c = Client::new(&url).expect("client");
        loop {
            let st = c.stats_tube(0, &tubes[0]).await.expect("stats-tube");
            if st.current_jobs_ready + st.current_jobs_reserved == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let empty_s = t0.elapsed().as_secs_f64();
        println!(
            "DONE handlers_s={handlers_s:.6} empty_s={empty_s:.6} rss_kb={} hwm_kb={}",
            proc_status_kb("self", "VmRSS"),
            proc_status_kb("self", "VmHWM")
        );
    }
    let _ = stop_rx.await;
    sd.trigger();
    match tokio::time::timeout(Duration::from_secs(35), run).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("worker child: worker failed: {e}"),
        Ok(Err(e)) => eprintln!("worker child: worker task failed: {e}"),
        Err(_) => eprintln!("worker child: worker did not stop within 35 s"),
    }
    for (name, v) in [("LAT", &LAT), ("IDLE", &IDLE_LAT)] {
        let v = v.lock().unwrap().clone();
        if v.is_empty() {
            continue;
        }
        let skip = if name == "LAT" { skip.min(v.len()) } else { 0 };
        // BENCH_DUMP=prefix writes every sample: "sent_ns latency_ns".
        if let Ok(prefix) = std::env::var("BENCH_DUMP") {
            let text: String = v.iter().map(|(s, l)| format!("{s} {l}\n")).collect();
            let _ = std::fs::write(format!("{prefix}.{name}"), text);
        }
        let mut v: Vec<u64> = v[skip..].iter().map(|(_, l)| *l).collect();
        v.sort_unstable();
        println!(
            "{name} n={} p50_ns={} p99_ns={} max_ns={}",
            v.len(),
            pct(&v, 0.50),
            pct(&v, 0.99),
            v.last().copied().unwrap_or(0)
        );
    }
    println!("BYE");
}

/// Resolves when stdin says `stop` or closes.
fn stdin_stop() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    rx
}

// ───────────────────────────── child: producer ─────────────────────────────

/// `--enqueue-only --url U --mode one|conc|bulk|raw --jobs N [--tasks T]`:
/// enqueues N noop jobs with the generated API and the process-wide client
/// (`raw`: with sequential raw puts on one connection, the control for
/// `one` measured in the same kind of process), prints `RESULT secs=…`.
async fn enqueue_child(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let mode = arg(args, "--mode").expect("--mode").to_owned();
    let n = arg_u64(args, "--jobs").expect("--jobs");
    let tasks = arg_u64(args, "--tasks").unwrap_or(64);
    assert!(Client::set_global(Client::new(url).expect("client")));
    // Connect (and `use` the tube) before the clock starts.
    Noop::enqueue(u64::MAX).await.expect("warm-up enqueue");
    // The control's connection, also ready before the clock starts.
    let addr = bsjobs::ClientConfig::from_url(url).expect("url").servers[0].clone();
    let mut conn = raw(&addr).await;
    raw_use(&mut conn, NOOP).await;
    let mut body = Vec::with_capacity(64);
    let t0 = Instant::now();
    match mode.as_str() {
        "one" => {
            for i in 0..n {
                Noop::enqueue(i).await.expect("enqueue");
            }
        }
        "raw" => {
            for i in 0..n {
                noop_body(&mut body, i);
                let put = Command::Put {
                    pri: 1024,
                    delay: 0,
                    ttr: 60,
                    body: &body,
                };
                match conn.request(&put).await.expect("put") {
                    Response::Inserted(_) => {}
                    r => panic!("put: {r:?}"),
                }
            }
        }
        "conc" => {
            let mut set = tokio::task::JoinSet::new();
            for t in 0..tasks {
                set.spawn(async move {
                    let mut i = t;
                    while i < n {
                        Noop::enqueue(i).await.expect("enqueue");
                        i += tasks;
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("producer task");
            }
        }
        "bulk" => {
            let client = Client::global().expect("global client");
            let out = client.enqueue_many((0..n).map(Noop::new)).await;
            assert_eq!(out.len() as u64, n);
            for r in out {
                r.expect("bulk enqueue");
            }
        }
        m => panic!("unknown --mode {m}"),
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("RESULT secs={secs:.6} cpu_s={:.6}", self_cpu_s());
}

// ───────────────────────────── processes ─────────────────────────────

/// A child process of this binary, killed on drop.
struct ChildProc {
    proc: Option<std::process::Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pid: u32,
}

impl ChildProc {
    /// Must be called from the thread that lives as long as the bench (the
    /// main thread): `PR_SET_PDEATHSIG` follows the spawning thread.
    fn spawn(args: &[String]) -> ChildProc {
        use std::os::unix::process::CommandExt as _;
        let exe = std::env::current_exe().expect("own executable");
        let mut cmd = std::process::Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut proc = cmd.spawn().expect("spawn bench child");
        let out = proc.stdout.take().expect("child stdout");
        let stdin = proc.stdin.take();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        ChildProc {
            pid: proc.id(),
            proc: Some(proc),
            stdin,
            lines,
        }
    }

    /// The next line starting with `prefix`, within `within`.
    async fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) if l.starts_with(prefix) => return l,
                Ok(Some(l)) => eprintln!("  child: {l}"),
                Ok(None) => panic!("bench child exited before printing {prefix}"),
                Err(_) => panic!("bench child printed no {prefix} within {within:?}"),
            }
        }
    }

    /// Tells the child to stop; returns every line it printed until `BYE`.
    async fn stop(&mut self) -> Vec<String> {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "stop");
        }
        let mut out = Vec::new();
        loop {
            let l = self.line("", Duration::from_secs(60)).await;
            if l == "BYE" {
                break;
            }
            out.push(l);
        }
        if let Some(mut p) = self.proc.take() {
            let _ = p.wait();
        }
        out
    }

    async fn wait_exit(&mut self) {
        if let Some(mut p) = self.proc.take() {
            loop {
                match p.try_wait().expect("wait child") {
                    Some(st) => {
                        assert!(st.success(), "bench child failed: {st}");
                        return;
                    }
                    None => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if let Ok(None) = p.try_wait() {
                let _ = p.kill();
            }
            let _ = p.wait();
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("bsjobs-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// utime + stime of this process, in seconds.
fn self_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `VmRSS:`-style field of `/proc/<pid>/status`, in kB.
fn proc_status_kb(pid: &str, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
fn proc_cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

fn kv(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in child line {line:?}"))
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ───────────────────────────── raw client (the ceilings) ─────────────────────────────

const NOOP: &str = Noop::TUBE;
const WINDOW: usize = 1000;

async fn raw(addr: &str) -> Connection {
    Connection::connect(addr, &ClientConfig::default())
        .await
        .expect("raw connect")
}

async fn raw_use(c: &mut Connection, tube: &str) {
    match c.request(&Command::Use(tube)).await.expect("use") {
        Response::Using(_) => {}
        r => panic!("use: {r:?}"),
    }
}

async fn raw_watch(c: &mut Connection, tube: &str) {
    c.queue(&Command::Watch(tube));
    c.queue(&Command::Ignore("default"));
    c.flush().await.expect("watch");
    for _ in 0..2 {
        match c.recv().await.expect("watch reply") {
            Response::Watching(_) => {}
            r => panic!("watch/ignore: {r:?}"),
        }
    }
}

/// The body a generated `Noop::new(n)` puts: the envelope of `{"n":n}`.
fn noop_body(out: &mut Vec<u8>, n: u64) {
    out.clear();
    let _ = write!(out, "{{\"v\":1,\"args\":{{\"n\":{n}}}}}");
}

/// Windows of commands kept on the wire by the raw ceilings: while the
/// replies of one window are read, the next one is already written, so the
/// server never waits for the client.
const DEPTH: usize = 2;
/// (depth, window) shapes of the raw reserve+delete ceiling; the best counts.
const RD_SHAPES: [(usize, usize); 3] = [(1, 500), (2, 100), (2, 250)];
/// Shape of the raw drain in the mixed ceiling.
const RD_MIXED: (usize, usize) = (2, 250);

/// Pipelined puts: encode a window, one write; [`DEPTH`] windows in flight;
/// `n` puts or until `stop`. Returns (puts, seconds).
async fn raw_put(addr: &str, tube: &str, n: u64, stop: Option<&AtomicBool>) -> (u64, f64) {
    raw_put_shaped(addr, tube, n, (DEPTH, WINDOW), stop).await
}

async fn raw_put_shaped(
    addr: &str,
    tube: &str,
    n: u64,
    (depth, window): (usize, usize),
    stop: Option<&AtomicBool>,
) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_use(&mut c, tube).await;
    let mut body = Vec::with_capacity(64);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut done = 0u64;
    let mut windows = std::collections::VecDeque::new();
    loop {
        while windows.len() < depth && sent < n && !stop.is_some_and(|s| s.load(Ordering::Relaxed))
        {
            let k = (n - sent).min(window as u64);
            for i in 0..k {
                noop_body(&mut body, sent + i);
                c.queue(&Command::Put {
                    pri: 1024,
                    delay: 0,
                    ttr: 60,
                    body: &body,
                });
            }
            c.flush().await.expect("put flush");
            sent += k;
            windows.push_back(k);
        }
        let Some(k) = windows.pop_front() else { break };
        for _ in 0..k {
            match c.recv().await.expect("put reply") {
                Response::Inserted(_) => done += 1,
                r => panic!("put: {r:?}"),
            }
        }
    }
    (done, t0.elapsed().as_secs_f64())
}

/// Pipelined drain: each write carries the deletes of the last batch read
/// and `window` `reserve-with-timeout 0`; `depth` writes in flight. Ends
/// when the tube is empty, or (with `stop`) when told. Returns (jobs
/// deleted, seconds).
///
/// beanstalkd's cost per command grows with the number of jobs one
/// connection holds reserved (deleting the job with the soonest deadline
/// makes it walk the connection's whole reserved list again), so the
/// biggest window is not the fastest: the ceiling tries [`RD_SHAPES`].
async fn raw_drain(
    addr: &str,
    tube: &str,
    (depth, window): (usize, usize),
    stop: Option<&AtomicBool>,
) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_watch(&mut c, tube).await;
    // Per write in flight: (deletes, reserves).
    let mut windows: std::collections::VecDeque<(usize, usize)> = Default::default();
    let mut ids: Vec<u64> = Vec::with_capacity(window);
    let mut done = 0u64;
    let mut empty = false;
    let t0 = Instant::now();
    loop {
        let stopping = match stop {
            Some(s) => s.load(Ordering::Relaxed),
            None => empty,
        };
        while windows.len() < depth {
            let deletes = ids.len();
            for id in ids.drain(..) {
                c.queue(&Command::Delete(id));
            }
            let reserves = if stopping { 0 } else { window };
            for _ in 0..reserves {
                c.queue(&Command::ReserveWithTimeout(0));
            }
            if deletes == 0 && reserves == 0 {
                break;
            }
            c.flush().await.expect("drain flush");
            windows.push_back((deletes, reserves));
        }
        let Some((deletes, reserves)) = windows.pop_front() else {
            break;
        };
        for _ in 0..deletes {
            match c.recv().await.expect("delete reply") {
                Response::Deleted => done += 1,
                r => panic!("delete: {r:?}"),
            }
        }
        let mut got = 0;
        for _ in 0..reserves {
            match c.recv().await.expect("reserve reply") {
                Response::Reserved { id, .. } => {
                    ids.push(id);
                    got += 1;
                }
                Response::TimedOut => empty = true,
                r => panic!("reserve: {r:?}"),
            }
        }
        if got == 0 && reserves > 0 && stop.is_some() && !stopping {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (done, t0.elapsed().as_secs_f64())
}

async fn seq_put(addr: &str, tube: &str, n: u64) -> f64 {
    let mut c = raw(addr).await;
    raw_use(&mut c, tube).await;
    let mut body = Vec::with_capacity(64);
    let t0 = Instant::now();
    for i in 0..n {
        noop_body(&mut body, i);
        match c
            .request(&Command::Put {
                pri: 1024,
                delay: 0,
                ttr: 60,
                body: &body,
            })
            .await
            .expect("put")
        {
            Response::Inserted(_) => {}
            r => panic!("put: {r:?}"),
        }
    }
    t0.elapsed().as_secs_f64()
}

async fn seq_reserve_delete(addr: &str, tube: &str) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_watch(&mut c, tube).await;
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        match c
            .request(&Command::ReserveWithTimeout(0))
            .await
            .expect("reserve")
        {
            Response::Reserved { id, .. } => {
                match c.request(&Command::Delete(id)).await.expect("delete") {
                    Response::Deleted => n += 1,
                    r => panic!("delete: {r:?}"),
                }
            }
            Response::TimedOut => break,
            r => panic!("reserve: {r:?}"),
        }
    }
    (n, t0.elapsed().as_secs_f64())
}

async fn server_stats(addr: &str) -> ServerStats {
    let mut c = raw(addr).await;
    match c.request(&Command::Stats).await.expect("stats") {
        Response::Ok(body) => ServerStats::parse(&body).expect("stats yaml"),
        r => panic!("stats: {r:?}"),
    }
}

fn server_cpu(s: &ServerStats) -> f64 {
    s.rusage_utime + s.rusage_stime
}

/// Sleeps until `at` unless it has passed.
async fn until(at: tokio::time::Instant) {
    if tokio::time::Instant::now() < at {
        tokio::time::sleep_until(at).await;
    }
}

// ───────────────────────────── the bench ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq)]
enum Size {
    Quick,
    Default,
    Full,
}

struct Opts {
    size: Size,
    jobs: Option<u64>,
    /// Only these scenario groups (ceilings and the sequential baseline always run).
    only: Option<Vec<String>>,
    /// Worker concurrency for flatness, mixed and binlog when `drain` is not run.
    conc: Option<usize>,
}

const USAGE: &str = "bench [--jobs N] [--quick] [--full] \
[--only enqueue,drain,flat,mixed,latency,idle,binlog,fleet] [--conc N]";

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut o = Opts {
            size: Size::Default,
            jobs: None,
            only: None,
            conc: None,
        };
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "--quick" => o.size = Size::Quick,
                "--full" => o.size = Size::Full,
                "--jobs" => {
                    o.jobs = arg_u64(&args[i..], "--jobs");
                    i += 1;
                }
                "--conc" => {
                    o.conc = arg_u64(&args[i..], "--conc").map(|c| c as usize);
                    i += 1;
                }
                "--only" => {
                    let v = arg(&args[i..], "--only").unwrap_or_else(|| panic!("{USAGE}"));
                    o.only = Some(v.split(',').map(str::to_owned).collect());
                    i += 1;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                a => panic!("unknown argument {a:?} ({USAGE})"),
            }
            i += 1;
        }
        o
    }
}

struct Plan {
    jobs: u64,
    seq: u64,
    ceiling_runs: usize,
    concurrencies: Vec<usize>,
    flat: Vec<u64>,
    producers: usize,
    mixed: Duration,
    lat_rate: u64,
    lat: Duration,
    idle: Duration,
    idle_probes: usize,
}

impl Plan {
    fn new(o: &Opts) -> Plan {
        let jobs_default = match o.size {
            Size::Quick => 20_000,
            Size::Default => 100_000,
            Size::Full => 250_000,
        };
        let jobs = o.jobs.unwrap_or(jobs_default).max(1000);
        match o.size {
            Size::Quick => Plan {
                jobs,
                seq: 3_000,
                ceiling_runs: 2,
                concurrencies: vec![256, 1024],
                flat: vec![5_000, 20_000],
                producers: 16,
                mixed: Duration::from_secs(2),
                lat_rate: 2000,
                lat: Duration::from_secs(2),
                idle: Duration::from_secs(3),
                idle_probes: 5,
            },
            Size::Default => Plan {
                jobs,
                seq: 20_000,
                ceiling_runs: 3,
                concurrencies: vec![64, 128, 256, 1024],
                flat: vec![10_000, 100_000],
                producers: 16,
                mixed: Duration::from_secs(5),
                lat_rate: 2000,
                lat: Duration::from_secs(4),
                idle: Duration::from_secs(10),
                idle_probes: 10,
            },
            Size::Full => Plan {
                jobs,
                seq: 50_000,
                ceiling_runs: 3,
                concurrencies: vec![64, 128, 256, 512, 1024, 4096],
                flat: vec![10_000, 100_000, 1_000_000],
                producers: 16,
                mixed: Duration::from_secs(10),
                lat_rate: 2000,
                lat: Duration::from_secs(8),
                idle: Duration::from_secs(10),
                idle_probes: 20,
            },
        }
    }
}

struct Row {
    scenario: String,
    figure: String,
    unit: &'static str,
    ratio: String,
}

struct Bench {
    plan: Plan,
    rows: Vec<Row>,
    notes: Vec<String>,
    tmp: TempDir,
    binlogs: usize,
}

#[derive(Debug, Clone)]
struct Drain {
    conc: Option<usize>,
    n: u64,
    handlers_s: f64,
    empty_s: f64,
    hwm_kb: u64,
    rss0_kb: u64,
    worker_cpu_s: f64,
    server_cpu_s: f64,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.n as f64 / self.empty_s
    }
    fn label(&self) -> String {
        match self.conc {
            None => format!("default ({})", bsjobs_core::worker::DEFAULT_CONCURRENCY),
            Some(c) => format!("concurrency({c})"),
        }
    }
}

fn sep(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}

impl Bench {
    fn row(
        &mut self,
        scenario: impl Into<String>,
        figure: String,
        unit: &'static str,
        ratio: String,
    ) {
        let r = Row {
            scenario: scenario.into(),
            figure,
            unit,
            ratio,
        };
        progress(&format!(
            "  {} = {} {} {}",
            r.scenario, r.figure, r.unit, r.ratio
        ));
        self.rows.push(r);
    }

    fn server(&mut self, binlog: bool) -> Beanstalkd {
        if binlog {
            self.binlogs += 1;
            let dir = self.tmp.0.join(format!("binlog{}", self.binlogs));
            Beanstalkd::builder().binlog(dir).start()
        } else {
            Beanstalkd::start()
        }
    }

    async fn ceiling_put(&mut self, binlog: bool) -> f64 {
        let mut best: (f64, f64, f64) = (0.0, 0.0, 0.0);
        for _ in 0..self.plan.ceiling_runs {
            let srv = self.server(binlog);
            let s0 = server_stats(&srv.addr()).await;
            let c0 = self_cpu_s();
            let (n, s) = raw_put(&srv.addr(), NOOP, self.plan.jobs, None).await;
            let client = (self_cpu_s() - c0) / n as f64;
            let s1 = server_stats(&srv.addr()).await;
            if n as f64 / s > best.0 {
                let server = (server_cpu(&s1) - server_cpu(&s0)) / n as f64;
                best = (n as f64 / s, server, client);
            }
        }
        self.notes.push(format!(
            "ceiling put{}: best of {} runs {} puts/s; CPU per put: beanstalkd {:.1} µs ({:.0}% of a core), raw client {:.1} µs",
            if binlog { " (binlog)" } else { "" },
            self.plan.ceiling_runs,
            sep(best.0),
            best.1 * 1e6,
            100.0 * best.1 * best.0,
            best.2 * 1e6
        ));
        best.0
    }

    async fn ceiling_drain(&mut self, binlog: bool) -> f64 {
        // (rate, server CPU per job, shape, client CPU per job)
        let mut best: (f64, f64, (usize, usize), f64) = (0.0, 0.0, (0, 0), 0.0);
        let mut all = Vec::new();
        for shape in RD_SHAPES {
            for _ in 0..self.plan.ceiling_runs.min(2) {
                let srv = self.server(binlog);
                raw_put(&srv.addr(), NOOP, self.plan.jobs, None).await;
                let s0 = server_stats(&srv.addr()).await;
                let c0 = self_cpu_s();
                let (n, s) = raw_drain(&srv.addr(), NOOP, shape, None).await;
                let client = (self_cpu_s() - c0) / n as f64;
                let s1 = server_stats(&srv.addr()).await;
                assert_eq!(n, self.plan.jobs, "raw drain deleted every job");
                all.push(format!("{}×{} {}", shape.0, shape.1, sep(n as f64 / s)));
                if n as f64 / s > best.0 {
                    let server = (server_cpu(&s1) - server_cpu(&s0)) / n as f64;
                    best = (n as f64 / s, server, shape, client);
                }
            }
        }
        self.notes.push(format!(
            "ceiling reserve+delete{}: best {} jobs/s with {} writes of {} in flight; CPU per job: beanstalkd {:.1} µs ({:.0}% of a core), raw client {:.1} µs; all runs (depth×window jobs/s): {}",
            if binlog { " (binlog)" } else { "" },
            sep(best.0),
            best.2 .0,
            best.2 .1,
            best.1 * 1e6,
            100.0 * best.1 * best.0,
            best.3 * 1e6,
            all.join(", ")
        ));
        best.0
    }

    /// Best of `ceiling_runs` runs, as for the ceilings, so that noise from
    /// other processes on the machine treats both sides alike.
    async fn enqueue(&mut self, mode: &str, binlog: bool) -> f64 {
        let mut best: f64 = 0.0;
        for _ in 0..self.plan.ceiling_runs {
            best = best.max(self.enqueue_once(mode, binlog).await);
        }
        best
    }

    /// `Job::enqueue` from 64 tasks of one producer process against `k`
    /// servers named in one URL. Returns the aggregate rate and, per server,
    /// its share of the puts and the CPU its beanstalkd used.
    async fn enqueue_fleet(&mut self, k: usize) -> (f64, String) {
        let servers: Vec<Beanstalkd> = (0..k).map(|_| self.server(false)).collect();
        let url = format!(
            "beanstalk://{}",
            servers
                .iter()
                .map(Beanstalkd::addr)
                .collect::<Vec<_>>()
                .join(",")
        );
        let n = self.plan.jobs;
        let args: Vec<String> = [
            "--enqueue-only",
            "--url",
            &url,
            "--mode",
            "conc",
            "--jobs",
            &n.to_string(),
            "--tasks",
            "64",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut s0 = Vec::new();
        for srv in &servers {
            s0.push(server_stats(&srv.addr()).await);
        }
        let mut child = ChildProc::spawn(&args);
        let line = child.line("RESULT", Duration::from_secs(600)).await;
        child.wait_exit().await;
        let secs = kv(&line, "secs");
        let mut total = 0;
        let mut shares = Vec::new();
        for (srv, s0) in servers.iter().zip(&s0) {
            let st = server_stats(&srv.addr()).await;
            total += st.current_jobs_ready;
            shares.push(format!(
                "{:.0}% of puts, {:.0}% CPU",
                100.0 * st.current_jobs_ready as f64 / (n + 1) as f64,
                100.0 * (server_cpu(&st) - server_cpu(s0)) / secs
            ));
        }
        assert_eq!(total, n + 1, "every job (and the warm-up) is in");
        self.notes.push(format!(
            "fleet enqueue, {k} server(s): {} jobs/s; CPU per job: producer process {:.1} µs; per server: {}",
            sep(n as f64 / secs),
            1e6 * kv(&line, "cpu_s") / n as f64,
            shares.join("; ")
        ));
        (
            n as f64 / secs,
            format!("per server: {}", shares.join(" / ")),
        )
    }

    /// One worker process (concurrency 256) draining `k` servers named in
    /// one URL, each prefilled with its share of the jobs. Returns the rate
    /// at which the handlers ran and each server's CPU share.
    async fn drain_fleet(&mut self, k: usize) -> (f64, String) {
        let servers: Vec<Beanstalkd> = (0..k).map(|_| self.server(false)).collect();
        let per = self.plan.jobs / k as u64;
        let n = per * k as u64;
        for srv in &servers {
            raw_put(&srv.addr(), NOOP, per, None).await;
        }
        let url = format!(
            "beanstalk://{}",
            servers
                .iter()
                .map(Beanstalkd::addr)
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut s0 = Vec::new();
        for srv in &servers {
            s0.push(server_stats(&srv.addr()).await);
        }
        let args: Vec<String> = vec![
            "--worker-only".into(),
            "--url".into(),
            url,
            "--tubes".into(),
            NOOP.into(),
            "--concurrency".into(),
            "256".into(),
            "--expect".into(),
            n.to_string(),
        ];
        let mut child = ChildProc::spawn(&args);
        child.line("READY", Duration::from_secs(30)).await;
        let done = child.line("DONE", Duration::from_secs(1800)).await;
        let secs = kv(&done, "handlers_s");
        let worker_cpu_s = proc_cpu_s(child.pid);
        let mut shares = Vec::new();
        for (srv, s0) in servers.iter().zip(&s0) {
            let st = server_stats(&srv.addr()).await;
            shares.push(format!(
                "{:.0}% CPU",
                100.0 * (server_cpu(&st) - server_cpu(s0)) / secs
            ));
        }
        child.stop().await;
        self.notes.push(format!(
            "fleet drain, {k} server(s): {} jobs/s (all handlers ran); worker CPU per job {:.1} µs; per server: {}",
            sep(n as f64 / secs),
            1e6 * worker_cpu_s / n as f64,
            shares.join("; ")
        ));
        (
            n as f64 / secs,
            format!("per server: {}", shares.join(" / ")),
        )
    }

    async fn enqueue_once(&mut self, mode: &str, binlog: bool) -> f64 {
        let srv = self.server(binlog);
        let n = self.plan.jobs;
        let args: Vec<String> = [
            "--enqueue-only",
            "--url",
            &srv.url(),
            "--mode",
            mode,
            "--jobs",
            &n.to_string(),
            "--tasks",
            "64",
        ]
        .map(str::to_owned)
        .to_vec();
        let s0 = server_stats(&srv.addr()).await;
        let mut child = ChildProc::spawn(&args);
        let line = child.line("RESULT", Duration::from_secs(600)).await;
        child.wait_exit().await;
        let st = server_stats(&srv.addr()).await;
        assert_eq!(
            st.current_jobs_ready,
            n + 1,
            "every job (and the warm-up) is in"
        );
        let secs = kv(&line, "secs");
        self.notes.push(format!(
            "enqueue {mode}{}: {} jobs/s; CPU per job: producer process {:.1} µs (whole process, startup included), beanstalkd {:.1} µs ({:.0}% of a core)",
            if binlog { " (binlog)" } else { "" },
            sep(n as f64 / secs),
            1e6 * kv(&line, "cpu_s") / n as f64,
            1e6 * (server_cpu(&st) - server_cpu(&s0)) / n as f64,
            100.0 * (server_cpu(&st) - server_cpu(&s0)) / secs,
        ));
        n as f64 / secs
    }

    async fn drain(&mut self, n: u64, conc: Option<usize>, binlog: bool) -> Drain {
        let srv = self.server(binlog);
        raw_put(&srv.addr(), NOOP, n, None).await;
        let s0 = server_stats(&srv.addr()).await;
        let args: Vec<String> = vec![
            "--worker-only".into(),
            "--url".into(),
            srv.url(),
            "--tubes".into(),
            NOOP.into(),
            "--concurrency".into(),
            conc.map_or("default".into(), |c| c.to_string()),
            "--expect".into(),
            n.to_string(),
        ];
        let mut child = ChildProc::spawn(&args);
        let ready = child.line("READY", Duration::from_secs(30)).await;
        let done = child.line("DONE", Duration::from_secs(1800)).await;
        let worker_cpu_s = proc_cpu_s(child.pid);
        let s1 = server_stats(&srv.addr()).await;
        child.stop().await;
        let d = Drain {
            conc,
            n,
            handlers_s: kv(&done, "handlers_s"),
            empty_s: kv(&done, "empty_s"),
            hwm_kb: kv(&done, "hwm_kb") as u64,
            rss0_kb: kv(&ready, "rss_kb") as u64,
            worker_cpu_s,
            server_cpu_s: server_cpu(&s1) - server_cpu(&s0),
        };
        self.notes.push(format!(
            "drain {} of {}{}: all handlers ran after {:.3} s ({} jobs/s), tube empty after {:.3} s ({} jobs/s); \
             CPU per job: worker {:.1} µs ({:.0}% of a core), beanstalkd {:.1} µs ({:.0}%); worker RSS {:.1} MB at start, peak {:.1} MB",
            d.label(),
            sep(n as f64),
            if binlog { " (binlog)" } else { "" },
            d.handlers_s,
            sep(n as f64 / d.handlers_s),
            d.empty_s,
            sep(d.rate()),
            1e6 * d.worker_cpu_s / n as f64,
            100.0 * d.worker_cpu_s / d.empty_s,
            1e6 * d.server_cpu_s / n as f64,
            100.0 * d.server_cpu_s / d.empty_s,
            d.rss0_kb as f64 / 1024.0,
            d.hwm_kb as f64 / 1024.0,
        ));
        d
    }

    /// 16 producer tasks sharing one Client and a worker in a child, for a
    /// fixed time. Returns (deletes/s, puts/s, ready at the end).
    async fn mixed_bsjobs(&mut self, conc: Option<usize>) -> (f64, f64, u64) {
        let srv = self.server(false);
        let mut args: Vec<String> = vec![
            "--worker-only".into(),
            "--url".into(),
            srv.url(),
            "--tubes".into(),
            NOOP.into(),
        ];
        if let Some(c) = conc {
            args.extend(["--concurrency".into(), c.to_string()]);
        }
        let mut child = ChildProc::spawn(&args);
        child.line("READY", Duration::from_secs(30)).await;
        let client = Client::new(&srv.url()).expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let p = self.plan.producers as u64;
        for t in 0..p {
            let (client, stop) = (client.clone(), stop.clone());
            set.spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    Noop::new(i)
                        .client(&client)
                        .enqueue()
                        .await
                        .expect("enqueue");
                    i += p;
                }
            });
        }
        let r = self.measure_window(&srv.addr()).await;
        stop.store(true, Ordering::Relaxed);
        while let Some(r) = set.join_next().await {
            r.expect("producer");
        }
        child.stop().await;
        r
    }

    async fn mixed_raw(&mut self) -> (f64, f64, u64) {
        let srv = self.server(false);
        let stop = Arc::new(AtomicBool::new(false));
        let addr = srv.addr();
        let (a1, s1) = (addr.clone(), stop.clone());
        let put = tokio::spawn(async move { raw_put(&a1, NOOP, u64::MAX, Some(&s1)).await });
        let (a2, s2) = (addr.clone(), stop.clone());
        let drain = tokio::spawn(async move { raw_drain(&a2, NOOP, RD_MIXED, Some(&s2)).await });
        let r = self.measure_window(&addr).await;
        stop.store(true, Ordering::Relaxed);
        put.await.expect("raw put");
        drain.await.expect("raw drain");
        r
    }

    async fn measure_window(&self, addr: &str) -> (f64, f64, u64) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s0 = server_stats(addr).await;
        let t0 = Instant::now();
        tokio::time::sleep(self.plan.mixed).await;
        let s1 = server_stats(addr).await;
        let dt = t0.elapsed().as_secs_f64();
        (
            (s1.cmd_delete - s0.cmd_delete) as f64 / dt,
            (s1.cmd_put - s0.cmd_put) as f64 / dt,
            s1.current_jobs_ready,
        )
    }

    /// enqueue → handler start through bsjobs (default worker settings, one
    /// producer task at a steady rate). Returns (p50, p99, max) in µs.
    async fn latency_bsjobs(&mut self) -> (f64, f64, f64) {
        let srv = self.server(false);
        let warm = 100u64;
        let args: Vec<String> = vec![
            "--worker-only".into(),
            "--url".into(),
            srv.url(),
            "--tubes".into(),
            Lat::TUBE.into(),
            "--skip".into(),
            warm.to_string(),
        ];
        let mut child = ChildProc::spawn(&args);
        child.line("READY", Duration::from_secs(30)).await;
        let client = Client::new(&srv.url()).expect("client");
        let n = warm + self.plan.lat_rate * self.plan.lat.as_secs();
        let every = Duration::from_nanos(1_000_000_000 / self.plan.lat_rate);
        let start = tokio::time::Instant::now();
        for i in 0..n {
            until(start + every * i as u32).await;
            Lat::new(now_ns())
                .client(&client)
                .enqueue()
                .await
                .expect("enqueue");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lines = child.stop().await;
        let l = lines
            .iter()
            .find(|l| l.starts_with("LAT "))
            .expect("LAT line from the worker");
        assert_eq!(kv(l, "n") as u64, n - warm, "every latency job ran");
        (
            kv(l, "p50_ns") / 1e3,
            kv(l, "p99_ns") / 1e3,
            kv(l, "max_ns") / 1e3,
        )
    }

    /// The same with the raw client: one connection puts the timestamp,
    /// another is blocked in `reserve` and measures put → reserved.
    async fn latency_raw(&mut self) -> (f64, f64, f64) {
        let srv = self.server(false);
        let addr = srv.addr();
        let warm = 100usize;
        let n = warm + (self.plan.lat_rate * self.plan.lat.as_secs()) as usize;
        let a = addr.clone();
        let recv = tokio::spawn(async move {
            let mut c = raw(&a).await;
            raw_watch(&mut c, Lat::TUBE).await;
            c.queue(&Command::Reserve);
            c.flush().await.expect("reserve");
            let mut lats = Vec::with_capacity(n);
            while lats.len() < n {
                match c.recv_within(None).await.expect("reserve reply") {
                    Response::Reserved { id, body } => {
                        let sent: u64 = std::str::from_utf8(&body)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .expect("timestamp body");
                        lats.push(now_ns().saturating_sub(sent));
                        c.queue(&Command::Delete(id));
                        c.queue(&Command::Reserve);
                        c.flush().await.expect("delete+reserve");
                    }
                    Response::Deleted => {}
                    r => panic!("raw latency: {r:?}"),
                }
            }
            lats
        });
        let mut c = raw(&addr).await;
        raw_use(&mut c, Lat::TUBE).await;
        // Let the receiver block in its reserve first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let every = Duration::from_nanos(1_000_000_000 / self.plan.lat_rate);
        let start = tokio::time::Instant::now();
        for i in 0..n {
            until(start + every * i as u32).await;
            let body = now_ns().to_string();
            match c
                .request(&Command::Put {
                    pri: 1024,
                    delay: 0,
                    ttr: 60,
                    body: body.as_bytes(),
                })
                .await
                .expect("put")
            {
                Response::Inserted(_) => {}
                r => panic!("put: {r:?}"),
            }
        }
        let lats = tokio::time::timeout(Duration::from_secs(30), recv)
            .await
            .expect("raw receiver got every job")
            .expect("raw receiver");
        let mut v: Vec<u64> = lats[warm..].to_vec();
        v.sort_unstable();
        (
            pct(&v, 0.5) as f64 / 1e3,
            pct(&v, 0.99) as f64 / 1e3,
            *v.last().expect("samples") as f64 / 1e3,
        )
    }

    /// A worker with 10 tubes, idle; then how fast it starts a new job,
    /// next to a raw connection that was blocked in `reserve` as long.
    async fn idle(&mut self) -> Idle {
        let srv = self.server(false);
        let args: Vec<String> = vec![
            "--worker-only".into(),
            "--url".into(),
            srv.url(),
            "--tubes".into(),
            IDLE_TUBES.join(","),
        ];
        let mut child = ChildProc::spawn(&args);
        child.line("READY", Duration::from_secs(30)).await;
        // The raw reference: one connection blocked in `reserve`, measuring
        // put → reserved of timestamped bodies.
        let probes = self.plan.idle_probes;
        let addr = srv.addr();
        let raw_recv = tokio::spawn(async move {
            let mut c = raw(&addr).await;
            raw_watch(&mut c, RAW_IDLE_TUBE).await;
            let mut lats = Vec::new();
            while lats.len() < probes {
                c.queue(&Command::Reserve);
                c.flush().await.expect("reserve");
                match c.recv_within(None).await.expect("reserve reply") {
                    Response::Reserved { id, body } => {
                        lats.push(now_ns().saturating_sub(parse_ns(&body)));
                        match c.request(&Command::Delete(id)).await.expect("delete") {
                            Response::Deleted => {}
                            r => panic!("delete: {r:?}"),
                        }
                    }
                    r => panic!("raw idle: {r:?}"),
                }
            }
            lats
        });
        // Let both connect and settle into their blocking reserves.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c0 = proc_cpu_s(child.pid);
        let t0 = Instant::now();
        tokio::time::sleep(self.plan.idle).await;
        let c1 = proc_cpu_s(child.pid);
        let wall = t0.elapsed().as_secs_f64();
        let rss_kb = proc_status_kb(&child.pid.to_string(), "VmRSS");
        let client = Client::new(&srv.url()).expect("client");
        client.stats(0).await.expect("warm client");
        let mut put = raw(&srv.addr()).await;
        raw_use(&mut put, RAW_IDLE_TUBE).await;
        for i in 0..probes {
            idle_job(i, now_ns())
                .client(&client)
                .enqueue()
                .await
                .expect("enqueue");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let body = now_ns().to_string();
            match put
                .request(&Command::Put {
                    pri: 1024,
                    delay: 0,
                    ttr: 60,
                    body: body.as_bytes(),
                })
                .await
                .expect("put")
            {
                Response::Inserted(_) => {}
                r => panic!("put: {r:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let lines = child.stop().await;
        let l = lines
            .iter()
            .find(|l| l.starts_with("IDLE "))
            .expect("IDLE line from the worker");
        assert_eq!(kv(l, "n") as usize, probes);
        let mut rawl = tokio::time::timeout(Duration::from_secs(10), raw_recv)
            .await
            .expect("raw idle probes arrive")
            .expect("raw idle receiver");
        rawl.sort_unstable();
        self.notes.push(format!(
            "idle: worker with {} tubes used {:.3} s CPU in {:.1} s idle; RSS {:.1} MB; {probes} probes each",
            IDLE_TUBES.len(),
            c1 - c0,
            wall,
            rss_kb as f64 / 1024.0
        ));
        Idle {
            cpu_pct: 100.0 * (c1 - c0) / wall,
            rss_mb: rss_kb as f64 / 1024.0,
            p50_ms: kv(l, "p50_ns") / 1e6,
            max_ms: kv(l, "max_ns") / 1e6,
            raw_p50_ms: pct(&rawl, 0.5) as f64 / 1e6,
            raw_max_ms: *rawl.last().expect("raw probes") as f64 / 1e6,
        }
    }
}

const RAW_IDLE_TUBE: &str = "bench_rawidle";

fn parse_ns(body: &[u8]) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("timestamp body")
}

struct Idle {
    cpu_pct: f64,
    rss_mb: f64,
    p50_ms: f64,
    max_ms: f64,
    raw_p50_ms: f64,
    raw_max_ms: f64,
}

fn ratio(x: f64, of: f64, name: &str) -> String {
    format!("{:.2} of {name}", x / of)
}

/// CPU seconds: (whole machine busy, this process and its reaped children).
fn cpu_snapshot() -> (f64, f64) {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy = stat
        .lines()
        .next()
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …
            let total: u64 = f.iter().take(8).sum();
            total - f.get(3).copied().unwrap_or(0) - f.get(4).copied().unwrap_or(0)
        })
        .unwrap_or(0) as f64
        / hz;
    let ours = [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| {
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(who, &mut ru) };
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            tv(ru.ru_utime) + tv(ru.ru_stime)
        })
        .sum();
    (busy, ours)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One target: its name and, when its scenarios ran, what was measured and
/// whether it is met.
type Target = (&'static str, Option<(String, bool)>);

async fn bench(opts: Opts) {
    let plan = Plan::new(&opts);
    let started = Instant::now();
    let load0 = loadavg();
    let cpu0 = cpu_snapshot();
    let mut b = Bench {
        plan,
        rows: Vec::new(),
        notes: Vec::new(),
        tmp: TempDir::new(),
        binlogs: 0,
    };
    let n = b.plan.jobs;
    let run = |name: &str| {
        opts.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == name))
    };
    progress(&format!(
        "mode {:?}, {} jobs, {} CPUs, load average {load0}; beanstalkd per scenario on 127.0.0.1",
        opts.size,
        sep(n as f64),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));

    // Ceilings: always, every ratio needs them.
    progress("ceiling: pipelined put");
    let c_put = b.ceiling_put(false).await;
    b.row(
        format!("ceiling: raw pipelined put ({DEPTH} windows of {WINDOW} in flight)"),
        sep(c_put),
        "puts/s",
        "1.00 (put ceiling)".into(),
    );
    progress("ceiling: pipelined reserve+delete");
    let c_rd = b.ceiling_drain(false).await;
    b.row(
        "ceiling: raw pipelined reserve+delete (best shape)".to_owned(),
        sep(c_rd),
        "jobs/s",
        "1.00 (r+d ceiling)".into(),
    );

    // Sequential baseline: always, the drain targets need it.
    progress("sequential baseline");
    let (seq_p, seq_rd) = {
        let srv = b.server(false);
        let m = b.plan.seq;
        let s = seq_put(&srv.addr(), NOOP, m).await;
        let (k, s2) = seq_reserve_delete(&srv.addr(), NOOP).await;
        assert_eq!(k, m);
        (m as f64 / s, k as f64 / s2)
    };
    b.row(
        "sequential: put, wait",
        sep(seq_p),
        "puts/s",
        ratio(seq_p, c_put, "put ceiling"),
    );
    b.row(
        "sequential: reserve, delete, wait",
        sep(seq_rd),
        "jobs/s",
        ratio(seq_rd, c_rd, "r+d ceiling"),
    );
    b.row(
        "ceiling r+d vs sequential r+d (the most any drain can reach)",
        format!("{:.1}", c_rd / seq_rd),
        "×",
        "-".into(),
    );

    // Enqueue.
    let mut enq = None;
    if run("enqueue") {
        progress("enqueue: 1 task");
        let e1 = b.enqueue("one", false).await;
        b.row(
            "enqueue: Job::enqueue, 1 task",
            sep(e1),
            "jobs/s",
            ratio(e1, c_put, "put ceiling"),
        );
        progress("enqueue: raw sequential put in the same kind of process");
        let raw1 = b.enqueue("raw", false).await;
        b.row(
            "enqueue: raw sequential put, producer child (control for 1 task)",
            sep(raw1),
            "puts/s",
            ratio(raw1, c_put, "put ceiling"),
        );
        b.row(
            "enqueue: Job::enqueue 1 task vs raw sequential put",
            format!("{:.2}", e1 / raw1),
            "×",
            "target ≥ 1.00".into(),
        );
        progress("enqueue: 64 tasks");
        let e64 = b.enqueue("conc", false).await;
        b.row(
            "enqueue: Job::enqueue, 64 tasks, one Client",
            sep(e64),
            "jobs/s",
            ratio(e64, c_put, "put ceiling"),
        );
        progress("enqueue: bulk");
        let eb = b.enqueue("bulk", false).await;
        b.row(
            "enqueue: client.enqueue_many",
            sep(eb),
            "jobs/s",
            ratio(eb, c_put, "put ceiling"),
        );
        enq = Some((e64, eb));
    }

    // Several servers behind one URL.
    if run("fleet") {
        let mut one = None;
        for k in [1usize, 2, 4] {
            progress(&format!("fleet: enqueue, 64 tasks, {k} server(s)"));
            let (rate, shares) = b.enqueue_fleet(k).await;
            let base = *one.get_or_insert(rate);
            b.row(
                format!("fleet: Job::enqueue, 64 tasks, {k} server(s) ({})", shares),
                sep(rate),
                "jobs/s",
                format!("{:.2}× of 1 server", rate / base),
            );
        }
        let mut one = None;
        for k in [1usize, 2, 4] {
            progress(&format!("fleet: drain, {k} server(s)"));
            let (rate, shares) = b.drain_fleet(k).await;
            let base = *one.get_or_insert(rate);
            b.row(
                format!("fleet: drain, one worker, concurrency(256), {k} server(s) ({shares})"),
                sep(rate),
                "jobs/s",
                format!("{:.2}× of 1 server", rate / base),
            );
        }
    }

    // Drain.
    let mut best_conc = opts.conc.or(Some(256));
    let mut drains = None;
    if run("drain") {
        progress("drain: default worker");
        let mut d_def = b.drain(n, None, false).await;
        for _ in 1..b.plan.ceiling_runs.min(2) {
            let again = b.drain(n, None, false).await;
            if again.rate() > d_def.rate() {
                d_def = again;
            }
        }
        b.row(
            format!("drain {}: worker {}", sep(n as f64), d_def.label()),
            sep(d_def.rate()),
            "jobs/s",
            ratio(d_def.rate(), c_rd, "r+d ceiling"),
        );
        let mut tried = vec![d_def.clone()];
        for c in b.plan.concurrencies.clone() {
            progress(&format!("drain: concurrency {c}"));
            tried.push(b.drain(n, Some(c), false).await);
        }
        let best = tried
            .iter()
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .expect("a drain")
            .clone();
        b.notes.push(format!(
            "drain settings tried: {}",
            tried
                .iter()
                .map(|d| format!("{} → {} jobs/s", d.label(), sep(d.rate())))
                .collect::<Vec<_>>()
                .join("; ")
        ));
        b.row(
            format!("drain {}: worker best = {}", sep(n as f64), best.label()),
            sep(best.rate()),
            "jobs/s",
            ratio(best.rate(), c_rd, "r+d ceiling"),
        );
        b.row(
            "drain best vs sequential reserve+delete",
            format!("{:.1}", best.rate() / seq_rd),
            "×",
            "-".into(),
        );
        b.row(
            "drain default vs sequential reserve+delete",
            format!("{:.1}", d_def.rate() / seq_rd),
            "×",
            "-".into(),
        );
        if opts.conc.is_none() {
            best_conc = best.conc;
        }
        drains = Some((d_def.rate(), best.rate()));
    }
    let best_label = match best_conc {
        None => format!("default ({})", bsjobs_core::worker::DEFAULT_CONCURRENCY),
        Some(c) => format!("concurrency({c})"),
    };

    // Flatness.
    let mut flat = Vec::new();
    if run("flat") {
        for size in b.plan.flat.clone() {
            progress(&format!("drain flatness: {size}"));
            let d = b.drain(size, best_conc, false).await;
            b.row(
                format!(
                    "drain flatness: backlog {}, {}",
                    sep(size as f64),
                    d.label()
                ),
                sep(d.rate()),
                "jobs/s",
                ratio(d.rate(), c_rd, "r+d ceiling"),
            );
            b.row(
                format!(
                    "drain flatness: backlog {}, worker peak RSS",
                    sep(size as f64)
                ),
                format!("{:.1}", d.hwm_kb as f64 / 1024.0),
                "MB",
                "-".into(),
            );
            flat.push(d.rate());
        }
    }

    // Mixed.
    if run("mixed") {
        progress("mixed: raw ceiling");
        let (mr, mr_put, mr_backlog) = b.mixed_raw().await;
        b.row(
            "ceiling: mixed, raw pipelined put + raw pipelined drain",
            sep(mr),
            "jobs/s",
            "1.00 (mixed ceiling)".into(),
        );
        progress("mixed: bsjobs");
        let p = b.plan.producers;
        let (mb, mb_put, mb_backlog) = b.mixed_bsjobs(best_conc).await;
        b.row(
            format!("mixed: {p} enqueue tasks + worker {best_label}, end to end"),
            sep(mb),
            "jobs/s",
            ratio(mb, mr, "mixed ceiling"),
        );
        b.notes.push(format!(
            "mixed over {:?}: raw {} puts/s and {} deletes/s, {} ready at the end; bsjobs {} puts/s and {} jobs/s done, {} ready at the end",
            b.plan.mixed,
            sep(mr_put),
            sep(mr),
            sep(mr_backlog as f64),
            sep(mb_put),
            sep(mb),
            sep(mb_backlog as f64)
        ));
    }

    // Latency.
    let mut lat = None;
    if run("latency") {
        progress("latency: raw");
        let (r50, r99, rmax) = b.latency_raw().await;
        progress("latency: bsjobs");
        let (l50, l99, lmax) = b.latency_bsjobs().await;
        let rate = b.plan.lat_rate;
        b.row(
            format!("latency raw put→reserved @{rate}/s: p50"),
            format!("{r50:.0}"),
            "µs",
            "1.00 (raw p50)".into(),
        );
        b.row(
            format!("latency raw put→reserved @{rate}/s: p99"),
            format!("{r99:.0}"),
            "µs",
            "1.00 (raw p99)".into(),
        );
        b.row(
            format!("latency raw put→reserved @{rate}/s: max"),
            format!("{rmax:.0}"),
            "µs",
            "1.00 (raw max)".into(),
        );
        b.row(
            format!("latency enqueue→handler @{rate}/s, worker default: p50"),
            format!("{l50:.0}"),
            "µs",
            format!("{:.2} of raw p50", l50 / r50),
        );
        b.row(
            format!("latency enqueue→handler @{rate}/s, worker default: p99"),
            format!("{l99:.0}"),
            "µs",
            format!("{:.2} of raw p99", l99 / r99),
        );
        b.row(
            format!("latency enqueue→handler @{rate}/s, worker default: max"),
            format!("{lmax:.0}"),
            "µs",
            format!("{:.2} of raw max", lmax / rmax),
        );
        lat = Some((l50, l99, r50));
    }

    // Idle.
    let mut idle = None;
    if run("idle") {
        progress(&format!("idle: {:?}", b.plan.idle));
        let i = b.idle().await;
        b.row(
            "idle worker, 10 tubes: CPU",
            format!("{:.3}", i.cpu_pct),
            "% of a core",
            "-".into(),
        );
        b.row(
            "idle worker, 10 tubes: RSS",
            format!("{:.1}", i.rss_mb),
            "MB",
            "-".into(),
        );
        b.row(
            "idle raw client blocked in reserve: put→reserved, p50",
            format!("{:.2}", i.raw_p50_ms),
            "ms",
            "1.00 (raw idle p50)".into(),
        );
        b.row(
            "idle worker: enqueue→handler, p50",
            format!("{:.2}", i.p50_ms),
            "ms",
            format!("{:.2} of raw idle p50", i.p50_ms / i.raw_p50_ms),
        );
        b.row(
            "idle worker: enqueue→handler, max",
            format!("{:.2}", i.max_ms),
            "ms",
            format!("{:.2} of raw idle max", i.max_ms / i.raw_max_ms),
        );
        idle = Some((i.cpu_pct, i.rss_mb));
    }

    // Binlog.
    if run("binlog") {
        progress("binlog: ceilings");
        let bc_put = b.ceiling_put(true).await;
        b.row(
            "binlog ceiling: raw pipelined put",
            sep(bc_put),
            "puts/s",
            "1.00 (binlog put ceiling)".into(),
        );
        let bc_rd = b.ceiling_drain(true).await;
        b.row(
            "binlog ceiling: raw pipelined reserve+delete",
            sep(bc_rd),
            "jobs/s",
            "1.00 (binlog r+d ceiling)".into(),
        );
        progress("binlog: 64 tasks enqueue");
        let be64 = b.enqueue("conc", true).await;
        b.row(
            "binlog enqueue: Job::enqueue, 64 tasks",
            sep(be64),
            "jobs/s",
            ratio(be64, bc_put, "binlog put ceiling"),
        );
        progress("binlog: drain best");
        let bd = b.drain(n, best_conc, true).await;
        b.row(
            format!("binlog drain {}: worker {}", sep(n as f64), bd.label()),
            sep(bd.rate()),
            "jobs/s",
            ratio(bd.rate(), bc_rd, "binlog r+d ceiling"),
        );
    }

    // The table.
    let cpu1 = cpu_snapshot();
    let wall = started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (machine, ours) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    b.notes.push(format!(
        "machine: {:.1} CPU-s busy of the {:.1} available during the run ({:.0}%, /proc/stat); \
         this bench, its workers and its beanstalkds account for {:.1} CPU-s (getrusage), \
         so other processes used about {:.1} CPU-s",
        machine,
        wall * cores,
        100.0 * machine / (wall * cores),
        ours,
        (machine - ours).max(0.0)
    ));
    println!();
    println!(
        "bsjobs bench, mode {:?}, {} jobs, beanstalkd 1.12 on 127.0.0.1, {} CPUs, took {:.0} s, load average {load0} at start, {} at end",
        opts.size,
        sep(n as f64),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    println!();
    println!("| scenario | figure | unit | ratio to ceiling |");
    println!("|---|---:|---|---|");
    for r in &b.rows {
        println!(
            "| {} | {} | {} | {} |",
            r.scenario, r.figure, r.unit, r.ratio
        );
    }

    // Targets, from the numbers above.
    let flat_t = (flat.len() >= 2).then(|| {
        let mean = flat.iter().sum::<f64>() / flat.len() as f64;
        let spread = flat
            .iter()
            .map(|r| (r - mean).abs() / mean)
            .fold(0.0, f64::max);
        (
            format!(
                "{} jobs/s: largest deviation from their mean {:.0}%",
                flat.iter().map(|r| sep(*r)).collect::<Vec<_>>().join(" / "),
                spread * 100.0
            ),
            spread <= 0.15,
        )
    });
    let targets: Vec<Target> = vec![
        (
            "concurrent enqueue ≥ 0.70 of put ceiling",
            enq.map(|(e64, _)| (format!("{:.2}", e64 / c_put), e64 / c_put >= 0.70)),
        ),
        (
            "bulk enqueue ≥ 0.85 of put ceiling",
            enq.map(|(_, eb)| (format!("{:.2}", eb / c_put), eb / c_put >= 0.85)),
        ),
        (
            "drain best ≥ 0.70 of reserve+delete ceiling",
            drains.map(|(_, best)| (format!("{:.2}", best / c_rd), best / c_rd >= 0.70)),
        ),
        (
            "drain best ≥ 10× sequential",
            drains.map(|(_, best)| (format!("{:.1}×", best / seq_rd), best / seq_rd >= 10.0)),
        ),
        (
            "drain default ≥ 5× sequential",
            drains.map(|(def, _)| (format!("{:.1}×", def / seq_rd), def / seq_rd >= 5.0)),
        ),
        (
            "latency p50 ≤ 2× raw p50",
            lat.map(|(l50, _, r50)| {
                (
                    format!("{l50:.0} µs vs {r50:.0} µs ({:.2}×)", l50 / r50),
                    l50 <= 2.0 * r50,
                )
            }),
        ),
        (
            "latency p99 < 1 ms",
            lat.map(|(_, l99, _)| (format!("{l99:.0} µs"), l99 < 1000.0)),
        ),
        (
            "idle CPU < 1%",
            idle.map(|(cpu, _)| (format!("{cpu:.3}%"), cpu < 1.0)),
        ),
        (
            "idle RSS < 20 MB",
            idle.map(|(_, rss)| (format!("{rss:.1} MB"), rss < 20.0)),
        ),
        ("drain flat ±15% across backlog sizes", flat_t),
    ];
    println!();
    println!("| target | measured | |");
    println!("|---|---|---|");
    for (t, m) in &targets {
        match m {
            Some((m, ok)) => println!("| {t} | {m} | {} |", if *ok { "MET" } else { "NOT MET" }),
            None => println!("| {t} | not run | - |"),
        }
    }
    println!();
    println!("Notes:");
    println!(
        "- method: ceilings are the best of {} runs (reserve+delete: of each shape too), each enqueue figure the best of as many, \
         the default drain the best of {}; one fresh beanstalkd per run; a ratio above 1.00 is run-to-run noise",
        b.plan.ceiling_runs,
        b.plan.ceiling_runs.min(2)
    );
    for n in &b.notes {
        println!("- {n}");
    }
}
