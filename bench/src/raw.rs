//! The raw clients that set the ceilings: minimal pipelined clients over the
//! project's sans-IO protocol layer (`bsjobs::proto`), nothing of bsjobs'
//! client or worker. Every bsjobs figure is read against one of these,
//! measured in the same run.

use crate::jobs::now_ns;
use crate::proc::pct;
use bsjobs::proto::stats::{ServerStats, TubeStats};
use bsjobs::proto::{Command, Connection, Response};
use bsjobs::ClientConfig;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The tube of the drained no-op job.
pub(crate) const NOOP: &str = crate::jobs::Noop::TUBE;
/// Puts per window of the raw put ceiling.
pub(crate) const WINDOW: usize = 1000;

pub(crate) async fn raw(addr: &str) -> Connection {
    Connection::connect(addr, &ClientConfig::default())
        .await
        .expect("raw connect")
}

pub(crate) async fn raw_use(c: &mut Connection, tube: &str) {
    match c.request(&Command::Use(tube)).await.expect("use") {
        Response::Using(_) => {}
        r => panic!("use: {r:?}"),
    }
}

pub(crate) async fn raw_watch(c: &mut Connection, tube: &str) {
    c.queue(&Command::Watch(tube));
    c.queue(&Command::Ignore("default"));
    c.flush().await.expect("watch");
    for _ in 0..2 {
        match c.recv().await.expect("watch reply") {
            Response::Watching(_) => {}
            r => panic!("watch/ignore: {r:?}"),
        }
    }
}

/// The body a generated `Noop::new(n)` puts: the envelope of `{"n":n}`.
pub(crate) fn noop_body(out: &mut Vec<u8>, n: u64) {
    out.clear();
    let _ = write!(out, "{{\"v\":1,\"args\":{{\"n\":{n}}}");
    if crate::otel::on() {
        out.extend_from_slice(crate::otel::META.as_bytes());
    }
    out.push(b'}');
}

/// Windows of commands kept on the wire by the raw ceilings: while the
/// replies of one window are read, the next one is already written, so the
/// server never waits for the client.
pub(crate) const DEPTH: usize = 2;
/// (depth, window) shapes of the raw reserve+delete ceiling; the best counts.
pub(crate) const RD_SHAPES: [(usize, usize); 3] = [(1, 500), (2, 100), (2, 250)];
/// Shape of the raw drain in the mixed ceiling.
pub(crate) const RD_MIXED: (usize, usize) = (2, 250);

/// Pipelined puts: encode a window, one write; [`DEPTH`] windows in flight;
/// `n` puts or until `stop`. Returns (puts, seconds).
pub(crate) async fn raw_put(
    addr: &str,
    tube: &str,
    n: u64,
    stop: Option<&AtomicBool>,
) -> (u64, f64) {
    raw_put_shaped(addr, tube, n, (DEPTH, WINDOW), stop).await
}

async fn raw_put_shaped(
    addr: &str,
    tube: &str,
    n: u64,
    (depth, window): (usize, usize),
    stop: Option<&AtomicBool>,
) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_use(&mut c, tube).await;
    let mut body = Vec::with_capacity(64);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut done = 0u64;
    let mut windows = std::collections::VecDeque::new();
    loop {
        while windows.len() < depth && sent < n && !stop.is_some_and(|s| s.load(Ordering::Relaxed))
        {
            let k = (n - sent).min(window as u64);
            for i in 0..k {
                noop_body(&mut body, sent + i);
                c.queue(&Command::Put {
                    pri: 1024,
                    delay: 0,
                    ttr: 60,
                    body: &body,
                });
            }
            c.flush().await.expect("put flush");
            sent += k;
            windows.push_back(k);
        }
        let Some(k) = windows.pop_front() else { break };
        for _ in 0..k {
            match c.recv().await.expect("put reply") {
                Response::Inserted(_) => done += 1,
                r => panic!("put: {r:?}"),
            }
        }
    }
    (done, t0.elapsed().as_secs_f64())
}

