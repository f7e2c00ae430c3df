//! The producer API in detail, against real beanstalkd servers: several
//! servers behind one `Client`, the admin calls, what `Enqueue`'s options
//! put, and `enqueue_many` past one batch and with a dead server. Written
//! to kill the mutants `cargo mutants` found surviving in `client/` and
//! `job/` (see the issue note for the command).

use bsjobs::proto::{Command, Response};
use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, ClientConfig};
use bsjobs_tests::{counts, raw, server};
use std::time::{Duration, SystemTime};

#[bsjobs::job(tube = "ca_plain")]
async fn plain(n: u32) {
    let _ = n;
}

#[bsjobs::job(tube = "ca_opts", priority = 77, ttr = "33s", delay = "7s")]
async fn opts(n: u32) {
    let _ = n;
}

#[bsjobs::job(tube = "ca_rep", repeat = "1h")]
async fn rep(n: u32) {
    let _ = n;
}

/// (pri, delay, ttr) of job `id` on server `s`.
async fn put_params(client: &Client, s: usize, id: u64) -> (u32, u32, u32) {
    let st = client.stats_job(s, id).await.unwrap();
    (st.pri, st.delay, st.ttr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_the_jobs_and_each_handle_names_its_server() {
    bsjobs_tests::init_tracing();
    let (a, b) = (Beanstalkd::start(), Beanstalkd::start());
    let url = format!("{},{}", a.url(), b.addr());
    let client = Client::new(&url).unwrap();
    assert_eq!(client.config().servers, [a.addr(), b.addr()]);
    let mut on = [0, 0];
    for n in 0..6 {
        let h = Plain::new(n).client(&client).enqueue().await.unwrap();
        assert!(h.server < 2, "{h:?}");
        on[h.server] += 1;
        let body = client
            .peek(h.server, h.id)
            .await
            .unwrap()
            .expect("on its server");
        assert!(String::from_utf8_lossy(&body).contains(&format!("\"n\":{n}")));
    }
    assert_eq!(on, [3, 3], "enqueue alternates between the servers");
    for _ in 0..4 {
        client
            .put("ca_plain", 1, 0, 5, b"{}".to_vec())
            .await
            .unwrap();
    }
    let many = client
        .enqueue_many((0..4).map(|n| Plain::new(n).client(&client)))
        .await;
    for h in many.iter().map(|r| r.as_ref().unwrap()) {
        assert!(h.server < 2);
        assert!(
            client.peek(h.server, h.id).await.unwrap().is_some(),
            "{h:?}"
        );
    }
    let (ca, cb) = (
        client
            .stats_tube(0, "ca_plain")
            .await
            .unwrap()
            .current_jobs_ready,
        client
            .stats_tube(1, "ca_plain")
            .await
            .unwrap()
            .current_jobs_ready,
    );
    assert_eq!(ca + cb, 14);
    assert!(ca >= 5 && cb >= 5, "both servers get work: {ca} / {cb}");
    // Cancel finds the job on its own server.
    let h = Plain::new(99).client(&client).enqueue().await.unwrap();
    assert!(h.cancel(&client).await.unwrap(), "deleted where it was put");
    assert!(client.peek(h.server, h.id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_do_what_they_say() {
    let (srv, client) = server();
    assert!(
        matches!(client.delete(0, 12345).await, Err(bsjobs::Error::NotFound)),
        "deleting a missing job is NotFound"
    );
    assert!(client.peek(0, 12345).await.unwrap().is_none());
    assert!(client.peek_ready(0, "ca_plain").await.unwrap().is_none());
    let ready = client
        .put("ca_plain", 5, 0, 10, b"r".to_vec())
        .await
        .unwrap();
    let delayed = client
        .put("ca_plain", 5, 600, 10, b"d".to_vec())
        .await
        .unwrap();
    assert_eq!(
        client.peek_ready(0, "ca_plain").await.unwrap(),
        Some((ready, b"r".to_vec()))
    );
    assert_eq!(
        client.peek_delayed(0, "ca_plain").await.unwrap(),
        Some((delayed, b"d".to_vec()))
    );
    assert!(client
        .list_tubes(0)
        .await
        .unwrap()
        .contains(&"ca_plain".to_owned()));
    // Bury two jobs through a raw connection.
    let mut conn = raw(&srv).await;
    conn.request(&Command::Watch("ca_plain")).await.unwrap();
    let third = client
        .put("ca_plain", 5, 0, 10, b"t".to_vec())
        .await
        .unwrap();
    for _ in 0..2 {
        let Response::Reserved { id, .. } =
            conn.request(&Command::ReserveWithTimeout(1)).await.unwrap()
        else {
            panic!("reserved");
        };
        assert_eq!(
            conn.request(&Command::Bury { id, pri: 5 }).await.unwrap(),
            Response::Buried
        );
    }
    assert_eq!(
        client
            .peek_buried(0, "ca_plain")
            .await
            .unwrap()
            .map(|b| b.0),
        Some(ready),
        "the oldest buried job"
    );
    assert_eq!(
        client.kick(0, "ca_plain", 1).await.unwrap(),
        1,
        "kick moves up to bound"
    );
    assert_eq!(counts(&client, "ca_plain").await.buried, 1);
    client.kick_job(0, third).await.unwrap();
    assert_eq!(counts(&client, "ca_plain").await.buried, 0);
    assert!(matches!(
        client.kick_job(0, 999_999).await,
        Err(bsjobs::Error::NotFound)
    ));
    client
        .pause_tube(0, "ca_plain", Duration::from_millis(2500))
        .await
        .unwrap();
    let st = client.stats_tube(0, "ca_plain").await.unwrap();
    assert_eq!(st.pause, 3, "pause rounds up to whole seconds");
    assert!(client.stats(0).await.unwrap().cmd_put >= 3);
    client.delete(0, delayed).await.unwrap();
    assert!(client.peek(0, delayed).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_options_put_what_they_say() {
    let (_srv, client) = server();
    // The attribute's defaults.
    let h = Opts::new(1).client(&client).enqueue().await.unwrap();
    assert_eq!(put_params(&client, 0, h.id).await, (77, 7, 33));
    assert_eq!((h.tube, h.chain.as_deref()), ("ca_opts", None));
    assert_eq!(Opts::new(1).tube(), "ca_opts");
    // Per-call options, whole seconds rounded up.
    let h = Opts::new(2)
        .priority(3)
        .delay(Duration::from_millis(1200))
        .ttr(Duration::from_millis(4100))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert_eq!(put_params(&client, 0, h.id).await, (3, 2, 5));
    // The later of delay/at wins.
    let at = SystemTime::now() + Duration::from_secs(100);
    let h = Opts::new(3)
        .delay(Duration::from_secs(9))
        .at(at)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let (_, d, _) = put_params(&client, 0, h.id).await;
    assert!((99..=101).contains(&d), ".at after .delay: {d}");
    let h = Opts::new(4)
        .at(at)
        .delay(Duration::from_secs(9))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert_eq!(put_params(&client, 0, h.id).await.1, 9, ".delay after .at");
    let h = Opts::new(5)
        .at(SystemTime::now() - Duration::from_secs(30))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert_eq!(
        put_params(&client, 0, h.id).await.1,
        0,
        "an instant in the past runs now"
    );
    let h = Opts::new(6)
        .delay(Duration::ZERO)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert_eq!(
        put_params(&client, 0, h.id).await.1,
        0,
        "an explicit zero delay"
    );
    // Repeating jobs get a fresh chain id each.
    let c1 = Rep::new(1)
        .client(&client)
        .enqueue()
        .await
        .unwrap()
        .chain
        .unwrap();
    let c2 = Rep::new(1)
        .client(&client)
        .enqueue()
        .await
        .unwrap()
        .chain
        .unwrap();
    assert_ne!(c1, c2);
    assert!(
        c1.len() == 32 && c1.bytes().all(|b| b.is_ascii_hexdigit()),
        "128-bit hex chain id: {c1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_many_splits_batches_and_reports_a_dead_server_for_every_job() {
    let (_srv, client) = server();
    // Over one batch (1024) in one tube, then another tube, then the first.
    let mut jobs: Vec<bsjobs::Enqueue> = (0..1500).map(|n| Plain::new(n).client(&client)).collect();
    jobs.extend((0..3).map(|n| Opts::new(n).client(&client)));
    jobs.extend((0..2).map(|n| Plain::new(n).client(&client)));
    let out = client.enqueue_many(jobs).await;
    assert_eq!(out.len(), 1505);
    let tubes: Vec<&str> = out.iter().map(|r| r.as_ref().unwrap().tube).collect();
    assert!(tubes[..1500].iter().all(|t| *t == "ca_plain"));
    assert!(tubes[1500..1503].iter().all(|t| *t == "ca_opts"));
    assert_eq!(counts(&client, "ca_plain").await.ready, 1502);
    assert_eq!(counts(&client, "ca_opts").await.delayed, 3);
    // Nothing listens: every job gets an error, none is silently dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dead = Client::with_config(ClientConfig {
        servers: vec![port.to_string()],
        ..ClientConfig::default()
    });
    let out = dead
        .enqueue_many((0..5).map(|n| Plain::new(n).client(&dead)))
        .await;
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|r| r.is_err()), "{out:?}");
}
