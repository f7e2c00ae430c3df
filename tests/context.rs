//! `JobContext` through a real worker: the current job id, tube, attempt,
//! run, chain and first enqueue time reach the handler, for async and plain
//! functions, and `current_job()` answers the same.

use bsjobs::JobContext;
use bsjobs_tests::{counts, eventually, server, spawn_worker, until};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

static FLAKY: Mutex<Vec<(String, JobContext)>> = Mutex::new(Vec::new());

/// Fails its first attempt, then succeeds.
#[bsjobs::job(tube = "ctx_flaky", retries = 2, backoff = 0)]
async fn flaky(ctx: JobContext, label: String) -> Result<(), String> {
    let attempt = ctx.attempt;
    FLAKY.lock().unwrap().push((label, ctx));
    if attempt == 1 {
        Err("first attempt fails".into())
    } else {
        Ok(())
    }
}

static RUNS: Mutex<Vec<JobContext>> = Mutex::new(Vec::new());
/// What `current_job()` said in each run of `repeating`.
static CURRENT: Mutex<Vec<Option<JobContext>>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "ctx_repeat", repeat = "1s", max = 2)]
fn repeating(n: u32, ctx: JobContext) {
    assert_eq!(n, 7);
    CURRENT.lock().unwrap().push(bsjobs::current_job());
    RUNS.lock().unwrap().push(ctx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_sees_its_attempt_and_its_current_id() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["ctx_flaky"]);
    let handle = Flaky::new("a".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || FLAKY.lock().unwrap().len() == 2).await);
    let seen = FLAKY.lock().unwrap().clone();
    let (first, second) = (&seen[0].1, &seen[1].1);
    assert_eq!(seen[0].0, "a");
    assert_eq!((first.id, first.tube), (handle.id, "ctx_flaky"));
    assert_eq!((first.attempt, first.run, first.server), (1, 1, 0));
    assert_eq!(first.chain, None);
    // The retry is a new beanstalkd job; the context says which.
    assert_ne!(second.id, first.id);
    assert_eq!((second.attempt, second.run), (2, 1));
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_job_sees_its_run_and_chain() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["ctx_repeat"]);
    let handle = Repeating::new(7).client(&client).enqueue().await.unwrap();
    assert!(eventually(Duration::from_secs(10), || RUNS.lock().unwrap().len() == 2).await);
    let runs = RUNS.lock().unwrap().clone();
    assert_eq!((runs[0].run, runs[1].run), (1, 2));
    assert_eq!((runs[0].attempt, runs[1].attempt), (1, 1));
    assert_eq!(runs[0].id, handle.id);
    assert_ne!(runs[1].id, handle.id);
    for r in &runs {
        assert_eq!(r.chain, handle.chain);
        assert_eq!(r.tube, "ctx_repeat");
        assert_eq!(r.identity, handle.chain);
    }
    assert!(handle.chain.is_some());
    // Every run of a chain carries the chain's enqueue time.
    assert!(runs[0].enqueued_at.is_some());
    assert_eq!(runs[0].enqueued_at, runs[1].enqueued_at);
    // A plain fn runs on a blocking thread; current_job() answers there too.
    let current = CURRENT.lock().unwrap().clone();
    assert_eq!(current, runs.into_iter().map(Some).collect::<Vec<_>>());
    sd.trigger();
    h.await.unwrap().unwrap();
}

static STAMPS: Mutex<Vec<(u32, JobContext)>> = Mutex::new(Vec::new());

/// Always fails: two attempts, then buried.
#[bsjobs::job(tube = "ctx_stamp", retries = 1, backoff = 0)]
async fn stamped(n: u32, ctx: JobContext) -> Result<(), String> {
    STAMPS.lock().unwrap().push((n, ctx));
    Err("fails".into())
}

/// Milliseconds since the epoch, as the envelope writes them.
fn ms(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_sees_when_the_job_was_first_enqueued() {
    let (srv, client) = server();
    let before = SystemTime::now();
    let one = Stamped::new(1).client(&client).enqueue().await.unwrap();
    let between = SystemTime::now();
    // A batch is stamped too.
    let batch = client
        .enqueue_many([Stamped::new(2)])
        .await
        .pop()
        .unwrap()
        .unwrap();
    let after = SystemTime::now();
    let (sd, h) = spawn_worker(&srv.url(), &["ctx_stamp"]);
    assert!(
        until(Duration::from_secs(10), || async {
            counts(&client, "ctx_stamp").await.buried == 2
        })
        .await
    );
    sd.trigger();
    h.await.unwrap().unwrap();
    let seen = STAMPS.lock().unwrap().clone();
    for (n, window, handle) in [(1, (before, between), &one), (2, (between, after), &batch)] {
        let attempts: Vec<&JobContext> = seen.iter().filter(|s| s.0 == n).map(|s| &s.1).collect();
        assert_eq!(attempts.len(), 2, "job {n}: {attempts:?}");
        let (first, retry) = (attempts[0], attempts[1]);
        assert_eq!((first.attempt, retry.attempt), (1, 2));
        assert_ne!(first.id, retry.id, "the retry is another beanstalkd job");
        let at = first.enqueued_at.expect("stamped at enqueue");
        assert_eq!(retry.enqueued_at, Some(at), "job {n}: the retry keeps it");
        // The envelope has millisecond grain.
        assert!(
            ms(window.0) <= ms(at) && ms(at) <= ms(window.1),
            "job {n}: {at:?} outside {window:?}"
        );
        assert_eq!(first.identity.as_deref(), Some(handle.identity.as_str()));
    }
    // The buried copies keep it in their bodies.
    let mut kept = Vec::new();
    while let Some((id, body)) = client.peek_buried(0, "ctx_stamp").await.unwrap() {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        kept.push((v["args"]["n"].as_u64().unwrap(), v["enq"].as_u64()));
        client.delete(0, id).await.unwrap();
    }
    kept.sort();
    let first_of = |n: u32| {
        seen.iter()
            .find(|s| s.0 == n)
            .and_then(|s| s.1.enqueued_at)
            .map(|t| ms(t) as u64)
    };
    assert_eq!(kept, [(1, first_of(1)), (2, first_of(2))]);
}