/// Pipelined drain: each write carries the deletes of the last batch read
/// and `window` `reserve-with-timeout 0`; `depth` writes in flight. Ends
/// when the tube is empty, or (with `stop`) when told. Returns (jobs
/// deleted, seconds).
///
/// beanstalkd's cost per command grows with the number of jobs one
/// connection holds reserved (deleting the job with the soonest deadline
/// makes it walk the connection's whole reserved list again), so the
/// biggest window is not the fastest: the ceiling tries [`RD_SHAPES`].
pub(crate) async fn raw_drain(
    addr: &str,
    tube: &str,
    (depth, window): (usize, usize),
    stop: Option<&AtomicBool>,
) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_watch(&mut c, tube).await;
    // Per write in flight: (deletes, reserves).
    let mut windows: std::collections::VecDeque<(usize, usize)> = Default::default();
    let mut ids: Vec<u64> = Vec::with_capacity(window);
    let mut done = 0u64;
    let mut empty = false;
    let t0 = Instant::now();
    loop {
        let stopping = match stop {
            Some(s) => s.load(Ordering::Relaxed),
            None => empty,
        };
        while windows.len() < depth {
            let deletes = ids.len();
            for id in ids.drain(..) {
                c.queue(&Command::Delete(id));
            }
            let reserves = if stopping { 0 } else { window };
            for _ in 0..reserves {
                c.queue(&Command::ReserveWithTimeout(0));
            }
            if deletes == 0 && reserves == 0 {
                break;
            }
            c.flush().await.expect("drain flush");
            windows.push_back((deletes, reserves));
        }
        let Some((deletes, reserves)) = windows.pop_front() else {
            break;
        };
        for _ in 0..deletes {
            match c.recv().await.expect("delete reply") {
                Response::Deleted => done += 1,
                r => panic!("delete: {r:?}"),
            }
        }
        let mut got = 0;
        for _ in 0..reserves {
            match c.recv().await.expect("reserve reply") {
                Response::Reserved { id, .. } => {
                    ids.push(id);
                    got += 1;
                }
                Response::TimedOut => empty = true,
                r => panic!("reserve: {r:?}"),
            }
        }
        if got == 0 && reserves > 0 && stop.is_some() && !stopping {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (done, t0.elapsed().as_secs_f64())
}

pub(crate) async fn seq_put(addr: &str, tube: &str, n: u64) -> f64 {
    let mut c = raw(addr).await;
    raw_use(&mut c, tube).await;
    let mut body = Vec::with_capacity(64);
    let t0 = Instant::now();
    for i in 0..n {
        noop_body(&mut body, i);
        match c
            .request(&Command::Put {
                pri: 1024,
                delay: 0,
                ttr: 60,
                body: &body,
            })
            .await
            .expect("put")
        {
            Response::Inserted(_) => {}
            r => panic!("put: {r:?}"),
        }
    }
    t0.elapsed().as_secs_f64()
}

pub(crate) async fn seq_reserve_delete(addr: &str, tube: &str) -> (u64, f64) {
    let mut c = raw(addr).await;
    raw_watch(&mut c, tube).await;
    let t0 = Instant::now();
    let mut n = 0;
    loop {
        match c
            .request(&Command::ReserveWithTimeout(0))
            .await
            .expect("reserve")
        {
            Response::Reserved { id, .. } => {
                match c.request(&Command::Delete(id)).await.expect("delete") {
                    Response::Deleted => n += 1,
                    r => panic!("delete: {r:?}"),
                }
            }
            Response::TimedOut => break,
            r => panic!("reserve: {r:?}"),
        }
    }
    (n, t0.elapsed().as_secs_f64())
}

pub(crate) async fn server_stats(addr: &str) -> ServerStats {
    let mut c = raw(addr).await;
    match c.request(&Command::Stats).await.expect("stats") {
        Response::Ok(body) => ServerStats::parse(&body).expect("stats yaml"),
        r => panic!("stats: {r:?}"),
    }
}

pub(crate) fn server_cpu(s: &ServerStats) -> f64 {
    s.rusage_utime + s.rusage_stime
}

/// Sleeps until `at` unless it has passed.
pub(crate) async fn until(at: tokio::time::Instant) {
    if tokio::time::Instant::now() < at {
        tokio::time::sleep_until(at).await;
    }
}

pub(crate) fn parse_ns(body: &[u8]) -> u64 {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("timestamp body")
}

/// One put of a timestamp body (the raw latency probes).
pub(crate) async fn put_timestamp(c: &mut Connection) {
    let body = now_ns().to_string();
    match c
        .request(&Command::Put {
            pri: 1024,
            delay: 0,
            ttr: 60,
            body: body.as_bytes(),
        })
        .await
        .expect("put")
    {
        Response::Inserted(_) => {}
        r => panic!("put: {r:?}"),
    }
}

/// The raw latency reference: one connection blocked in `reserve` on
/// `tube`; each job's body is the time it was put, and the receiver records
/// put → reserved, then queues the delete with the next `reserve`. Calls
/// `ready` once its first `reserve` is on the wire; returns after `n` jobs.
pub(crate) async fn receive_timestamps(
    addr: &str,
    tube: &str,
    n: usize,
    ready: impl FnOnce(),
) -> Vec<u64> {
    let mut c = raw(addr).await;
    raw_watch(&mut c, tube).await;
    c.queue(&Command::Reserve);
    c.flush().await.expect("reserve");
    ready();
    let mut lats = Vec::with_capacity(n);
    while lats.len() < n {
        match c.recv_within(None).await.expect("reserve reply") {
            Response::Reserved { id, body } => {
                lats.push(now_ns().saturating_sub(parse_ns(&body)));
                c.queue(&Command::Delete(id));
                if lats.len() < n {
                    c.queue(&Command::Reserve);
                }
                c.flush().await.expect("delete+reserve");
            }
            Response::Deleted => {}
            r => panic!("raw receiver: {r:?}"),
        }
    }
    // The last delete's reply.
    match c.recv().await.expect("delete reply") {
        Response::Deleted => {}
        r => panic!("raw receiver delete: {r:?}"),
    }
    lats
}

/// A connection kept open for `stats` and `stats-tube` through a scenario,
/// so that it counts as one steady connection of the bench's own.
pub(crate) struct StatsConn(Connection);

impl StatsConn {
    pub(crate) async fn open(addr: &str) -> StatsConn {
        StatsConn(raw(addr).await)
    }

    pub(crate) async fn server(&mut self) -> ServerStats {
        match self.0.request(&Command::Stats).await.expect("stats") {
            Response::Ok(body) => ServerStats::parse(&body).expect("stats yaml"),
            r => panic!("stats: {r:?}"),
        }
    }

    /// `None` when the tube does not exist (yet).
    pub(crate) async fn tube(&mut self, tube: &str) -> Option<TubeStats> {
        match self
            .0
            .request(&Command::StatsTube(tube))
            .await
            .expect("stats-tube")
        {
            Response::Ok(body) => Some(TubeStats::parse(&body).expect("stats-tube yaml")),
            Response::NotFound => None,
            r => panic!("stats-tube: {r:?}"),
        }
    }
}

/// Latency samples summarised: (p50, p90, p99, max), in the samples' unit.
pub(crate) fn quantiles(mut v: Vec<u64>) -> [u64; 4] {
    v.sort_unstable();
    [
        pct(&v, 0.50),
        pct(&v, 0.90),
        pct(&v, 0.99),
        v.last().copied().unwrap_or(0),
    ]
}
