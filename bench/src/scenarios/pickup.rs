//! Pickup (issue 17): enqueue → handler start of jobs enqueued one at a time
//! `plan.pickup_gap` apart, first on an idle worker, then on the same worker
//! while one long job of the same tube runs (same run, same server). Also
//! the connections the worker holds to beanstalkd in each case: beanstalkd's
//! `current-connections` minus the bench's own (one stats connection and a
//! one-lane `Client`), and the worker's CPU over each phase. The idle phase
//! is the control; runs `plan.repeat` times.

use crate::jobs::{now_ns, Pickup};
use crate::proc::{kv, proc_cpu_s, series_line, ChildProc};
use crate::raw::StatsConn;
use crate::{args, met_in, progress, range, Bench};
use bsjobs::{Client, ClientConfig};
use std::time::Duration;

pub(crate) const TARGETS: &[&str] = &["pickup busy p50 ≤ 2 ms", "pickup busy p90 ≤ 5 ms"];

/// One run: (p50, p90, max) in ms per phase, connections, CPU %.
struct Run {
    idle: [f64; 3],
    busy: [f64; 3],
    idle_conns: u64,
    busy_conns: u64,
    idle_cpu_pct: f64,
    busy_cpu_pct: f64,
}

pub(crate) async fn run(b: &mut Bench) {
    let mut runs = Vec::new();
    for i in 0..b.plan.repeat {
        progress(&format!("pickup: run {}", i + 1));
        runs.push(b.pickup().await);
    }
    let (k, gap) = (b.plan.pickup_probes, b.plan.pickup_gap);
    let hold = b.plan.pickup_hold;
    let col = |f: &dyn Fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    for (q, name) in ["p50", "p90", "max"].iter().enumerate() {
        b.row(
            format!("pickup, idle worker (default), {k} jobs {gap:?} apart: {name}"),
            range(&col(&|r| r.idle[q]), 2),
            "ms",
            format!("1.00 (idle {name})"),
        );
    }
    for (q, name) in ["p50", "p90", "max"].iter().enumerate() {
        b.row(
            format!("pickup, same worker while one {hold:?} job of the tube runs: {name}"),
            range(&col(&|r| r.busy[q]), 2),
            "ms",
            format!(
                "{} of idle {name}",
                range(&col(&|r| r.busy[q] / r.idle[q]), 2)
            ),
        );
    }
    b.row(
        "pickup: worker connections to beanstalkd, idle / long job running",
        format!(
            "{} / {}",
            range(&col(&|r| r.idle_conns as f64), 0),
            range(&col(&|r| r.busy_conns as f64), 0)
        ),
        "connections",
        "-".into(),
    );
    b.row(
        "pickup: worker CPU during the idle / busy probes",
        format!(
            "{} / {}",
            range(&col(&|r| r.idle_cpu_pct), 2),
            range(&col(&|r| r.busy_cpu_pct), 2)
        ),
        "% of a core",
        "-".into(),
    );
    let (m, ok) = met_in(&runs.iter().map(|r| r.busy[0] <= 2.0).collect::<Vec<_>>());
    b.target(
        TARGETS[0],
        format!("{} ms{m}", range(&col(&|r| r.busy[0]), 2)),
        ok,
    );
    let (m, ok) = met_in(&runs.iter().map(|r| r.busy[1] <= 5.0).collect::<Vec<_>>());
    b.target(
        TARGETS[1],
        format!("{} ms{m}", range(&col(&|r| r.busy[1]), 2)),
        ok,
    );
}

fn phase_ms(lines: &[String], name: &str, n: usize) -> [f64; 3] {
    let l = series_line(lines, name);
    assert_eq!(kv(l, "n") as usize, n, "every {name} probe ran");
    [
        kv(l, "p50_ns") / 1e6,
        kv(l, "p90_ns") / 1e6,
        kv(l, "max_ns") / 1e6,
    ]
}

impl Bench {
    async fn probes(&self, client: &Client, phase: u32) {
        for _ in 0..self.plan.pickup_probes {
            Pickup::new(now_ns(), phase, 0)
                .client(client)
                .enqueue()
                .await
                .expect("enqueue probe");
            tokio::time::sleep(self.plan.pickup_gap).await;
        }
    }

    async fn pickup(&mut self) -> Run {
        let srv = self.server(false);
        let mut stats = StatsConn::open(&srv.addr()).await;
        let client = Client::with_config(ClientConfig {
            lanes: 1,
            ..ClientConfig::from_url(&srv.url()).expect("url")
        });
        client.stats(0).await.expect("warm client");
        let own = stats.server().await.current_connections;
        let mut child = ChildProc::spawn(&args(&[
            "--worker-only",
            "--url",
            &srv.url(),
            "--tubes",
            Pickup::TUBE,
            "--grace-ms",
            "100",
        ]));
        child.line("READY", Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_conns = stats.server().await.current_connections - own;

        let wall = |phase_s: f64| phase_s.max(1e-9);
        let (c0, t0) = (proc_cpu_s(child.pid), std::time::Instant::now());
        self.probes(&client, 0).await;
        let idle_cpu_pct = 100.0 * (proc_cpu_s(child.pid) - c0) / wall(t0.elapsed().as_secs_f64());

        let hold_ms = self.plan.pickup_hold.as_millis() as u64;
        Pickup::new(now_ns(), 1, hold_ms)
            .client(&client)
            .enqueue()
            .await
            .expect("enqueue the long job");
        child.line("HOLDING", Duration::from_secs(10)).await;
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let busy_conns = stats.server().await.current_connections - own;
        let (c0, t0) = (proc_cpu_s(child.pid), std::time::Instant::now());
        self.probes(&client, 1).await;
        let busy_cpu_pct = 100.0 * (proc_cpu_s(child.pid) - c0) / wall(t0.elapsed().as_secs_f64());
        let busy_conns = busy_conns.max(stats.server().await.current_connections - own);
        assert!(
            started.elapsed() < self.plan.pickup_hold,
            "the long job ended before the last probe: raise --pickup hold or lower the probes"
        );
        let reserved = stats
            .tube(Pickup::TUBE)
            .await
            .map_or(0, |t| t.current_jobs_reserved);
        assert_eq!(reserved, 1, "the long job is still running");
        let lines = child.stop().await;
        let n = self.plan.pickup_probes;
        Run {
            idle: phase_ms(&lines, "PICKUP_IDLE", n),
            busy: phase_ms(&lines, "PICKUP_BUSY", n),
            idle_conns,
            busy_conns,
            idle_cpu_pct,
            busy_cpu_pct,
        }
    }
}
