//! The job's life around the handler: giving up (permanent failures,
//! chosen retry delays), buried jobs that say why, kicks that keep the
//! history, and hooks on both sides.

use bsjobs::hook::{Event, Hook, Outgoing};
use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, JobError};
use bsjobs_tests::{counts, server, spawn_configured, spawn_worker, until};
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

static DECLINED: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "l_charge", retries = 5)]
async fn charge(order: u64) -> Result<(), JobError> {
    DECLINED.fetch_add(1, Ordering::SeqCst);
    Err(JobError::permanent(format!(
        "card declined for order {order}"
    )))
}

static BUSY: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "l_busy", retries = 3, backoff = "1h")]
async fn busy() -> Result<(), JobError> {
    BUSY.fetch_add(1, Ordering::SeqCst);
    Err(JobError::retry_in(Duration::from_secs(2), "gateway busy"))
}

static FLAKY: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "l_flaky", retries = 0)]
async fn always_fails(tag: String) -> Result<(), String> {
    let n = FLAKY.fetch_add(1, Ordering::SeqCst);
    Err(format!("{tag} failed (call {n})"))
}

async fn buried_body(client: &Client, tube: &str) -> (u64, Value) {
    let (id, body) = client
        .peek_buried(0, tube)
        .await
        .unwrap()
        .expect("a buried job");
    (id, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_is_buried_at_once_with_its_error() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["l_charge"]);
    let handle = Charge::new(7).client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "l_charge").await.buried == 1
        })
        .await
    );
    assert_eq!(
        DECLINED.load(Ordering::SeqCst),
        1,
        "no retry of a permanent failure"
    );
    let (id, body) = buried_body(&client, "l_charge").await;
    println!("buried body: {body}");
    let err = &body["err"];
    assert_eq!(err["error"], "card declined for order 7");
    assert_eq!(err["attempt"], 1);
    assert_eq!(err["job"], handle.id);
    assert_eq!(err["pid"], std::process::id());
    assert!(err["at"].as_i64().unwrap() > 0 && err["host"].is_string());
    assert_eq!(body["args"]["order"], 7, "the arguments are kept");
    assert_eq!(body["prev"], handle.id);
    assert_ne!(id, handle.id, "a copy replaced the job");
    assert_eq!(
        counts(&client, "l_charge").await.live(),
        1,
        "only the copy is left"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_chooses_its_retry_delay() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["l_busy"]);
    Busy::new().client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            counts(&client, "l_busy").await.delayed == 1
        })
        .await
    );
    let (id, _) = client.peek_delayed(0, "l_busy").await.unwrap().unwrap();
    let st = client.stats_job(0, id).await.unwrap();
    assert_eq!(st.delay, 2, "the handler's delay, not the 1 h backoff");
    assert!(
        until(Duration::from_secs(6), || async {
            BUSY.load(Ordering::SeqCst) >= 2
        })
        .await,
        "retried after 2 s"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_job_runs_again_and_keeps_its_history() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["l_flaky"]);
    AlwaysFails::new("report".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let buried = || async { counts(&client, "l_flaky").await.buried == 1 };
    assert!(until(Duration::from_secs(5), buried).await);
    let (first, body) = buried_body(&client, "l_flaky").await;
    assert_eq!(body["err"]["error"], "report failed (call 0)");
    client.kick_job(0, first).await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            FLAKY.load(Ordering::SeqCst) == 2 && counts(&client, "l_flaky").await.buried == 1
        })
        .await,
        "the kick runs it once more"
    );
    let (_, body) = buried_body(&client, "l_flaky").await;
    println!("after the kick: {body}");
    assert_eq!(body["err"]["error"], "report failed (call 1)");
    assert_eq!(
        body["history"][0]["error"], "report failed (call 0)",
        "history kept"
    );
    assert_eq!(counts(&client, "l_flaky").await.live(), 1);
    sd.trigger();
    h.await.unwrap().unwrap();
}

static SEEN_META: Mutex<Vec<Value>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "l_hooked", retries = 1, backoff = "1s")]
async fn hooked(fail: bool) -> Result<(), String> {
    if let Some(m) = bsjobs::current_job().and_then(|j| j.meta) {
        SEEN_META.lock().unwrap().push(m);
    }
    if fail {
        Err("asked to fail".into())
    } else {
        Ok(())
    }
}

/// Tags jobs on the way out and refuses those for tube `l_refused`.
struct Tagger;

impl Hook for Tagger {
    fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
        if job.tube == "l_refused" {
            return Err("no jobs for l_refused today".into());
        }
        job.set_meta("app", "shop");
        job.priority = 7;
        Ok(())
    }
}

