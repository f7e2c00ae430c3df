//! Throughput, latency and idle cost of bsjobs, each figure next to the
//! ceiling that a minimal client over the same sans-IO protocol layer reaches
//! on the same machine, in the same run.
//!
//! ```text
//! cargo run --release -p bsjobs-bench -- [--quick | --full] [--jobs N] [--only a,b] [--repeat N]
//! ```
//!
//! Every measurement gets a fresh beanstalkd on a free 127.0.0.1 port (so no
//! backlog leaks from one into the next). Workers run in a child process of
//! this same binary (`--worker-only`, [`child`]), so their RSS and CPU time
//! can be read from `/proc/<pid>` without the producer's; generated
//! `Job::enqueue` calls run in a child too (`--enqueue-only`), and so does the
//! raw latency reference (`--raw-recv-only`), so that it and the worker it is
//! compared with run in the same kind of process. Every child process
//! (beanstalkd and ours) is killed on drop, on panic too, and dies with this
//! process (`PR_SET_PDEATHSIG`).
//!
//! One module per scenario under [`scenarios`]; each adds rows, notes and
//! targets to the one [`Bench`] report printed at the end.

mod child;
mod jobs;
mod otel;
mod proc;
mod raw;
mod scenarios;

use bsjobs::testing::Beanstalkd;
use proc::{cpu_snapshot, loadavg, TempDir};
use std::time::{Duration, Instant};

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
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--worker-only") || has("--enqueue-only") {
        otel::install();
    }
    if has("--worker-only") {
        rt.block_on(child::worker(&args));
    } else if has("--enqueue-only") {
        rt.block_on(child::enqueue(&args));
    } else if has("--raw-recv-only") {
        rt.block_on(child::raw_receiver(&args));
    } else if has("--prefill-only") {
        rt.block_on(child::prefill(&args));
    } else if has("--raw-drain-only") {
        rt.block_on(child::raw_drain_only(&args));
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

/// Owned arguments for a child process.
fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ───────────────────────────── options ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq)]
enum Size {
    Quick,
    Default,
    Full,
}

struct Opts {
    size: Size,
    jobs: Option<u64>,
    /// Only these scenarios (the ceilings and the sequential baseline always run).
    only: Option<Vec<String>>,
    /// Worker concurrency for flatness, mixed, binlog and chains when `drain` is not run.
    conc: Option<usize>,
    /// Runs of each latency scenario (latency, idle, pickup) and rounds of
    /// `lifecycle`; ranges are printed.
    repeat: Option<usize>,
    /// Live `repeat = "1h"` chains on the server in `chains`.
    chains: Option<u64>,
    /// `repeat = "1s"` chains in `chains`.
    chains_1s: Option<u64>,
}

const USAGE: &str =
    "bench [--quick | --full] [--jobs N] [--only SCENARIOS] [--conc N] [--repeat N] \
[--chains N] [--chains-1s N]
  SCENARIOS: comma-separated, of enqueue,fleet,drain,flat,mixed,latency,idle,pickup,binlog,chains,lifecycle";

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 11] = [
    "enqueue",
    "fleet",
    "drain",
    "flat",
    "mixed",
    "latency",
    "idle",
    "pickup",
    "binlog",
    "chains",
    "lifecycle",
];

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut o = Opts {
            size: Size::Default,
            jobs: None,
            only: None,
            conc: None,
            repeat: None,
            chains: None,
            chains_1s: None,
        };
        let mut i = 0;
        while i < args.len() {
            let num = |name: &str| arg_u64(&args[i..], name).unwrap_or_else(|| panic!("{USAGE}"));
            match args[i].as_str() {
                "--quick" => o.size = Size::Quick,
                "--full" => o.size = Size::Full,
                "--jobs" => {
                    o.jobs = Some(num("--jobs"));
                    i += 1;
                }
                "--conc" => {
                    o.conc = Some(num("--conc") as usize);
                    i += 1;
                }
                "--repeat" => {
                    o.repeat = Some(num("--repeat").max(1) as usize);
                    i += 1;
                }
                "--chains" => {
                    o.chains = Some(num("--chains").max(1));
                    i += 1;
                }
                "--chains-1s" => {
                    o.chains_1s = Some(num("--chains-1s").max(1));
                    i += 1;
                }
                "--only" => {
                    let v = arg(&args[i..], "--only").unwrap_or_else(|| panic!("{USAGE}"));
                    let only: Vec<String> = v.split(',').map(str::to_owned).collect();
                    for s in &only {
                        assert!(
                            SCENARIOS.contains(&s.as_str()),
                            "unknown scenario {s:?}\n{USAGE}"
                        );
                    }
                    o.only = Some(only);
                    i += 1;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                a => panic!("unknown argument {a:?}\n{USAGE}"),
            }
            i += 1;
        }
        o
    }
}

