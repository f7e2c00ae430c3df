//! The ceilings: the raw pipelined put and reserve+delete rates
//! (`crate::raw`), and the one-request-at-a-time baseline. They run first in
//! every bench, whatever `--only` says: every other figure is a ratio to them.

use crate::proc::self_cpu_s;
use crate::raw::{
    raw_drain, raw_put, seq_put, seq_reserve_delete, server_cpu, server_stats, DEPTH, NOOP,
    RD_SHAPES, WINDOW,
};
use crate::{progress, ratio, sep, Bench};

pub(crate) async fn run(b: &mut Bench) {
    progress("ceiling: pipelined put");
    b.ceil.put = b.ceiling_put(false).await;
    b.row(
        format!("ceiling: raw pipelined put ({DEPTH} windows of {WINDOW} in flight)"),
        sep(b.ceil.put),
        "puts/s",
        "1.00 (put ceiling)".into(),
    );
    progress("ceiling: pipelined reserve+delete");
    b.ceil.rd = b.ceiling_drain(false).await;
    b.row(
        "ceiling: raw pipelined reserve+delete (best shape)".to_owned(),
        sep(b.ceil.rd),
        "jobs/s",
        "1.00 (r+d ceiling)".into(),
    );

    progress("sequential baseline");
    let (seq_p, seq_rd) = {
        let srv = b.server(false);
        let m = b.plan.seq;
        let s = seq_put(&srv.addr(), NOOP, m).await;
        let (k, s2) = seq_reserve_delete(&srv.addr(), NOOP).await;
        assert_eq!(k, m);
        (m as f64 / s, k as f64 / s2)
    };
    b.ceil.seq_put = seq_p;
    b.ceil.seq_rd = seq_rd;
    b.row(
        "sequential: put, wait",
        sep(seq_p),
        "puts/s",
        ratio(seq_p, b.ceil.put, "put ceiling"),
    );
    b.row(
        "sequential: reserve, delete, wait",
        sep(seq_rd),
        "jobs/s",
        ratio(seq_rd, b.ceil.rd, "r+d ceiling"),
    );
    b.row(
        "ceiling r+d vs sequential r+d (the most any drain can reach)",
        format!("{:.1}", b.ceil.rd / seq_rd),
        "×",
        "-".into(),
    );
}

impl Bench {
    pub(crate) async fn ceiling_put(&mut self, binlog: bool) -> f64 {
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
        self.note(format!(
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

    pub(crate) async fn ceiling_drain(&mut self, binlog: bool) -> f64 {
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
        self.note(format!(
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
}
