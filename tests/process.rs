//! What the README promises a worker binary and a producer process: the
//! `main` that calls `bsjobs::run()` runs every linked job and stops cleanly
//! on SIGINT; `Job::enqueue` without `.client` uses `Client::set_global`, else
//! `BSJOBS_URL`, else `127.0.0.1:11300` with 1 s / 5 s timeouts. Each case
//! runs `tests/bin/run_worker.rs` as a child process (the global client and
//! signal handlers are per process).

use bsjobs::testing::Beanstalkd;
use bsjobs::Client;
use bsjobs_tests::ledger::{Entry, Ledger};
use bsjobs_tests::{counts, eventually, until};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_run-worker");

/// The jobs of `tests/bin/run_worker.rs`, declared again to enqueue them.
mod jobs {
    #[bsjobs::job(tube = "rw_note")]
    pub async fn note(text: String, ms: u64) {
        let _ = (text, ms);
    }

    #[bsjobs::job(tube = "rw_plain")]
    pub fn plain_note(text: String) {
        let _ = text;
    }
}
use jobs::{Note, PlainNote};

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "bsjobs-process-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn command(url: Option<&str>, ledger: &Ledger) -> Command {
    let mut cmd = Command::new(BIN);
    match url {
        Some(u) => cmd.env("BSJOBS_URL", u),
        None => cmd.env_remove("BSJOBS_URL"),
    };
    cmd.env("RUN_LEDGER", ledger.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // Dies with the test even if the test process is killed.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd
}

