//! Enqueue → handler start at a steady rate (one producer task), next to a
//! raw connection blocked in `reserve` measuring put → reserved. Both
//! receivers run in a child process of their own (the worker with default
//! settings, the raw one with `--raw-recv-only`); both producers run in the
//! bench. Each pair runs `plan.repeat` times, each on fresh servers; the
//! rows give min–max over the runs and the ratios are taken per run.

use crate::jobs::{now_ns, Lat};
use crate::proc::{kv, series_line, ChildProc};
use crate::raw::{put_timestamp, raw, raw_use, until};
use crate::{args, met_in, progress, range, Bench};
use bsjobs::Client;
use std::time::Duration;

pub(crate) const TARGETS: &[&str] = &["latency p50 ≤ 2× raw p50", "latency p99 < 1 ms"];

/// Warm-up jobs, not counted.
const WARM: u64 = 100;

pub(crate) async fn run(b: &mut Bench) {
    let rate = b.plan.lat_rate;
    let (mut raws, mut ours) = (Vec::new(), Vec::new());
    for i in 0..b.plan.repeat {
        progress(&format!("latency: raw, run {}", i + 1));
        raws.push(b.latency_raw().await);
        progress(&format!("latency: bsjobs, run {}", i + 1));
        ours.push(b.latency_bsjobs().await);
    }
    let col = |v: &[[f64; 3]], k: usize| v.iter().map(|x| x[k]).collect::<Vec<f64>>();
    let runs = b.plan.repeat;
    for (k, q) in ["p50", "p99", "max"].iter().enumerate() {
        b.row(
            format!("latency raw put→reserved @{rate}/s, {runs} run(s): {q}"),
            range(&col(&raws, k), 0),
            "µs",
            format!("1.00 (raw {q})"),
        );
    }
    for (k, q) in ["p50", "p99", "max"].iter().enumerate() {
        let ratios: Vec<f64> = ours.iter().zip(&raws).map(|(o, r)| o[k] / r[k]).collect();
        b.row(
            format!("latency enqueue→handler @{rate}/s, worker default, {runs} run(s): {q}"),
            range(&col(&ours, k), 0),
            "µs",
            format!("{} of raw {q}", range(&ratios, 2)),
        );
    }
    let ok50: Vec<bool> = ours
        .iter()
        .zip(&raws)
        .map(|(o, r)| o[0] <= 2.0 * r[0])
        .collect();
    let (m, ok) = met_in(&ok50);
    let ratios: Vec<f64> = ours.iter().zip(&raws).map(|(o, r)| o[0] / r[0]).collect();
    b.target(
        TARGETS[0],
        format!(
            "{} µs vs {} µs ({}×){m}",
            range(&col(&ours, 0), 0),
            range(&col(&raws, 0), 0),
            range(&ratios, 2)
        ),
        ok,
    );
    let ok99: Vec<bool> = ours.iter().map(|o| o[1] < 1000.0).collect();
    let (m, ok) = met_in(&ok99);
    b.target(
        TARGETS[1],
        format!("{} µs{m}", range(&col(&ours, 1), 0)),
        ok,
    );
}

/// (p50, p99, max) in µs from a child's series line.
fn quantiles_us(line: &str) -> [f64; 3] {
    [
        kv(line, "p50_ns") / 1e3,
        kv(line, "p99_ns") / 1e3,
        kv(line, "max_ns") / 1e3,
    ]
}

impl Bench {
    fn latency_jobs(&self) -> u64 {
        WARM + self.plan.lat_rate * self.plan.lat.as_secs()
    }

    /// enqueue → handler start through bsjobs (default worker settings, one
    /// producer task at a steady rate). Returns (p50, p99, max) in µs.
    async fn latency_bsjobs(&mut self) -> [f64; 3] {
        let srv = self.server(false);
        let mut child = ChildProc::spawn(&args(&[
            "--worker-only",
            "--url",
            &srv.url(),
            "--tubes",
            Lat::TUBE,
            "--skip",
            &WARM.to_string(),
        ]));
        child.line("READY", Duration::from_secs(30)).await;
        let client = Client::new(&srv.url()).expect("client");
        client.stats(0).await.expect("warm client");
        // Let the worker connect and settle into its reserve.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = self.latency_jobs();
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
        let l = series_line(&lines, "LAT");
        assert_eq!(kv(l, "n") as u64, n - WARM, "every latency job ran");
        quantiles_us(l)
    }

    /// The same with the raw client: a child blocked in `reserve` measures
    /// put → reserved of the timestamps this process puts.
    async fn latency_raw(&mut self) -> [f64; 3] {
        let srv = self.server(false);
        let n = self.latency_jobs();
        let mut child = ChildProc::spawn(&args(&[
            "--raw-recv-only",
            "--addr",
            &srv.addr(),
            "--tube",
            Lat::TUBE,
            "--n",
            &n.to_string(),
            "--skip",
            &WARM.to_string(),
            "--series",
            "LAT",
        ]));
        child.line("READY", Duration::from_secs(30)).await;
        let mut c = raw(&srv.addr()).await;
        raw_use(&mut c, Lat::TUBE).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let every = Duration::from_nanos(1_000_000_000 / self.plan.lat_rate);
        let start = tokio::time::Instant::now();
        for i in 0..n {
            until(start + every * i as u32).await;
            put_timestamp(&mut c).await;
        }
        let lines = child.stop().await;
        let l = series_line(&lines, "LAT");
        assert_eq!(kv(l, "n") as u64, n - WARM, "every raw latency job arrived");
        quantiles_us(l)
    }
}