#[bsjobs::job(tube = "l_refused")]
async fn refused() {}

/// Records events and counts wrapped runs.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    wrapped: Arc<AtomicU32>,
}

impl Hook for Recorder {
    fn around(
        &self,
        _job: &bsjobs::CurrentJob,
        run: bsjobs::hook::HandlerFuture,
    ) -> bsjobs::hook::HandlerFuture {
        let wrapped = self.wrapped.clone();
        Box::pin(async move {
            wrapped.fetch_add(1, Ordering::SeqCst);
            run.await
        })
    }

    fn on_event(&self, event: &Event<'_>) {
        let e = match event {
            Event::Started { waited, .. } => format!("started waited={}", waited.is_some()),
            Event::Succeeded { .. } => "succeeded".into(),
            Event::Failed { retry_in, .. } => format!("failed retry_in={retry_in}"),
            Event::Buried { error, .. } => format!("buried {error}"),
            Event::Undecodable { .. } => "undecodable".into(),
            _ => "other".into(),
        };
        self.events.lock().unwrap().push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_shape_enqueues_wrap_runs_and_hear_every_event() {
    let (srv, client) = server();
    client.add_hook(Tagger);
    let err = Refused::new().client(&client).enqueue().await.unwrap_err();
    assert!(matches!(err, bsjobs::Error::Refused(_)), "{err}");
    assert_eq!(counts(&client, "l_refused").await.live(), 0, "nothing sent");
    let ok = Hooked::new(false).client(&client).enqueue().await.unwrap();
    assert_eq!(
        client.stats_job(0, ok.id).await.unwrap().pri,
        7,
        "the hook set the priority"
    );
    let rec = Recorder::default();
    let (sd, h) = spawn_configured(
        bsjobs::Worker::from_url(&srv.url())
            .unwrap()
            .hook(rec.clone()),
        &["l_hooked"],
    );
    Hooked::new(true).client(&client).enqueue().await.unwrap();
    assert!(
        until(Duration::from_secs(6), || async {
            counts(&client, "l_hooked").await.buried == 1
                && counts(&client, "l_hooked").await.live() == 1
        })
        .await
    );
    sd.trigger();
    h.await.unwrap().unwrap();
    let events = rec.events.lock().unwrap().clone();
    println!("events: {events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("started waited=true"))
            .count(),
        3,
        "three runs, each with its queue latency: {events:?}"
    );
    assert!(events.contains(&"succeeded".to_owned()));
    assert!(
        events.contains(&"failed retry_in=1".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"buried asked to fail".to_owned()),
        "{events:?}"
    );
    assert_eq!(rec.wrapped.load(Ordering::SeqCst), 3, "every run wrapped");
    let meta = SEEN_META.lock().unwrap().clone();
    assert!(
        meta.len() >= 3 && meta.iter().all(|m| m["app"] == "shop"),
        "{meta:?}"
    );
}

static CRASH_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "l_crash", retries = 0)]
async fn doomed(n: u32) -> Result<(), String> {
    CRASH_RUNS.fetch_add(1, Ordering::SeqCst);
    Err(format!("job {n} fails"))
}

/// beanstalkd killed (-9) at moments around burials, restarted on its
/// binlog: every job ends buried with its error, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burials_survive_server_kills_and_lose_nothing() {
    let dir = std::env::temp_dir().join(format!("bsjobs-bury-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut srv = Beanstalkd::builder().binlog(&dir).start();
    let client = Client::new(&srv.url()).unwrap();
    let jobs = 12u32;
    let (sd, h) = spawn_worker(&srv.url(), &["l_crash"]);
    let mut seed = (std::process::id() as u64) | 1;
    for n in 0..jobs {
        // The client reconnects after a restart; retry the first put.
        let mut ok = false;
        for _ in 0..20 {
            if Doomed::new(n).client(&client).enqueue().await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ok, "enqueue {n}");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if n % 3 == 2 {
            // Kill somewhere in the first few milliseconds of the burials.
            tokio::time::sleep(Duration::from_micros(seed % 4000)).await;
            srv.kill();
            srv.restart();
        }
    }
    let all_buried = || async {
        let c = counts(&client, "l_crash").await;
        c.buried >= u64::from(jobs) && c.ready + c.reserved == 0
    };
    assert!(
        until(Duration::from_secs(20), all_buried).await,
        "{:?}",
        counts(&client, "l_crash").await
    );
    // Every job is there, buried, with its error.
    let mut found = std::collections::BTreeSet::new();
    let mut kept = Vec::new();
    while let Some((id, body)) = client.peek_buried(0, "l_crash").await.unwrap() {
        let v: Value = serde_json::from_slice(&body).unwrap();
        let n = v["args"]["n"].as_u64().unwrap();
        let has_err = v["err"]["error"] == format!("job {n} fails");
        kept.push((id, n, has_err));
        found.insert(n);
        client.delete(0, id).await.unwrap();
    }
    let c = counts(&client, "l_crash").await;
    println!(
        "burial crash test: {jobs} jobs, {} runs, {} buried ({} with their error), {} delayed leftover copies",
        CRASH_RUNS.load(Ordering::SeqCst),
        kept.len(),
        kept.iter().filter(|k| k.2).count(),
        c.delayed
    );
    assert_eq!(found.len() as u32, jobs, "no job lost: {kept:?}");
    sd.trigger();
    h.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

type Seen = (u64, Option<String>, Option<std::time::SystemTime>);
static IDENTITIES: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "l_identity", retries = 1, backoff = "1s")]
async fn identified() -> Result<(), String> {
    let j = bsjobs::current_job().unwrap();
    IDENTITIES
        .lock()
        .unwrap()
        .push((j.id, j.identity, j.enqueued_at));
    Err("fails".into())
}

