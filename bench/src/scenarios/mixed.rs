//! Producers and a worker at once, for a fixed time: 16 enqueue tasks
//! sharing one `Client` and a worker child, against a raw pipelined producer
//! and a raw pipelined drain on the same kind of server.

use crate::jobs::Noop;
use crate::proc::ChildProc;
use crate::raw::{raw_drain, raw_put, server_stats, NOOP, RD_MIXED};
use crate::{args, progress, ratio, sep, Bench};
use bsjobs::Client;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) async fn run(b: &mut Bench) {
    progress("mixed: raw ceiling");
    let (mr, mr_put, mr_backlog) = b.mixed_raw().await;
    b.row(
        "ceiling: mixed, raw pipelined put + raw pipelined drain",
        sep(mr),
        "jobs/s",
        "1.00 (mixed ceiling)".into(),
    );
    progress("mixed: bsjobs");
    let p = b.plan.producers;
    let (mb, mb_put, mb_backlog) = b.mixed_bsjobs(b.best_conc).await;
    b.row(
        format!(
            "mixed: {p} enqueue tasks + worker {}, end to end",
            b.best_label()
        ),
        sep(mb),
        "jobs/s",
        ratio(mb, mr, "mixed ceiling"),
    );
    b.note(format!(
        "mixed over {:?}: raw {} puts/s and {} deletes/s, {} ready at the end; bsjobs {} puts/s and {} jobs/s done, {} ready at the end",
        b.plan.mixed,
        sep(mr_put),
        sep(mr),
        sep(mr_backlog as f64),
        sep(mb_put),
        sep(mb),
        sep(mb_backlog as f64)
    ));
}

impl Bench {
    /// Producer tasks sharing one Client and a worker in a child, for a
    /// fixed time. Returns (deletes/s, puts/s, ready at the end).
    async fn mixed_bsjobs(&mut self, conc: Option<usize>) -> (f64, f64, u64) {
        let srv = self.server(false);
        let mut a = args(&["--worker-only", "--url", &srv.url(), "--tubes", NOOP]);
        if let Some(c) = conc {
            a.extend(["--concurrency".into(), c.to_string()]);
        }
        let mut child = ChildProc::spawn(&a);
        child.line("READY", Duration::from_secs(30)).await;
        let client = Client::new(&srv.url()).expect("client");
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let p = self.plan.producers as u64;
        for t in 0..p {
            let (client, stop) = (client.clone(), stop.clone());
            set.spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    Noop::new(i)
                        .client(&client)
                        .enqueue()
                        .await
                        .expect("enqueue");
                    i += p;
                }
            });
        }
        let r = self.measure_window(&srv.addr()).await;
        stop.store(true, Ordering::Relaxed);
        while let Some(r) = set.join_next().await {
            r.expect("producer");
        }
        child.stop().await;
        r
    }

    async fn mixed_raw(&mut self) -> (f64, f64, u64) {
        let srv = self.server(false);
        let stop = Arc::new(AtomicBool::new(false));
        let addr = srv.addr();
        let (a1, s1) = (addr.clone(), stop.clone());
        let put = tokio::spawn(async move { raw_put(&a1, NOOP, u64::MAX, Some(&s1)).await });
        let (a2, s2) = (addr.clone(), stop.clone());
        let drain = tokio::spawn(async move { raw_drain(&a2, NOOP, RD_MIXED, Some(&s2)).await });
        let r = self.measure_window(&addr).await;
        stop.store(true, Ordering::Relaxed);
        put.await.expect("raw put");
        drain.await.expect("raw drain");
        r
    }

    async fn measure_window(&self, addr: &str) -> (f64, f64, u64) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let s0 = server_stats(addr).await;
        let t0 = Instant::now();
        tokio::time::sleep(self.plan.mixed).await;
        let s1 = server_stats(addr).await;
        let dt = t0.elapsed().as_secs_f64();
        (
            (s1.cmd_delete - s0.cmd_delete) as f64 / dt,
            (s1.cmd_put - s0.cmd_put) as f64 / dt,
            s1.current_jobs_ready,
        )
    }
}