/// Sizes and durations of one bench mode.
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
    repeat: usize,
    /// Rounds of `lifecycle`: `--repeat`, else 3 in every mode.
    lifecycle_rounds: usize,
    pickup_probes: usize,
    pickup_gap: Duration,
    pickup_hold: Duration,
    chains: u64,
    chains_1s: u64,
    chains_window: Duration,
}

impl Plan {
    fn new(o: &Opts) -> Plan {
        let jobs_default = match o.size {
            Size::Quick => 20_000,
            Size::Default => 100_000,
            Size::Full => 250_000,
        };
        let jobs = o.jobs.unwrap_or(jobs_default).max(1000);
        let mut p = match o.size {
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
                repeat: 1,
                lifecycle_rounds: 3,
                pickup_probes: 15,
                pickup_gap: Duration::from_millis(137),
                pickup_hold: Duration::from_secs(8),
                chains: 10_000,
                chains_1s: 2_000,
                chains_window: Duration::from_secs(4),
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
                repeat: 3,
                lifecycle_rounds: 3,
                pickup_probes: 40,
                pickup_gap: Duration::from_millis(137),
                pickup_hold: Duration::from_secs(20),
                chains: 100_000,
                chains_1s: 10_000,
                chains_window: Duration::from_secs(10),
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
                repeat: 5,
                lifecycle_rounds: 3,
                pickup_probes: 40,
                pickup_gap: Duration::from_millis(137),
                pickup_hold: Duration::from_secs(20),
                chains: 100_000,
                chains_1s: 10_000,
                chains_window: Duration::from_secs(20),
            },
        };
        if let Some(r) = o.repeat {
            p.repeat = r;
            p.lifecycle_rounds = r;
        }
        if let Some(n) = o.chains {
            p.chains = n;
        }
        if let Some(n) = o.chains_1s {
            p.chains_1s = n;
        }
        p
    }
}

// ───────────────────────────── the report ─────────────────────────────

struct Row {
    scenario: String,
    figure: String,
    unit: &'static str,
    ratio: String,
}

/// One target: its name and, when its scenario ran, what was measured and
/// whether it is met.
type Target = (String, Option<(String, bool)>);

/// The ceilings every ratio is read against, measured first in every run.
#[derive(Debug, Clone, Copy, Default)]
struct Ceilings {
    /// Raw pipelined put, puts/s.
    put: f64,
    /// Raw pipelined reserve+delete, jobs/s.
    rd: f64,
    /// One put at a time, puts/s.
    seq_put: f64,
    /// One reserve, then one delete, at a time, jobs/s.
    seq_rd: f64,
}

