//! Raw-body jobs against a real beanstalkd, fed the way an existing system
//! feeds its tubes: a producer speaking the protocol itself (`use`, then
//! `put <pri> <delay> <ttr> <bytes>`), as pheanstalk or greenstalk would.

use bsjobs::proto::stats::JobState;
use bsjobs::proto::Response;
use bsjobs::JobContext;
use bsjobs_tests::{counts_now, eventually, raw, server, spawn_worker, until};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Puts `body` into `tube` as a foreign producer would; returns the job id.
async fn put_foreign(
    srv: &bsjobs::testing::Beanstalkd,
    tube: &str,
    pri: u32,
    ttr: u32,
    body: &[u8],
) -> u64 {
    let mut c = raw(srv).await;
    let mut bytes = format!("use {tube}\r\nput {pri} 0 {ttr} {}\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\r\n");
    c.queue_raw(&bytes);
    c.flush().await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), Response::Using(_)));
    match c.recv().await.unwrap() {
        Response::Inserted(id) => id,
        r => panic!("put: {r:?}"),
    }
}

static BYTES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "raw_bytes", raw)]
async fn take_bytes(body: Vec<u8>) {
    BYTES.lock().unwrap().push(body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_arrive_exactly_as_put() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["raw_bytes"]);
    let bodies: [&[u8]; 4] = [
        b"plain",
        b"\x00\xff\xfe binary \r\n with a line break",
        br#"{"args":{"looks":"like an envelope"}}"#,
        b"",
    ];
    for b in bodies {
        put_foreign(&srv, "raw_bytes", 100, 60, b).await;
    }
    // And from Rust: the generated enqueue puts the bytes alone.
    TakeBytes::new(b"from rust".to_vec())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || BYTES.lock().unwrap().len() == 5).await);
    let mut seen = BYTES.lock().unwrap().clone();
    seen.sort();
    let mut want: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
    want.push(b"from rust".to_vec());
    want.sort();
    assert_eq!(seen, want);
    assert!(
        eventually(Duration::from_secs(5), || counts_now(&client, "raw_bytes")
            .live()
            == 0)
        .await
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

static TEXTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "raw_text", raw)]
fn take_text(text: String) {
    TEXTS.lock().unwrap().push(text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_arrives_as_a_string_and_bad_utf8_is_buried_unchanged() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["raw_text"]);
    put_foreign(&srv, "raw_text", 10, 60, "Grüße, Ada".as_bytes()).await;
    let bad = put_foreign(&srv, "raw_text", 77, 60, b"caf\xe9 (latin-1)").await;
    assert!(
        eventually(Duration::from_secs(10), || counts_now(&client, "raw_text")
            .buried
            == 1)
        .await
    );
    assert_eq!(*TEXTS.lock().unwrap(), ["Grüße, Ada"]);
    let s = client.stats_job(0, bad).await.unwrap();
    assert_eq!((s.state, s.pri, s.releases), (JobState::Buried, 77, 0));
    assert_eq!(
        client.peek(0, bad).await.unwrap().unwrap(),
        b"caf\xe9 (latin-1)"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Signup {
    email: String,
    plan: Option<String>,
}

static SIGNUPS: Mutex<Vec<Signup>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "raw_json", raw)]
async fn take_signup(signup: Signup) {
    SIGNUPS.lock().unwrap().push(signup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typed_body_is_read_as_json_and_bad_json_is_buried() {
    let (srv, client) = server();
    // The producer's own JSON, with a key the type does not know.
    put_foreign(
        &srv,
        "raw_json",
        5,
        60,
        br#"{"email":"ada@example.com","source":"php"}"#,
    )
    .await;
    let bad = put_foreign(&srv, "raw_json", 5, 60, br#"{"mail":"no email key"}"#).await;
    let handle = TakeSignup::new(Signup {
        email: "bob@example.com".into(),
        plan: Some("pro".into()),
    })
    .client(&client)
    .enqueue()
    .await
    .unwrap();
    assert_eq!(
        client.peek(0, handle.id).await.unwrap().as_deref(),
        Some(&br#"{"email":"bob@example.com","plan":"pro"}"#[..])
    );
    let (sd, h) = spawn_worker(&srv.url(), &["raw_json"]);
    assert!(
        eventually(Duration::from_secs(10), || SIGNUPS.lock().unwrap().len()
            == 2
            && counts_now(&client, "raw_json").buried == 1)
        .await
    );
    let mut got = SIGNUPS
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.email.clone())
        .collect::<Vec<_>>();
    got.sort();
    assert_eq!(got, ["ada@example.com", "bob@example.com"]);
    assert_eq!(
        client.stats_job(0, bad).await.unwrap().state,
        JobState::Buried
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

/// `(job id, attempt)` of every run of the failing job.
static FAILS: Mutex<Vec<(u64, u32)>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "raw_fail", raw, retries = 2, backoff = "1s")]
async fn always_fails(body: Vec<u8>, ctx: JobContext) -> Result<(), String> {
    assert_eq!(body, b"order 42");
    FAILS.lock().unwrap().push((ctx.id, ctx.attempt));
    Err("downstream refused".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_raw_job_is_retried_in_place_then_buried_with_its_body_and_a_kick_starts_afresh()
{
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["raw_fail"]);
    // TTR 2 s while backoffs are 1–2 s: the job is touched while held.
    let id = put_foreign(&srv, "raw_fail", 77, 2, b"order 42").await;
    assert!(
        eventually(Duration::from_secs(15), || counts_now(&client, "raw_fail")
            .buried
            == 1)
        .await
    );
    assert_eq!(
        *FAILS.lock().unwrap(),
        [(id, 1), (id, 2), (id, 3)],
        "the same job, three attempts"
    );
    let s = client.stats_job(0, id).await.unwrap();
    assert_eq!(
        (s.state, s.pri, s.ttr, s.releases, s.buries, s.timeouts),
        (JobState::Buried, 77, 2, 2, 1, 0),
        "retried by release in place, priority and TTR kept, never timed out"
    );
    assert_eq!(client.peek(0, id).await.unwrap().unwrap(), b"order 42");

    // A kick grants a fresh set of attempts.
    client.kick_job(0, id).await.unwrap();
    assert!(
        until(Duration::from_secs(15), || async {
            client.stats_job(0, id).await.is_ok_and(|s| s.buries == 2)
        })
        .await
    );
    assert_eq!(
        FAILS.lock().unwrap()[3..],
        [(id, 1), (id, 2), (id, 3)],
        "after the kick"
    );
    let s = client.stats_job(0, id).await.unwrap();
    assert_eq!((s.releases, s.kicks, s.timeouts), (4, 1, 0));
    assert_eq!(client.peek(0, id).await.unwrap().unwrap(), b"order 42");
    sd.trigger();
    h.await.unwrap().unwrap();
}

static HELD: Mutex<u32> = Mutex::new(0);

#[bsjobs::job(tube = "raw_held", raw, retries = 5, backoff = "60s")]
fn fails_once_held(text: String) -> Result<(), String> {
    *HELD.lock().unwrap() += 1;
    Err(format!("cannot handle {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_hold_and_releases_the_job_unchanged() {
    let (srv, client) = server();
    let sd = bsjobs::Shutdown::new();
    let worker = bsjobs::Worker::from_url(&srv.url())
        .unwrap()
        .tubes(["raw_held"])
        .grace(Duration::from_secs(120))
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    let id = put_foreign(&srv, "raw_held", 9, 60, b"x").await;
    assert!(eventually(Duration::from_secs(10), || *HELD.lock().unwrap() == 1).await);
    // The job is held (reserved) for its 30–60 s backoff.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        client.stats_job(0, id).await.unwrap().state,
        JobState::Reserved
    );
    let asked = Instant::now();
    sd.trigger();
    h.await.unwrap().unwrap();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(25),
        "the hold ended at shutdown, not after the backoff: {took:?}"
    );
    let s = client.stats_job(0, id).await.unwrap();
    assert_eq!(
        (s.state, s.pri, s.releases),
        (JobState::Ready, 9, 1),
        "released, counted, ready now"
    );
    assert_eq!(client.peek(0, id).await.unwrap().unwrap(), b"x");
}

#[bsjobs::job(tube = "raw_slow", raw, retries = 0, timeout = "1s")]
async fn too_slow(body: Vec<u8>) {
    let _ = body;
    tokio::time::sleep(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_job_over_its_timeout_fails_and_is_buried_unchanged() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["raw_slow"]);
    let id = put_foreign(&srv, "raw_slow", 3, 60, b"slow one").await;
    assert!(
        eventually(Duration::from_secs(10), || counts_now(&client, "raw_slow")
            .buried
            == 1)
        .await
    );
    let s = client.stats_job(0, id).await.unwrap();
    assert_eq!((s.pri, s.releases, s.buries), (3, 0, 1));
    assert_eq!(client.peek(0, id).await.unwrap().unwrap(), b"slow one");
    sd.trigger();
    h.await.unwrap().unwrap();
}
