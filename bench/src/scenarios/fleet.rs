//! Several beanstalkd servers behind one URL (`beanstalk://a,b,…`): the
//! aggregate rate of `Job::enqueue` from 64 tasks of one producer child, and
//! of one worker child (`concurrency(256)`) draining them, with 1, 2 and 4
//! servers. Each figure is read against the 1-server figure of the same run,
//! and each server's share of the jobs and the CPU its beanstalkd used are
//! printed with it.
//!
//! beanstalkd is single-threaded, so the aggregate can only grow with the
//! servers when there are cores to run them, the producer and the worker on;
//! `nproc` is printed next to the rows so the result can be read on bigger
//! machines.

use crate::proc::{kv, proc_cpu_s, ChildProc};
use crate::raw::{raw_put, server_cpu, StatsConn, NOOP};
use crate::{args, progress, sep, Bench};
use bsjobs::proto::stats::ServerStats;
use bsjobs::testing::Beanstalkd;
use std::time::Duration;

/// The fleet sizes measured; the first is the base of every ratio.
const SIZES: [usize; 3] = [1, 2, 4];

pub(crate) async fn run(b: &mut Bench) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    b.row(
        "fleet: nproc (cores for the servers, the producer and the worker)",
        nproc.to_string(),
        "CPUs",
        "-".into(),
    );
    let mut base = None;
    for k in SIZES {
        progress(&format!("fleet: enqueue, 64 tasks, {k} server(s)"));
        let f = b.best_of(k, Side::Enqueue).await;
        let one = *base.get_or_insert(f.rate);
        b.row(
            format!(
                "fleet: Job::enqueue, 64 tasks, {k} server(s) (per server: {})",
                f.per_server()
            ),
            sep(f.rate),
            "jobs/s",
            format!("{:.2}× of 1 server", f.rate / one),
        );
    }
    let mut base = None;
    for k in SIZES {
        progress(&format!("fleet: drain, {k} server(s)"));
        let f = b.best_of(k, Side::Drain).await;
        let one = *base.get_or_insert(f.rate);
        b.row(
            format!(
                "fleet: drain, one worker, concurrency(256), {k} server(s) (per server: {})",
                f.per_server()
            ),
            sep(f.rate),
            "jobs/s",
            format!("{:.2}× of 1 server", f.rate / one),
        );
    }
    b.note(format!(
        "fleet: {nproc} CPUs (nproc); beanstalkd is single-threaded, so with N servers the aggregate \
         can grow only while N servers, the producer (or worker) and the bench find free cores: on 2 \
         cores expect little gain. Per server: its share of the puts (enqueue, `cmd-put`) or deletes \
         (drain, `cmd-delete`) and its CPU as % of one core over the measured time; each figure the \
         best of {} runs, fresh servers each run; drain rate = jobs / time from the worker's READY \
         until every server's tube was empty",
        b.plan.ceiling_runs
    ));
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Enqueue,
    Drain,
}

/// One measurement on a fleet.
struct Fleet {
    /// Aggregate jobs/s.
    rate: f64,
    /// Per server: (share of the jobs, CPU as a fraction of one core).
    servers: Vec<(f64, f64)>,
}

