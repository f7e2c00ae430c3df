//! Enqueue throughput of the generated API (`Job::enqueue`, one task and 64
//! tasks sharing one `Client`) and of `Client::enqueue_many`, each in a child
//! process, against the raw pipelined put ceiling; one task also against its
//! control, raw sequential puts from the same kind of child process.

use crate::proc::{kv, ChildProc};
use crate::raw::{server_cpu, StatsConn, NOOP};
use crate::{args, progress, ratio, sep, Bench};
use bsjobs::testing::Beanstalkd;
use std::time::Duration;

pub(crate) const TARGETS: &[&str] = &[
    "concurrent enqueue ≥ 0.70 of put ceiling",
    "bulk enqueue ≥ 0.85 of put ceiling",
];

pub(crate) async fn run(b: &mut Bench) {
    let c_put = b.ceil.put;
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
    b.target(
        TARGETS[0],
        format!("{:.2}", e64 / c_put),
        e64 / c_put >= 0.70,
    );
    b.target(TARGETS[1], format!("{:.2}", eb / c_put), eb / c_put >= 0.85);
}

impl Bench {
    /// Best of `ceiling_runs` runs, as for the ceilings, so that noise from
    /// other processes on the machine treats both sides alike.
    pub(crate) async fn enqueue(&mut self, mode: &str, binlog: bool) -> f64 {
        let mut best: f64 = 0.0;
        for _ in 0..self.plan.ceiling_runs {
            let srv = self.server(binlog);
            let label = if binlog { " (binlog)" } else { "" };
            best = best.max(self.enqueue_on(&srv, mode, Some(label)).await.0);
        }
        best
    }

    /// `plan.jobs` no-op jobs (and one warm-up job) into `NOOP` on `srv`, by
    /// a producer child in `mode` (`one`, `conc`, `bulk`, `raw`). Returns (jobs/s,
    /// beanstalkd CPU µs per job); with a label, notes the CPU it took.
    pub(crate) async fn enqueue_on(
        &mut self,
        srv: &Beanstalkd,
        mode: &str,
        label: Option<&str>,
    ) -> (f64, f64) {
        let n = self.plan.jobs;
        let mut stats = StatsConn::open(&srv.addr()).await;
        let ready0 = stats.tube(NOOP).await.map_or(0, |t| t.current_jobs_ready);
        let s0 = stats.server().await;
        let mut child = ChildProc::spawn(&args(&[
            "--enqueue-only",
            "--url",
            &srv.url(),
            "--mode",
            mode,
            "--jobs",
            &n.to_string(),
            "--tasks",
            "64",
        ]));
        let line = child.line("RESULT", Duration::from_secs(600)).await;
        child.wait_exit().await;
        let st = stats.server().await;
        let ready1 = stats.tube(NOOP).await.map_or(0, |t| t.current_jobs_ready);
        assert_eq!(ready1 - ready0, n + 1, "every job (and the warm-up) is in");
        let secs = kv(&line, "secs");
        let server_us = 1e6 * (server_cpu(&st) - server_cpu(&s0)) / n as f64;
        let Some(label) = label else {
            return (n as f64 / secs, server_us);
        };
        self.note(format!(
            "enqueue {mode}{label}: {} jobs/s; CPU per job: producer process {:.1} µs (whole process, startup included), beanstalkd {:.1} µs ({:.0}% of a core)",
            sep(n as f64 / secs),
            1e6 * kv(&line, "cpu_s") / n as f64,
            server_us,
            100.0 * (server_cpu(&st) - server_cpu(&s0)) / secs,
        ));
        (n as f64 / secs, server_us)
    }
}
