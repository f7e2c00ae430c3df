//! Repeating jobs: max, cancellation, failures inside a chain.

use bsjobs_tests::{counts, counts_now, eventually, server, spawn_worker, until};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The one tube that holds every chain's token.
const TOKENS: &str = "bsjobs.chains";

/// Tubes bsjobs made for its bookkeeping besides the one token tube: none
/// may exist, whatever the number of chains.
async fn chain_tubes(client: &bsjobs::Client) -> Vec<String> {
    client
        .list_tubes(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.starts_with("bsjobs.") && t != TOKENS)
        .collect()
}

static MAX_RUNS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_max", repeat = "1s", max = 3)]
async fn three_times() {
    MAX_RUNS.lock().unwrap().push(Instant::now());
}

static FOREVER_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "r_forever", repeat = "1s")]
async fn forever(sleep_ms: u64) {
    FOREVER_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails every other call: each run needs one retry.
#[bsjobs::job(tube = "r_flaky", repeat = "1s", max = 2, retries = 3, backoff = "1s")]
async fn flaky() -> Result<(), String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    if n % 2 == 0 {
        Err(format!("call {n} fails"))
    } else {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_job_runs_max_times_one_interval_apart_then_ends() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_max"]);
    let handle = ThreeTimes::new().client(&client).enqueue().await.unwrap();
    assert!(handle.chain.is_some(), "repeating jobs get a chain id");
    assert!(
        eventually(Duration::from_secs(8), || MAX_RUNS.lock().unwrap().len()
            == 3)
        .await
    );
    // Give a fourth run every chance to happen: it must not.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = MAX_RUNS.lock().unwrap().clone();
    assert_eq!(runs.len(), 3);
    for w in runs.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(900) && gap < Duration::from_millis(1600),
            "gap {gap:?}"
        );
    }
    assert_eq!(
        counts(&client, "r_max").await.live(),
        0,
        "the chain is over: no job left"
    );
    assert_eq!(
        counts(&client, TOKENS).await.live(),
        0,
        "the chain's token went with its last run"
    );
    assert!(client
        .peek(0, handle.token.unwrap())
        .await
        .unwrap()
        .is_none());
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_during_a_run_stops_it() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_forever"]);
    let handle = Forever::new(700).client(&client).enqueue().await.unwrap();
    // Wait for the second run to be in progress (first run, 1 s sleep, second).
    assert!(
        eventually(Duration::from_secs(6), || FOREVER_RUNS
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    let deleted_now = handle.cancel(&client).await.unwrap();
    assert!(
        !deleted_now,
        "the job in progress is reserved, not deleted on the spot"
    );
    let at_cancel = FOREVER_RUNS.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        FOREVER_RUNS.load(Ordering::SeqCst),
        at_cancel,
        "no run after cancel"
    );
    assert_eq!(
        counts(&client, "r_forever").await.live(),
        0,
        "no job of the chain is left"
    );
    assert_eq!(
        counts(&client, TOKENS).await.live(),
        0,
        "the chain's token went with the chain"
    );
    assert_eq!(chain_tubes(&client).await, Vec::<String>::new());
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_and_do_not_count_toward_max() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_flaky"]);
    Flaky::new().client(&client).enqueue().await.unwrap();
    // Two successful runs, each after one failure: four calls.
    assert!(
        eventually(Duration::from_secs(12), || FLAKY_CALLS
            .load(Ordering::SeqCst)
            == 4)
        .await
    );
    assert!(
        eventually(Duration::from_secs(3), || counts_now(&client, "r_flaky")
            .live()
            == 0)
        .await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        FLAKY_CALLS.load(Ordering::SeqCst),
        4,
        "max = 2 successful runs"
    );
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_that_has_not_run_deletes_it_at_once() {
    let (_srv, client) = server();
    let handle = ThreeTimes::new()
        .delay(Duration::from_secs(60))
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        handle.cancel(&client).await.unwrap(),
        "the waiting job was deleted"
    );
    assert_eq!(counts(&client, "r_max").await.live(), 0);
    assert_eq!(
        counts(&client, TOKENS).await.live(),
        0,
        "the token went with the job"
    );
}

