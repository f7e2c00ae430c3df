//! What each job-lifecycle feature costs (issue 12), each read against a
//! plain no-op job measured in the same round:
//!
//! - **hooks**: a client hook adding one `meta` entry ([`TagHook`](crate::jobs::TagHook)) on the
//!   enqueue side, a worker hook with an `around` wrapper and `on_event`
//!   counters ([`CountHook`](crate::jobs::CountHook)) on the drain side;
//! - **JobContext**: a job function taking the worker's context (drain);
//! - **unique** (`unique_for = "1h"`): enqueue of new keys, enqueue of the
//!   same keys again (every one a duplicate), and the drain, where each job
//!   carries a chain token the worker checks and deletes;
//! - **burial**: a job failing with `retries = 0`, buried with its error
//!   record (a put of a copy, then reserve-job + bury + delete).
//!
//! Every variant gets a fresh beanstalkd per round; a producer child puts
//! the jobs (`Job::enqueue` from 64 tasks of one `Client`, and
//! `Client::enqueue_many` for the plain and hook variants), then a worker
//! child (`--conc`, else `concurrency(256)`) drains that same server. One
//! round measures the control first and last (its figure for the round is
//! the mean of the two) and the other variants in between, in an order that
//! rotates from round to round, so drift in the machine's load falls on all
//! of them; rows give min–max over the rounds (`--repeat`, default 3 here)
//! of each variant's rate and of its ratios to the control of the same
//! round: of the rate, and of the CPU per job of our process (producer or
//! worker) and of beanstalkd's, which load from other processes distorts
//! less than the rate. The `enqueue_many` pair runs back to back, the plain one first. The run checks that each variant did what it stands for
//! (every job tagged and seen by the hook, duplicates found existing, no
//! token left, every failing job buried with its `err`).

use crate::jobs::{Fail, Noop, Unique, WithCtx};
use crate::proc::{kv, ChildProc};
use crate::raw::{raw, raw_use, server_cpu, server_stats, StatsConn};
use crate::scenarios::drain::{drain_child, Drain};
use crate::{args, progress, range, sep, Bench};
use bsjobs::proto::{Command, Response};
use bsjobs::testing::Beanstalkd;
use std::collections::BTreeMap;
use std::time::Duration;

/// The tube of every chain token, a unique job's too (`worker/chain.rs`).
const TOKEN_TUBE: &str = "bsjobs.chains";

/// At most this many unique jobs per measurement: a bucket's registry is
/// one job of at most 64 KiB by default (about 800 keys, 51,000 over the
/// 64 buckets), and each enqueue reads and rewrites its bucket's registry,
/// so the cost per enqueue grows with the keys held.
const UNIQUE_MAX: u64 = 20_000;

/// Producer tasks of every `Job::enqueue` measurement, as in `enqueue`.
const TASKS: &str = "64";

/// The variants, in the order of the rows; `PLAIN_*` are the controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fig {
    EnqPlain,
    EnqHook,
    EnqCtx,
    EnqFail,
    EnqUniqueNew,
    EnqUniqueDup,
    BulkPlain,
    BulkHook,
    DrainPlain,
    DrainHook,
    DrainCtx,
    DrainUnique,
    DrainBury,
}

impl Fig {
    fn label(self) -> &'static str {
        match self {
            Fig::EnqPlain => "lifecycle: Job::enqueue, 64 tasks, plain job (control)",
            Fig::EnqHook => "lifecycle: Job::enqueue, 64 tasks, client hook adding one meta entry",
            Fig::EnqCtx => "lifecycle: Job::enqueue, 64 tasks, job taking JobContext",
            Fig::EnqFail => "lifecycle: Job::enqueue, 64 tasks, failing job (retries = 0)",
            Fig::EnqUniqueNew => "lifecycle: Job::enqueue, 64 tasks, unique_for = 1h, new keys",
            Fig::EnqUniqueDup => {
                "lifecycle: Job::enqueue, 64 tasks, unique_for = 1h, existing keys (duplicates)"
            }
            Fig::BulkPlain => "lifecycle: enqueue_many, plain job (control)",
            Fig::BulkHook => "lifecycle: enqueue_many, client hook adding one meta entry",
            Fig::DrainPlain => "lifecycle: drain, plain job (control)",
            Fig::DrainHook => "lifecycle: drain, worker hook (around + on_event), tagged jobs",
            Fig::DrainCtx => "lifecycle: drain, job taking JobContext",
            Fig::DrainUnique => "lifecycle: drain, unique jobs (token checked and deleted)",
            Fig::DrainBury => {
                "lifecycle: drain, failing jobs buried with their error record (retries = 0)"
            }
        }
    }

    /// The control this figure is read against.
    fn control(self) -> Fig {
        match self {
            Fig::BulkPlain | Fig::BulkHook => Fig::BulkPlain,
            f if f >= Fig::DrainPlain => Fig::DrainPlain,
            _ => Fig::EnqPlain,
        }
    }
}