/// One identity for the whole life of a job: the first attempt, the
/// retry, the buried copy and the run after a kick are four beanstalkd jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_keeps_one_identity_across_retries_burial_and_kicks() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["l_identity"]);
    let handle = Identified::new().client(&client).enqueue().await.unwrap();
    assert_eq!(handle.identity.len(), 32);
    let buried = || async { counts(&client, "l_identity").await.buried == 1 };
    assert!(until(Duration::from_secs(6), buried).await);
    let (copy, body) = buried_body(&client, "l_identity").await;
    assert_eq!(
        body["id"],
        handle.identity.as_str(),
        "the buried copy keeps it"
    );
    client.kick_job(0, copy).await.unwrap();
    assert!(
        until(Duration::from_secs(8), || async {
            IDENTITIES.lock().unwrap().len() == 4 && counts(&client, "l_identity").await.buried == 1
        })
        .await
    );
    let seen = IDENTITIES.lock().unwrap().clone();
    println!("runs: {seen:?}");
    let ids: std::collections::BTreeSet<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(ids.len(), 4, "four beanstalkd jobs");
    assert!(
        seen.iter()
            .all(|s| s.1.as_deref() == Some(handle.identity.as_str())),
        "{seen:?}"
    );
    // And one first-enqueue time, the kick included.
    assert!(seen[0].2.is_some());
    assert!(seen.iter().all(|s| s.2 == seen[0].2), "{seen:?}");
    sd.trigger();
    h.await.unwrap().unwrap();
}

static HALF_RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "l_half", retries = 0)]
async fn half_buried(n: u32) -> Result<(), String> {
    HALF_RUNS.lock().unwrap().push(n);
    Err(format!("job {n} fails"))
}

/// The state a crash between a burial's two writes leaves, made by hand so
/// that the leftover path runs every time (the kill test above rarely lands
/// inside a burial): the job, still there, and the copy with its `err`
/// record, delayed, never buried, never kicked. The job runs again and is
/// buried with its own record; the copy comes due (here after 1 s instead
/// of a week) and is deleted unrun; nothing runs twice or is left over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_left_by_a_crash_inside_a_burial_is_deleted_unrun() {
    let (srv, client) = server();
    let job = HalfBuried::new(7).client(&client).enqueue().await.unwrap();
    let copy = format!(
        r#"{{"args":{{"n":7}},"id":"{}","attempt":1,"prev":{},"err":{{"error":"job 7 fails","attempt":1,"at":0,"host":"h","pid":1,"job":{}}}}}"#,
        job.identity, job.id, job.id
    );
    let copy_id = client
        .put("l_half", 1024, 1, 60, copy.into_bytes())
        .await
        .unwrap();
    let (sd, h) = spawn_worker(&srv.url(), &["l_half"]);
    assert!(
        until(Duration::from_secs(10), || async {
            let c = counts(&client, "l_half").await;
            c.buried == 1 && c.ready + c.delayed + c.reserved == 0
        })
        .await,
        "{:?}",
        counts(&client, "l_half").await
    );
    assert!(
        matches!(
            client.stats_job(0, copy_id).await,
            Err(bsjobs::Error::NotFound)
        ),
        "the leftover copy is gone"
    );
    assert_eq!(
        *HALF_RUNS.lock().unwrap(),
        [7],
        "the job ran once, the copy never"
    );
    let (_, body) = buried_body(&client, "l_half").await;
    assert_eq!(body["err"]["error"], "job 7 fails");
    assert_eq!(body["id"], job.identity.as_str());
    sd.trigger();
    h.await.unwrap().unwrap();
}