/// The state of one bench run: the plan, what was measured so far, and the
/// report being built.
struct Bench {
    plan: Plan,
    ceil: Ceilings,
    /// Worker concurrency for the scenarios after `drain`: `--conc`, else the
    /// best `drain` found, else 256.
    best_conc: Option<usize>,
    /// `--conc`, if given.
    conc: Option<usize>,
    rows: Vec<Row>,
    notes: Vec<String>,
    targets: Vec<Target>,
    tmp: TempDir,
    binlogs: usize,
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

fn ratio(x: f64, of: f64, name: &str) -> String {
    format!("{:.2} of {name}", x / of)
}

/// `min–max` of several runs (one run: its value), `decimals` after the point.
fn range(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.len() <= 1 || format!("{lo:.decimals$}") == format!("{hi:.decimals$}") {
        format!("{lo:.decimals$}")
    } else {
        format!("{lo:.decimals$}–{hi:.decimals$}")
    }
}

/// "met in every run" / "met in k of N runs" for a target judged per run.
fn met_in(ok: &[bool]) -> (String, bool) {
    let k = ok.iter().filter(|x| **x).count();
    if ok.len() == 1 {
        (String::new(), k == 1)
    } else if k == ok.len() {
        (format!(", met in all {} runs", ok.len()), true)
    } else {
        (format!(", met in {k} of {} runs", ok.len()), false)
    }
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

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn target(&mut self, name: impl Into<String>, measured: String, ok: bool) {
        self.targets.push((name.into(), Some((measured, ok))));
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

    /// The label of the worker settings the later scenarios use.
    fn best_label(&self) -> String {
        conc_label(self.best_conc)
    }
}

fn conc_label(conc: Option<usize>) -> String {
    match conc {
        None => format!("default ({})", bsjobs_core::worker::DEFAULT_CONCURRENCY),
        Some(c) => format!("concurrency({c})"),
    }
}

async fn bench(opts: Opts) {
    let started = Instant::now();
    let load0 = loadavg();
    let cpu0 = cpu_snapshot();
    let mut b = Bench {
        plan: Plan::new(&opts),
        ceil: Ceilings::default(),
        best_conc: opts.conc.or(Some(256)),
        conc: opts.conc,
        rows: Vec::new(),
        notes: Vec::new(),
        targets: Vec::new(),
        tmp: TempDir::new(),
        binlogs: 0,
    };
    let n = b.plan.jobs;
    progress(&format!(
        "mode {:?}, {} jobs, {} CPUs, load average {load0}; beanstalkd per scenario on 127.0.0.1",
        opts.size,
        sep(n as f64),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));

    // Ceilings and the sequential baseline: always, every ratio needs them.
    scenarios::ceilings::run(&mut b).await;

    for name in SCENARIOS {
        let wanted = opts
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|x| x == name));
        if !wanted {
            for t in scenarios::targets(name) {
                b.targets.push(((*t).to_owned(), None));
            }
            continue;
        }
        match name {
            "enqueue" => scenarios::enqueue::run(&mut b).await,
            "fleet" => scenarios::fleet::run(&mut b).await,
            "drain" => scenarios::drain::run(&mut b, opts.conc.is_none()).await,
            "flat" => scenarios::flat::run(&mut b).await,
            "mixed" => scenarios::mixed::run(&mut b).await,
            "latency" => scenarios::latency::run(&mut b).await,
            "idle" => scenarios::idle::run(&mut b).await,
            "pickup" => scenarios::pickup::run(&mut b).await,
            "binlog" => scenarios::binlog::run(&mut b).await,
            "chains" => scenarios::chains::run(&mut b).await,
            "lifecycle" => scenarios::lifecycle::run(&mut b).await,
            _ => unreachable!("every scenario has a module"),
        }
    }

    // The table.
    let cpu1 = cpu_snapshot();
    let wall = started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (machine, ours) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    b.note(format!(
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
    println!();
    println!("| target | measured | |");
    println!("|---|---|---|");
    for (t, m) in &b.targets {
        match m {
            Some((m, ok)) => println!("| {t} | {m} | {} |", if *ok { "MET" } else { "NOT MET" }),
            None => println!("| {t} | not run | - |"),
        }
    }
    println!();
    println!("Notes:");
    println!(
        "- method: ceilings are the best of {} runs (reserve+delete: of each shape too), each enqueue figure the best of as many, \
         the default drain the best of {}; latency, idle and pickup ran {} time(s) each (ranges are min–max over the runs); \
         one fresh beanstalkd per run; a ratio above 1.00 is run-to-run noise",
        b.plan.ceiling_runs,
        b.plan.ceiling_runs.min(2),
        b.plan.repeat
    );
    for n in &b.notes {
        println!("- {n}");
    }
}
