//! `Client::scope`: generated `enqueue` calls go to the scoped client, so
//! tests that each start their own beanstalkd keep their jobs apart even
//! though they run in parallel in one process.

use bsjobs::testing::Beanstalkd;
use bsjobs::Client;

#[bsjobs::job(tube = "sc_mail")]
async fn mail(to: String) {
    let _ = to;
}

/// Each of the two tests below enqueues `n` jobs through the generated API,
/// inside a scope of its own server's client, and checks that exactly its
/// jobs are on its server. Run together (the default), the two overlap.
async fn enqueue_to_own_server(n: u64) {
    let server = Beanstalkd::start();
    let client = Client::new(&server.url()).unwrap();
    client
        .scope(async {
            for i in 0..n {
                Mail::enqueue(format!("{i}@example.com")).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
        .await;
    let st = client.stats_tube(0, Mail::TUBE).await.unwrap();
    assert_eq!(st.current_jobs_ready, n, "this test's jobs, and only them");
}

#[tokio::test]
async fn first_test_enqueues_to_its_own_server() {
    enqueue_to_own_server(30).await;
}

#[tokio::test]
async fn second_test_enqueues_to_its_own_server() {
    enqueue_to_own_server(17).await;
}

#[tokio::test]
async fn spawned_tasks_inner_scopes_and_explicit_clients() {
    let (a, b) = (Beanstalkd::start(), Beanstalkd::start());
    let (ca, cb) = (
        Client::new(&a.url()).unwrap(),
        Client::new(&b.url()).unwrap(),
    );
    let (ca2, cb2) = (ca.clone(), cb.clone());
    ca.scope(async move {
        Mail::enqueue("a1".into()).await.unwrap();
        // An inner scope wins.
        cb2.scope(Mail::enqueue("b1".into())).await.unwrap();
        // An explicit client wins over the scope.
        Mail::new("b2".into()).client(&cb2).enqueue().await.unwrap();
        // A spawned task scoped with the same client.
        tokio::spawn(ca2.scope(async { Mail::enqueue("a2".into()).await }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            Client::current().unwrap().config().servers,
            ca2.config().servers,
            "Client::current is the scoped client"
        );
    })
    .await;
    let ready = |c: Client| async move {
        c.stats_tube(0, Mail::TUBE)
            .await
            .unwrap()
            .current_jobs_ready
    };
    assert_eq!(ready(ca).await, 2);
    assert_eq!(ready(cb).await, 2);
}