/// One variant's measurement: the figures it yields (jobs/s each) and the
/// CPU it took per job (producer or worker, and beanstalkd), in µs.
type Measured = Vec<(Fig, f64, f64, f64)>;

pub(crate) async fn run(b: &mut Bench) {
    let n = b.plan.jobs;
    let nu = n.min(UNIQUE_MAX);
    let rounds = b.plan.lifecycle_rounds;
    let conc = b.conc.unwrap_or(256);
    let mut rates: BTreeMap<Fig, Vec<f64>> = BTreeMap::new();
    let mut ratios: BTreeMap<Fig, Vec<f64>> = BTreeMap::new();
    // CPU per job, variant / control of the round: (ours, beanstalkd).
    let mut cpu_ratios: BTreeMap<Fig, Vec<(f64, f64)>> = BTreeMap::new();
    let mut cpu: BTreeMap<Fig, Vec<(f64, f64)>> = BTreeMap::new();
    // Variants after the control, rotated by one each round.
    let mut order = [Var::Hook, Var::Ctx, Var::Unique, Var::Bury, Var::Bulk];
    for round in 0..rounds {
        progress(&format!("lifecycle: round {} of {rounds}", round + 1));
        let mut got = b.variant(Var::Plain, n, nu, conc).await;
        for v in order {
            got.extend(b.variant(v, n, nu, conc).await);
        }
        got.extend(b.variant(Var::Plain, n, nu, conc).await);
        order.rotate_left(1);
        // The control of a round: the mean of its runs (first and last)
        // of rate, our CPU per job and beanstalkd's.
        let control_of = |f: Fig| {
            let v: Vec<_> = got.iter().filter(|g| g.0 == f).collect();
            assert!(!v.is_empty(), "the control {f:?} ran");
            let mean = |pick: fn(&(Fig, f64, f64, f64)) -> f64| {
                v.iter().map(|g| pick(g)).sum::<f64>() / v.len() as f64
            };
            (mean(|g| g.1), mean(|g| g.2), mean(|g| g.3))
        };
        for &(fig, rate, mine_us, server_us) in &got {
            rates.entry(fig).or_default().push(rate);
            cpu.entry(fig).or_default().push((mine_us, server_us));
            if fig.control() != fig {
                let (c_rate, c_mine, c_server) = control_of(fig.control());
                ratios.entry(fig).or_default().push(rate / c_rate);
                cpu_ratios
                    .entry(fig)
                    .or_default()
                    .push((mine_us / c_mine, server_us / c_server));
            }
        }
    }
    for (fig, r) in &rates {
        let ratio = if fig.control() == *fig {
            "control".to_owned()
        } else {
            let c = &cpu_ratios[fig];
            format!(
                "{} of the control; CPU per job {}× ours, {}× beanstalkd's",
                range(&ratios[fig], 2),
                range(&c.iter().map(|c| c.0).collect::<Vec<_>>(), 2),
                range(&c.iter().map(|c| c.1).collect::<Vec<_>>(), 2)
            )
        };
        let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = r.iter().copied().fold(0.0, f64::max);
        let figure = if r.len() > 1 && sep(lo) != sep(hi) {
            format!("{}–{}", sep(lo), sep(hi))
        } else {
            sep(lo)
        };
        b.row(fig.label(), figure, "jobs/s", ratio);
    }
    let us = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        range(&v.iter().map(pick).collect::<Vec<_>>(), 1)
    };
    b.note(format!(
        "lifecycle CPU per job, min–max over {rounds} rounds, producer or worker process / beanstalkd (µs): {}",
        cpu.iter()
            .map(|(f, v)| format!(
                "{} {} / {}",
                short(*f),
                us(v, |c| c.0),
                us(v, |c| c.1)
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    b.note(format!(
        "lifecycle: {} jobs per variant ({} unique jobs: {} at most, as each enqueue reads and rewrites its bucket's registry, which grows with the keys held); \
         worker concurrency({conc}); every round measures the control (plain enqueue + drain) first and last, the other variants in between in an order rotated by one each round; \
         ratios are per round (variant / mean of the round's two control runs), min–max over {rounds} rounds; the control's own rows list both runs of every round; \
         CPU is read in clock ticks of 10 ms, so below some 20,000 jobs the CPU ratios are coarse",
        sep(n as f64),
        sep(nu as f64),
        sep(UNIQUE_MAX as f64)
    ));
}

fn short(f: Fig) -> &'static str {
    match f {
        Fig::EnqPlain => "enqueue plain",
        Fig::EnqHook => "enqueue hook",
        Fig::EnqCtx => "enqueue ctx",
        Fig::EnqFail => "enqueue failing",
        Fig::EnqUniqueNew => "enqueue unique new",
        Fig::EnqUniqueDup => "enqueue unique dup",
        Fig::BulkPlain => "enqueue_many plain",
        Fig::BulkHook => "enqueue_many hook",
        Fig::DrainPlain => "drain plain",
        Fig::DrainHook => "drain hook",
        Fig::DrainCtx => "drain ctx",
        Fig::DrainUnique => "drain unique",
        Fig::DrainBury => "drain bury",
    }
}

/// What one step of a round measures.
#[derive(Debug, Clone, Copy)]
enum Var {
    Plain,
    Hook,
    Ctx,
    Unique,
    Bury,
    Bulk,
}

/// One `--enqueue-only` child's result.
struct Enq {
    rate: f64,
    existing: u64,
    producer_us: f64,
    server_us: f64,
}

impl Bench {
    /// Variant `v` on a fresh server: its enqueue and drain figures.
    async fn variant(&mut self, v: Var, n: u64, nu: u64, conc: usize) -> Measured {
        let srv = self.server(false);
        let mut out = Measured::new();
        let (job, tube, hook) = match v {
            Var::Plain => ("noop", Noop::TUBE, false),
            Var::Hook => ("noop", Noop::TUBE, true),
            Var::Ctx => ("ctx", WithCtx::TUBE, false),
            Var::Unique => ("unique", Unique::TUBE, false),
            Var::Bury => ("fail", Fail::TUBE, false),
            Var::Bulk => {
                for (hook, fig) in [(false, Fig::BulkPlain), (true, Fig::BulkHook)] {
                    let srv = self.server(false);
                    let e = enqueue_child(&srv, "bulk", "noop", n, hook).await;
                    out.push((fig, e.rate, e.producer_us, e.server_us));
                }
                return out;
            }
        };
        let jobs = if matches!(v, Var::Unique) { nu } else { n };
        let e = enqueue_child(&srv, "conc", job, jobs, hook).await;
        assert_eq!(e.existing, 0, "{job}: every key is new");
        let fig = match v {
            Var::Plain => Fig::EnqPlain,
            Var::Hook => Fig::EnqHook,
            Var::Ctx => Fig::EnqCtx,
            Var::Unique => Fig::EnqUniqueNew,
            _ => Fig::EnqFail,
        };
        out.push((fig, e.rate, e.producer_us, e.server_us));
        if matches!(v, Var::Unique) {
            let d = enqueue_child(&srv, "conc", job, jobs, hook).await;
            assert_eq!(d.existing, jobs + 1, "every key (and the warm-up) exists");
            out.push((Fig::EnqUniqueDup, d.rate, d.producer_us, d.server_us));
        }
        let mut stats = StatsConn::open(&srv.addr()).await;
        let st = stats.tube(tube).await.expect("the variant's tube");
        assert_eq!(
            st.current_jobs_ready,
            jobs + 1,
            "{job}: one job per enqueue"
        );
        let extra: &[&str] = if hook { &["--hook"] } else { &[] };
        let (d, lines) = drain_child(&srv, jobs + 1, Some(conc), &[tube], extra).await;
        let fig = match v {
            Var::Plain => Fig::DrainPlain,
            Var::Hook => Fig::DrainHook,
            Var::Ctx => Fig::DrainCtx,
            Var::Unique => Fig::DrainUnique,
            _ => Fig::DrainBury,
        };
        out.push((fig, d.rate(), per_job_us(&d, d.worker_cpu_s), {
            per_job_us(&d, d.server_cpu_s)
        }));
        self.check_drain(v, &srv, &mut stats, tube, jobs + 1, &lines)
            .await;
        out
    }

    /// That the drain of `v` did what the variant stands for.
    async fn check_drain(
        &mut self,
        v: Var,
        srv: &Beanstalkd,
        stats: &mut StatsConn,
        tube: &str,
        jobs: u64,
        lines: &[String],
    ) {
        // A tube with no job left is gone from the server.
        let buried = stats.tube(tube).await.map_or(0, |t| t.current_jobs_buried);
        let hook = lines
            .iter()
            .find(|l| l.starts_with("HOOK "))
            .expect("the worker child prints HOOK");
        match v {
            Var::Hook => {
                for k in ["wrapped", "tagged", "started", "succeeded"] {
                    assert_eq!(kv(hook, k) as u64, jobs, "worker hook {k}: {hook}");
                }
            }
            Var::Unique => {
                // The worker deletes a token as its job ends; wait for the
                // last deletes, then none may be left.
                let mut left = u64::MAX;
                for _ in 0..500 {
                    left = stats.tube(TOKEN_TUBE).await.map_or(0, |t| {
                        t.current_jobs_ready
                            + t.current_jobs_reserved
                            + t.current_jobs_delayed
                            + t.current_jobs_buried
                    });
                    if left == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(left, 0, "every unique job's token deleted");
            }
            Var::Bury => {
                assert_eq!(buried, jobs, "every failing job buried");
                let mut c = raw(&srv.addr()).await;
                raw_use(&mut c, tube).await;
                match c.request(&Command::PeekBuried).await.expect("peek-buried") {
                    Response::Found { body, .. } => {
                        let body = String::from_utf8_lossy(&body);
                        assert!(
                            body.contains("\"err\"") && body.contains("fails on purpose"),
                            "a buried job carries its error record: {body}"
                        );
                    }
                    r => panic!("peek-buried: {r:?}"),
                }
            }
            Var::Plain | Var::Ctx | Var::Bulk => {
                assert_eq!(kv(hook, "wrapped"), 0.0, "no worker hook: {hook}");
            }
        }
        if !matches!(v, Var::Bury) {
            assert_eq!(buried, 0, "{tube}: nothing buried");
        }
    }
}

fn per_job_us(d: &Drain, cpu_s: f64) -> f64 {
    1e6 * cpu_s / d.n as f64
}

/// `n` jobs named `job` (and one warm-up job) into `srv` by a producer child
/// in `mode`, with the client hook if `hook`.
async fn enqueue_child(srv: &Beanstalkd, mode: &str, job: &str, n: u64, hook: bool) -> Enq {
    let s0 = server_stats(&srv.addr()).await;
    let mut a = args(&[
        "--enqueue-only",
        "--url",
        &srv.url(),
        "--mode",
        mode,
        "--job",
        job,
        "--jobs",
        &n.to_string(),
        "--tasks",
        TASKS,
    ]);
    if hook {
        a.push("--hook".into());
    }
    let mut child = ChildProc::spawn(&a);
    let line = child.line("RESULT", Duration::from_secs(900)).await;
    child.wait_exit().await;
    let s1 = server_stats(&srv.addr()).await;
    let secs = kv(&line, "secs");
    Enq {
        rate: n as f64 / secs,
        existing: kv(&line, "existing") as u64,
        producer_us: 1e6 * kv(&line, "cpu_s") / n as f64,
        server_us: 1e6 * (server_cpu(&s1) - server_cpu(&s0)) / n as f64,
    }
}