/// Runs a short mode to its end (10 s at most).
fn run_mode(url: Option<&str>, ledger: &Ledger, args: &[&str]) -> Output {
    let mut child = command(url, ledger)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("run-worker {args:?} did not finish in 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

use bsjobs_tests::KillOnDrop as Proc;

fn has(ledger: &Ledger, what: &str, job: &str, key: &str) -> bool {
    ledger.read().iter().any(|e| match e {
        Entry::Start { job: j, key: k, .. } => what == "start" && j == job && k == key,
        Entry::Done { job: j, key: k, .. } => what == "done" && j == job && k == key,
        _ => false,
    })
}

async fn watching(client: &Client, tube: &str) -> bool {
    client
        .stats_tube(0, tube)
        .await
        .is_ok_and(|s| s.current_watching >= 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bsjobs_run_runs_every_linked_job_and_sigint_stops_it_cleanly() {
    bsjobs_tests::init_tracing();
    let scratch = Scratch::new("run");
    let ledger = Ledger::open(scratch.0.join("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let log = std::fs::File::create(scratch.0.join("worker.log")).unwrap();
    let mut worker = Proc(
        command(Some(&srv.url()), &ledger)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(scratch.0.join("worker.log")).unwrap_or_default();
    // run() found the server through BSJOBS_URL and watches every tube
    // linked into the binary, with no list given.
    assert!(
        until(Duration::from_secs(10), || async {
            watching(&client, "rw_note").await && watching(&client, "rw_plain").await
        })
        .await,
        "run() watches both linked tubes; log:\n{}",
        log_text()
    );
    Note::new("a".into(), 0)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    PlainNote::new("b".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || has(
            &ledger, "done", "note", "a"
        ) && has(
            &ledger, "done", "plain", "b"
        ))
        .await,
        "both jobs ran; log:\n{}",
        log_text()
    );
    // A job in flight when SIGINT comes finishes; nothing new starts.
    Note::new("slow".into(), 1500)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || has(
            &ledger, "start", "note", "slow"
        ))
        .await,
        "the slow job starts"
    );
    let t = Instant::now();
    assert_eq!(
        unsafe { libc::kill(worker.0.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    Note::new("later".into(), 0)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let mut status = None;
    while t.elapsed() < Duration::from_secs(15) {
        if let Some(s) = worker.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t.elapsed();
    let left = counts(&client, "rw_note").await;
    println!(
        "run-sigint: exit={status:?} after {:.2}s, slow done={}, later started={}, left={left:?}",
        took.as_secs_f64(),
        has(&ledger, "done", "note", "slow"),
        has(&ledger, "start", "note", "later"),
    );
    let status =
        status.unwrap_or_else(|| panic!("no exit 15 s after SIGINT; log:\n{}", log_text()));
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after SIGINT; log:\n{}",
        log_text()
    );
    assert!(
        has(&ledger, "done", "note", "slow"),
        "the in-flight job finished before the exit"
    );
    assert!(
        !has(&ledger, "start", "note", "later"),
        "nothing new is reserved after SIGINT"
    );
    assert_eq!((left.ready, left.reserved), (1, 0), "the later job waits");
    assert!(log_text().contains("SIGINT"), "the worker logs the signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_without_a_client_uses_set_global_else_bsjobs_url() {
    let scratch = Scratch::new("global");
    let ledger = Ledger::open(scratch.0.join("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("beanstalk://{}", l.local_addr().unwrap())
    };
    let id_of = |out: &Output| -> u64 {
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .strip_prefix("id=")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no id in {text:?} (exit {:?}, stderr {})",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })
    };
    let body_of = |id: u64| {
        let client = client.clone();
        async move {
            let body = client.peek(0, id).await.unwrap().expect("the job is there");
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["args"]["text"].clone()
        }
    };
    // BSJOBS_URL names the server.
    let out = run_mode(Some(&srv.url()), &ledger, &["enqueue", "via-env"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(body_of(id_of(&out)).await, "via-env");
    // Client::set_global wins over BSJOBS_URL (which names a dead port here).
    let out = run_mode(
        Some(&dead),
        &ledger,
        &["enqueue-global", &srv.url(), "via-global"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(body_of(id_of(&out)).await, "via-global");
    // Without set_global, that dead BSJOBS_URL is really what is used.
    let out = run_mode(Some(&dead), &ledger, &["enqueue", "nowhere"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("error:"), "{text}");
    assert_eq!(counts(&client, "rw_note").await.ready, 2);
    println!("global-client: ok; dead BSJOBS_URL -> {}", text.trim());
}

#[test]
fn without_bsjobs_url_the_default_is_local_port_11300_with_1s_and_5s_timeouts() {
    let scratch = Scratch::new("defaults");
    let ledger = Ledger::open(scratch.0.join("ledger")).unwrap();
    // Only reads the settings: nothing connects to port 11300.
    let out = run_mode(None, &ledger, &["defaults"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text.trim(),
        r#"servers=["127.0.0.1:11300"] connect_timeout=1s io_timeout=5s"#
    );
    let out = run_mode(
        Some("beanstalk://10.1.2.3:4567,h:1"),
        &ledger,
        &["defaults"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        r#"servers=["10.1.2.3:4567", "h:1"] connect_timeout=1s io_timeout=5s"#,
        "BSJOBS_URL with several servers"
    );
}

/// A second SIGINT during the grace period (30 s by default) releases the
/// in-flight job at once and exits 0, saying so in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigint_releases_in_flight_jobs_and_exits_at_once() {
    let scratch = Scratch::new("run2");
    let ledger = Ledger::open(scratch.0.join("ledger")).unwrap();
    let srv = Beanstalkd::start();
    let client = Client::new(&srv.url()).unwrap();
    let log = std::fs::File::create(scratch.0.join("worker.log")).unwrap();
    let mut worker = Proc(
        command(Some(&srv.url()), &ledger)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || std::fs::read_to_string(scratch.0.join("worker.log")).unwrap_or_default();
    let handle = Note::new("long".into(), 60_000)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || has(
            &ledger, "start", "note", "long"
        ))
        .await,
        "the long job starts; log:\n{}",
        log_text()
    );
    let pid = worker.0.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the first SIGINT waits for the grace period"
    );
    let t = Instant::now();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let mut status = None;
    while t.elapsed() < Duration::from_secs(10) {
        if let Some(s) = worker.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "second-sigint: exit={status:?} {:.2}s after it",
        t.elapsed().as_secs_f64()
    );
    let status =
        status.unwrap_or_else(|| panic!("no exit after a second SIGINT; log:\n{}", log_text()));
    assert_eq!(status.code(), Some(0), "log:\n{}", log_text());
    assert!(log_text().contains("second signal"), "log:\n{}", log_text());
    let st = client.stats_job(0, handle.id).await.unwrap();
    assert_eq!(
        st.state,
        bsjobs::JobState::Ready,
        "released, not left to its TTR"
    );
}
