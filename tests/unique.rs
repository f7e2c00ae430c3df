//! Unique jobs (`unique_for`, `.unique_key`): one live job per key, against a
//! real beanstalkd, with producers racing in separate processes.

use bsjobs::testing::Beanstalkd;
use bsjobs::Client;
use bsjobs_tests::{counts, init_tracing, server, spawn_worker, until};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[bsjobs::job(tube = "u_wait", unique_for = "0s")]
async fn u_wait(n: u64) {
    let _ = n;
}

#[bsjobs::job(tube = "u_plain")]
async fn u_plain(n: u64) {
    let _ = n;
}

#[tokio::test]
async fn a_second_enqueue_while_the_first_waits_returns_the_first() {
    let (_srv, client) = server();
    let first = UWait::new(1).client(&client).enqueue().await.unwrap();
    assert!(!first.existing);
    assert!(first.token.is_some(), "a unique job carries a token");
    let again = UWait::new(1).client(&client).enqueue().await.unwrap();
    assert!(again.existing, "same arguments: the same job");
    assert_eq!(
        (again.id, &again.identity, again.token),
        (first.id, &first.identity, first.token)
    );
    let other = UWait::new(2).client(&client).enqueue().await.unwrap();
    assert!(!other.existing, "other arguments: another key");
    // A key given per call replaces the arguments.
    let k1 = UWait::new(3)
        .unique_key("order-7")
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let k2 = UWait::new(4)
        .unique_key("order-7")
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(!k1.existing && k2.existing && k2.id == k1.id);
    // Through enqueue_many too, and beside jobs that are not unique.
    let many = client
        .enqueue_many([
            UWait::new(1),
            UPlain::new(1),
            UPlain::new(1),
            UWait::new(5),
            UWait::new(5),
        ])
        .await;
    let many: Vec<_> = many.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        many[..3].iter().map(|h| h.existing).collect::<Vec<_>>(),
        [true, false, false]
    );
    // The two enqueues of key 5 race (a batch sends its slots at once):
    // one puts the job, the other gets it.
    assert!(
        many[3].existing != many[4].existing,
        "one new, one existing"
    );
    assert_eq!(many[3].id, many[4].id);
    assert_eq!(many[0].id, first.id);
    assert_ne!(many[1].id, many[2].id, "plain jobs are never merged");
    // What is in the tubes: keys 1, 2, order-7, 5; two plain jobs.
    assert_eq!(counts(&client, "u_wait").await.ready, 4);
    assert_eq!(counts(&client, "u_plain").await.ready, 2);
    // A key per line of one registry tube per bucket, no tube per key.
    let tubes = client.list_tubes(0).await.unwrap();
    let buckets = tubes
        .iter()
        .filter(|t| t.starts_with("bsjobs.unique."))
        .count();
    assert!((1..=4).contains(&buckets), "{tubes:?}");
    // The operators' chain listing shows each unique job with its token,
    // found by its identity, and the walk completes.
    let admin = bsjobs::admin::Admin::new(client.clone());
    let list = admin.chains(100_000).await.unwrap();
    assert!(list.complete);
    let mine = list
        .chains
        .iter()
        .find(|c| c.chain == first.identity)
        .expect("listed");
    assert_eq!(mine.token, first.token);
    assert_eq!(mine.job.as_ref().map(|j| j.at.id), Some(first.id));
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "u_flaky", unique_for = "0s", retries = 2, backoff = "2s")]
async fn u_flaky(n: u64) -> Result<(), String> {
    let _ = n;
    match FLAKY.fetch_add(1, Ordering::SeqCst) {
        0 => Err("first attempt fails".into()),
        _ => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_held_through_retries_and_free_once_the_job_is_done() {
    let (srv, client) = server();
    let (sd, w) = spawn_worker(&srv.url(), &["u_flaky"]);
    let first = UFlaky::new(9).client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            FLAKY.load(Ordering::SeqCst) >= 1
        })
        .await
    );
    // The first attempt failed: its retry waits 1–2 s, delayed.
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "u_flaky").await.delayed == 1
        })
        .await
    );
    let during = UFlaky::new(9).client(&client).enqueue().await.unwrap();
    assert!(during.existing, "a job waiting for its retry holds its key");
    assert_eq!(during.identity, first.identity);
    assert_ne!(
        during.id, first.id,
        "the handle names the retry, the current job"
    );
    assert_eq!(
        client.stats_job(0, during.id).await.unwrap().tube,
        "u_flaky",
        "that retry exists"
    );
    // The retry succeeds: the job and its token are gone, the key is free.
    assert!(
        until(Duration::from_secs(10), || async {
            FLAKY.load(Ordering::SeqCst) >= 2
        })
        .await
    );
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "u_flaky").await.live() == 0
                && counts(&client, "bsjobs.chains").await.live() == 0
        })
        .await,
        "job and token gone"
    );
    let after = UFlaky::new(9).client(&client).enqueue().await.unwrap();
    assert!(!after.existing, "done: a new job");
    assert_ne!(after.identity, first.identity);
    assert!(
        until(Duration::from_secs(10), || async {
            FLAKY.load(Ordering::SeqCst) >= 3
        })
        .await
    );
    sd.trigger();
    w.await.unwrap().unwrap();
}

static WINDOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "u_window", unique_for = "3s")]
async fn u_window(n: u64) {
    let _ = n;
    WINDOW_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_for_holds_the_key_after_the_job_ran() {
    let (srv, client) = server();
    let (sd, w) = spawn_worker(&srv.url(), &["u_window"]);
    let t0 = Instant::now();
    let first = UWindow::new(1).client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            WINDOW_RUNS.load(Ordering::SeqCst) == 1
        })
        .await
    );
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "u_window").await.live() == 0
        })
        .await
    );
    let again = UWindow::new(1).client(&client).enqueue().await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "still inside the window (the machine was too slow to tell)"
    );
    assert!(again.existing, "done, but within unique_for of its enqueue");
    assert_eq!(again.identity, first.identity);
    // A per-call window overrides the attribute's.
    let short = UWindow::new(2)
        .unique_for(Duration::ZERO)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(!short.existing);
    tokio::time::sleep(Duration::from_millis(3100).saturating_sub(t0.elapsed())).await;
    let later = UWindow::new(1).client(&client).enqueue().await.unwrap();
    assert!(!later.existing, "window over and job done: a new job");
    assert!(
        until(Duration::from_secs(5), || async {
            WINDOW_RUNS.load(Ordering::SeqCst) == 3
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(WINDOW_RUNS.load(Ordering::SeqCst), 3, "1, 2 and 1 again");
    sd.trigger();
    w.await.unwrap().unwrap();
}

static BURY_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "u_bury", unique_for = "0s", retries = 0)]
async fn u_bury(n: u64) -> Result<(), String> {
    let _ = n;
    BURY_RUNS.fetch_add(1, Ordering::SeqCst);
    Err("always".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buried_job_or_a_cancelled_one_frees_its_key() {
    let (srv, client) = server();
    let (sd, w) = spawn_worker(&srv.url(), &["u_bury"]);
    let first = UBury::new(1).client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            counts(&client, "u_bury").await.buried == 1
        })
        .await
    );
    let after = UBury::new(1).client(&client).enqueue().await.unwrap();
    assert!(!after.existing, "a buried job no longer holds its key");
    assert_ne!(after.identity, first.identity);
    assert!(
        until(Duration::from_secs(10), || async {
            counts(&client, "u_bury").await.buried == 2
        })
        .await
    );
    sd.trigger();
    w.await.unwrap().unwrap();
    // Cancel (no worker now): the key is free at once.
    let waiting = UWait::new(77).client(&client).enqueue().await.unwrap();
    assert!(
        waiting.cancel(&client).await.unwrap(),
        "deleted while waiting"
    );
    let fresh = UWait::new(77).client(&client).enqueue().await.unwrap();
    assert!(!fresh.existing, "a cancelled job no longer holds its key");
}

#[bsjobs::job(tube = "u_chain", repeat = "1h", unique_for = "0s")]
async fn u_chain(n: u64) {
    let _ = n;
}

