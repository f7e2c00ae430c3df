//! Draining a backlog with the worker (defaults, then several
//! concurrencies), against the raw pipelined reserve+delete ceiling and the
//! one-at-a-time baseline.

use crate::proc::{kv, proc_cpu_s, ChildProc};
use crate::raw::{raw_put, server_cpu, server_stats, NOOP};
use crate::{args, conc_label, progress, ratio, sep, Bench};
use bsjobs::testing::Beanstalkd;
use std::time::Duration;

pub(crate) const TARGETS: &[&str] = &[
    "drain best ≥ 0.70 of reserve+delete ceiling",
    "drain best ≥ 10× sequential",
    "drain default ≥ 5× sequential",
];

/// With `adopt_best`, the later scenarios use the best concurrency found.
pub(crate) async fn run(b: &mut Bench, adopt_best: bool) {
    let n = b.plan.jobs;
    let (c_rd, seq_rd) = (b.ceil.rd, b.ceil.seq_rd);
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
    b.note(format!(
        "drain settings tried: {}",
        tried
            .iter()
            .map(|d| format!("{} → {} jobs/s", d.label(), sep(d.rate())))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    b.row(
        format!(
            "drain {}: worker, best of {} settings (default, concurrency {}) = {}",
            sep(n as f64),
            tried.len(),
            b.plan
                .concurrencies
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            best.label()
        ),
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
    if adopt_best {
        b.best_conc = best.conc;
    }
    let (def, best) = (d_def.rate(), best.rate());
    b.target(
        TARGETS[0],
        format!("{:.2}", best / c_rd),
        best / c_rd >= 0.70,
    );
    b.target(
        TARGETS[1],
        format!("{:.1}×", best / seq_rd),
        best / seq_rd >= 10.0,
    );
    b.target(
        TARGETS[2],
        format!("{:.1}×", def / seq_rd),
        def / seq_rd >= 5.0,
    );
}

/// One drain by a worker child.
#[derive(Debug, Clone)]
pub(crate) struct Drain {
    pub(crate) conc: Option<usize>,
    pub(crate) n: u64,
    pub(crate) handlers_s: f64,
    pub(crate) empty_s: f64,
    pub(crate) hwm_kb: u64,
    pub(crate) rss0_kb: u64,
    pub(crate) worker_cpu_s: f64,
    pub(crate) server_cpu_s: f64,
}

impl Drain {
    /// Jobs/s until the tube was empty (every delete answered).
    pub(crate) fn rate(&self) -> f64 {
        self.n as f64 / self.empty_s
    }

    pub(crate) fn label(&self) -> String {
        conc_label(self.conc)
    }
}

impl Bench {
    /// A fresh server, `n` jobs put by the raw client, drained by a worker.
    pub(crate) async fn drain(&mut self, n: u64, conc: Option<usize>, binlog: bool) -> Drain {
        let srv = self.server(binlog);
        raw_put(&srv.addr(), NOOP, n, None).await;
        let d = drain_on(&srv, n, conc, &[NOOP]).await;
        self.note(format!(
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
}

/// A worker child watching `tubes` (the first one is `NOOP`, which holds
/// `n` no-op jobs) runs until `NOOP` is empty.
pub(crate) async fn drain_on(
    srv: &Beanstalkd,
    n: u64,
    conc: Option<usize>,
    tubes: &[&str],
) -> Drain {
    assert_eq!(tubes.first(), Some(&NOOP), "the drained tube comes first");
    drain_child(srv, n, conc, tubes, &[]).await.0
}

/// A worker child (with `extra` arguments, such as `--hook`) watching
/// `tubes` runs until `n` counting jobs ran and the first tube has none
/// ready, reserved or delayed; returns the drain and every line the child
/// printed when it stopped.
pub(crate) async fn drain_child(
    srv: &Beanstalkd,
    n: u64,
    conc: Option<usize>,
    tubes: &[&str],
    extra: &[&str],
) -> (Drain, Vec<String>) {
    let s0 = server_stats(&srv.addr()).await;
    let mut a = args(&[
        "--worker-only",
        "--url",
        &srv.url(),
        "--tubes",
        &tubes.join(","),
        "--concurrency",
        &conc.map_or("default".into(), |c| c.to_string()),
        "--expect",
        &n.to_string(),
    ]);
    a.extend(args(extra));
    let mut child = ChildProc::spawn(&a);
    let ready = child.line("READY", Duration::from_secs(30)).await;
    let done = child.line("DONE", Duration::from_secs(1800)).await;
    let worker_cpu_s = proc_cpu_s(child.pid);
    let s1 = server_stats(&srv.addr()).await;
    let lines = child.stop().await;
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
    (d, lines)
}
