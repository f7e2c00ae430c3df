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
use crate::raw::{server_cpu, StatsConn, NOOP};
use crate::scenarios::drain::drain_on;
use crate::{args, conc_label, progress, sep, Bench};
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

/// Best enqueue_many and drain rates on one server over the rounds.
#[derive(Default, Clone, Copy)]
struct Other {
    enqueue: f64,
    drain: f64,
}

pub(crate) async fn run(b: &mut Bench) {
    let steady = live_chains(b).await;
    let (runs, want) = secondly(b).await;
    b.target(
        TARGETS[0],
        format!("{:.2}", steady.0.enqueue / steady.1.enqueue),
        steady.0.enqueue / steady.1.enqueue >= 0.90,
    );
    b.target(
        TARGETS[1],
        format!("{:.2}", steady.0.drain / steady.1.drain),
        steady.0.drain / steady.1.drain >= 0.90,
    );
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
async fn compare(b: &mut Bench, with: &Beanstalkd, without: &Beanstalkd) -> (Other, Other) {
    let (mut w, mut wo) = (Other::default(), Other::default());
    let n = b.plan.jobs;
    for _ in 0..b.plan.ceiling_runs {
        for (srv, best) in [(without, &mut wo), (with, &mut w)] {
            let e = b.enqueue_on(srv, "bulk", None).await;
            let d = drain_on(srv, n + 1, Some(conc(b)), &[NOOP]).await;
            best.enqueue = best.enqueue.max(e);
            best.drain = best.drain.max(d.rate());
        }
    }
    (w, wo)
}

/// (a). Returns the steady-state (with chains, without) figures.
async fn live_chains(b: &mut Bench) -> (Other, Other) {
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
    for (state, (w, wo)) in [
        ("just enqueued (tokens and first jobs ready)", fresh),
        ("steady (tokens buried, next runs delayed 1h)", steady),
    ] {
        b.row(
            format!("chains: enqueue_many {jobs} on another tube, no chains"),
            sep(wo.enqueue),
            "jobs/s",
            "1.00 (no chains)".into(),
        );
        b.row(
            format!(
                "chains: enqueue_many {jobs} on another tube, {} chains {state}",
                sep(n as f64)
            ),
            sep(w.enqueue),
            "jobs/s",
            format!("{:.2} of no chains", w.enqueue / wo.enqueue),
        );
        b.row(
            format!("chains: drain {jobs} of another tube, no chains"),
            sep(wo.drain),
            "jobs/s",
            "1.00 (no chains)".into(),
        );
        b.row(
            format!(
                "chains: drain {jobs} of another tube, {} chains {state}",
                sep(n as f64)
            ),
            sep(w.drain),
            "jobs/s",
            format!("{:.2} of no chains", w.drain / wo.drain),
        );
    }
    b.row(
        "chains: beanstalkd current-tubes, no chains / chains just enqueued / steady",
        format!("{tubes_without} / {tubes_fresh} / {tubes_with}"),
        "tubes",
        "-".into(),
    );
    b.note(format!(
        "chains: each measurement on the other tube is the best of {} (enqueue_many by a producer child, then a drain by a worker child watching that tube only, {}), the server with chains and the one without taking turns",
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
