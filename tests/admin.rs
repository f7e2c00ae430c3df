//! The admin API against real beanstalkd servers: counts, listings by id
//! walk, decoding, and every action.

use bsjobs_core::admin::{Admin, Body, JobQuery, JobRef, CHAINS_TUBE};
use bsjobs_core::proto::stats::JobState;
use bsjobs_core::testing::{put_buried, Beanstalkd};
use std::collections::BTreeSet;
use std::time::Duration;

fn env(args: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"args":{args}}}"#).into_bytes()
}

#[tokio::test]
async fn tubes_are_counted_per_state_and_absent_tubes_are_zero() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let c = admin.client();
    for _ in 0..3 {
        c.put("email", 1024, 0, 60, env(r#"{"to":"a"}"#))
            .await
            .unwrap();
    }
    c.put("email", 5, 0, 60, env("{}")).await.unwrap();
    c.put("email", 1024, 3600, 60, env("{}")).await.unwrap();
    put_buried(&server.addr(), "email", 10, &env("{}"))
        .await
        .unwrap();
    put_buried(&server.addr(), CHAINS_TUBE, 3, br#"{"chain":"c"}"#)
        .await
        .unwrap();

    let o = admin.overview(false).await.unwrap();
    assert!(o.unreachable().is_none());
    let email = o
        .tubes
        .iter()
        .find(|t| t.name == "email")
        .expect("email listed");
    assert_eq!(
        (
            email.ready,
            email.urgent,
            email.delayed,
            email.buried,
            email.reserved
        ),
        (4, 1, 1, 1, 0)
    );
    assert!(
        o.tubes.iter().all(|t| !t.name.starts_with("bsjobs.")),
        "internal tubes are hidden: {:?}",
        o.tubes
    );
    let all = admin.overview(true).await.unwrap();
    assert!(all.tubes.iter().any(|t| t.name == CHAINS_TUBE));
    let s = o.servers[0].stats.as_ref().unwrap();
    assert_eq!((s.ready, s.buried), (4, 2));

    let absent = admin.tube("nothing-here").await.unwrap();
    assert_eq!(
        (absent.name.as_str(), absent.current()),
        ("nothing-here", 0)
    );
}

#[tokio::test]
async fn buried_jobs_are_listed_newest_first_across_pages_and_decoded() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let c = admin.client();
    let mut buried = Vec::new();
    // Buried jobs spread among 2,600 others, so that a listing walks
    // several batches and must skip other tubes and states.
    for i in 0..2600u32 {
        c.put("other", 1024, 0, 60, env("{}")).await.unwrap();
        if i % 100 == 7 {
            let body = format!(r#"{{"args":{{"n":{i}}},"attempt":3,"err":"failed {i}"}}"#);
            buried.push(
                put_buried(&server.addr(), "pay", 1, body.as_bytes())
                    .await
                    .unwrap(),
            );
        }
        if i % 500 == 0 {
            c.put("pay", 1024, 0, 60, env("{}")).await.unwrap();
        }
    }
    let raw = put_buried(&server.addr(), "pay", 1, b"not json")
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = admin
            .jobs(
                &JobQuery::new("pay")
                    .state(JobState::Buried)
                    .limit(10)
                    .after(after),
            )
            .await
            .unwrap();
        assert_eq!(page.matching, buried.len() as u64 + 1);
        pages += 1;
        for j in &page.jobs {
            assert_eq!((j.tube.as_str(), j.state), ("pay", JobState::Buried));
            seen.push(j.clone());
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3, "27 jobs in pages of 10");
    let ids: Vec<u64> = seen.iter().map(|j| j.at.id).collect();
    let mut want: Vec<u64> = buried.clone();
    want.push(raw);
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, want, "every buried job once, newest first");
    let Body::Raw { text, .. } = &seen[0].body else {
        panic!("the newest is the raw body: {:?}", seen[0].body)
    };
    assert_eq!(text, "not json");
    let e = seen[1].envelope().expect("an envelope");
    assert_eq!((e.attempt, e.args["n"].as_u64()), (3, Some(2507)));
    assert_eq!(e.error.as_deref(), Some("failed 2507"));

    // Any state, with a small budget: a cursor comes back before the page
    // is full, and following cursors still finds everything exactly once.
    let mut all = BTreeSet::new();
    let mut after = None;
    loop {
        let page = admin
            .jobs(&JobQuery::new("pay").limit(1000).budget(700).after(after))
            .await
            .unwrap();
        assert!(page.examined <= 700, "examined {}", page.examined);
        for j in page.jobs {
            assert!(all.insert(j.at.id), "job {} listed twice", j.at.id);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(all.len(), buried.len() + 1 + 6);
}

#[tokio::test]
async fn kick_delete_pause_and_resume_act_on_the_server() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let c = admin.client();
    let a = put_buried(&server.addr(), "t", 1, &env("{}"))
        .await
        .unwrap();
    let b = put_buried(&server.addr(), "t", 1, &env("{}"))
        .await
        .unwrap();
    for _ in 0..3 {
        put_buried(&server.addr(), "t", 1, &env("{}"))
            .await
            .unwrap();
    }
    c.put("t", 1, 3600, 60, env("{}")).await.unwrap();

    admin.kick_job(JobRef { server: 0, id: a }).await.unwrap();
    admin.delete_job(JobRef { server: 0, id: b }).await.unwrap();
    let t = admin.tube("t").await.unwrap();
    assert_eq!((t.ready, t.buried, t.delayed), (1, 3, 1));
    assert!(matches!(
        admin.delete_job(JobRef { server: 0, id: b }).await,
        Err(bsjobs_core::Error::NotFound)
    ));

    assert_eq!(admin.kick_buried("t").await.unwrap(), 3);
    // No buried job left: a second kick-all must not move the delayed one.
    assert_eq!(admin.kick_buried("t").await.unwrap(), 0);
    let t = admin.tube("t").await.unwrap();
    assert_eq!((t.ready, t.buried, t.delayed), (4, 0, 1));

    for _ in 0..4 {
        put_buried(&server.addr(), "t", 1, &env("{}"))
            .await
            .unwrap();
    }
    assert_eq!(admin.delete_buried("t").await.unwrap(), 4);
    let t = admin.tube("t").await.unwrap();
    assert_eq!((t.ready, t.buried, t.delayed), (4, 0, 1));

    assert_eq!(admin.pause("t", Duration::from_secs(60)).await.unwrap(), 1);
    assert!(admin.tube("t").await.unwrap().paused_for > 50);
    admin.resume("t").await.unwrap();
    assert_eq!(admin.tube("t").await.unwrap().paused_for, 0);
    assert!(matches!(
        admin.pause("absent", Duration::from_secs(5)).await,
        Err(bsjobs_core::Error::NotFound)
    ));
}

#[tokio::test]
async fn chains_are_listed_from_tokens_and_cancelled() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    let c = admin.client();
    // A chain with a token (gen 4) whose current job is delayed; and noise.
    put_buried(
        &server.addr(),
        CHAINS_TUBE,
        4,
        br#"{"bsjobs":"chain-token","chain":"c1"}"#,
    )
    .await
    .unwrap();
    for _ in 0..1500 {
        c.put("noise", 1024, 0, 60, env("{}")).await.unwrap();
    }
    let old = c
        .put(
            "beat",
            1024,
            3600,
            60,
            br#"{"args":{"s":"a"},"chain":"c1","gen":3}"#.to_vec(),
        )
        .await
        .unwrap();
    c.delete(0, old).await.unwrap();
    let job = c
        .put(
            "beat",
            1024,
            30,
            60,
            br#"{"args":{"s":"a"},"chain":"c1","gen":4,"run":4}"#.to_vec(),
        )
        .await
        .unwrap();
    // A chain that has not stepped yet: no token.
    c.put(
        "beat",
        1024,
        30,
        60,
        br#"{"args":{"s":"b"},"chain":"c2"}"#.to_vec(),
    )
    .await
    .unwrap();

    let list = admin.chains(1_000_000).await.unwrap();
    assert!(list.complete);
    assert_eq!(list.chains.len(), 2, "{:?}", list.chains);
    let c1 = &list.chains[0];
    assert_eq!((c1.chain.as_str(), c1.token_gen), ("c1", Some(4)));
    let j = c1.job.as_ref().expect("current job found");
    assert_eq!((j.at.id, j.state), (job, JobState::Delayed));
    assert_eq!(j.envelope().unwrap().run, 4);
    assert_eq!(
        (list.chains[1].chain.as_str(), list.chains[1].token),
        ("c2", None)
    );

    let done = admin.cancel_chain("c1").await.unwrap();
    assert_eq!(done.job.id, job);
    assert!(done.deleted, "a waiting job is deleted by Client::cancel");
    assert!(admin
        .job(JobRef { server: 0, id: job })
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        admin.cancel_chain("nope").await,
        Err(bsjobs_core::Error::NotFound)
    ));
}