static CHAIN_CALLS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_count", repeat = "1s", max = 4, retries = 2, backoff = "1s")]
async fn counted(fail_on_call: u32) -> Result<(), String> {
    let mut calls = CHAIN_CALLS.lock().unwrap();
    calls.push(0);
    // Calls are 1-based; the call `fail_on_call` fails once.
    if calls.len() == fail_on_call as usize {
        return Err("one failure".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_is_a_new_job_and_the_chain_keeps_its_count() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_count"]);
    // Calls: ok, fail, ok (retry), ok, ok = 4 successful runs in 5 calls.
    let first = Counted::new(2).client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(15), || CHAIN_CALLS
            .lock()
            .unwrap()
            .len()
            == 5)
        .await
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        CHAIN_CALLS.lock().unwrap().len(),
        5,
        "4 successful runs (max) + 1 retried failure"
    );
    assert_eq!(counts(&client, "r_count").await.live(), 0);
    // The worker still watches the tube, so it exists. Jobs: the first and
    // one replacement per run or retry but the last.
    let st = client.stats_tube(0, "r_count").await.unwrap();
    assert_eq!(st.total_jobs, 5);
    assert!(client.peek(0, first.id).await.unwrap().is_none());
    sd.trigger();
    h.await.unwrap().unwrap();
}

static TWIN_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_twin", repeat = "1s")]
async fn twinned(tag: String) {
    TWIN_RUNS.lock().unwrap().push(tag);
}

fn twin_runs(tag: &str) -> usize {
    TWIN_RUNS
        .lock()
        .unwrap()
        .iter()
        .filter(|t| *t == tag)
        .count()
}

/// What crashes leave behind, built by hand: the job that ran, back after a
/// crash (the token names its successor), and a job put by a step that
/// never moved the token. Neither may run; the chain goes on as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_the_token_does_not_name_are_deleted_unrun_and_the_chain_stays_one() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_twin"]);
    let handle = Twinned::new("main".into())
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    let chain = handle.chain.clone().unwrap();
    let token = handle.token.expect("a repeating job has a token");
    assert!(eventually(Duration::from_secs(3), || twin_runs("main") == 1).await);
    // After the first run the token names the second job, not the first.
    let named = || async { client.stats_job(0, token).await.unwrap().pri };
    assert!(
        until(Duration::from_secs(2), || async {
            let pri = named().await;
            pri != 0 && u64::from(pri) != handle.id
        })
        .await,
        "the token moved on after the first run"
    );
    let body = |tag: &str, gen: u32| {
        format!(r#"{{"v":1,"args":{{"tag":"{tag}"}},"chain":"{chain}","gen":{gen},"tok":{token}}}"#)
            .into_bytes()
    };
    // The first job, back after a crash (gen 0).
    client
        .put("r_twin", 0, 0, 60, body("old", 0))
        .await
        .unwrap();
    // A job put by a step whose token move was lost in a crash.
    client
        .put("r_twin", 0, 2, 60, body("orphan", 1))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(6), || twin_runs("main") >= 4).await,
        "the chain runs on"
    );
    assert_eq!(
        twin_runs("old"),
        0,
        "a job the token does not name never runs"
    );
    assert_eq!(
        twin_runs("orphan"),
        0,
        "an orphan of a lost step never runs"
    );
    assert!(
        until(Duration::from_secs(3), || async {
            counts(&client, "r_twin").await.live() == 1
        })
        .await,
        "one live job: the chain did not fork"
    );
    let live = client.peek_delayed(0, "r_twin").await.unwrap();
    let live = match live {
        Some((id, _)) => Some(id),
        None => client
            .peek_ready(0, "r_twin")
            .await
            .unwrap()
            .map(|(id, _)| id),
    };
    if let Some(id) = live {
        assert_eq!(
            u64::from(named().await),
            id & 0xFFFF_FFFF,
            "the token names the live job"
        );
    }
    assert_eq!(chain_tubes(&client).await, Vec::<String>::new());
    sd.trigger();
    h.await.unwrap().unwrap();
}

