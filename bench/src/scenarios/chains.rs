//! Chains (issue 10). (a) Live repeating chains must not slow down other
//! jobs on the server: `N` chains of `repeat = "1h"` (a token in
//! `bsjobs.chains` and a job each), then `enqueue_many` and a drain of plain
//! jobs on another tube, against the same figures on a server with no
//! chains, measured alternately in the same run. Twice: right after the
//! chains were enqueued (tokens and first jobs ready), and once a worker
//! has run every chain's first run (tokens buried, next runs delayed an
//! hour: the steady state). (b) `M` chains of `repeat = "1s"`: chain runs
//! per second while they run, against the `M`/s they ask for, with the
//! worker's and beanstalkd's CPU.

use crate::jobs::{Hourly, Secondly};
use crate::proc::{proc_cpu_s, ChildProc};
use crate::raw::{raw_drain, raw_put, server_cpu, server_stats, StatsConn, NOOP, RD_MIXED};
use crate::scenarios::drain::drain_on;
use crate::{args, conc_label, progress, range, sep, Bench};
use bsjobs::testing::Beanstalkd;
use bsjobs::Client;
use std::time::{Duration, Instant};

/// The one tube of every chain token (`bsjobs-core/src/worker/chain.rs`).
const TOKEN_TUBE: &str = "bsjobs.chains";

pub(crate) const TARGETS: &[&str] = &[
    "enqueue_many on another tube with live 1h chains ≥ 0.90 of no chains",
    "drain of another tube with live 1h chains ≥ 0.90 of no chains",
    "1s chains: runs/s ≥ 0.90 × chains",
];

/// Worker concurrency of every worker in this scenario: `--conc`, else 256
/// (what issue 10 measured with), whatever `drain` found best: a chain run
/// takes several round trips, so its throughput needs many in flight.
fn conc(b: &Bench) -> usize {
    b.conc.unwrap_or(256)
}

/// Best enqueue_many and drain rates on one server over the rounds, and
/// the least beanstalkd CPU per job each took.
#[derive(Clone, Copy)]
struct Other {
    enqueue: f64,
    drain: f64,
    enqueue_us: f64,
    drain_us: f64,
    /// The raw pipelined reserve+delete of the same tube (no bsjobs).
    raw_drain: f64,
    raw_drain_us: f64,
}

impl Default for Other {
    fn default() -> Self {
        Other {
            enqueue: 0.0,
            drain: 0.0,
            enqueue_us: f64::INFINITY,
            drain_us: f64::INFINITY,
            raw_drain: 0.0,
            raw_drain_us: f64::INFINITY,
        }
    }
}

/// One comparison: the server with chains, the one without, and the ratio
/// of each round's pair (with / without, measured back to back).
#[derive(Default, Clone)]
struct Compare {
    with: Other,
    without: Other,
    paired_enqueue: Vec<f64>,
    paired_drain: Vec<f64>,
    paired_raw_drain: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) async fn run(b: &mut Bench) {
    let steady = live_chains(b).await;
    let (runs, want) = secondly(b).await;
    for (t, best, pairs) in [
        (
            TARGETS[0],
            steady.with.enqueue / steady.without.enqueue,
            &steady.paired_enqueue,
        ),
        (
            TARGETS[1],
            steady.with.drain / steady.without.drain,
            &steady.paired_drain,
        ),
    ] {
        let m = median(pairs);
        b.target(
            t,
            format!(
                "median of the round pairs {m:.2} ({}), best vs best {best:.2}",
                range(pairs, 2)
            ),
            m >= 0.90,
        );
    }
    b.target(
        TARGETS[2],
        format!(
            "{} runs/s of {} chains ({:.2})",
            sep(runs),
            sep(want),
            runs / want
        ),
        runs / want >= 0.90,
    );
}

