//! A worker binary whose jobs live in another crate, named only through
//! `bsjobs::link!`, finds and runs them (`tests/link_missing.rs` is the same
//! binary without that line).

bsjobs::link!(bsjobs_link_jobs);

use bsjobs_tests::{counts, server, spawn_worker, until};
use std::time::Duration;

#[test]
fn the_linked_crates_jobs_are_registered() {
    let w = bsjobs::Worker::from_url("beanstalk://127.0.0.1:1").unwrap();
    let tubes: Vec<&str> = w.descriptors().unwrap().iter().map(|d| d.tube).collect();
    assert_eq!(tubes, ["linked_job"]);
}

#[tokio::test]
async fn the_linked_crates_jobs_run() {
    let (srv, client) = server();
    // Enqueued as a producer in another language would: this binary does
    // not name the job type.
    client
        .put("linked_job", 0, 0, 60, br#"{"args":{"n":2}}"#.to_vec())
        .await
        .unwrap();
    client
        .put("linked_job", 0, 0, 60, br#"{"args":{"n":13}}"#.to_vec())
        .await
        .unwrap();
    let (sd, w) = spawn_worker(&srv.url(), &["linked_job"]);
    // n = 2 succeeds (deleted), n = 13 fails with no retries (buried): the
    // handler of the other crate ran both.
    assert!(
        until(Duration::from_secs(10), || async {
            let c = counts(&client, "linked_job").await;
            c.live() == 1 && c.buried == 1
        })
        .await,
        "{:?}",
        counts(&client, "linked_job").await
    );
    sd.trigger();
    w.await.unwrap().unwrap();
}
