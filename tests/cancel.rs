//! Cancelling a repeating chain while it waits between runs: no run may
//! follow the cancel.

use bsjobs_tests::{counts, server, spawn_worker, until};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static STARTED: AtomicU32 = AtomicU32::new(0);
static DONE: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "c_waiting", repeat = "2s")]
async fn waiting() {
    STARTED.fetch_add(1, Ordering::SeqCst);
    DONE.lock().unwrap().push(Instant::now());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_between_runs_prevents_the_next_run() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["c_waiting"]);
    let handle = Waiting::new().client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            !DONE.lock().unwrap().is_empty()
        })
        .await,
        "the first run happens"
    );
    let first_done = DONE.lock().unwrap()[0];
    // The chain now waits 2 s in the delayed state for its second run.
    handle.cancel(&client).await.expect("cancel");
    let cancelled_after = first_done.elapsed();
    assert_eq!(
        STARTED.load(Ordering::SeqCst),
        1,
        "cancel returned before the second run was due ({cancelled_after:?} after the first)"
    );
    // Wait until nothing of the chain is left: the waiting job is deleted,
    // either by the cancel itself or by the worker when it comes due.
    assert!(
        until(Duration::from_secs(10), || async {
            counts(&client, "c_waiting").await.live() == 0
        })
        .await,
        "the cancelled chain leaves no job behind: {:?}",
        counts(&client, "c_waiting").await
    );
    // Past the moment the second run was due (the cancel may have deleted
    // the waiting job at once), plus a little for a late run to show.
    let due = first_done + Duration::from_secs(2);
    tokio::time::sleep_until((due.max(Instant::now()) + Duration::from_millis(500)).into()).await;
    let since = first_done.elapsed();
    println!(
        "cancel-between-runs: cancelled {:.3}s after run 1, runs={} checked {:.1}s after run 1",
        cancelled_after.as_secs_f64(),
        STARTED.load(Ordering::SeqCst),
        since.as_secs_f64()
    );
    assert_eq!(
        STARTED.load(Ordering::SeqCst),
        1,
        "no run after a cancel made while the chain waited"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}