/// Enqueue + drain on `NOOP`: the best of `rounds` on each server, the two
/// servers taking turns.
async fn compare(b: &mut Bench, with: &Beanstalkd, without: &Beanstalkd) -> Compare {
    let mut c = Compare::default();
    let n = b.plan.jobs;
    for _ in 0..b.plan.ceiling_runs {
        let mut pair = [(0.0, 0.0, 0.0); 2];
        for (i, srv) in [without, with].into_iter().enumerate() {
            let (e, e_us) = b.enqueue_on(srv, "bulk", None).await;
            let d = drain_on(srv, n + 1, Some(conc(b)), &[NOOP]).await;
            // The control: beanstalkd alone, through the raw client.
            raw_put(&srv.addr(), NOOP, n, None).await;
            let s0 = server_cpu(&server_stats(&srv.addr()).await);
            let (k, secs) = raw_drain(&srv.addr(), NOOP, RD_MIXED, None).await;
            let raw_us = 1e6 * (server_cpu(&server_stats(&srv.addr()).await) - s0) / k as f64;
            let best = if i == 0 { &mut c.without } else { &mut c.with };
            best.enqueue = best.enqueue.max(e);
            best.drain = best.drain.max(d.rate());
            best.enqueue_us = best.enqueue_us.min(e_us);
            best.drain_us = best.drain_us.min(1e6 * d.server_cpu_s / d.n as f64);
            best.raw_drain = best.raw_drain.max(k as f64 / secs);
            best.raw_drain_us = best.raw_drain_us.min(raw_us);
            pair[i] = (e, d.rate(), k as f64 / secs);
        }
        c.paired_enqueue.push(pair[1].0 / pair[0].0);
        c.paired_drain.push(pair[1].1 / pair[0].1);
        c.paired_raw_drain.push(pair[1].2 / pair[0].2);
    }
    c
}

