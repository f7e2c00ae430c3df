//! How long `bsjobs jobs TUBE --state buried` takes on a tube with 100,000
//! buried jobs, and how heavy the dashboard page is.
//!
//! ```sh
//! cargo build --release -p bsjobs-cli --bins --examples
//! target/release/examples/list_bench [--buried 100000] [--noise 100000] [--runs 5]
//! ```
//! Starts a private beanstalkd (127.0.0.1, free port), fills tube `pay` with
//! `--buried` buried jobs interleaved with `--noise` ready jobs of another
//! tube (so the walk must skip them), then times the real `bsjobs` binary
//! (next to this example in target/release) and prints medians. Not a test.

use bsjobs_core::admin::{Admin, JobQuery};
use bsjobs_core::client::{ClientConfig, Connection};
use bsjobs_core::proto::stats::JobState;
use bsjobs_core::proto::{Command, Response};
use bsjobs_core::testing::Beanstalkd;
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (buried, noise, runs) = (
        arg("--buried", 100_000),
        arg("--noise", 100_000),
        arg("--runs", 5),
    );
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("bsjobs"))
        .filter(|p| p.exists())
        .expect("build the binary first: cargo build --release -p bsjobs-cli --bins --examples");
    let server = Beanstalkd::start();
    let t = Instant::now();
    fill(&server.addr(), buried, noise).await;
    println!(
        "filled: {buried} buried jobs in `pay`, {noise} ready jobs in `noise`, in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let url = server.url();

    let time = |args: &[&str]| -> Duration {
        let mut v: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let st = Proc::new(&bin)
                    .args(args)
                    .env("BSJOBS_URL", &url)
                    .stdout(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success(), "bsjobs {args:?} failed");
                t.elapsed()
            })
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let all = buried.to_string();
    let first = time(&["jobs", "pay", "--state", "buried"]);
    let whole = time(&["jobs", "pay", "--state", "buried", "--limit", &all]);
    let whole_json = time(&[
        "--json", "jobs", "pay", "--state", "buried", "--limit", &all,
    ]);
    let admin = Admin::from_url(&url).unwrap();
    let t = Instant::now();
    let page = admin
        .jobs(
            &JobQuery::new("pay")
                .state(JobState::Buried)
                .limit(buried as usize),
        )
        .await
        .unwrap();
    let api = t.elapsed();
    assert_eq!(page.jobs.len() as u64, buried, "every buried job listed");
    // The walk alone (no bodies), and a raw ceiling: the same stats-job
    // commands pipelined on one connection, replies only counted.
    let mut q = JobQuery::new("pay")
        .state(JobState::Buried)
        .limit(buried as usize);
    q.bodies = false;
    let t = Instant::now();
    let walked = admin.jobs(&q).await.unwrap();
    let walk = t.elapsed();
    let t = Instant::now();
    let top = page.examined + 1;
    let mut c = Connection::connect(&server.addr(), &ClientConfig::default())
        .await
        .unwrap();
    let mut id = top;
    while id > 1 {
        let lo = id.saturating_sub(1000).max(1);
        for i in lo..id {
            c.queue(&Command::StatsJob(i));
        }
        c.flush().await.unwrap();
        for _ in lo..id {
            c.recv().await.unwrap();
        }
        id = lo;
    }
    let raw = t.elapsed();
    println!("\nmedian of {runs} runs of the release binary (process start included):");
    println!(
        "  bsjobs jobs pay --state buried                    (first 50)  {:>8.1} ms",
        ms(first)
    );
    println!(
        "  bsjobs jobs pay --state buried --limit {buried:<7}  (all)       {:>8.1} ms",
        ms(whole)
    );
    println!(
        "  bsjobs --json jobs pay --state buried --limit {buried:<7} (all) {:>8.1} ms",
        ms(whole_json)
    );
    println!(
        "  Admin::jobs, all: {:.1} ms; {} ids walked ({:.0} stats-job/s incl. peeks and decoding)",
        ms(api),
        page.examined,
        page.examined as f64 / api.as_secs_f64()
    );
    println!(
        "  Admin::jobs, all, without bodies: {:.1} ms ({:.0} ids/s); raw pipelined stats-job on one connection: {:.1} ms ({:.0} ids/s)",
        ms(walk),
        walked.examined as f64 / walk.as_secs_f64(),
        ms(raw),
        top as f64 / raw.as_secs_f64()
    );

    // Page weight: what a browser loads for the first view.
    let dash = bsjobs_web::Dashboard::new(admin);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(l, dash).await });
    println!("\ndashboard page weight (uncompressed bytes):");
    let mut total = 0;
    for path in [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/api/overview",
        "/api/jobs?tube=pay&state=buried&limit=50",
        "/api/chains",
    ] {
        let n = get_len(addr, path).await;
        total += n;
        println!("  {path:<45} {n:>8}");
    }
    println!("  {:<45} {total:>8}", "total, first view");
}

async fn axum_serve(l: tokio::net::TcpListener, dash: bsjobs_web::Dashboard) {
    bsjobs_web::serve(l, dash, std::future::pending())
        .await
        .unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Body length of a GET.
async fn get_len(addr: std::net::SocketAddr, path: &str) -> usize {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{path}");
    raw.len() - split
}

/// Puts `buried` jobs into `pay` and buries them, one `noise` job put
/// between each (while any are left), pipelined in batches.
async fn fill(addr: &str, buried: u64, noise: u64) {
    let mut c = Connection::connect(addr, &ClientConfig::default())
        .await
        .unwrap();
    let body = br#"{"v":1,"args":{"amount":42,"card":"4242"},"attempt":3,"err":"card declined"}"#;
    let (mut b, mut n) = (0, 0);
    while b < buried || n < noise {
        let mut ids = Vec::new();
        let mut replies = 0;
        for _ in 0..1000 {
            if n < noise {
                c.queue(&Command::Use("noise"));
                c.queue(&Command::Put {
                    pri: 1,
                    delay: 0,
                    ttr: 60,
                    body: b"{\"args\":{}}",
                });
                replies += 2;
                n += 1;
            }
            if b < buried {
                c.queue(&Command::Use("pay"));
                c.queue(&Command::Put {
                    pri: 1,
                    delay: 0,
                    ttr: 60,
                    body,
                });
                replies += 2;
                b += 1;
            }
        }
        c.flush().await.unwrap();
        let mut using = String::new();
        for _ in 0..replies {
            match c.recv().await.unwrap() {
                Response::Using(t) => using = t,
                Response::Inserted(id) if using == "pay" => ids.push(id),
                Response::Inserted(_) => {}
                r => panic!("{r:?}"),
            }
        }
        for &id in &ids {
            c.queue(&Command::ReserveJob(id));
            c.queue(&Command::Bury { id, pri: 1 });
        }
        c.flush().await.unwrap();
        for _ in 0..ids.len() * 2 {
            match c.recv().await.unwrap() {
                Response::Reserved { .. } | Response::Buried => {}
                r => panic!("{r:?}"),
            }
        }
    }
}
