//! Several beanstalkd servers behind one URL: jobs spread, one worker drains all.

use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, Shutdown, Worker};
use bsjobs_tests::{eventually, init_tracing};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static DONE: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "spread")]
async fn spread(_n: u32) {
    DONE.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_spread_over_servers_and_one_worker_drains_them_all() {
    init_tracing();
    let a = Beanstalkd::start();
    let b = Beanstalkd::start();
    let url = format!("beanstalk://{},{}", a.addr(), b.addr());
    let client = Client::new(&url).unwrap();
    let mut on = [0u32; 2];
    for n in 0..40 {
        let h = Spread::new(n).client(&client).enqueue().await.unwrap();
        on[h.server] += 1;
    }
    assert_eq!(on, [20, 20], "round robin over both servers");
    let only_a = Client::new(&a.url()).unwrap();
    assert_eq!(
        only_a
            .stats_tube(0, "spread")
            .await
            .unwrap()
            .current_jobs_ready,
        20
    );

    let sd = Shutdown::new();
    let w = tokio::spawn(
        Worker::from_url(&url)
            .unwrap()
            .tubes(["spread"])
            .shutdown(sd.clone())
            .run(),
    );
    assert!(eventually(Duration::from_secs(5), || DONE.load(Ordering::SeqCst) == 40).await);
    sd.trigger();
    w.await.unwrap().unwrap();
}

#[bsjobs::job(tube = "fleet")]
async fn fleet_job(_n: u32) {}

/// Three servers and a client for all of them.
fn three() -> (Vec<Beanstalkd>, Client, Vec<Client>) {
    init_tracing();
    let servers: Vec<Beanstalkd> = (0..3).map(|_| Beanstalkd::start()).collect();
    let url = format!(
        "beanstalk://{}",
        servers
            .iter()
            .map(Beanstalkd::addr)
            .collect::<Vec<_>>()
            .join(",")
    );
    let each = servers
        .iter()
        .map(|s| Client::new(&s.url()).unwrap())
        .collect();
    (servers, Client::new(&url).unwrap(), each)
}

async fn ready(c: &Client, tube: &str) -> u64 {
    c.stats_tube(0, tube).await.unwrap().current_jobs_ready
}

#[tokio::test]
async fn the_same_key_always_lands_on_the_same_server() {
    let (_servers, client, each) = three();
    let mut owners = [0u32; 3];
    for k in 0..30 {
        let key = format!("customer-{k}");
        let owner = client.server_for_key(&key).unwrap();
        owners[owner] += 1;
        for n in 0..3 {
            let h = FleetJob::new(n)
                .key(key.as_str())
                .client(&client)
                .enqueue()
                .await
                .unwrap();
            assert_eq!(h.server, owner, "key {key}");
            // The job is on that server.
            let st = each[owner].stats_job(0, h.id).await.unwrap();
            assert_eq!(st.tube, "fleet");
        }
    }
    assert!(owners.iter().all(|&n| n > 0), "keys spread: {owners:?}");
}

#[tokio::test]
async fn puts_skip_a_dead_server_and_return_when_it_is_back() {
    let (mut servers, client, each) = three();
    servers[1].kill();
    for n in 0..60 {
        FleetJob::new(n).client(&client).enqueue().await.unwrap();
    }
    let out = client.enqueue_many((0..60).map(FleetJob::new)).await;
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    assert_eq!(
        ready(&each[0], "fleet").await + ready(&each[2], "fleet").await,
        120
    );
    let status = client.servers();
    assert!(
        status[1].down && !status[0].down && !status[2].down,
        "{status:?}"
    );
    assert!(status[1].last_error.is_some());

    servers[1].restart();
    // The background probe notices it; no put is needed for that.
    assert!(
        bsjobs_tests::until(Duration::from_secs(5), || async {
            !client.servers()[1].down
        })
        .await,
        "re-probed: {:?}",
        client.servers()
    );
    for n in 0..30 {
        FleetJob::new(n).client(&client).enqueue().await.unwrap();
    }
    assert_eq!(ready(&each[1], "fleet").await, 10, "its share again");
}

#[tokio::test]
async fn a_keyed_put_whose_server_is_down_goes_to_the_keys_next_server() {
    let (mut servers, client, each) = three();
    let key = "order-42";
    let owner = client.server_for_key(key).unwrap();
    servers[owner].kill();
    let first = FleetJob::new(1)
        .key(key)
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert_ne!(first.server, owner);
    assert_eq!(client.server_for_key(key), Some(first.server));
    // Every later job of the key meets the first one there.
    for n in 2..10 {
        let h = FleetJob::new(n)
            .key(key)
            .client(&client)
            .enqueue()
            .await
            .unwrap();
        assert_eq!(h.server, first.server);
    }
    assert_eq!(ready(&each[first.server], "fleet").await, 9);
    // The fallback is the same for any producer: a fresh client marks the
    // owner down on its first put and picks the same second server.
    let other = Client::new(&format!(
        "beanstalk://{},{},{}",
        servers[2].addr(),
        servers[0].addr(),
        servers[1].addr()
    ))
    .unwrap();
    let h = FleetJob::new(99)
        .key(key)
        .client(&other)
        .enqueue()
        .await
        .unwrap();
    assert_eq!(
        other.servers()[h.server].addr,
        servers[first.server].addr(),
        "same fallback, whatever the order of the URL's list"
    );
}

#[tokio::test]
async fn with_every_server_down_puts_fail_at_once_naming_them() {
    let (mut servers, client, _each) = three();
    for s in &mut servers {
        s.kill();
    }
    let e = FleetJob::new(1)
        .client(&client)
        .enqueue()
        .await
        .unwrap_err();
    let bsjobs::Error::NoServerUp { servers: down } = &e else {
        panic!("expected NoServerUp, got {e:?}");
    };
    assert_eq!(down.len(), 3);
    for (d, s) in down.iter().zip(&servers) {
        assert_eq!(d.addr, s.addr());
        assert!(d.reason.starts_with("down: cannot connect"), "{e}");
    }
    // Later puts do not even try: all three are marked down.
    let e = client
        .put("fleet", 0, 0, 60, b"x".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::NoServerUp { .. }), "{e:?}");
    let out = client.enqueue_many((0..3).map(FleetJob::new)).await;
    assert!(
        out.iter()
            .all(|r| matches!(r, Err(bsjobs::Error::NoServerUp { .. }))),
        "{out:?}"
    );
}

