//! Throughput over the last minutes, from samples of the tubes' counters
//! (`total-jobs` and `cmd-delete` of each tube, summed over servers).

use crate::Inner;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Samples kept: 10 minutes at one per 5 s.
const KEEP: Duration = Duration::from_secs(600);
/// Samples closer together than this are not kept.
const MIN_GAP: Duration = Duration::from_secs(2);
/// How often the background task samples.
pub(crate) const EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// tube → (puts, deletes) since each server started.
    tubes: HashMap<String, (u64, u64)>,
}

/// Rates of one tube, per minute.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Rates {
    /// Jobs put per minute over the last minute (or what is known of it).
    pub(crate) put_per_min: f64,
    /// Deletes (finished jobs) per minute over the last minute.
    pub(crate) done_per_min: f64,
    /// Deletes per minute between consecutive samples, oldest first, over
    /// the last 10 minutes: the sparkline.
    pub(crate) series: Vec<f64>,
}

impl History {
    /// Records counters, unless a sample was taken less than [`MIN_GAP`] ago.
    pub(crate) fn record(&self, tubes: impl Iterator<Item = (String, u64, u64)>) {
        let now = Instant::now();
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if s.back().is_some_and(|b| now.duration_since(b.at) < MIN_GAP) {
            return;
        }
        s.push_back(Sample {
            at: now,
            tubes: tubes.map(|(n, p, d)| (n, (p, d))).collect(),
        });
        while s.front().is_some_and(|f| now.duration_since(f.at) > KEEP) {
            s.pop_front();
        }
    }

    /// Rates of `tube` from the samples kept.
    pub(crate) fn rates(&self, tube: &str) -> Rates {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let get = |x: &Sample| x.tubes.get(tube).copied().unwrap_or((0, 0));
        let per_min = |a: &Sample, b: &Sample, f: fn((u64, u64)) -> u64| {
            let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
            f(get(b)).saturating_sub(f(get(a))) as f64 * 60.0 / secs
        };
        let mut r = Rates::default();
        if let Some(last) = s.back() {
            let minute_ago = s
                .iter()
                .find(|x| last.at.duration_since(x.at) <= Duration::from_secs(65))
                .unwrap_or(last);
            if minute_ago.at < last.at {
                r.put_per_min = per_min(minute_ago, last, |c| c.0);
                r.done_per_min = per_min(minute_ago, last, |c| c.1);
            }
        }
        r.series = s
            .iter()
            .zip(s.iter().skip(1))
            .map(|(a, b)| per_min(a, b, |c| c.1))
            .collect();
        r
    }

    /// Seconds covered by the samples.
    pub(crate) fn span(&self) -> u64 {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        match (s.front(), s.back()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs(),
            _ => 0,
        }
    }
}

/// Starts the background sampler, if inside a tokio runtime and not yet
/// started for this dashboard. It holds the dashboard weakly and ends when
/// the last router is dropped.
pub(crate) fn start_sampler(inner: &Arc<Inner>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if inner
        .sampling
        .swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        return;
    }
    let weak: Weak<Inner> = Arc::downgrade(inner);
    rt.spawn(async move {
        while let Some(inner) = weak.upgrade() {
            if let Ok(o) = inner.admin.overview(false).await {
                inner.history.record(
                    o.tubes
                        .into_iter()
                        .map(|t| (t.name, t.total_jobs, t.deletes)),
                );
            }
            drop(inner);
            tokio::time::sleep(EVERY).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_differences_between_samples() {
        let h = History::default();
        let t0 = Instant::now();
        {
            let mut s = h.samples.lock().unwrap();
            for (i, (puts, dels)) in [(0u64, 0u64), (60, 30), (180, 90)].into_iter().enumerate() {
                s.push_back(Sample {
                    at: t0 + Duration::from_secs(30 * i as u64),
                    tubes: [("t".to_owned(), (puts, dels))].into(),
                });
            }
        }
        let r = h.rates("t");
        // 180 puts and 90 deletes over 60 s.
        assert!((r.put_per_min - 180.0).abs() < 1e-6, "{r:?}");
        assert!((r.done_per_min - 90.0).abs() < 1e-6, "{r:?}");
        assert_eq!(r.series.len(), 2);
        assert!((r.series[1] - 120.0).abs() < 1e-6, "{r:?}");
        assert_eq!(h.rates("absent").done_per_min, 0.0);
        assert_eq!(h.span(), 60);
    }
}
