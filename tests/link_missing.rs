//! The same worker binary as `tests/link.rs` without `bsjobs::link!`: the
//! jobs crate is a dependency but is not linked, and the errors say which
//! line to add.

#[test]
fn without_link_the_jobs_are_missing_and_the_error_names_the_fix() {
    let w = bsjobs::Worker::from_url("beanstalk://127.0.0.1:1").unwrap();
    let e = w.descriptors().unwrap_err();
    assert!(matches!(e, bsjobs::Error::NoJobs), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("bsjobs::link!(shop_jobs);") && text.contains("use shop_jobs as _;"),
        "{text}"
    );
    let e = w.tubes(["linked_job"]).descriptors().unwrap_err();
    assert!(matches!(e, bsjobs::Error::UnknownTube(_)), "{e:?}");
    assert!(e.to_string().contains("bsjobs::link!("), "{e}");
}
