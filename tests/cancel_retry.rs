//! Cancelling a one-shot job that waits for its retry: the README says
//! `handle.cancel` stops a job; no attempt may follow the cancel.

use bsjobs_tests::{counts, server, spawn_worker, until};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ATTEMPTS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "cr_flaky", retries = 1, backoff = "2s")]
async fn always_fails() -> Result<(), String> {
    ATTEMPTS.lock().unwrap().push(Instant::now());
    Err("down".into())
}

fn attempts() -> usize {
    ATTEMPTS.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_that_waits_for_its_retry_stops_it() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["cr_flaky"]);
    let handle = AlwaysFails::new().client(&client).enqueue().await.unwrap();
    // The first attempt fails; its retry waits 1–2 s in the delayed state.
    assert!(
        until(Duration::from_secs(10), || async {
            attempts() == 1 && counts(&client, "cr_flaky").await.delayed == 1
        })
        .await,
        "the first attempt fails and its retry is scheduled: attempts {}, {:?}",
        attempts(),
        counts(&client, "cr_flaky").await
    );
    let failed_at = ATTEMPTS.lock().unwrap()[0];
    let cancelled = handle.cancel(&client).await.expect("cancel");
    assert_eq!(attempts(), 1, "cancel returned before the retry was due");
    // Past the latest moment the retry was due (2 s), and a little more.
    let due = failed_at + Duration::from_secs(2);
    tokio::time::sleep_until((due.max(Instant::now()) + Duration::from_millis(700)).into()).await;
    let left = counts(&client, "cr_flaky").await;
    println!(
        "cancel-retry: cancel returned {cancelled}, attempts={} left={left:?}",
        attempts()
    );
    assert_eq!(attempts(), 1, "no attempt after cancel returned");
    assert_eq!(left.live(), 0, "nothing of the job is left: {left:?}");
    sd.trigger();
    h.await.unwrap().unwrap();
}
