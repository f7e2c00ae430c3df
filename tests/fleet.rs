//! Three beanstalkd servers (with binlogs), producer processes enqueueing
//! through the generated API, one server kill -9'd and restarted twice
//! during the run. Then a worker drains all three.
//!
//! What must hold: no enqueue fails while at least one server is up (an
//! unknown outcome, a put cut off by the kill after it was written, is
//! counted and explained: it exists at most once); every acknowledged job
//! exists on the server its handle names and runs; nothing runs twice.
//!
//! Producers are this test binary run again as child processes (so the
//! client is exercised across processes, as in production); they print one
//! ledger line per job.

use bsjobs::testing::Beanstalkd;
use bsjobs::Client;
use bsjobs_tests::{init_tracing, spawn_worker, until};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CHILD: &str = "BSJOBS_FLEET_PRODUCER";
const PRODUCERS: u64 = 2;
const JOBS: u64 = 2000;

static RUNS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

#[bsjobs::job(tube = "fleet_fault")]
async fn fleet_fault(n: u64) {
    *RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(n)
        .or_insert(0) += 1;
}

/// The producer child: `JOBS` enqueues, a little paced, one line each.
fn producer(url: &str, p: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        Client::set_global(Client::new(url).unwrap());
        for i in 0..JOBS {
            let n = p * 1_000_000 + i;
            match FleetFault::enqueue(n).await {
                Ok(h) => println!("ok {n} {} {}", h.server, h.id),
                Err(bsjobs::Error::OutcomeUnknown { .. }) => println!("unknown {n}"),
                Err(e) => println!("err {n} {e}"),
            }
            if i % 25 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
}

use bsjobs_tests::KillOnDrop as Producer;

#[test]
fn producers_survive_a_server_killed_twice() {
    if let Ok(v) = std::env::var(CHILD) {
        let (p, url) = v.split_once(' ').unwrap();
        producer(url, p.parse().unwrap());
        return;
    }
    init_tracing();
    let base = std::env::temp_dir().join(format!("bsjobs-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut servers: Vec<Beanstalkd> = (0..3)
        .map(|i| {
            Beanstalkd::builder()
                .binlog(base.join(i.to_string()))
                .start()
        })
        .collect();
    let url = format!(
        "beanstalk://{}",
        servers
            .iter()
            .map(Beanstalkd::addr)
            .collect::<Vec<_>>()
            .join(",")
    );
    let children: Vec<Producer> = (0..PRODUCERS)
        .map(|p| {
            Producer(
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "producers_survive_a_server_killed_twice",
                        "--nocapture",
                    ])
                    .env(CHILD, format!("{p} {url}"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    // Kill server 1 twice while the producers run.
    let t0 = Instant::now();
    for (kill_at, restart_at) in [(300, 600), (1000, 1300)] {
        std::thread::sleep(Duration::from_millis(kill_at).saturating_sub(t0.elapsed()));
        servers[1].kill();
        std::thread::sleep(Duration::from_millis(restart_at).saturating_sub(t0.elapsed()));
        servers[1].restart();
    }
    // The ledger.
    let mut acked: Vec<(u64, usize, u64)> = Vec::new();
    let mut unknown: Vec<u64> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for mut child in children {
        let out = child.0.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap();
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "ok" => acked.push((
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                )),
                "unknown" => unknown.push(f[1].parse().unwrap()),
                "err" => errors.push(line.clone()),
                _ => {}
            }
        }
        assert!(child.0.wait().unwrap().success(), "producer exited cleanly");
    }
    let took = t0.elapsed();
    let mut per_server = [0usize; 3];
    for &(_, server, _) in &acked {
        per_server[server] += 1;
    }
    println!("fleet: acknowledged per server {per_server:?} (server 1 was down twice)");
    println!(
        "fleet: {} acknowledged, {} unknown, {} errors, producers took {took:.1?}",
        acked.len(),
        unknown.len(),
        errors.len()
    );
    assert!(
        took > Duration::from_millis(1300),
        "the kills happened during the run"
    );
    assert!(
        errors.is_empty(),
        "no enqueue error while a server is up: {errors:?}"
    );
    assert_eq!(acked.len() + unknown.len(), (PRODUCERS * JOBS) as usize);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let each: Vec<Client> = servers
            .iter()
            .map(|s| Client::new(&s.url()).unwrap())
            .collect();
        // 0 lost: every acknowledged job is on the server its handle names.
        let mut lost = Vec::new();
        for &(n, server, id) in &acked {
            if each[server].stats_job(0, id).await.is_err() {
                lost.push((n, server, id));
            }
        }
        assert!(lost.is_empty(), "lost: {lost:?}");
        // Every job on the servers is acknowledged or unknown, each once.
        let mut total = 0;
        for c in &each {
            total += c
                .stats_tube(0, "fleet_fault")
                .await
                .unwrap()
                .current_jobs_ready;
        }
        let extra = total - acked.len() as u64;
        assert!(
            extra <= unknown.len() as u64,
            "{total} jobs for {} acknowledged + {} unknown",
            acked.len(),
            unknown.len()
        );
        println!(
            "fleet: {extra} of {} unknown outcomes had created their job",
            unknown.len()
        );

        // Drain: every acknowledged job runs, nothing runs twice.
        let (sd, w) = spawn_worker(&url, &["fleet_fault"]);
        let runs = || RUNS.lock().unwrap().as_ref().map_or(0, |m| m.len() as u64);
        assert!(
            until(Duration::from_secs(30), || async { runs() >= total }).await,
            "{} of {total} ran",
            runs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        sd.trigger();
        w.await.unwrap().unwrap();
        let map = RUNS.lock().unwrap().take().unwrap();
        for &(n, _, _) in &acked {
            assert_eq!(map.get(&n), Some(&1), "job {n} ran once");
        }
        for n in &unknown {
            assert!(
                map.get(n).copied().unwrap_or(0) <= 1,
                "unknown {n} ran at most once"
            );
        }
    });
    drop(servers);
    let _ = std::fs::remove_dir_all(&base);
}
