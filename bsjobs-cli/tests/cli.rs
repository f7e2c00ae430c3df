//! The real `bsjobs` binary against a real beanstalkd.

use bsjobs_core::testing::{put_buried, Beanstalkd};
use bsjobs_core::Client;
use serde_json::Value;
use std::process::Command;

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn bsjobs(url: &str, args: &[&str]) -> Run {
    let o = Command::new(env!("CARGO_BIN_EXE_bsjobs"))
        .args(args)
        .env("BSJOBS_URL", url)
        .env_remove("NO_COLOR")
        .output()
        .expect("run bsjobs");
    Run {
        code: o.status.code().expect("exit code"),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn json(r: &Run) -> Value {
    assert_eq!(r.code, 0, "stderr: {}", r.err);
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{e}: {}", r.out))
}

async fn seed(server: &Beanstalkd) -> (Client, Vec<u64>) {
    let c = Client::new(&server.url()).unwrap();
    for _ in 0..3 {
        c.put("email", 1024, 0, 60, br#"{"args":{"to":"a@b.c"}}"#.to_vec())
            .await
            .unwrap();
    }
    c.put(
        "email",
        1024,
        3600,
        60,
        br#"{"args":{"to":"later"}}"#.to_vec(),
    )
    .await
    .unwrap();
    let mut buried = Vec::new();
    for i in 0..3 {
        let body = format!(r#"{{"args":{{"amount":{i}}},"attempt":4,"err":"card declined {i}"}}"#);
        buried.push(
            put_buried(&server.addr(), "pay", 1, body.as_bytes())
                .await
                .unwrap(),
        );
    }
    (c, buried)
}

#[tokio::test]
async fn tubes_and_jobs_list_as_tables_and_json() {
    let server = Beanstalkd::start();
    let (_c, buried) = seed(&server).await;
    let url = server.url();

    let t = json(&bsjobs(&url, &["--json", "tubes"]));
    let email = t
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "email")
        .unwrap();
    assert_eq!(
        (email["ready"].as_u64(), email["delayed"].as_u64()),
        (Some(3), Some(1))
    );
    let pay = t
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pay")
        .unwrap();
    assert_eq!(pay["buried"], 3);

    // Not a terminal: tab-separated, no header, no colour.
    let r = bsjobs(&url, &["tubes"]);
    assert_eq!(r.code, 0);
    assert!(
        r.out.lines().any(|l| l == "pay\t0\t0\t0\t3\t3\t-"),
        "{}",
        r.out
    );
    assert!(!r.out.contains('\x1b'));
    let r = bsjobs(&url, &["--color", "always", "tubes"]);
    assert!(r.out.contains("\x1b[31m3\x1b[0m"), "{:?}", r.out);

    let page = json(&bsjobs(
        &url,
        &["--json", "jobs", "pay", "--state", "buried", "--limit", "2"],
    ));
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["id"].as_u64(), Some(buried[2]));
    assert_eq!(jobs[0]["state"], "buried");
    assert_eq!(jobs[0]["addr"], server.addr());
    assert_eq!(jobs[0]["body"]["args"]["amount"], 2);
    assert_eq!(jobs[0]["body"]["error"], "card declined 2");
    assert_eq!(jobs[0]["body"]["attempt"], 4);
    assert_eq!(page["matching"], 3);
    let next = page["next"]["id"].as_u64().unwrap().to_string();
    let rest = json(&bsjobs(
        &url,
        &[
            "--json", "jobs", "pay", "--state", "buried", "--after", &next,
        ],
    ));
    assert_eq!(rest["jobs"][0]["id"].as_u64(), Some(buried[0]));
    assert!(rest["next"].is_null());

    let r = bsjobs(&url, &["jobs", "pay", "--state", "buried"]);
    let first = r.out.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}\tburied\t", buried[2])),
        "{first}"
    );
    assert!(
        first.ends_with("\t{\"amount\":2}\tcard declined 2"),
        "{first}"
    );

    let r = bsjobs(&url, &["show", &buried[1].to_string()]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("card declined 1") && r.out.contains("\"amount\": 1"),
        "{}",
        r.out
    );
    let r = bsjobs(&url, &["show", "9999"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("job 9999 not found"), "{}", r.err);
}

#[tokio::test]
async fn actions_change_the_server_and_exit_codes_tell_what_happened() {
    let server = Beanstalkd::start();
    let (c, buried) = seed(&server).await;
    let url = server.url();
    let counts = |t: &'static str| {
        let c = c.clone();
        async move {
            let s = c.stats_tube(0, t).await.unwrap();
            (
                s.current_jobs_ready,
                s.current_jobs_delayed,
                s.current_jobs_buried,
            )
        }
    };

    let r = bsjobs(&url, &["kick", "pay", &buried[0].to_string()]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(counts("pay").await, (1, 0, 2));
    // A job of another tube is refused, and nothing is done.
    let r = bsjobs(&url, &["kick", "email", &buried[1].to_string()]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("is in tube pay, not email"), "{}", r.err);
    assert_eq!(counts("pay").await, (1, 0, 2));
    // Several ids, one missing: the others are done, exit 1 names it.
    let r = bsjobs(&url, &["delete", "pay", &buried[1].to_string(), "7777"]);
    assert_eq!(r.code, 1, "{} {}", r.out, r.err);
    assert!(r.err.contains("7777"));
    assert_eq!(counts("pay").await, (1, 0, 1));

    let r = bsjobs(&url, &["--json", "kick", "pay", "--all"]);
    assert_eq!(json(&r)["kicked"], 1);
    assert_eq!(counts("pay").await, (2, 0, 0));
    // Nothing buried left: the delayed job of email stays delayed.
    let r = bsjobs(&url, &["kick", "email", "--all"]);
    assert_eq!(
        (r.code, r.out.trim()),
        (0, "kicked 0 buried job(s) of email")
    );
    assert_eq!(counts("email").await, (3, 1, 0));

    for _ in 0..2 {
        put_buried(&server.addr(), "pay", 1, b"{\"args\":{}}")
            .await
            .unwrap();
    }
    let r = bsjobs(&url, &["delete", "pay", "--all"]);
    assert_eq!(
        (r.code, r.out.trim()),
        (0, "deleted 2 buried job(s) of pay")
    );
    assert_eq!(counts("pay").await, (2, 0, 0));

    assert_eq!(bsjobs(&url, &["pause", "email", "90s"]).code, 0);
    let s = c.stats_tube(0, "email").await.unwrap();
    assert_eq!(s.pause, 90);
    assert_eq!(bsjobs(&url, &["resume", "email"]).code, 0);
    assert_eq!(c.stats_tube(0, "email").await.unwrap().pause, 0);
    let r = bsjobs(&url, &["pause", "nope", "1m"]);
    assert_eq!(r.code, 1);
    let r = bsjobs(&url, &["pause", "email", "soon"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("write e.g. 90, 60s"), "{}", r.err);

    // Cancel a repeating job: the waiting job is deleted.
    let id = c
        .put(
            "beat",
            1024,
            30,
            60,
            br#"{"args":{},"chain":"ch1"}"#.to_vec(),
        )
        .await
        .unwrap();
    let chains = json(&bsjobs(&url, &["--json", "chains"]));
    assert_eq!(chains["chains"][0]["chain"], "ch1");
    assert_eq!(chains["chains"][0]["job"]["id"].as_u64(), Some(id));
    let r = bsjobs(&url, &["--json", "cancel", &id.to_string()]);
    let v = json(&r);
    assert_eq!(
        (v["chain"].as_str(), v["deleted"].as_bool()),
        (Some("ch1"), Some(true))
    );
    assert!(matches!(
        c.stats_job(0, id).await,
        Err(bsjobs_core::Error::NotFound)
    ));
}

#[tokio::test]
async fn errors_say_what_to_do() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("beanstalk://127.0.0.1:{port}");
    let r = bsjobs(&url, &["tubes"]);
    assert_eq!(r.code, 3, "{}", r.err);
    assert!(
        r.err.contains(&format!("cannot reach beanstalk://127.0.0.1:{port}: connection refused — is beanstalkd running?")),
        "{}",
        r.err
    );
    assert_eq!(bsjobs(&url, &["jobs", "x"]).code, 3);
    let r = bsjobs("http://nope", &["tubes"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("beanstalk://"), "{}", r.err);
    let r = bsjobs(&url, &["jobs", "bad tube"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert_eq!(bsjobs(&url, &["frobnicate"]).code, 2);
    // An unsafe address is refused before anything else is tried.
    let r = bsjobs(&url, &["web", "--listen", "0.0.0.0:0"]);
    assert_eq!(r.code, 2, "{}", r.err);
}

#[tokio::test]
async fn web_refuses_to_listen_beyond_loopback_without_auth() {
    let server = Beanstalkd::start();
    let r = bsjobs(&server.url(), &["web", "--listen", "0.0.0.0:0"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("without authentication"), "{}", r.err);
}

#[tokio::test]
async fn top_refreshes_and_stops_after_its_iterations() {
    let server = Beanstalkd::start();
    let (_c, _) = seed(&server).await;
    let r = bsjobs(
        &server.url(),
        &["--json", "top", "--iterations", "3", "--interval", "200ms"],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    let frames: Vec<Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 3);
    let pay = |f: &Value| {
        f["tubes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "pay")
            .cloned()
            .unwrap()
    };
    assert!(pay(&frames[0])["put_per_sec"].is_null());
    assert_eq!(pay(&frames[2])["put_per_sec"], 0.0);
    assert_eq!(pay(&frames[2])["buried"], 3);
    let r = bsjobs(&server.url(), &["top", "--once"]);
    assert_eq!(r.code, 0);
    assert!(
        r.out.contains(&server.addr()) && r.out.contains("pay\t0\t0\t0\t3"),
        "{}",
        r.out
    );
}

#[test]
fn completions_are_printed() {
    let r = bsjobs("beanstalk://127.0.0.1:1", &["completions", "bash"]);
    assert_eq!(r.code, 0);
    assert!(r.out.contains("_bsjobs()") && r.out.contains("kick"));
}

/// Runs `bsjobs` on a pseudo-terminal (util-linux `script`), as a user's
/// shell does.
fn on_terminal(url: &str, args: &str, no_color: bool) -> String {
    let cmd = format!("{} --url {url} {args}", env!("CARGO_BIN_EXE_bsjobs"));
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"]).env("COLUMNS", "200");
    if no_color {
        c.env("NO_COLOR", "1");
    } else {
        c.env_remove("NO_COLOR");
    }
    let o = c.output().expect("util-linux script");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n")
}

#[tokio::test]
async fn on_a_terminal_tables_are_aligned_and_coloured() {
    let server = Beanstalkd::start();
    let (_c, _) = seed(&server).await;
    let out = on_terminal(&server.url(), "tubes", false);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "\x1b[1mTUBE\x1b[0m     \x1b[1mREADY\x1b[0m  \x1b[1mDELAYED\x1b[0m  \x1b[1mRESERVED\x1b[0m  \x1b[1mBURIED\x1b[0m  \x1b[1mTOTAL\x1b[0m  \x1b[1mPAUSED\x1b[0m", "{out:?}");
    assert!(
        lines.contains(&"pay      0      0        0         \x1b[31m3\x1b[0m       3      -"),
        "{out:?}"
    );
    let plain = on_terminal(&server.url(), "tubes", true);
    assert!(!plain.contains('\x1b'), "NO_COLOR: {plain:?}");
    assert!(
        plain
            .lines()
            .any(|l| l == "email    3      1        0         0       4      -"),
        "{plain:?}"
    );
}

fn interrupt(child: &std::process::Child) {
    // SIGINT, as Ctrl-C sends.
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A child process killed when the test ends, even by a failed assertion.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 10 s for `child` to exit; its exit code.
fn exit_within(child: &mut std::process::Child) -> i32 {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().expect("exited, not killed");
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn top_and_web_stop_on_ctrl_c() {
    use std::io::BufRead as _;
    let server = Beanstalkd::start();
    let mut top = Reaped(
        Command::new(env!("CARGO_BIN_EXE_bsjobs"))
            .args(["--json", "top", "--interval", "200ms"])
            .env("BSJOBS_URL", server.url())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(top.0.stdout.take().unwrap()).lines();
    // Two refreshes seen: it is running its loop.
    for _ in 0..2 {
        let l = lines.next().unwrap().unwrap();
        assert!(l.starts_with("{\"servers\""), "{l}");
    }
    interrupt(&top.0);
    assert_eq!(exit_within(&mut top.0), 0);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut web = Reaped(
        Command::new(env!("CARGO_BIN_EXE_bsjobs"))
            .args([
                "web",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--read-only",
            ])
            .env("BSJOBS_URL", server.url())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut err = std::io::BufReader::new(web.0.stderr.take().unwrap()).lines();
    let l = err.next().unwrap().unwrap();
    assert!(l.contains(&format!("http://127.0.0.1:{port}/")), "{l}");
    // It serves the page, in read-only mode.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("name=\"bsjobs-read-only\" content=\"true\""));
    interrupt(&web.0);
    assert_eq!(exit_within(&mut web.0), 0);
}
