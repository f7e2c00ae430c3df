//! The shared producer client against a real beanstalkd.

use bsjobs::proto::{Command, Response};
use bsjobs_tests::{raw, server};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn put_then_reserve_roundtrip() {
    let (srv, client) = server();
    let id = client.put("t1", 5, 0, 30, b"hello".to_vec()).await.unwrap();
    let mut c = raw(&srv).await;
    assert_eq!(
        c.request(&Command::Watch("t1")).await.unwrap(),
        Response::Watching(2)
    );
    match c.request(&Command::ReserveWithTimeout(1)).await.unwrap() {
        Response::Reserved { id: got, body } => {
            assert_eq!(got, id);
            assert_eq!(body, b"hello");
        }
        r => panic!("unexpected {r:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_one_client_and_every_put_lands() {
    let (srv, client) = server();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..50 {
                let tube = if i % 2 == 0 { "even" } else { "odd" };
                ids.push(
                    client
                        .put(tube, 0, 0, 60, format!("{t}-{i}").into_bytes())
                        .await
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 64 * 50, "every put got its own id");
    let even = client.stats_tube(0, "even").await.unwrap();
    let odd = client.stats_tube(0, "odd").await.unwrap();
    assert_eq!(even.current_jobs_ready + odd.current_jobs_ready, 3200);
    assert_eq!(
        even.current_jobs_ready, 1600,
        "use was switched correctly between puts"
    );
    drop(srv);
}

#[tokio::test]
async fn bad_tube_and_big_body_are_refused_before_sending() {
    let (_srv, client) = server();
    let e = client
        .put("-bad", 0, 0, 1, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::BadTube { .. }), "{e}");
    let e = client
        .put("ok", 0, 0, 1, vec![0; 70_000])
        .await
        .unwrap_err();
    assert!(
        matches!(e, bsjobs::Error::JobTooBig { len: 70_000, .. }),
        "{e}"
    );
    let stats = client.stats(0).await.unwrap();
    assert_eq!(stats.cmd_put, 0, "nothing reached the server");
}

#[tokio::test]
async fn no_server_fails_fast() {
    // Bind then drop a port so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = bsjobs::Client::new(&format!("beanstalk://127.0.0.1:{port}")).unwrap();
    let t = Instant::now();
    let e = client.put("t", 0, 0, 1, b"x".to_vec()).await.unwrap_err();
    assert!(matches!(e, bsjobs::Error::Connect { .. }), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn silent_server_times_out_within_config() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and never answer.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let mut cfg = bsjobs::ClientConfig::from_url(&format!("beanstalk://{addr}")).unwrap();
    cfg.io_timeout = Duration::from_millis(300);
    let client = bsjobs::Client::with_config(cfg);
    let t = Instant::now();
    let e = client.put("t", 0, 0, 1, b"x".to_vec()).await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    assert!(e.to_string().contains("within"), "{e}");
    hold.abort();
}

#[tokio::test]
async fn first_put_after_a_server_restart_succeeds() {
    let (mut srv, client) = server();
    client.put("t", 0, 0, 1, b"a".to_vec()).await.unwrap();
    srv.restart();
    // The client's connection died while idle: it must be noticed before
    // the put is written, so the very first put after the restart lands.
    client.put("t", 0, 0, 1, b"b".to_vec()).await.unwrap();
    let after = client.stats_tube(0, "t").await.unwrap();
    assert_eq!(after.current_jobs_ready, 1, "the put landed exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_after_a_server_restart_all_succeed() {
    let (mut srv, client) = server();
    client.put("t", 0, 0, 1, b"a".to_vec()).await.unwrap();
    for round in 0..3u64 {
        srv.restart();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..32 {
            let client = client.clone();
            tasks
                .spawn(async move { client.put("t", 0, 0, 60, format!("{i}").into_bytes()).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap()
                .unwrap_or_else(|e| panic!("round {round}: put after restart: {e}"));
        }
        let st = client.stats_tube(0, "t").await.unwrap();
        assert_eq!(st.current_jobs_ready, 32, "round {round}: each put once");
    }
}

/// A server that reads whatever a client writes, counts the `put` commands
/// in it, and closes the connection without answering.
async fn put_swallower() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let puts = Arc::new(AtomicUsize::new(0));
    let seen = puts.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.fetch_add(text.matches("put ").count(), Ordering::SeqCst);
            drop(s);
        }
    });
    (addr, puts, task)
}

#[tokio::test]
async fn a_put_cut_off_after_writing_is_reported_unknown_and_not_repeated() {
    let (addr, puts, task) = put_swallower().await;
    let client = bsjobs::Client::new(&format!("beanstalk://{addr}")).unwrap();
    let e = client.put("t", 0, 0, 1, b"x".to_vec()).await.unwrap_err();
    assert!(
        matches!(e, bsjobs::Error::OutcomeUnknown { .. }),
        "a put that reached the server is reported as unknown, got {e:?}"
    );
    // Through the generated API too, and concurrently (the pipelined way).
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let client = client.clone();
        tasks.spawn(async move { client.put("t", 0, 0, 1, b"y".to_vec()).await });
    }
    while let Some(r) = tasks.join_next().await {
        let e = r.unwrap().unwrap_err();
        assert!(matches!(e, bsjobs::Error::OutcomeUnknown { .. }), "{e:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        puts.load(Ordering::SeqCst),
        5,
        "each put was written once, never repeated"
    );
    task.abort();
}

#[tokio::test]
async fn connection_state_commands_are_refused_by_the_shared_client() {
    let (_srv, client) = server();
    client.put("a", 0, 0, 60, b"1".to_vec()).await.unwrap();
    let e = client
        .request(0, None, &Command::Use("b"))
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::NotShareable(_)), "{e}");
    let e = client
        .request(0, None, &Command::ReserveWithTimeout(0))
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::NotShareable(_)), "{e}");
    let id = client.put("a", 0, 0, 60, b"2".to_vec()).await.unwrap();
    assert_eq!(client.stats_job(0, id).await.unwrap().tube, "a");
}

#[tokio::test]
async fn stats_of_an_absent_or_emptied_tube_are_zero_counts() {
    let (_srv, client) = server();
    // beanstalkd itself answers NOT_FOUND here.
    let st = client.stats_tube(0, "never-used").await.unwrap();
    assert_eq!(st, bsjobs::TubeStats::empty("never-used"));
    assert_eq!(st.current_jobs_ready + st.total_jobs, 0);
    // A tube that had a job and was emptied disappears in beanstalkd.
    let id = client
        .put("emptied", 0, 0, 60, b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(
        client
            .stats_tube(0, "emptied")
            .await
            .unwrap()
            .current_jobs_ready,
        1
    );
    client.delete(0, id).await.unwrap();
    let st = client.stats_tube(0, "emptied").await.unwrap();
    assert_eq!(st.current_jobs_ready, 0);
}
