//! An idle worker with ten tubes: its CPU and memory over a quiet period,
//! then how fast it starts a new job, next to a raw connection (in a child
//! process of its own, as the worker is) that was blocked in `reserve` as
//! long. Runs `plan.repeat` times; rows give min–max.

use crate::jobs::{idle_job, now_ns, IDLE_TUBES};
use crate::proc::{kv, proc_cpu_s, proc_status_kb, series_line, ChildProc};
use crate::raw::{put_timestamp, raw, raw_use};
use crate::{args, met_in, progress, range, Bench};
use bsjobs::Client;
use std::time::{Duration, Instant};

pub(crate) const TARGETS: &[&str] = &["idle CPU < 1%", "idle RSS < 20 MB"];

const RAW_IDLE_TUBE: &str = "bench_rawidle";

struct Idle {
    cpu_pct: f64,
    rss_mb: f64,
    p50_ms: f64,
    max_ms: f64,
    raw_p50_ms: f64,
    raw_max_ms: f64,
}

pub(crate) async fn run(b: &mut Bench) {
    let mut all = Vec::new();
    for i in 0..b.plan.repeat {
        progress(&format!("idle: {:?}, run {}", b.plan.idle, i + 1));
        all.push(b.idle().await);
    }
    let col = |f: fn(&Idle) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    let (cpu, rss) = (col(|i| i.cpu_pct), col(|i| i.rss_mb));
    let per_run = |f: fn(&Idle) -> f64, g: fn(&Idle) -> f64| {
        all.iter().map(|i| f(i) / g(i)).collect::<Vec<f64>>()
    };
    b.row(
        "idle worker, 10 tubes: CPU",
        range(&cpu, 3),
        "% of a core",
        "-".into(),
    );
    b.row(
        "idle worker, 10 tubes: RSS",
        range(&rss, 1),
        "MB",
        "-".into(),
    );
    b.row(
        "idle raw client (child process) blocked in reserve: put→reserved, p50",
        range(&col(|i| i.raw_p50_ms), 2),
        "ms",
        "1.00 (raw idle p50)".into(),
    );
    b.row(
        "idle worker: enqueue→handler, p50",
        range(&col(|i| i.p50_ms), 2),
        "ms",
        format!(
            "{} of raw idle p50",
            range(&per_run(|i| i.p50_ms, |i| i.raw_p50_ms), 2)
        ),
    );
    b.row(
        "idle worker: enqueue→handler, max",
        range(&col(|i| i.max_ms), 2),
        "ms",
        format!(
            "{} of raw idle max",
            range(&per_run(|i| i.max_ms, |i| i.raw_max_ms), 2)
        ),
    );
    let (m, ok) = met_in(&cpu.iter().map(|c| *c < 1.0).collect::<Vec<_>>());
    b.target(TARGETS[0], format!("{}%{m}", range(&cpu, 3)), ok);
    let (m, ok) = met_in(&rss.iter().map(|r| *r < 20.0).collect::<Vec<_>>());
    b.target(TARGETS[1], format!("{} MB{m}", range(&rss, 1)), ok);
}

impl Bench {
    /// A worker with 10 tubes, idle; then how fast it starts a new job,
    /// next to a raw connection that was blocked in `reserve` as long.
    async fn idle(&mut self) -> Idle {
        let srv = self.server(false);
        let mut child = ChildProc::spawn(&args(&[
            "--worker-only",
            "--url",
            &srv.url(),
            "--tubes",
            &IDLE_TUBES.join(","),
        ]));
        child.line("READY", Duration::from_secs(30)).await;
        let probes = self.plan.idle_probes;
        let mut raw_child = ChildProc::spawn(&args(&[
            "--raw-recv-only",
            "--addr",
            &srv.addr(),
            "--tube",
            RAW_IDLE_TUBE,
            "--n",
            &probes.to_string(),
            "--series",
            "RAW_IDLE",
        ]));
        raw_child.line("READY", Duration::from_secs(30)).await;
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
            put_timestamp(&mut put).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let lines = child.stop().await;
        let l = series_line(&lines, "IDLE");
        assert_eq!(kv(l, "n") as usize, probes);
        let raw_lines = raw_child.stop().await;
        let r = series_line(&raw_lines, "RAW_IDLE");
        self.note(format!(
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
            raw_p50_ms: kv(r, "p50_ns") / 1e6,
            raw_max_ms: kv(r, "max_ns") / 1e6,
        }
    }
}
