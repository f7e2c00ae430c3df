//! A worker's Prometheus metrics, scraped over HTTP and checked with
//! `promtool check metrics` (Debian package `prometheus`).

use bsjobs_tests::{counts, server, spawn_configured, until};
use std::io::{Read as _, Write as _};
use std::time::Duration;

#[bsjobs::job(tube = "p_ok")]
async fn ok_job() {}

#[bsjobs::job(tube = "p_fail", retries = 1, backoff = "1s")]
async fn failing() -> Result<(), String> {
    Err("nope".into())
}

fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn value(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_metrics_that_promtool_accepts() {
    let (srv, client) = server();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..3 {
        OkJob::new().client(&client).enqueue().await.unwrap();
    }
    Failing::new().client(&client).enqueue().await.unwrap();
    client
        .put("p_ok", 0, 0, 60, b"not json".to_vec())
        .await
        .unwrap();
    client
        .put("p_fail", 0, 3600, 60, br#"{"args":{}}"#.to_vec())
        .await
        .unwrap();
    let (sd, h) = spawn_configured(
        bsjobs::Worker::from_url(&srv.url())
            .unwrap()
            .metrics(addr.parse().unwrap()),
        &["p_ok", "p_fail"],
    );
    assert!(
        until(Duration::from_secs(8), || async {
            counts(&client, "p_fail").await.buried == 1 && counts(&client, "p_ok").await.buried == 1
        })
        .await
    );
    let text = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || scrape(&addr)
    })
    .await
    .unwrap();
    println!("{text}");
    assert_eq!(
        value(&text, r#"bsjobs_jobs_succeeded_total{tube="p_ok"}"#),
        3.0
    );
    assert_eq!(
        value(&text, r#"bsjobs_jobs_failed_total{tube="p_fail"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"bsjobs_jobs_buried_total{tube="p_fail"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"bsjobs_jobs_undecodable_total{tube="p_ok"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"bsjobs_job_duration_seconds_count{tube="p_ok"}"#),
        3.0
    );
    assert_eq!(
        value(
            &text,
            r#"bsjobs_queue_latency_seconds_count{tube="p_fail"}"#
        ),
        2.0
    );
    assert_eq!(value(&text, r#"bsjobs_jobs_in_flight{tube="p_ok"}"#), 0.0);
    let delayed = format!(
        r#"bsjobs_queue_jobs{{tube="p_fail",server="{}",state="delayed"}}"#,
        srv.addr()
    );
    assert_eq!(value(&text, &delayed), 1.0, "depth read from beanstalkd");
    // promtool, the Prometheus project's own checker.
    let file = std::env::temp_dir().join(format!("bsjobs-metrics-{}.txt", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool on PATH (Debian: apt-get install prometheus; .ci/run installs it)");
    let _ = std::fs::remove_file(&file);
    println!(
        "promtool: {:?} {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool rejected the metrics");
    sd.trigger();
    h.await.unwrap().unwrap();
}
