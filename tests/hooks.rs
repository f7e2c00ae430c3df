//! Per-job hooks (`Worker::hook_for::<J>`, `Client::add_hook_for::<J>`)
//! against a real beanstalkd: a job's own hook sees that job's enqueues,
//! runs and events and nothing of another job; global hooks wrap it.

use bsjobs::hook::{Event, Hook, Outgoing};
use bsjobs::{Client, CurrentJob, JobId};
use bsjobs_tests::{counts, server, spawn_configured, until};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What reached the handlers and the hooks' `around`, per beanstalkd job:
/// `G` (global hook), `P` (per-job hook), `run` (the handler).
static TRAIL: Mutex<Vec<(JobId, &'static str)>> = Mutex::new(Vec::new());
/// The `meta` each run saw, by tube.
static META: Mutex<Vec<(&'static str, serde_json::Value)>> = Mutex::new(Vec::new());

fn ran() {
    let job = bsjobs::current_job().expect("inside a job");
    TRAIL.lock().unwrap().push((job.id, "run"));
    META.lock()
        .unwrap()
        .push((job.tube, job.meta.unwrap_or_default()));
}

static CHARGES: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt.
#[bsjobs::job(tube = "hk_charge", retries = 2, backoff = 0)]
async fn charge(order: u64) -> Result<(), String> {
    ran();
    if CHARGES.fetch_add(1, Ordering::SeqCst) == 0 {
        Err(format!("order {order}: gateway timeout"))
    } else {
        Ok(())
    }
}

#[bsjobs::job(tube = "hk_mail")]
async fn mail(to: String) {
    let _ = to;
    ran();
}

/// A worker-side hook: records the tubes of its events and its place in
/// the runs it wraps.
#[derive(Clone)]
struct Watch {
    name: &'static str,
    events: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn new(name: &'static str) -> Self {
        Watch {
            name,
            events: Arc::default(),
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

impl Hook for Watch {
    fn around(
        &self,
        job: &CurrentJob,
        run: bsjobs::hook::HandlerFuture,
    ) -> bsjobs::hook::HandlerFuture {
        let (id, name) = (job.id, self.name);
        // Recorded when the wrapped run starts: an outer hook's future
        // starts before the one it wraps.
        Box::pin(async move {
            TRAIL.lock().unwrap().push((id, name));
            run.await
        })
    }

    fn on_event(&self, event: &Event<'_>) {
        let e = match event {
            Event::Started { job, .. } => format!("started {}", job.tube),
            Event::Succeeded { job, .. } => format!("succeeded {}", job.tube),
            Event::Failed { job, .. } => format!("failed {}", job.tube),
            Event::Buried { job, .. } => format!("buried {}", job.tube),
            Event::Undecodable { tube, .. } => format!("undecodable {tube}"),
            _ => "other".into(),
        };
        self.events.lock().unwrap().push(e);
    }
}

/// A client-side hook: counts the enqueues it sees by tube, tags them, and
/// refuses them while `closed`.
#[derive(Clone, Default)]
struct Gate {
    tag: &'static str,
    seen: Arc<Mutex<BTreeMap<&'static str, u32>>>,
    closed: Arc<AtomicBool>,
}

impl Hook for Gate {
    fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
        let tube: &'static str = match job.tube {
            "hk_charge" => "hk_charge",
            "hk_mail" => "hk_mail",
            _ => "other",
        };
        *self.seen.lock().unwrap().entry(tube).or_default() += 1;
        if self.closed.load(Ordering::SeqCst) {
            return Err(format!("{} is closed", self.tag));
        }
        // The global hook tags first; a per-job hook sees its tag.
        let order = job.meta().get("order").and_then(|o| o.as_str());
        let order = format!("{}{}", order.unwrap_or(""), self.tag);
        job.set_meta("order", order);
        Ok(())
    }
}

fn seen(g: &Gate) -> BTreeMap<&'static str, u32> {
    g.seen.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_job_hook_sees_only_its_job_inside_the_global_hooks() {
    let (srv, client) = server();

    // The enqueue side.
    let everyone = Gate {
        tag: "G",
        ..Gate::default()
    };
    let charges = Gate {
        tag: "P",
        ..Gate::default()
    };
    // Registered before the global hook: it still comes second.
    client.add_hook_for::<Charge>(charges.clone());
    client.add_hook(everyone.clone());

    charges.closed.store(true, Ordering::SeqCst);
    let err = Charge::new(1).client(&client).enqueue().await.unwrap_err();
    assert!(
        matches!(&err, bsjobs::Error::Refused(why) if why == "P is closed"),
        "{err}"
    );
    assert_eq!(counts(&client, "hk_charge").await.live(), 0, "nothing put");
    Mail::new("ada@example.com".into())
        .client(&client)
        .enqueue()
        .await
        .expect("the other job is not refused");
    charges.closed.store(false, Ordering::SeqCst);
    Charge::new(2).client(&client).enqueue().await.unwrap();
    assert_eq!(
        seen(&everyone),
        BTreeMap::from([("hk_charge", 2), ("hk_mail", 1)]),
        "the global hook sees every enqueue"
    );
    assert_eq!(
        seen(&charges),
        BTreeMap::from([("hk_charge", 2)]),
        "the per-job hook sees only its job's"
    );

    // The worker side: the per-job hook registered first, again.
    let global = Watch::new("G");
    let own = Watch::new("P");
    let worker = bsjobs::Worker::from_url(&srv.url())
        .unwrap()
        .hook_for::<Charge>(own.clone())
        .hook(global.clone());
    let (sd, h) = spawn_configured(worker, &["hk_charge", "hk_mail"]);
    let settled = || async {
        counts(&client, "hk_charge").await.live() == 0
            && counts(&client, "hk_mail").await.live() == 0
            && global.count("succeeded") == 2
    };
    assert!(until(Duration::from_secs(10), settled).await);
    sd.trigger();
    h.await.unwrap().unwrap();

    println!("global: {:?}\nper-job: {:?}", global.events(), own.events());
    assert_eq!(
        own.events(),
        [
            "started hk_charge",
            "failed hk_charge",
            "started hk_charge",
            "succeeded hk_charge"
        ],
        "the per-job hook hears its job's events, and no other job's"
    );
    assert_eq!(global.count("started"), 3, "{:?}", global.events());
    assert_eq!(global.count("started hk_mail"), 1);
    assert_eq!(global.count("failed hk_charge"), 1);

    // Every run wrapped: the global hook outside the per-job one.
    let mut runs: BTreeMap<JobId, Vec<&str>> = BTreeMap::new();
    // (Another test's server numbers its jobs from 1 too: keep this one's.)
    for (id, what) in TRAIL.lock().unwrap().iter() {
        if ["G", "P", "run"].contains(what) {
            runs.entry(*id).or_default().push(what);
        }
    }
    println!("runs: {runs:?}");
    assert_eq!(runs.len(), 3, "two attempts of the charge, one mail");
    let mut shapes: Vec<Vec<&str>> = runs.into_values().collect();
    shapes.sort();
    assert_eq!(
        shapes,
        [
            vec!["G", "P", "run"],
            vec!["G", "P", "run"],
            vec!["G", "run"]
        ]
    );

    // Metadata: both tags on the charge, in that order; the mail's only G.
    let meta = META.lock().unwrap().clone();
    assert_eq!(meta.len(), 3);
    for (tube, m) in &meta {
        let want = if *tube == "hk_charge" { "GP" } else { "G" };
        assert_eq!(m["order"], want, "{tube}: {m}");
    }
}

/// A per-job hook registered on a clone of the client holds for the
/// original too (the hooks live in the shared client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_job_client_hooks_are_shared_by_clones() {
    let (_srv, client) = server();
    let gate = Gate {
        tag: "P",
        closed: Arc::new(AtomicBool::new(true)),
        ..Gate::default()
    };
    Client::clone(&client).add_hook_for::<Mail>(gate.clone());
    let err = Mail::new("x".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap_err();
    assert!(matches!(err, bsjobs::Error::Refused(_)), "{err}");
    assert_eq!(seen(&gate), BTreeMap::from([("hk_mail", 1)]));
}

static RAW_RUNS: AtomicU32 = AtomicU32::new(0);
/// What `current_job()` said in each run of the raw job: (attempt, id).
static RAW_SEEN: Mutex<Vec<(u32, JobId)>> = Mutex::new(Vec::new());

/// A raw job: the body as it is; fails its first attempt.
#[bsjobs::job(tube = "hk_raw", raw, retries = 2, backoff = 0)]
async fn legacy(text: String) -> Result<(), String> {
    let job = bsjobs::current_job().expect("inside a job");
    RAW_SEEN.lock().unwrap().push((job.attempt, job.id));
    if RAW_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err(format!("{text}: not yet"))
    } else {
        Ok(())
    }
}

/// Raw jobs are wrapped by their hooks and send the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_job_is_wrapped_by_its_hooks_and_sends_their_events() {
    let (srv, client) = server();
    let own = Watch::new("raw");
    let worker = bsjobs::Worker::from_url(&srv.url())
        .unwrap()
        .hook_for::<Legacy>(own.clone());
    let (sd, h) = spawn_configured(worker, &["hk_raw"]);
    let handle = Legacy::new("invoice 9".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            own.count("succeeded") == 1 && counts(&client, "hk_raw").await.live() == 0
        })
        .await,
        "{:?}",
        own.events()
    );
    sd.trigger();
    h.await.unwrap().unwrap();
    assert_eq!(
        own.events(),
        [
            "started hk_raw",
            "failed hk_raw",
            "started hk_raw",
            "succeeded hk_raw"
        ]
    );
    // The same job (a raw retry is a release), attempts counted by
    // beanstalkd, and each run wrapped.
    assert_eq!(
        RAW_SEEN.lock().unwrap().clone(),
        [(1, handle.id), (2, handle.id)]
    );
    let wrapped = TRAIL
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.0 == handle.id && t.1 == "raw")
        .count();
    assert_eq!(wrapped, 2);
}

