//! Drain rate and worker memory across backlog sizes: both should stay flat.

use crate::{progress, ratio, sep, Bench};

pub(crate) const TARGETS: &[&str] = &["drain flat ±15% across backlog sizes"];

pub(crate) async fn run(b: &mut Bench) {
    let mut flat = Vec::new();
    for size in b.plan.flat.clone() {
        progress(&format!("drain flatness: {size}"));
        let d = b.drain(size, b.best_conc, false).await;
        b.row(
            format!(
                "drain flatness: backlog {}, {}",
                sep(size as f64),
                d.label()
            ),
            sep(d.rate()),
            "jobs/s",
            ratio(d.rate(), b.ceil.rd, "r+d ceiling"),
        );
        b.row(
            format!(
                "drain flatness: backlog {}, worker peak RSS",
                sep(size as f64)
            ),
            format!("{:.1}", d.hwm_kb as f64 / 1024.0),
            "MB",
            "-".into(),
        );
        flat.push(d.rate());
    }
    if flat.len() >= 2 {
        let mean = flat.iter().sum::<f64>() / flat.len() as f64;
        let spread = flat
            .iter()
            .map(|r| (r - mean).abs() / mean)
            .fold(0.0, f64::max);
        b.target(
            TARGETS[0],
            format!(
                "{} jobs/s: largest deviation from their mean {:.0}%",
                flat.iter().map(|r| sep(*r)).collect::<Vec<_>>().join(" / "),
                spread * 100.0
            ),
            spread <= 0.15,
        );
    }
}
