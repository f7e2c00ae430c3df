//! `JobContext` through a real worker: the current job id, tube, attempt,
//! run and chain reach the handler, for async and plain functions.

use bsjobs::JobContext;
use bsjobs_tests::{eventually, server, spawn_worker};
use std::sync::Mutex;
use std::time::Duration;

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

#[bsjobs::job(tube = "ctx_repeat", repeat = "1s", max = 2)]
fn repeating(n: u32, ctx: JobContext) {
    assert_eq!(n, 7);
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
    }
    assert!(handle.chain.is_some());
    sd.trigger();
    h.await.unwrap().unwrap();
}