#[tokio::test]
async fn a_unique_repeating_job_has_one_chain_per_key() {
    let (_srv, client) = server();
    let a = UChain::new(1).client(&client).enqueue().await.unwrap();
    let b = UChain::new(1).client(&client).enqueue().await.unwrap();
    let c = UChain::new(2).client(&client).enqueue().await.unwrap();
    assert!(!a.existing && b.existing && !c.existing);
    assert_eq!(b.chain, a.chain, "the existing chain's id");
    assert!(a.chain.is_some());
    assert_eq!(counts(&client, "u_chain").await.live(), 2);
    assert_eq!(counts(&client, "bsjobs.chains").await.live(), 2);
}

#[tokio::test]
async fn keys_survive_a_server_restart_on_its_binlog() {
    init_tracing();
    let dir = std::env::temp_dir().join(format!("bsjobs-unique-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut srv = Beanstalkd::builder().binlog(&dir).start();
    let client = Client::new(&srv.url()).unwrap();
    let mut first = Vec::new();
    for n in 100..120 {
        first.push(UWait::new(n).client(&client).enqueue().await.unwrap());
    }
    srv.kill();
    srv.restart();
    let client = Client::new(&srv.url()).unwrap();
    for (n, h) in (100..120).zip(&first) {
        let again = UWait::new(n).client(&client).enqueue().await.unwrap();
        assert!(again.existing, "key {n} held after the restart");
        assert_eq!(again.id, h.id);
    }
    assert_eq!(counts(&client, "u_wait").await.live(), 20);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the race: 8 producer processes, 1,000 enqueues each, over 100 keys ----

const CHILD: &str = "BSJOBS_UNIQUE_PRODUCER";
const PRODUCERS: usize = 8;
const ENQUEUES: u64 = 1000;
const KEYS: u64 = 100;

static RACE_RUNS: Mutex<Option<HashMap<u64, u32>>> = Mutex::new(None);

#[bsjobs::job(tube = "u_race", unique_for = "1h")]
async fn u_race(key: u64) {
    *RACE_RUNS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert(0) += 1;
}

/// A child: waits for the common start instant, then enqueues `ENQUEUES`
/// times over the keys (each producer from its own offset) and prints
/// `new <key>` or `existing <key>` per enqueue.
fn producer(url: &str, p: u64, start_ms: u128) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::new(url).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        tokio::time::sleep(Duration::from_millis(start_ms.saturating_sub(now) as u64)).await;
        for i in 0..ENQUEUES {
            let key = (i + p * 13) % KEYS;
            match URace::new(key).client(&client).enqueue().await {
                Ok(h) if h.existing => println!("existing {key}"),
                Ok(_) => println!("new {key}"),
                Err(e) => println!("err {key} {e}"),
            }
        }
    });
}