#[tokio::test]
async fn an_unknown_outcome_is_never_repeated_on_another_server() {
    init_tracing();
    // Server 0 swallows every put and hangs up; server 1 is real.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let swallower = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
        }
    });
    let real = Beanstalkd::start();
    let client = Client::new(&format!("beanstalk://{swallower},{}", real.addr())).unwrap();
    let only_real = Client::new(&real.url()).unwrap();
    let e = FleetJob::new(1)
        .client(&client)
        .enqueue()
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::OutcomeUnknown { .. }), "{e:?}");
    assert_eq!(
        only_real.stats(0).await.unwrap().cmd_put,
        0,
        "the put that may exist was not sent elsewhere"
    );
    // The swallower is now marked down: the next put goes to the real one.
    let h = FleetJob::new(2).client(&client).enqueue().await.unwrap();
    assert_eq!(h.server, 1);
    assert_eq!(only_real.stats(0).await.unwrap().cmd_put, 1);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_and_drain_from_the_url_and_the_api() {
    init_tracing();
    let (a, b) = (Beanstalkd::start(), Beanstalkd::start());
    let (ca, cb) = (
        Client::new(&a.url()).unwrap(),
        Client::new(&b.url()).unwrap(),
    );
    // A job already on b before b is drained.
    cb.put("drained", 0, 0, 60, br#"{"args":{"_n":0}}"#.to_vec())
        .await
        .unwrap();
    let url = format!("beanstalk://{};weight=3,{}", a.addr(), b.addr());
    let client = Client::new(&url).unwrap();
    for n in 0..40 {
        FleetJob::new(n).client(&client).enqueue().await.unwrap();
    }
    assert_eq!(
        (ready(&ca, "fleet").await, ready(&cb, "fleet").await),
        (30, 10)
    );

    // Drained in the URL: no new puts, workers still empty it.
    let url = format!("beanstalk://{},{};drain", a.addr(), b.addr());
    let client = Client::new(&url).unwrap();
    for n in 1..=20 {
        Drained::new(n).client(&client).enqueue().await.unwrap();
    }
    assert_eq!(ready(&cb, "drained").await, 1, "nothing new on b");
    assert_eq!(ready(&ca, "drained").await, 20);
    let (sd, w) = bsjobs_tests::spawn_worker(&url, &["drained"]);
    assert!(
        eventually(Duration::from_secs(10), || DRAINED.load(Ordering::SeqCst)
            == 21)
        .await,
        "the worker ran b's job too: {}",
        DRAINED.load(Ordering::SeqCst)
    );
    sd.trigger();
    w.await.unwrap().unwrap();

    // Drained through the API.
    client.set_weight(1, 1);
    client.drain(0);
    for n in 0..5 {
        Drained::new(n).client(&client).enqueue().await.unwrap();
    }
    assert_eq!(ready(&cb, "drained").await, 5);
    client.drain(1);
    let e = Drained::new(0).client(&client).enqueue().await.unwrap_err();
    assert!(e.to_string().contains("drained"), "{e}");
}

static DRAINED: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "drained")]
async fn drained(_n: u32) {
    DRAINED.fetch_add(1, Ordering::SeqCst);
}
