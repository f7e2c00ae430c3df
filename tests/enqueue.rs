//! What `enqueue` refuses or adjusts before anything reaches beanstalkd.

use bsjobs::proto::stats::JobState;
use bsjobs_tests::server;
use std::time::{Duration, SystemTime};

#[bsjobs::job(tube = "e_price")]
async fn price(sku: String, amount: f64) {
    let _ = (sku, amount);
}

#[tokio::test]
async fn duration_max_delay_and_ttr_are_clamped_to_beanstalkd_range() {
    let (_srv, client) = server();
    // Debug builds used to panic here ("attempt to add with overflow");
    // release builds sent a delay of 0 s and a TTR of 1 s.
    let h = Price::new("a".into(), 1.0)
        .delay(Duration::MAX)
        .ttr(Duration::MAX)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let st = client.stats_job(h.server, h.id).await.unwrap();
    assert_eq!(st.state, JobState::Delayed);
    assert_eq!((st.delay, st.ttr), (u32::MAX, u32::MAX));

    let far = SystemTime::now() + Duration::from_secs(u64::from(u32::MAX) * 2);
    let h = Price::new("b".into(), 1.0)
        .at(far)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let st = client.stats_job(h.server, h.id).await.unwrap();
    assert_eq!((st.state, st.delay), (JobState::Delayed, u32::MAX));
}

#[tokio::test]
async fn non_finite_arguments_are_refused_and_nothing_is_sent() {
    let (_srv, client) = server();
    for (v, text) in [
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        let e = Price::new("a".into(), v)
            .client(&client)
            .enqueue()
            .await
            .unwrap_err();
        match e {
            bsjobs::Error::NonFiniteArgument { path, value } => {
                assert_eq!((path.as_str(), value.as_str()), ("amount", text));
            }
            e => panic!("expected NonFiniteArgument, got {e:?}"),
        }
    }
    assert_eq!(client.stats(0).await.unwrap().cmd_put, 0, "nothing sent");
    // In a batch, only the bad job fails.
    let out = client
        .enqueue_many([
            Price::new("a".into(), 1.0),
            Price::new("b".into(), f64::NAN),
            Price::new("c".into(), 3.0),
        ])
        .await;
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    assert!(
        matches!(out[1], Err(bsjobs::Error::NonFiniteArgument { .. })),
        "{out:?}"
    );
    assert_eq!(client.stats(0).await.unwrap().cmd_put, 2);
}
