//! Prometheus metrics of a worker, built on its [hooks](crate::hook) and
//! served over HTTP when asked ([`Worker::metrics`](crate::Worker::metrics)
//! or `BSJOBS_METRICS_ADDR`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bsjobs_jobs_succeeded_total` | counter | tube |
//! | `bsjobs_jobs_failed_total` (will retry) | counter | tube |
//! | `bsjobs_jobs_buried_total` | counter | tube |
//! | `bsjobs_jobs_undecodable_total` | counter | tube |
//! | `bsjobs_job_duration_seconds` | histogram | tube |
//! | `bsjobs_queue_latency_seconds` (due → start) | histogram | tube |
//! | `bsjobs_jobs_in_flight` | gauge | tube |
//! | `bsjobs_queue_jobs` (read from beanstalkd at each scrape) | gauge | tube, server, state |

use crate::client::Client;
use crate::hook::{Event, Hook};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

type Labels = Vec<(&'static str, String)>;

fn tube(t: &str) -> Labels {
    vec![("tube", t.to_owned())]
}

fn seconds() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The metrics of one worker.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    succeeded: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    buried: Family<Labels, Counter>,
    undecodable: Family<Labels, Counter>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Family<Labels, Gauge>,
    depth: Family<Labels, Gauge>,
}

impl Metrics {
    pub(crate) fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("bsjobs");
        let m = Metrics {
            succeeded: Family::default(),
            failed: Family::default(),
            buried: Family::default(),
            undecodable: Family::default(),
            duration: Family::new_with_constructor(seconds),
            latency: Family::new_with_constructor(seconds),
            in_flight: Family::default(),
            depth: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "jobs_succeeded",
            "Jobs whose handler succeeded",
            m.succeeded.clone(),
        );
        registry.register(
            "jobs_failed",
            "Jobs whose handler failed and that will be retried",
            m.failed.clone(),
        );
        registry.register("jobs_buried", "Jobs given up and buried", m.buried.clone());
        registry.register(
            "jobs_undecodable",
            "Jobs whose body could not be decoded (buried unrun)",
            m.undecodable.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "How long handlers ran",
            m.duration.clone(),
        );
        registry.register(
            "queue_latency_seconds",
            "From when a job was due to when its handler started",
            m.latency.clone(),
        );
        registry.register(
            "jobs_in_flight",
            "Handlers running now",
            m.in_flight.clone(),
        );
        registry.register(
            "queue_jobs",
            "Jobs in beanstalkd by tube, server and state, read at each scrape",
            m.depth.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// The exposition of every metric in Prometheus' text format 0.0.4,
    /// which any Prometheus (and `promtool check metrics`) reads.
    pub(crate) fn render(&self) -> String {
        let mut open = String::new();
        let _ = encode(&mut open, &self.registry);
        to_text_format(&open)
    }

    /// Reads the depth of every tube from every server.
    async fn refresh(&self, client: &Client, tubes: &[&'static str]) {
        let servers = client.config().servers.clone();
        for (i, server) in servers.iter().enumerate() {
            for t in tubes {
                let read = tokio::time::timeout(Duration::from_secs(2), client.stats_tube(i, t));
                let (ready, reserved, delayed, buried) = match read.await {
                    Ok(Ok(s)) => (
                        s.current_jobs_ready,
                        s.current_jobs_reserved,
                        s.current_jobs_delayed,
                        s.current_jobs_buried,
                    ),
                    Ok(Err(crate::Error::NotFound)) => (0, 0, 0, 0),
                    _ => continue,
                };
                for (state, n) in [
                    ("ready", ready),
                    ("reserved", reserved),
                    ("delayed", delayed),
                    ("buried", buried),
                ] {
                    let labels = vec![
                        ("tube", (*t).to_owned()),
                        ("server", server.clone()),
                        ("state", state.to_owned()),
                    ];
                    self.depth
                        .get_or_create(&labels)
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
    }
}

/// prometheus-client writes OpenMetrics: a counter's family is named
/// without `_total` and the text ends with `# EOF`. The 0.0.4 text format
/// names the family as its samples are named; rewrite those two things.
fn to_text_format(open: &str) -> String {
    let counters: Vec<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" {
            continue;
        }
        let mut written = false;
        for c in &counters {
            for kind in ["# HELP ", "# TYPE "] {
                if let Some(rest) = line.strip_prefix(kind) {
                    if let Some(tail) = rest.strip_prefix(c) {
                        if tail.starts_with(' ') {
                            out.push_str(&format!("{kind}{c}_total{tail}\n"));
                            written = true;
                        }
                    }
                }
            }
            if written {
                break;
            }
        }
        if !written {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The hook that feeds [`Metrics`].
#[derive(Debug, Clone)]
pub(crate) struct MetricsHook(pub(crate) Arc<Metrics>);

impl Hook for MetricsHook {
    fn on_event(&self, event: &Event<'_>) {
        let m = &self.0;
        match event {
            Event::Started { job, waited } => {
                m.in_flight.get_or_create(&tube(job.tube)).inc();
                if let Some(w) = waited {
                    m.latency
                        .get_or_create(&tube(job.tube))
                        .observe(w.as_secs_f64());
                }
            }
            Event::Succeeded { job, took } => {
                m.in_flight.get_or_create(&tube(job.tube)).dec();
                m.succeeded.get_or_create(&tube(job.tube)).inc();
                m.duration
                    .get_or_create(&tube(job.tube))
                    .observe(took.as_secs_f64());
            }
            Event::Failed { job, took, .. } => {
                m.in_flight.get_or_create(&tube(job.tube)).dec();
                m.failed.get_or_create(&tube(job.tube)).inc();
                m.duration
                    .get_or_create(&tube(job.tube))
                    .observe(took.as_secs_f64());
            }
            Event::Buried { job, .. } => {
                m.in_flight.get_or_create(&tube(job.tube)).dec();
                m.buried.get_or_create(&tube(job.tube)).inc();
            }
            Event::Undecodable { tube: t, .. } => {
                m.undecodable.get_or_create(&tube(t)).inc();
            }
            Event::ChainEnded { .. } => {}
        }
    }
}

/// Serves `GET /metrics` on `addr` until `stop` fires.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    client: Client,
    tubes: Vec<&'static str>,
    stop: crate::worker::Shutdown,
) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve metrics");
            return;
        }
    };
    tracing::info!(addr = %listener.local_addr().map_or(addr, |a| a), "serving Prometheus metrics at /metrics");
    let tubes: Arc<[&'static str]> = tubes.into();
    loop {
        let (mut sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => continue,
            },
            _ = stop.wait() => return,
        };
        let (metrics, client, tubes) = (metrics.clone(), client.clone(), tubes.clone());
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // Read the request head, bounded in size and time.
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if head != Ok(true) {
                return;
            }
            let ok = req.starts_with(b"GET /metrics ") || req.starts_with(b"GET /metrics?");
            let response = if ok {
                metrics.refresh(&client, &tubes).await;
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