static ENDS: Mutex<Vec<(&'static str, bsjobs::hook::ChainEnd)>> = Mutex::new(Vec::new());

/// Records `ChainEnded` events.
struct Ends;

impl Hook for Ends {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::ChainEnded { tube, reason, .. } = event {
            let tube: &'static str = match *tube {
                "hk_twice" => "hk_twice",
                "hk_long" => "hk_long",
                _ => "other",
            };
            ENDS.lock().unwrap().push((tube, *reason));
        }
    }
}

static TWICE: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "hk_twice", repeat = "1s", max = 2)]
async fn twice() {
    TWICE.fetch_add(1, Ordering::SeqCst);
}

static LONG_STARTED: AtomicBool = AtomicBool::new(false);

#[bsjobs::job(tube = "hk_long", repeat = "1h")]
async fn long_run() {
    LONG_STARTED.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
}

/// A chain's end is an event: once when `max` is reached, once when a
/// run in progress learns at its step that the chain was cancelled; a
/// one-shot job's end is not a chain's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_chain_is_an_event() {
    let (srv, client) = server();
    let worker = bsjobs::Worker::from_url(&srv.url()).unwrap().hook(Ends);
    let (sd, h) = spawn_configured(worker, &["hk_twice", "hk_long", "hk_mail"]);
    Twice::new().client(&client).enqueue().await.unwrap();
    let long = LongRun::new().client(&client).enqueue().await.unwrap();
    Mail::new("a@b".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        until(Duration::from_secs(5), || async {
            LONG_STARTED.load(Ordering::SeqCst)
        })
        .await
    );
    assert!(
        !long.cancel(&client).await.unwrap(),
        "running: ends at its step"
    );
    let ends = || ENDS.lock().unwrap().clone();
    assert!(
        until(Duration::from_secs(8), || async { ends().len() >= 2 }).await,
        "{:?}",
        ends()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = ends();
    got.sort_by_key(|(t, _)| *t);
    use bsjobs::hook::ChainEnd;
    assert_eq!(
        got,
        [
            ("hk_long", ChainEnd::Cancelled),
            ("hk_twice", ChainEnd::MaxRuns)
        ]
    );
    assert_eq!(TWICE.load(Ordering::SeqCst), 2);
    assert_eq!(counts(&client, "hk_long").await.live(), 0);
    sd.trigger();
    h.await.unwrap().unwrap();
}
