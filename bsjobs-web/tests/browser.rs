//! The dashboard in a real browser (headless Chromium over the DevTools
//! protocol) against a real beanstalkd and a real bsjobs worker.
//!
//! Writes a screenshot to `$CARGO_TARGET_TMPDIR/dashboard.png`, and also to
//! the path in `BSJOBS_SCREENSHOT` when set (the README's docs/dashboard.png
//! is made with `BSJOBS_SCREENSHOT=$PWD/docs/dashboard.png`).

mod cdp;

use bsjobs_core::admin::{Admin, CHAINS_TUBE};
use bsjobs_core::testing::{put_buried, Beanstalkd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static CHARGED: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "payments")]
async fn charge(amount: u32, card: String) {
    let _ = card;
    CHARGED.store(amount, Ordering::SeqCst);
}

const XSS: &str = r#"<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_counts_and_errors_kicks_and_escapes() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let c = admin.client().clone();
    for to in ["ada", "bob", "eve"] {
        let body = format!(r#"{{"args":{{"to":"{to}@example.com"}}}}"#);
        c.put("email", 1024, 0, 60, body.into_bytes())
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
    let declined = put_buried(
        &server.addr(),
        "payments",
        1024,
        br#"{"v":1,"args":{"amount":42,"card":"4242"},"attempt":3,"err":"card declined: insufficient funds"}"#,
    )
    .await
    .unwrap();
    let xss_body = serde_json::json!({ "args": { "note": XSS }, "err": "<b>not bold</b>" });
    let xss = put_buried(
        &server.addr(),
        "payments",
        1024,
        xss_body.to_string().as_bytes(),
    )
    .await
    .unwrap();
    // A repeating chain: its token and its current (delayed) job.
    put_buried(
        &server.addr(),
        CHAINS_TUBE,
        7,
        br#"{"bsjobs":"chain-token","chain":"9f2c4e1a"}"#,
    )
    .await
    .unwrap();
    c.put(
        "heartbeat",
        1024,
        30,
        60,
        br#"{"args":{"service":"api"},"chain":"9f2c4e1a","run":7,"gen":7}"#.to_vec(),
    )
    .await
    .unwrap();

    let dash = bsjobs_web::Dashboard::new(admin.clone());
    let listener = bsjobs_web::bind("127.0.0.1:0".parse().unwrap(), &dash)
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_web, stopped) = tokio::sync::oneshot::channel::<()>();
    let web = tokio::spawn(bsjobs_web::serve(listener, dash, async {
        let _ = stopped.await;
    }));
    let stop_worker = bsjobs::Shutdown::new();
    let worker = tokio::spawn(
        bsjobs::Worker::from_url(&server.url())
            .unwrap()
            .tubes(["payments"])
            .grace(Duration::from_secs(2))
            .shutdown(stop_worker.clone())
            .run(),
    );

    let mut b = cdp::Browser::start(1280, 1000).await;
    b.goto(&format!("http://127.0.0.1:{port}/#tube=payments"))
        .await;
    b.wait_for(
        "document.querySelectorAll('#jobs tbody tr.job').length === 2",
        Duration::from_secs(20),
        "the buried jobs of payments",
    )
    .await;

    // The right counts.
    let cell = |tube: &str, col: &str| {
        format!("document.querySelector('tr[data-tube=\"{tube}\"] .c-{col}').textContent")
    };
    assert_eq!(b.eval(&cell("email", "ready")).await, "3");
    assert_eq!(b.eval(&cell("email", "delayed")).await, "1");
    assert_eq!(b.eval(&cell("payments", "buried")).await, "2");
    assert_eq!(
        b.eval("document.querySelector('tr[data-tube=\"bsjobs.chains\"]') === null")
            .await,
        true,
        "internal tubes are not listed"
    );

    // The buried job's error and decoded arguments.
    let row = |id: u64| format!("document.querySelector('tr.job[data-job=\"{id}\"]')");
    assert_eq!(
        b.eval(&format!(
            "{}.querySelector('.err').textContent",
            row(declined)
        ))
        .await,
        "card declined: insufficient funds"
    );
    let args = b
        .eval(&format!(
            "{}.querySelector('pre').textContent",
            row(declined)
        ))
        .await;
    assert!(args.as_str().unwrap().contains("\"amount\": 42"), "{args}");

    // The <script> argument is shown as text and runs nothing.
    let shown = b
        .eval(&format!("{}.querySelector('pre').textContent", row(xss)))
        .await;
    // Shown as JSON (its quotes escaped), markup and all.
    let shown = shown.as_str().unwrap();
    assert!(
        shown.contains("<script>window.__pwned=1</script><img src=x onerror="),
        "{shown}"
    );
    assert_eq!(
        b.eval(&format!("{}.querySelector('.err').textContent", row(xss)))
            .await,
        "<b>not bold</b>"
    );
    assert_eq!(b.eval("typeof window.__pwned").await, "undefined");
    assert_eq!(
        b.eval("document.querySelectorAll('img, script:not([src]), b').length")
            .await,
        0
    );

    // The repeating chain, with its next run.
    b.wait_for(
        "!!document.querySelector('tr[data-chain=\"9f2c4e1a\"]')",
        Duration::from_secs(10),
        "the chain",
    )
    .await;
    let chain = b
        .eval("document.querySelector('tr[data-chain=\"9f2c4e1a\"]').innerText")
        .await;
    assert!(
        chain.as_str().unwrap().contains("heartbeat") && chain.as_str().unwrap().contains("in "),
        "{chain}"
    );

    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        &png,
    )
    .unwrap();
    if let Ok(path) = std::env::var("BSJOBS_SCREENSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // Pressing kick makes the job run: the worker's handler sees its
    // arguments and beanstalkd no longer has it.
    assert_eq!(CHARGED.load(Ordering::SeqCst), 0);
    b.click(&format!(
        "tr.job[data-job=\"{declined}\"] button[data-action=\"kick\"]"
    ))
    .await;
    let ran = tokio::time::timeout(Duration::from_secs(15), async {
        while CHARGED.load(Ordering::SeqCst) != 42 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ran.is_ok(), "the kicked job did not run");
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while c.stats_job(0, declined).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the job that ran is still in beanstalkd");
    assert_eq!(
        c.stats_tube(0, "payments")
            .await
            .unwrap()
            .current_jobs_buried,
        1
    );
    b.wait_for(
        &format!("{} === '1'", cell("payments", "buried")),
        Duration::from_secs(10),
        "the page's buried count after the kick",
    )
    .await;
    assert_eq!(b.eval("typeof window.__pwned").await, "undefined");

    drop(b);
    stop_worker.trigger();
    worker.await.unwrap().unwrap();
    let _ = stop_web.send(());
    web.await.unwrap().unwrap();
}