#[tokio::test]
async fn several_servers_are_summed_and_jobs_named_by_server() {
    let (s1, s2) = (Beanstalkd::start(), Beanstalkd::start());
    let url = format!("beanstalk://{},{}", s1.addr(), s2.addr());
    let admin = Admin::from_url(&url).unwrap();
    let a = put_buried(&s1.addr(), "x", 1, &env("{}")).await.unwrap();
    let b = put_buried(&s2.addr(), "x", 1, &env("{}")).await.unwrap();
    put_buried(&s2.addr(), "x", 1, &env("{}")).await.unwrap();
    assert_eq!(admin.tube("x").await.unwrap().buried, 3);
    let page = admin
        .jobs(&JobQuery::new("x").state(JobState::Buried).limit(2))
        .await
        .unwrap();
    let refs: Vec<JobRef> = page.jobs.iter().map(|j| j.at).collect();
    assert_eq!(
        refs,
        [JobRef { server: 0, id: a }, JobRef { server: 1, id: 2 }]
    );
    let rest = admin
        .jobs(
            &JobQuery::new("x")
                .state(JobState::Buried)
                .limit(2)
                .after(page.next),
        )
        .await
        .unwrap();
    assert_eq!(rest.jobs.len(), 1);
    assert_eq!(rest.jobs[0].at, JobRef { server: 1, id: b });
    // Id 1 exists on both servers: a bare id is ambiguous, id@addr is not.
    assert!(matches!(
        admin.resolve("1").await,
        Err(bsjobs_core::Error::BadJobRef { .. })
    ));
    assert_eq!(
        admin.resolve(&format!("1@{}", s2.addr())).await.unwrap(),
        JobRef { server: 1, id: 1 }
    );
    assert_eq!(
        admin.label(JobRef { server: 1, id: 1 }),
        format!("1@{}", s2.addr())
    );
    assert!(admin.resolve("2").await.unwrap().server == 1);
}