static WAIT_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "r_wait", repeat = "2s")]
async fn waits_between_runs() {
    WAIT_RUNS.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_between_runs_deletes_the_waiting_job_and_its_token() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_wait"]);
    let handle = WaitsBetweenRuns::new()
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || WAIT_RUNS.load(Ordering::SeqCst)
            == 1)
        .await
    );
    // The second run waits (delayed) for two seconds.
    assert!(
        until(Duration::from_secs(2), || async {
            counts(&client, "r_wait").await.delayed == 1
        })
        .await
    );
    assert!(
        handle.cancel(&client).await.unwrap(),
        "the waiting run was deleted at once"
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(WAIT_RUNS.load(Ordering::SeqCst), 1, "no run after cancel");
    assert_eq!(counts(&client, "r_wait").await.live(), 0);
    assert_eq!(counts(&client, TOKENS).await.live(), 0);
    // Cancelling again, after the chain is gone, is harmless and leaves
    // nothing behind.
    assert!(!handle.cancel(&client).await.unwrap());
    assert_eq!(counts(&client, TOKENS).await.live(), 0);
    assert_eq!(chain_tubes(&client).await, Vec::<String>::new());
    sd.trigger();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_chain_that_already_ended_leaves_nothing_behind() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_max"]);
    let before = MAX_RUNS.lock().unwrap().len();
    let handle = ThreeTimes::new().client(&client).enqueue().await.unwrap();
    assert!(
        eventually(Duration::from_secs(8), || MAX_RUNS.lock().unwrap().len()
            >= before + 3)
        .await
    );
    assert!(
        until(Duration::from_secs(3), || async {
            counts(&client, "r_max").await.live() == 0
        })
        .await
    );
    assert!(!handle.cancel(&client).await.unwrap());
    let stats = client.stats(0).await.unwrap();
    assert_eq!(
        stats.current_jobs_ready + stats.current_jobs_delayed + stats.current_jobs_buried,
        0,
        "no marker or token is left on the server"
    );
    assert_eq!(chain_tubes(&client).await, Vec::<String>::new());
    sd.trigger();
    h.await.unwrap().unwrap();
}

static OVER_MAX_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "r_over_max", repeat = "1s", max = 5)]
async fn over_max() {
    OVER_MAX_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// A body whose `run` already reached `max` (from another producer, or
/// after `max` was lowered in a deploy) ends without running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_runs_reached_max_ends_without_running() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_over_max"]);
    client
        .put(
            "r_over_max",
            0,
            0,
            60,
            br#"{"args":{},"run":6,"chain":"x"}"#.to_vec(),
        )
        .await
        .unwrap();
    client
        .put("r_over_max", 0, 0, 60, br#"{"args":{},"run":5}"#.to_vec())
        .await
        .unwrap();
    assert!(
        until(Duration::from_secs(3), || async {
            counts(&client, "r_over_max").await.live() == 0
        })
        .await
    );
    assert_eq!(OVER_MAX_RUNS.load(Ordering::SeqCst), 0);
    sd.trigger();
    h.await.unwrap().unwrap();
}

static LOST_RUNS: AtomicU32 = AtomicU32::new(0);

#[bsjobs::job(tube = "r_lost", repeat = "1s")]
async fn loses_its_token() {
    LOST_RUNS.fetch_add(1, Ordering::SeqCst);
}

/// A token that is gone (deleted here; beanstalkd 1.12 can lose one after
/// a restart) is replaced before the next run, and a crash's leftover of
/// the chain adopts the same replacement: the chain runs on, as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_token_is_gone_gets_one_new_token_and_stays_one() {
    let (srv, client) = server();
    let (sd, h) = spawn_worker(&srv.url(), &["r_lost"]);
    let handle = LosesItsToken::new()
        .client(&client)
        .enqueue()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || LOST_RUNS.load(Ordering::SeqCst)
            >= 1)
        .await
    );
    // Wait for the next run to be scheduled, then lose the token and add a
    // leftover twin of the chain, due a moment after the real job.
    assert!(
        until(Duration::from_secs(2), || async {
            counts(&client, "r_lost").await.delayed == 1
        })
        .await
    );
    let token = handle.token.unwrap();
    // The step that scheduled the run may still hold the token (reserved,
    // between its two writes): delete it once it is back.
    assert!(
        until(Duration::from_secs(2), || async {
            client.delete(0, token).await.is_ok()
        })
        .await,
        "token deleted"
    );
    let chain = handle.chain.clone().unwrap();
    let twin = format!(
        r#"{{"args":{{}},"chain":"{chain}","tok":{token},"gen":1,"prev":{}}}"#,
        handle.id
    );
    client
        .put("r_lost", 0, 1, 60, twin.into_bytes())
        .await
        .unwrap();
    let before = LOST_RUNS.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(6), || LOST_RUNS.load(Ordering::SeqCst)
            >= before + 3)
        .await,
        "the chain runs on"
    );
    assert!(
        until(Duration::from_secs(3), || async {
            counts(&client, "r_lost").await.live() == 1
        })
        .await,
        "one chain: {:?}",
        counts(&client, "r_lost").await
    );
    assert_eq!(counts(&client, TOKENS).await.live(), 1, "one new token");
    sd.trigger();
    h.await.unwrap().unwrap();
}