impl Fleet {
    fn per_server(&self) -> String {
        self.servers
            .iter()
            .map(|(share, cpu)| format!("{:.0}% of jobs, {:.0}% CPU", 100.0 * share, 100.0 * cpu))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// `beanstalk://a,b,…` for `servers`.
fn fleet_url(servers: &[Beanstalkd]) -> String {
    format!(
        "beanstalk://{}",
        servers
            .iter()
            .map(Beanstalkd::addr)
            .collect::<Vec<_>>()
            .join(",")
    )
}

async fn stats_all(conns: &mut [StatsConn]) -> Vec<ServerStats> {
    let mut out = Vec::with_capacity(conns.len());
    for c in conns {
        out.push(c.server().await);
    }
    out
}

/// Per server: (its part of the total of `count`, CPU over `secs`).
fn shares(
    s0: &[ServerStats],
    s1: &[ServerStats],
    secs: f64,
    count: impl Fn(&ServerStats) -> u64,
) -> (u64, Vec<(f64, f64)>) {
    let parts: Vec<u64> = s0
        .iter()
        .zip(s1)
        .map(|(a, b)| count(b) - count(a))
        .collect();
    let total: u64 = parts.iter().sum();
    let servers = parts
        .iter()
        .zip(s0.iter().zip(s1))
        .map(|(p, (a, b))| {
            (
                *p as f64 / total.max(1) as f64,
                (server_cpu(b) - server_cpu(a)) / secs,
            )
        })
        .collect();
    (total, servers)
}

impl Bench {
    /// Best of `ceiling_runs` runs on `k` fresh servers.
    async fn best_of(&mut self, k: usize, side: Side) -> Fleet {
        let mut best: Option<Fleet> = None;
        for _ in 0..self.plan.ceiling_runs {
            let f = match side {
                Side::Enqueue => self.enqueue_fleet(k).await,
                Side::Drain => self.drain_fleet(k).await,
            };
            if best.as_ref().is_none_or(|b| f.rate > b.rate) {
                best = Some(f);
            }
        }
        best.expect("at least one run")
    }

    /// `Job::enqueue` of `plan.jobs` no-op jobs (and one warm-up job) from 64
    /// tasks of one producer child, against `k` servers named in one URL.
    async fn enqueue_fleet(&mut self, k: usize) -> Fleet {
        let servers: Vec<Beanstalkd> = (0..k).map(|_| self.server(false)).collect();
        let n = self.plan.jobs;
        let mut conns = Vec::with_capacity(k);
        for s in &servers {
            conns.push(StatsConn::open(&s.addr()).await);
        }
        let s0 = stats_all(&mut conns).await;
        let mut child = ChildProc::spawn(&args(&[
            "--enqueue-only",
            "--url",
            &fleet_url(&servers),
            "--mode",
            "conc",
            "--jobs",
            &n.to_string(),
            "--tasks",
            "64",
        ]));
        let line = child.line("RESULT", Duration::from_secs(600)).await;
        child.wait_exit().await;
        let s1 = stats_all(&mut conns).await;
        let secs = kv(&line, "secs");
        let (total, per) = shares(&s0, &s1, secs, |s| s.cmd_put);
        assert_eq!(total, n + 1, "every job (and the warm-up) is in");
        let f = Fleet {
            rate: n as f64 / secs,
            servers: per,
        };
        self.note(format!(
            "fleet enqueue, {k} server(s): {} jobs/s; producer CPU per job {:.1} µs (whole process); per server: {}",
            sep(f.rate),
            1e6 * kv(&line, "cpu_s") / n as f64,
            f.per_server()
        ));
        f
    }

    /// One worker child (`concurrency(256)`) draining `k` servers named in
    /// one URL, each prefilled by the raw client with an equal share of the
    /// `plan.jobs` no-op jobs.
    async fn drain_fleet(&mut self, k: usize) -> Fleet {
        let servers: Vec<Beanstalkd> = (0..k).map(|_| self.server(false)).collect();
        let per = self.plan.jobs / k as u64;
        let n = per * k as u64;
        for s in &servers {
            raw_put(&s.addr(), NOOP, per, None).await;
        }
        let mut conns = Vec::with_capacity(k);
        for s in &servers {
            conns.push(StatsConn::open(&s.addr()).await);
        }
        let s0 = stats_all(&mut conns).await;
        let mut child = ChildProc::spawn(&args(&[
            "--worker-only",
            "--url",
            &fleet_url(&servers),
            "--tubes",
            NOOP,
            "--concurrency",
            "256",
            "--expect",
            &n.to_string(),
        ]));
        child.line("READY", Duration::from_secs(30)).await;
        // The bench's clock starts when the worker says it runs (a little
        // after the child's own), and stops when every server's tube is
        // empty: the child waits for the first server's tube only.
        let t0 = std::time::Instant::now();
        let done = child.line("DONE", Duration::from_secs(1800)).await;
        let handlers_s = kv(&done, "handlers_s");
        let worker_cpu_s = proc_cpu_s(child.pid);
        for c in conns.iter_mut() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let t = c.tube(NOOP).await.expect("the prefilled tube");
                if t.current_jobs_ready + t.current_jobs_reserved == 0 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "fleet drain: a server's tube not empty 30 s after the last handler"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let s1 = stats_all(&mut conns).await;
        child.stop().await;
        let (total, per_server) = shares(&s0, &s1, secs, |s| s.cmd_delete);
        assert_eq!(total, n, "every job was deleted once");
        let f = Fleet {
            rate: n as f64 / secs,
            servers: per_server,
        };
        self.note(format!(
            "fleet drain, {k} server(s): {} jobs/s until every tube was empty ({} jobs/s until every handler ran, child's clock); \
             worker CPU per job {:.1} µs; per server: {}",
            sep(f.rate),
            sep(n as f64 / handlers_s),
            1e6 * worker_cpu_s / n as f64,
            f.per_server()
        ));
        f
    }
}