/// (a). Returns the steady-state (with chains, without) figures.
async fn live_chains(b: &mut Bench) -> Compare {
    let n = b.plan.chains;
    let without = b.server(false);
    let with = b.server(false);
    let mut stats = StatsConn::open(&with.addr()).await;
    progress(&format!("chains: enqueue {} 1h chains", sep(n as f64)));
    let client = Client::new(&with.url()).expect("client");
    let t0 = Instant::now();
    let out = client.enqueue_many((0..n).map(Hourly::new)).await;
    let enq_s = t0.elapsed().as_secs_f64();
    assert_eq!(out.len() as u64, n);
    for r in out {
        let h = r.expect("chain enqueue");
        assert!(h.token.is_some(), "a repeating job has a token");
    }
    let tokens = stats.tube(TOKEN_TUBE).await.expect("token tube");
    assert_eq!(tokens.current_jobs_ready, n, "one ready token per chain");
    b.row(
        format!(
            "chains: enqueue_many of {} repeat=1h chains (token + job each)",
            sep(n as f64)
        ),
        sep(n as f64 / enq_s),
        "chains/s",
        "-".into(),
    );

    progress("chains: other tube, chains just enqueued vs none");
    let fresh = compare(b, &with, &without).await;
    let tubes_fresh = stats.server().await.current_tubes;

    progress("chains: first runs");
    let mut child = ChildProc::spawn(&args(&[
        "--worker-only",
        "--url",
        &with.url(),
        "--tubes",
        Hourly::TUBE,
        "--concurrency",
        &conc(b).to_string(),
    ]));
    child.line("READY", Duration::from_secs(30)).await;
    let t0 = Instant::now();
    loop {
        let job = stats.tube(Hourly::TUBE).await.expect("chain tube");
        let tok = stats.tube(TOKEN_TUBE).await.expect("token tube");
        if job.current_jobs_delayed == n && tok.current_jobs_buried == n {
            assert_eq!(job.current_jobs_ready + job.current_jobs_reserved, 0);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "first runs of {n} chains not done in 900 s: {} delayed, {} tokens buried",
            job.current_jobs_delayed,
            tok.current_jobs_buried
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_s = t0.elapsed().as_secs_f64();
    child.stop().await;
    b.row(
        format!(
            "chains: first run of {} chains, worker {}",
            sep(n as f64),
            conc_label(Some(conc(b)))
        ),
        sep(n as f64 / first_s),
        "runs/s",
        "-".into(),
    );

    progress("chains: other tube, chains steady vs none");
    let steady = compare(b, &with, &without).await;
    let tubes_with = stats.server().await.current_tubes;
    let tubes_without = StatsConn::open(&without.addr())
        .await
        .server()
        .await
        .current_tubes;

    let jobs = sep(b.plan.jobs as f64);
    for (state, c) in [
        ("just enqueued (tokens and first jobs ready)", fresh),
        (
            "steady (tokens buried, next runs delayed 1h)",
            steady.clone(),
        ),
    ] {
        let (w, wo) = (c.with, c.without);
        let chains = format!("{} chains {state}", sep(n as f64));
        b.row(
            format!("chains: enqueue_many {jobs} on another tube, no chains"),
            sep(wo.enqueue),
            "jobs/s",
            "1.00 (no chains)".into(),
        );
        b.row(
            format!("chains: enqueue_many {jobs} on another tube, {chains}"),
            sep(w.enqueue),
            "jobs/s",
            format!(
                "{:.2} of no chains; round pairs {}",
                w.enqueue / wo.enqueue,
                range(&c.paired_enqueue, 2)
            ),
        );
        b.row(
            format!("chains: drain {jobs} of another tube, no chains"),
            sep(wo.drain),
            "jobs/s",
            "1.00 (no chains)".into(),
        );
        b.row(
            format!("chains: drain {jobs} of another tube, {chains}"),
            sep(w.drain),
            "jobs/s",
            format!(
                "{:.2} of no chains; round pairs {}",
                w.drain / wo.drain,
                range(&c.paired_drain, 2)
            ),
        );
        b.row(
            format!("chains: control, raw pipelined reserve+delete of the other tube, no chains vs {chains}"),
            format!("{} vs {}", sep(wo.raw_drain), sep(w.raw_drain)),
            "jobs/s",
            format!(
                "{:.2} of no chains; round pairs {}",
                w.raw_drain / wo.raw_drain,
                range(&c.paired_raw_drain, 2)
            ),
        );
        b.row(
            format!("chains: beanstalkd CPU per job of the other tube, enqueue / drain / raw drain, no chains vs {chains}"),
            format!(
                "{:.1} / {:.1} / {:.1} vs {:.1} / {:.1} / {:.1}",
                wo.enqueue_us, wo.drain_us, wo.raw_drain_us, w.enqueue_us, w.drain_us, w.raw_drain_us
            ),
            "µs",
            format!(
                "{:.2} / {:.2} / {:.2} of no chains",
                w.enqueue_us / wo.enqueue_us,
                w.drain_us / wo.drain_us,
                w.raw_drain_us / wo.raw_drain_us
            ),
        );
    }
    b.row(
        "chains: beanstalkd current-tubes, no chains / chains just enqueued / steady",
        format!("{tubes_without} / {tubes_fresh} / {tubes_with}"),
        "tubes",
        "-".into(),
    );
    b.note(format!(
        "chains: {} rounds per state; in each the server without chains, then the one with them, get an enqueue_many by a producer child and a drain by a worker child ({}) watching only that other tube; figures are the best round of each server, \"round pairs\" the with/without ratios of each round (the target reads their median), beanstalkd CPU the least per job",
        b.plan.ceiling_runs,
        conc_label(Some(conc(b)))
    ));
    steady
}

/// (b). Returns (runs/s, chains per second asked for).
async fn secondly(b: &mut Bench) -> (f64, f64) {
    let n = b.plan.chains_1s;
    let srv = b.server(false);
    let mut stats = StatsConn::open(&srv.addr()).await;
    progress(&format!("chains: {} 1s chains", sep(n as f64)));
    let client = Client::new(&srv.url()).expect("client");
    for r in client.enqueue_many((0..n).map(Secondly::new)).await {
        r.expect("chain enqueue");
    }
    let mut child = ChildProc::spawn(&args(&[
        "--worker-only",
        "--url",
        &srv.url(),
        "--tubes",
        Secondly::TUBE,
        "--concurrency",
        &conc(b).to_string(),
    ]));
    child.line("READY", Duration::from_secs(30)).await;
    // Past the first runs, into the steady beat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let j0 = stats.tube(Secondly::TUBE).await.expect("tube").total_jobs;
    let s0 = server_cpu(&stats.server().await);
    let (w0, t0) = (proc_cpu_s(child.pid), Instant::now());
    tokio::time::sleep(b.plan.chains_window).await;
    let j1 = stats.tube(Secondly::TUBE).await.expect("tube").total_jobs;
    let s1 = server_cpu(&stats.server().await);
    let (w1, dt) = (proc_cpu_s(child.pid), t0.elapsed().as_secs_f64());
    let lines = child.stop().await;
    let tokens = stats.tube(TOKEN_TUBE).await.expect("token tube");
    let live =
        tokens.current_jobs_ready + tokens.current_jobs_buried + tokens.current_jobs_reserved;
    assert_eq!(live, n, "one token per chain, no chain lost or forked");
    // Every run puts the chain's next job into the tube.
    let runs = (j1 - j0) as f64 / dt;
    let want = n as f64;
    b.row(
        format!(
            "chains: {} repeat=1s chains, worker {}: chain runs over {:?}",
            sep(n as f64),
            conc_label(Some(conc(b))),
            b.plan.chains_window
        ),
        sep(runs),
        "runs/s",
        format!("{:.2} of {}/s", runs / want, sep(want)),
    );
    b.row(
        "chains: 1s chains, CPU of worker / beanstalkd",
        format!(
            "{:.0} / {:.0}",
            100.0 * (w1 - w0) / dt,
            100.0 * (s1 - s0) / dt
        ),
        "% of a core",
        "-".into(),
    );
    b.note(format!(
        "chains 1s: runs counted as jobs put into the chain tube (each run puts the next); the worker reported {} on stop",
        lines
            .iter()
            .find(|l| l.starts_with("CHAINS "))
            .map_or("no count", String::as_str)
    ));
    (runs, want)
}
