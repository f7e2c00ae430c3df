//! Several beanstalkd servers behind one URL: jobs spread, one worker drains all.

use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, Shutdown, Worker};
use bsjobs_tests::{eventually, init_tracing};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static DONE: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "spread")]
async fn spread(_n: u32) {
    DONE.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_spread_over_servers_and_one_worker_drains_them_all() {
    init_tracing();
    let a = Beanstalkd::start();
    let b = Beanstalkd::start();
    let url = format!("beanstalk://{},{}", a.addr(), b.addr());
    let client = Client::new(&url).unwrap();
    let mut on = [0u32; 2];
    for n in 0..40 {
        let h = Spread::new(n).client(&client).enqueue().await.unwrap();
        on[h.server] += 1;
    }
    assert_eq!(on, [20, 20], "round robin over both servers");
    let only_a = Client::new(&a.url()).unwrap();
    assert_eq!(
        only_a
            .stats_tube(0, "spread")
            .await
            .unwrap()
            .current_jobs_ready,
        20
    );

    let sd = Shutdown::new();
    let w = tokio::spawn(
        Worker::from_url(&url)
            .unwrap()
            .tubes(["spread"])
            .shutdown(sd.clone())
            .run(),
    );
    assert!(eventually(Duration::from_secs(5), || DONE.load(Ordering::SeqCst) == 40).await);
    sd.trigger();
    w.await.unwrap().unwrap();
}
