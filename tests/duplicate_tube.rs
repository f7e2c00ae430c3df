//! Two handlers for one tube: the worker refuses to start, naming both.

#[bsjobs::job(tube = "shared")]
async fn first(_n: u32) {}

#[bsjobs::job(tube = "shared")]
async fn second(_s: String) {}

#[tokio::test]
async fn two_handlers_for_one_tube_are_refused_naming_both() {
    let e = bsjobs::Worker::from_url("beanstalk://127.0.0.1:1")
        .unwrap()
        .run()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, bsjobs::Error::DuplicateTube { tube: "shared", .. }),
        "{msg}"
    );
    assert!(msg.contains("`first`") && msg.contains("`second`"), "{msg}");
    assert!(
        msg.contains("duplicate_tube.rs:4") && msg.contains("duplicate_tube.rs:7"),
        "{msg}"
    );
}