use bsjobs_tests::KillOnDrop as Producer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_producers_racing_over_100_keys_make_exactly_100_jobs() {
    if let Ok(v) = std::env::var(CHILD) {
        let mut f = v.split(' ');
        let p = f.next().unwrap().parse().unwrap();
        let start = f.next().unwrap().parse().unwrap();
        let url = f.next().unwrap().to_owned();
        // Out of the test's runtime: the producer makes its own.
        std::thread::spawn(move || producer(&url, p, start))
            .join()
            .unwrap();
        return;
    }
    let (srv, client) = server();
    // A worker runs the jobs while the producers race.
    let (sd, w) = spawn_worker(&srv.url(), &["u_race"]);
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let children: Vec<Producer> = (0..PRODUCERS)
        .map(|p| {
            Producer(
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "eight_producers_racing_over_100_keys_make_exactly_100_jobs",
                        "--nocapture",
                    ])
                    .env(CHILD, format!("{p} {start} {}", srv.url()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let t0 = Instant::now();
    let (mut new, mut existing, mut errors) = (Vec::new(), 0usize, Vec::new());
    for mut child in children {
        let out = child.0.stdout.take().unwrap();
        for line in BufReader::new(out).lines() {
            let line = line.unwrap();
            match line.split(' ').next() {
                Some("new") => new.push(line[4..].parse::<u64>().unwrap()),
                Some("existing") => existing += 1,
                Some("err") => errors.push(line),
                _ => {}
            }
        }
        assert!(child.0.wait().unwrap().success(), "producer exited cleanly");
    }
    let took = t0.elapsed();
    println!(
        "unique race: {} new, {existing} existing, {} errors, {:.1?} for {} enqueues",
        new.len(),
        errors.len(),
        took,
        PRODUCERS as u64 * ENQUEUES
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(new.len() + existing, PRODUCERS * ENQUEUES as usize);
    new.sort_unstable();
    assert_eq!(new, (0..KEYS).collect::<Vec<_>>(), "one new job per key");
    let runs = || RACE_RUNS.lock().unwrap().clone().unwrap_or_default();
    assert!(
        until(Duration::from_secs(20), || async {
            runs().values().sum::<u32>() >= KEYS as u32
        })
        .await
    );
    // Let any duplicate show itself before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = runs();
    assert_eq!(runs.len() as u64, KEYS);
    assert!(
        runs.values().all(|&n| n == 1),
        "each key ran once: {runs:?}"
    );
    sd.trigger();
    w.await.unwrap().unwrap();
    let tubes = client.list_tubes(0).await.unwrap();
    let buckets = tubes
        .iter()
        .filter(|t| t.starts_with("bsjobs.unique."))
        .count();
    assert!(buckets <= 64, "{buckets} bucket tubes");
}

/// A registry that outgrows beanstalkd's job size: the enqueue fails with a
/// clear error and leaves nothing behind (no job, no token); every enqueue
/// that succeeded has its job.
#[tokio::test]
async fn a_full_registry_refuses_the_enqueue_and_leaves_nothing() {
    init_tracing();
    // A registry line is about 80 bytes: 1,000 bytes hold about a dozen keys
    // per bucket, and 2,000 keys over 64 buckets are about 31 each.
    let srv = Beanstalkd::builder().max_job_size(1000).start();
    let client = Client::new(&srv.url()).unwrap();
    let (mut ok, mut full) = (0u64, 0u64);
    for n in 0..2000u64 {
        match UWait::new(1_000_000 + n).client(&client).enqueue().await {
            Ok(h) => {
                assert!(!h.existing);
                ok += 1;
            }
            Err(bsjobs::Error::NotUnique(why)) => {
                assert!(why.contains("is full"), "{why}");
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!("full registry: {ok} enqueued, {full} refused");
    assert!(ok > 0 && full > 0, "{ok} enqueued, {full} refused");
    assert_eq!(
        counts(&client, "u_wait").await.live(),
        ok,
        "one job per success"
    );
    assert_eq!(
        counts(&client, "bsjobs.chains").await.live(),
        ok,
        "one token each"
    );
}

#[bsjobs::job(tube = "u_fleet", unique_for = "0s")]
async fn u_fleet(n: u64) {
    let _ = n;
}

/// With several servers a key's enqueues meet on one server (placed by the
/// key), so the key stays unique across the fleet.
#[tokio::test]
async fn a_key_is_unique_across_a_fleet() {
    init_tracing();
    let servers: Vec<Beanstalkd> = (0..3).map(|_| Beanstalkd::start()).collect();
    let url = format!(
        "beanstalk://{}",
        servers
            .iter()
            .map(Beanstalkd::addr)
            .collect::<Vec<_>>()
            .join(",")
    );
    let client = Client::new(&url).unwrap();
    let mut per_server = [0u32; 3];
    for n in 0..60u64 {
        let a = UFleet::new(n).client(&client).enqueue().await.unwrap();
        let b = UFleet::new(n).client(&client).enqueue().await.unwrap();
        assert!(!a.existing && b.existing, "key {n}");
        assert_eq!((a.server, a.id), (b.server, b.id));
        per_server[a.server] += 1;
    }
    assert!(per_server.iter().all(|&n| n > 0), "{per_server:?}");
    let mut total = 0;
    for s in 0..3 {
        total += client
            .stats_tube(s, "u_fleet")
            .await
            .unwrap()
            .current_jobs_ready;
    }
    assert_eq!(total, 60);
}