#[tokio::test]
async fn jobs_restored_from_a_binlog_above_total_jobs_are_found() {
    let dir = std::env::temp_dir().join(format!("bsjobs-admin-binlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Beanstalkd::builder().binlog(&dir).start();
    let admin = Admin::from_url(&server.url()).unwrap();
    // 300 jobs put and deleted: a gap wider than the upward probe.
    for _ in 0..300 {
        let id = admin
            .client()
            .put("filler", 1, 0, 60, env("{}"))
            .await
            .unwrap();
        admin.client().delete(0, id).await.unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            put_buried(&server.addr(), "kept", 1, &env("{}"))
                .await
                .unwrap(),
        );
    }
    server.restart();
    // After the restart total-jobs is 0, but ids go up to 305.
    let page = admin
        .jobs(&JobQuery::new("kept").state(JobState::Buried))
        .await
        .unwrap();
    let mut got: Vec<u64> = page.jobs.iter().map(|j| j.at.id).collect();
    got.sort_unstable();
    assert_eq!(got, ids);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn looking_creates_no_tube() {
    let server = Beanstalkd::start();
    let admin = Admin::from_url(&server.url()).unwrap();
    admin.client().put("a", 1, 0, 60, env("{}")).await.unwrap();
    admin.chains(1000).await.unwrap();
    admin
        .jobs(&JobQuery::new("absent").state(JobState::Buried))
        .await
        .unwrap();
    assert_eq!(admin.tube("absent").await.unwrap().current(), 0);
    let mut names: Vec<String> = admin.client().list_tubes(0).await.unwrap();
    names.sort();
    assert_eq!(names, ["a", "default"]);
}