static MID_RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[bsjobs::job(tube = "r_midstep", repeat = "1h")]
async fn mid_step() {
    let run = bsjobs::current_job().map_or(0, |j| j.run);
    MID_RUNS.lock().unwrap().push(run);
}

/// The chain as a step leaves it between its two writes, the next run put
/// with no delay (a late cron run does that): the current job J is
/// reserved by the stepping connection and the token still names J; the
/// next job N is ready. A worker that reserves N right then must not judge
/// it a leftover by the token's old priority (it was deleted unrun, the
/// step then named a deleted job, and the chain died): N waits for the
/// chain to come to rest, then runs. Two ways: the step holds the token,
/// or (its token was held by someone else) it has not taken it yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_run_reserved_in_the_middle_of_its_step_waits_and_runs() {
    use bsjobs::proto::{Command, Response};
    let (srv, client) = server();
    let mut stepper = bsjobs_tests::raw(&srv).await;
    stepper.request(&Command::Watch("r_midstep")).await.unwrap();
    let (sd, h) = spawn_worker(&srv.url(), &["r_midstep"]);
    for (round, holds_token) in [(1u32, true), (2, false)] {
        let chain = format!("mid{round}");
        let token = client
            .put(
                "bsjobs.chains",
                0,
                0,
                60,
                format!(r#"{{"bsjobs":"chain-token","chain":"{chain}"}}"#).into_bytes(),
            )
            .await
            .unwrap();
        // J, the current job, reserved by "the stepping worker" (put
        // delayed so that the real worker does not take it first).
        let j_body = format!(r#"{{"args":{{}},"chain":"{chain}","tok":{token},"run":0}}"#);
        stepper.request(&Command::Use("r_midstep")).await.unwrap();
        let j = match stepper
            .request(&Command::Put {
                pri: 0,
                delay: 3600,
                ttr: 60,
                body: j_body.as_bytes(),
            })
            .await
            .unwrap()
        {
            Response::Inserted(id) => id,
            r => panic!("{r:?}"),
        };
        match stepper.request(&Command::ReserveJob(j)).await.unwrap() {
            Response::Reserved { .. } => {}
            r => panic!("{r:?}"),
        }
        if holds_token {
            match stepper.request(&Command::ReserveJob(token)).await.unwrap() {
                Response::Reserved { .. } => {}
                r => panic!("{r:?}"),
            }
        }
        // Write 1's put: N, due now, naming J as the job it replaces.
        let n_body = format!(
            r#"{{"args":{{}},"chain":"{chain}","tok":{token},"run":1,"gen":1,"prev":{j}}}"#
        );
        let n = client
            .put("r_midstep", 0, 0, 60, n_body.into_bytes())
            .await
            .unwrap();
        // The worker reserves N now; give it time to judge.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            client.stats_job(0, n).await.is_ok(),
            "round {round}: N is not deleted while the step is under way"
        );
        // Write 2: the token names N, J goes.
        if !holds_token {
            stepper.request(&Command::ReserveJob(token)).await.unwrap();
        }
        assert_eq!(
            stepper
                .request(&Command::Bury {
                    id: token,
                    pri: n as u32,
                })
                .await
                .unwrap(),
            Response::Buried
        );
        assert_eq!(
            stepper.request(&Command::Delete(j)).await.unwrap(),
            Response::Deleted
        );
        assert!(
            until(Duration::from_secs(5), || async {
                MID_RUNS.lock().unwrap().len() == round as usize
            })
            .await,
            "round {round}: N ran"
        );
        // And the chain goes on: N's successor waits an hour.
        assert!(
            until(Duration::from_secs(5), || async {
                let c = counts(&client, "r_midstep").await;
                c.delayed == 1 && c.ready + c.reserved == 0
            })
            .await,
            "round {round}: {:?}",
            counts(&client, "r_midstep").await
        );
        let next = client
            .peek_delayed(0, "r_midstep")
            .await
            .unwrap()
            .unwrap()
            .0;
        client.delete(0, next).await.unwrap();
    }
    sd.trigger();
    h.await.unwrap().unwrap();
}
