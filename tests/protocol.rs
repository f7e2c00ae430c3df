//! Every beanstalkd 1.12 command and every reply, against a real server.
//!
//! Each test starts its own beanstalkd on a free loopback port and talks to it
//! through [`Connection`] (`request`, or `queue` + `flush` + `recv` for
//! pipelining); a few go through the shared [`bsjobs::Client`] to check its
//! typed error mapping. Replies that beanstalkd cannot be made to send on
//! demand (`OUT_OF_MEMORY`, `INTERNAL_ERROR`, `BURIED <id>` from `put`) are
//! checked by decoding their bytes and through a scripted fake server.

use bsjobs::proto::{decode, Command, Connection, Response, MAX_BODY};
use bsjobs::testing::Beanstalkd;
use bsjobs_core::proto::stats::{parse_list, JobState, JobStats, ServerStats, TubeStats};
use bsjobs_tests::{init_tracing, raw, server};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------- helpers

fn put_cmd(pri: u32, delay: u32, ttr: u32, body: &[u8]) -> Command<'_> {
    Command::Put {
        pri,
        delay,
        ttr,
        body,
    }
}

async fn put(c: &mut Connection, pri: u32, delay: u32, ttr: u32, body: &[u8]) -> u64 {
    match c.request(&put_cmd(pri, delay, ttr, body)).await.unwrap() {
        Response::Inserted(id) => id,
        r => panic!("put: unexpected {r:?}"),
    }
}

async fn ask(c: &mut Connection, cmd: Command<'_>) -> Response {
    c.request(&cmd)
        .await
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn ok_body(r: Response) -> Vec<u8> {
    match r {
        Response::Ok(body) => body,
        r => panic!("expected OK <bytes>, got {r:?}"),
    }
}

async fn job_stats(c: &mut Connection, id: u64) -> JobStats {
    JobStats::parse(&ok_body(ask(c, Command::StatsJob(id)).await)).unwrap()
}

async fn tube_stats(c: &mut Connection, tube: &str) -> TubeStats {
    TubeStats::parse(&ok_body(ask(c, Command::StatsTube(tube)).await)).unwrap()
}

async fn server_stats(c: &mut Connection) -> ServerStats {
    ServerStats::parse(&ok_body(ask(c, Command::Stats).await)).unwrap()
}

async fn list(c: &mut Connection, cmd: Command<'_>) -> Vec<String> {
    parse_list(&ok_body(ask(c, cmd).await)).unwrap()
}

fn reserved(r: Response) -> (u64, Vec<u8>) {
    match r {
        Response::Reserved { id, body } => (id, body),
        r => panic!("expected RESERVED, got {r:?}"),
    }
}

fn found(r: Response) -> (u64, Vec<u8>) {
    match r {
        Response::Found { id, body } => (id, body),
        r => panic!("expected FOUND, got {r:?}"),
    }
}

/// A connection that `use`s and watches only `tube`.
async fn on_tube(srv: &Beanstalkd, tube: &str) -> Connection {
    let mut c = raw(srv).await;
    assert_eq!(
        ask(&mut c, Command::Use(tube)).await,
        Response::Using(tube.into())
    );
    assert_eq!(
        ask(&mut c, Command::Watch(tube)).await,
        Response::Watching(2)
    );
    assert_eq!(
        ask(&mut c, Command::Ignore("default")).await,
        Response::Watching(1)
    );
    c
}

// ---------------------------------------------------------------- commands

#[tokio::test]
async fn put_use_list_tube_used_and_peek() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    assert_eq!(
        ask(&mut c, Command::ListTubeUsed).await,
        Response::Using("default".into())
    );
    assert_eq!(
        ask(&mut c, Command::Use("emails")).await,
        Response::Using("emails".into())
    );
    assert_eq!(
        ask(&mut c, Command::ListTubeUsed).await,
        Response::Using("emails".into())
    );
    // A body may hold CRLF and NUL: it is length-delimited.
    let body = b"a\r\nb\0c\r\n";
    let id = put(&mut c, 7, 0, 30, body).await;
    let (got, got_body) = found(ask(&mut c, Command::Peek(id)).await);
    assert_eq!((got, got_body.as_slice()), (id, &body[..]));
    let s = job_stats(&mut c, id).await;
    assert_eq!(s.tube, "emails");
    assert_eq!(s.state, JobState::Ready);
    assert_eq!((s.pri, s.ttr, s.delay), (7, 30, 0));
    // An empty body is a valid job too.
    let empty = put(&mut c, 0, 0, 1, b"").await;
    assert_eq!(found(ask(&mut c, Command::Peek(empty)).await).1, b"");
}

#[tokio::test]
async fn watch_ignore_and_list_tubes_watched() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    assert_eq!(list(&mut c, Command::ListTubesWatched).await, ["default"]);
    assert_eq!(
        ask(&mut c, Command::Watch("a")).await,
        Response::Watching(2)
    );
    assert_eq!(
        ask(&mut c, Command::Watch("b")).await,
        Response::Watching(3)
    );
    // Watching a tube twice does not count it twice.
    assert_eq!(
        ask(&mut c, Command::Watch("a")).await,
        Response::Watching(3)
    );
    let mut watched = list(&mut c, Command::ListTubesWatched).await;
    watched.sort();
    assert_eq!(watched, ["a", "b", "default"]);
    assert_eq!(
        ask(&mut c, Command::Ignore("default")).await,
        Response::Watching(2)
    );
    // Ignoring a tube that is not watched is no error.
    assert_eq!(
        ask(&mut c, Command::Ignore("never")).await,
        Response::Watching(2)
    );
    assert_eq!(
        ask(&mut c, Command::Ignore("a")).await,
        Response::Watching(1)
    );
    assert_eq!(list(&mut c, Command::ListTubesWatched).await, ["b"]);
    let t = tube_stats(&mut c, "b").await;
    assert_eq!(t.current_watching, 1);
}

#[tokio::test]
async fn not_ignored_for_the_last_watched_tube() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    assert_eq!(
        ask(&mut c, Command::Ignore("default")).await,
        Response::NotIgnored
    );
    assert_eq!(list(&mut c, Command::ListTubesWatched).await, ["default"]);
}

#[tokio::test]
async fn reserve_reserve_with_timeout_and_reserve_job() {
    let (srv, client) = server();
    let mut c = on_tube(&srv, "r").await;

    // reserve-with-timeout 0 on an empty tube: TIMED_OUT at once.
    assert_eq!(
        ask(&mut c, Command::ReserveWithTimeout(0)).await,
        Response::TimedOut
    );

    // reserve with a job ready: answered at once.
    let a = put(&mut c, 0, 0, 30, b"a").await;
    assert_eq!(
        reserved(ask(&mut c, Command::Reserve).await),
        (a, b"a".to_vec())
    );

    // reserve-with-timeout with a job ready.
    let b = put(&mut c, 0, 0, 30, b"b").await;
    assert_eq!(
        reserved(ask(&mut c, Command::ReserveWithTimeout(1)).await),
        (b, b"b".to_vec())
    );

    // reserve-job picks a given job even when it is not the next in line.
    let urgent = put(&mut c, 0, 0, 30, b"urgent").await;
    let lazy = put(&mut c, 100, 0, 30, b"lazy").await;
    assert_eq!(
        reserved(ask(&mut c, Command::ReserveJob(lazy)).await),
        (lazy, b"lazy".to_vec())
    );
    // Already reserved, or nonexistent: NOT_FOUND.
    let mut other = raw(&srv).await;
    assert_eq!(
        ask(&mut other, Command::ReserveJob(lazy)).await,
        Response::NotFound
    );
    assert_eq!(
        ask(&mut other, Command::ReserveJob(999_999)).await,
        Response::NotFound
    );
    for id in [a, b, lazy] {
        assert_eq!(ask(&mut c, Command::Delete(id)).await, Response::Deleted);
    }
    assert_eq!(
        ask(&mut c, Command::Delete(urgent)).await,
        Response::Deleted
    );

    // A blocking reserve is answered when another connection puts a job.
    c.queue(&Command::Reserve);
    c.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(tube_stats(&mut other, "r").await.current_waiting, 1);
    let id = client.put("r", 0, 0, 30, b"late".to_vec()).await.unwrap();
    let r = c.recv_within(Some(Duration::from_secs(3))).await.unwrap();
    assert_eq!(reserved(r), (id, b"late".to_vec()));
}

#[tokio::test]
async fn release_bury_touch_kick_job_and_job_stats() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "seq").await;
    let id = put(&mut c, 10, 0, 30, b"job").await;
    let s = job_stats(&mut c, id).await;
    assert_eq!(
        (s.id, s.tube.as_str(), s.state, s.pri, s.ttr),
        (id, "seq", JobState::Ready, 10, 30)
    );
    assert_eq!(
        (s.reserves, s.releases, s.buries, s.kicks, s.timeouts),
        (0, 0, 0, 0, 0)
    );

    // Only a reserved job can be released, buried or touched.
    assert_eq!(
        ask(
            &mut c,
            Command::Release {
                id,
                pri: 1,
                delay: 0
            }
        )
        .await,
        Response::NotFound
    );
    assert_eq!(
        ask(&mut c, Command::Bury { id, pri: 1 }).await,
        Response::NotFound
    );
    assert_eq!(ask(&mut c, Command::Touch(id)).await, Response::NotFound);

    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
    let s = job_stats(&mut c, id).await;
    assert_eq!((s.state, s.reserves), (JobState::Reserved, 1));
    assert!(
        (28..=30).contains(&s.time_left),
        "time-left {}",
        s.time_left
    );
    assert_eq!(ask(&mut c, Command::Touch(id)).await, Response::Touched);

    // The reservation belongs to this connection only.
    let mut other = raw(&srv).await;
    assert_eq!(
        ask(&mut other, Command::Touch(id)).await,
        Response::NotFound
    );
    assert_eq!(
        ask(
            &mut other,
            Command::Release {
                id,
                pri: 0,
                delay: 0
            }
        )
        .await,
        Response::NotFound
    );

    assert_eq!(
        ask(
            &mut c,
            Command::Release {
                id,
                pri: 20,
                delay: 0
            }
        )
        .await,
        Response::Released
    );
    let s = job_stats(&mut c, id).await;
    assert_eq!((s.state, s.pri, s.releases), (JobState::Ready, 20, 1));

    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
    assert_eq!(
        ask(&mut c, Command::Bury { id, pri: 30 }).await,
        Response::Buried
    );
    let s = job_stats(&mut c, id).await;
    assert_eq!((s.state, s.pri, s.buries), (JobState::Buried, 30, 1));
    // Buried jobs cannot be reserved.
    assert_eq!(
        ask(&mut c, Command::ReserveWithTimeout(0)).await,
        Response::TimedOut
    );

    assert_eq!(ask(&mut c, Command::KickJob(id)).await, Response::Kicked);
    // A ready job cannot be kicked.
    assert_eq!(ask(&mut c, Command::KickJob(id)).await, Response::NotFound);
    let s = job_stats(&mut c, id).await;
    assert_eq!(s.state, JobState::Ready);
    assert_eq!(
        (s.pri, s.ttr, s.reserves, s.releases, s.buries, s.kicks, s.timeouts),
        (30, 30, 2, 1, 1, 1, 0)
    );

    // Release with a delay makes it delayed; kick-job brings it back.
    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
    assert_eq!(
        ask(
            &mut c,
            Command::Release {
                id,
                pri: 5,
                delay: 100
            }
        )
        .await,
        Response::Released
    );
    let s = job_stats(&mut c, id).await;
    assert_eq!((s.state, s.delay, s.releases), (JobState::Delayed, 100, 2));
    assert!(
        (99..=100).contains(&s.time_left),
        "time-left {}",
        s.time_left
    );
    assert_eq!(ask(&mut c, Command::KickJob(id)).await, Response::Kicked);
    let s = job_stats(&mut c, id).await;
    assert_eq!((s.state, s.kicks, s.reserves), (JobState::Ready, 2, 3));

    assert_eq!(ask(&mut c, Command::Delete(id)).await, Response::Deleted);
    assert_eq!(ask(&mut c, Command::StatsJob(id)).await, Response::NotFound);
    assert_eq!(ask(&mut c, Command::KickJob(id)).await, Response::NotFound);
}

#[tokio::test]
async fn peek_ready_delayed_buried() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "p").await;
    for cmd in [
        Command::PeekReady,
        Command::PeekDelayed,
        Command::PeekBuried,
    ] {
        assert_eq!(ask(&mut c, cmd).await, Response::NotFound);
    }
    let ready_late = put(&mut c, 50, 0, 30, b"r50").await;
    let ready = put(&mut c, 10, 0, 30, b"r10").await;
    let delayed_far = put(&mut c, 0, 200, 30, b"d200").await;
    let delayed = put(&mut c, 0, 100, 30, b"d100").await;
    let buried = put(&mut c, 0, 0, 30, b"b").await;
    assert_eq!(
        reserved(ask(&mut c, Command::ReserveJob(buried)).await).0,
        buried
    );
    assert_eq!(
        ask(&mut c, Command::Bury { id: buried, pri: 0 }).await,
        Response::Buried
    );
    // peek-ready: most urgent first; peek-delayed: soonest first.
    assert_eq!(
        found(ask(&mut c, Command::PeekReady).await),
        (ready, b"r10".to_vec())
    );
    assert_eq!(
        found(ask(&mut c, Command::PeekDelayed).await),
        (delayed, b"d100".to_vec())
    );
    assert_eq!(
        found(ask(&mut c, Command::PeekBuried).await),
        (buried, b"b".to_vec())
    );
    assert_eq!(
        found(ask(&mut c, Command::Peek(delayed_far)).await).1,
        b"d200"
    );
    assert_eq!(
        found(ask(&mut c, Command::Peek(ready_late)).await).1,
        b"r50"
    );
    assert_eq!(
        ask(&mut c, Command::Peek(999_999)).await,
        Response::NotFound
    );
    // The peeks look at the *used* tube only.
    assert_eq!(
        ask(&mut c, Command::Use("elsewhere")).await,
        Response::Using("elsewhere".into())
    );
    assert_eq!(ask(&mut c, Command::PeekReady).await, Response::NotFound);
}

#[tokio::test]
async fn kick_moves_buried_then_delayed() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "k").await;
    assert_eq!(
        ask(&mut c, Command::Kick(10)).await,
        Response::KickedCount(0)
    );
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let id = put(&mut c, 0, 0, 30, &[b'0' + i]).await;
        assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
        assert_eq!(
            ask(&mut c, Command::Bury { id, pri: 0 }).await,
            Response::Buried
        );
        ids.push(id);
    }
    let delayed = put(&mut c, 0, 100, 30, b"d").await;
    assert_eq!(tube_stats(&mut c, "k").await.current_jobs_buried, 3);
    // Buried jobs are kicked first, at most `bound` of them.
    assert_eq!(
        ask(&mut c, Command::Kick(2)).await,
        Response::KickedCount(2)
    );
    assert_eq!(
        ask(&mut c, Command::Kick(10)).await,
        Response::KickedCount(1)
    );
    let t = tube_stats(&mut c, "k").await;
    assert_eq!(
        (
            t.current_jobs_buried,
            t.current_jobs_ready,
            t.current_jobs_delayed
        ),
        (0, 3, 1)
    );
    // With nothing buried, kick moves delayed jobs.
    assert_eq!(
        ask(&mut c, Command::Kick(10)).await,
        Response::KickedCount(1)
    );
    assert_eq!(job_stats(&mut c, delayed).await.state, JobState::Ready);
    for id in ids {
        assert_eq!(job_stats(&mut c, id).await.kicks, 1);
    }
    // kick-job on a buried job: KICKED without a count.
    let id = put(&mut c, 0, 0, 30, b"x").await;
    assert_eq!(reserved(ask(&mut c, Command::ReserveJob(id)).await).0, id);
    assert_eq!(
        ask(&mut c, Command::Bury { id, pri: 0 }).await,
        Response::Buried
    );
    assert_eq!(ask(&mut c, Command::KickJob(id)).await, Response::Kicked);
    assert_eq!(
        ask(&mut c, Command::KickJob(999_999)).await,
        Response::NotFound
    );
}

#[tokio::test]
async fn stats_tube_counts() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "st").await;
    let mut watcher = raw(&srv).await;
    assert_eq!(
        ask(&mut watcher, Command::Watch("st")).await,
        Response::Watching(2)
    );
    put(&mut c, 0, 0, 30, b"urgent").await;
    put(&mut c, 2000, 0, 30, b"not urgent").await;
    put(&mut c, 0, 100, 30, b"delayed").await;
    let r = put(&mut c, 0, 0, 30, b"to reserve").await;
    let b = put(&mut c, 0, 0, 30, b"to bury").await;
    let d = put(&mut c, 0, 0, 30, b"to delete").await;
    assert_eq!(reserved(ask(&mut c, Command::ReserveJob(r)).await).0, r);
    assert_eq!(reserved(ask(&mut c, Command::ReserveJob(b)).await).0, b);
    assert_eq!(
        ask(&mut c, Command::Bury { id: b, pri: 0 }).await,
        Response::Buried
    );
    assert_eq!(ask(&mut c, Command::Delete(d)).await, Response::Deleted);
    assert_eq!(
        ask(&mut c, Command::PauseTube("st", 0)).await,
        Response::Paused
    );
    let t = tube_stats(&mut c, "st").await;
    assert_eq!(
        t,
        TubeStats {
            name: "st".into(),
            current_jobs_urgent: 1,
            current_jobs_ready: 2,
            current_jobs_reserved: 1,
            current_jobs_delayed: 1,
            current_jobs_buried: 1,
            total_jobs: 6,
            current_using: 1,
            current_waiting: 0,
            current_watching: 2,
            pause: 0,
            cmd_delete: 1,
            cmd_pause_tube: 1,
            pause_time_left: 0,
        }
    );
    let d = tube_stats(&mut c, "default").await;
    assert_eq!((d.name.as_str(), d.total_jobs), ("default", 0));
    assert_eq!((d.current_using, d.current_watching), (1, 1));
}

#[tokio::test]
async fn server_stats_counters() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    let mut w = raw(&srv).await;
    assert_eq!(
        ask(&mut c, Command::Use("x")).await,
        Response::Using("x".into())
    );
    let a = put(&mut c, 0, 0, 30, b"a").await;
    put(&mut c, 0, 100, 30, b"b").await;
    put(&mut c, 0, 0, 30, b"c").await;
    assert_eq!(
        ask(&mut w, Command::Watch("x")).await,
        Response::Watching(2)
    );
    assert_eq!(
        ask(&mut w, Command::Ignore("x")).await,
        Response::Watching(1)
    );
    assert_eq!(
        ask(&mut w, Command::Watch("x")).await,
        Response::Watching(2)
    );
    assert_eq!(reserved(ask(&mut w, Command::ReserveJob(a)).await).0, a);
    assert_eq!(ask(&mut w, Command::Touch(a)).await, Response::Touched);
    assert_eq!(
        ask(&mut w, Command::Bury { id: a, pri: 0 }).await,
        Response::Buried
    );
    let _ = ask(&mut c, Command::PeekReady).await;
    let _ = ask(&mut c, Command::PeekBuried).await;
    let _ = ask(&mut c, Command::Kick(1)).await;
    let _ = ask(&mut c, Command::ListTubes).await;
    let s = server_stats(&mut c).await;
    assert_eq!(s.cmd_put, 3);
    assert_eq!(s.cmd_use, 1);
    assert_eq!((s.cmd_watch, s.cmd_ignore), (2, 1));
    assert_eq!((s.cmd_touch, s.cmd_bury, s.cmd_kick), (1, 1, 1));
    assert_eq!((s.cmd_peek_ready, s.cmd_peek_buried), (1, 1));
    assert_eq!(s.cmd_list_tubes, 1);
    assert_eq!(s.cmd_stats, 1, "the stats command counts itself");
    assert_eq!(s.cmd_delete, 0);
    assert_eq!(s.total_jobs, 3);
    assert_eq!(
        (
            s.current_jobs_ready,
            s.current_jobs_delayed,
            s.current_jobs_buried
        ),
        (2, 1, 0)
    );
    assert_eq!(s.current_producers, 1);
    assert_eq!(s.current_workers, 1);
    assert_eq!(s.current_connections, 2);
    assert_eq!(s.max_job_size, 65_535);
    assert_eq!(s.version, "1.12");
    assert!(!s.draining);
    assert_eq!(Some(s.pid as u32), srv.pid());
    // Every reserve variant counts under its own name.
    let _ = ask(&mut w, Command::ReserveWithTimeout(0)).await;
    let _ = ask(&mut w, Command::Reserve).await;
    let s = server_stats(&mut c).await;
    assert_eq!((s.cmd_reserve, s.cmd_reserve_with_timeout), (1, 1));
    assert_eq!(s.cmd_stats, 2);
}

#[tokio::test]
async fn list_tubes_contents() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    assert_eq!(list(&mut c, Command::ListTubes).await, ["default"]);
    assert_eq!(
        ask(&mut c, Command::Use("used.tube")).await,
        Response::Using("used.tube".into())
    );
    assert_eq!(
        ask(&mut c, Command::Watch("a-b+c/d;e$f_g(h)")).await,
        Response::Watching(2)
    );
    let mut tubes = list(&mut c, Command::ListTubes).await;
    tubes.sort();
    assert_eq!(tubes, ["a-b+c/d;e$f_g(h)", "default", "used.tube"]);
    // A tube that nobody uses, watches or fills disappears.
    assert_eq!(
        ask(&mut c, Command::Ignore("a-b+c/d;e$f_g(h)")).await,
        Response::Watching(1)
    );
    let mut tubes = list(&mut c, Command::ListTubes).await;
    tubes.sort();
    assert_eq!(tubes, ["default", "used.tube"]);
}

#[tokio::test]
async fn pause_tube_delays_reserve() {
    let (srv, client) = server();
    let mut c = on_tube(&srv, "slow").await;
    let id = put(&mut c, 0, 0, 30, b"x").await;
    assert_eq!(
        ask(&mut c, Command::PauseTube("nope", 1)).await,
        Response::NotFound
    );
    client
        .pause_tube(0, "slow", Duration::from_secs(1))
        .await
        .unwrap();
    let t = tube_stats(&mut c, "slow").await;
    assert_eq!((t.pause, t.cmd_pause_tube), (1, 1));
    assert!((0..=1).contains(&t.pause_time_left));
    let started = Instant::now();
    assert_eq!(
        ask(&mut c, Command::ReserveWithTimeout(0)).await,
        Response::TimedOut,
        "a paused tube hands out no job"
    );
    c.queue(&Command::ReserveWithTimeout(3));
    c.flush().await.unwrap();
    let r = c.recv_within(Some(Duration::from_secs(4))).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(reserved(r).0, id);
    assert!(
        waited >= Duration::from_millis(500),
        "reserved after {waited:?}, before the pause ran out"
    );
    assert!(waited < Duration::from_millis(2500), "took {waited:?}");
    // The raw command, too.
    assert_eq!(
        ask(&mut c, Command::PauseTube("slow", 0)).await,
        Response::Paused
    );
}

#[tokio::test]
async fn quit_closes_the_connection() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    put(&mut c, 0, 0, 1, b"x").await;
    let e = c.request(&Command::Quit).await.unwrap_err();
    assert!(matches!(e, bsjobs::Error::Closed), "{e:?}");
    // The server saw the connection go away.
    let mut other = raw(&srv).await;
    let s = server_stats(&mut other).await;
    assert_eq!(s.current_connections, 1);
}

// ---------------------------------------------------------------- error replies

#[tokio::test]
async fn not_found_replies_and_client_mapping() {
    let (srv, client) = server();
    let mut c = raw(&srv).await;
    assert_eq!(
        ask(&mut c, Command::Delete(424_242)).await,
        Response::NotFound
    );
    assert_eq!(
        ask(&mut c, Command::Use("empty")).await,
        Response::Using("empty".into())
    );
    assert_eq!(ask(&mut c, Command::PeekReady).await, Response::NotFound);
    assert_eq!(
        ask(&mut c, Command::StatsTube("no-such-tube")).await,
        Response::NotFound
    );

    let nf = |r: Result<(), bsjobs::Error>| match r {
        Err(bsjobs::Error::NotFound) => {}
        other => panic!("expected Error::NotFound, got {other:?}"),
    };
    nf(client.delete(0, 424_242).await);
    nf(client.kick_job(0, 424_242).await);
    nf(client.stats_job(0, 424_242).await.map(drop));
    nf(client
        .pause_tube(0, "no-such-tube", Duration::from_secs(1))
        .await);
    // The peeks report absence as None, not as an error.
    assert_eq!(client.peek(0, 424_242).await.unwrap(), None);
    assert_eq!(client.peek_ready(0, "empty").await.unwrap(), None);
    assert_eq!(client.peek_delayed(0, "empty").await.unwrap(), None);
    assert_eq!(client.peek_buried(0, "empty").await.unwrap(), None);
    // And the client still works after all those NOT_FOUNDs.
    let id = client.put("empty", 0, 0, 5, b"y".to_vec()).await.unwrap();
    assert_eq!(client.peek(0, id).await.unwrap(), Some(b"y".to_vec()));
    assert_eq!(
        client.peek_ready(0, "empty").await.unwrap(),
        Some((id, b"y".to_vec()))
    );
    assert_eq!(client.kick(0, "empty", 5).await.unwrap(), 0);
    client.delete(0, id).await.unwrap();
}

#[tokio::test]
async fn timed_out_on_an_empty_tube() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "nothing").await;
    let t = Instant::now();
    assert_eq!(
        ask(&mut c, Command::ReserveWithTimeout(0)).await,
        Response::TimedOut
    );
    assert!(t.elapsed() < Duration::from_millis(500));
    // A job in a tube that is not watched does not count.
    let mut p = raw(&srv).await;
    put(&mut p, 0, 0, 30, b"in default").await;
    assert_eq!(
        ask(&mut c, Command::ReserveWithTimeout(0)).await,
        Response::TimedOut
    );
}

#[tokio::test]
async fn deadline_soon_while_holding_a_job() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "ds").await;
    let id = put(&mut c, 0, 0, 2, b"short").await;
    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
    // The safety margin is 1 s: a reserve blocking past ttr - 1 s is woken
    // with DEADLINE_SOON instead of waiting its full 5 s.
    let t = Instant::now();
    c.queue(&Command::ReserveWithTimeout(5));
    c.flush().await.unwrap();
    let r = c.recv_within(Some(Duration::from_secs(4))).await.unwrap();
    assert_eq!(r, Response::DeadlineSoon);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The job is still ours.
    assert_eq!(job_stats(&mut c, id).await.state, JobState::Reserved);
    assert_eq!(ask(&mut c, Command::Delete(id)).await, Response::Deleted);

    // With ttr 1 the deadline is inside the margin from the start: a plain
    // `reserve` answers DEADLINE_SOON at once.
    let id = put(&mut c, 0, 0, 1, b"shorter").await;
    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, id);
    let t = Instant::now();
    assert_eq!(ask(&mut c, Command::Reserve).await, Response::DeadlineSoon);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(ask(&mut c, Command::Delete(id)).await, Response::Deleted);
}

#[tokio::test]
async fn job_too_big_from_the_server() {
    init_tracing();
    let srv = Beanstalkd::builder().max_job_size(10).start();
    let mut c = raw(&srv).await;
    assert_eq!(
        ask(&mut c, put_cmd(0, 0, 30, b"01234567890")).await,
        Response::JobTooBig
    );
    // The server skipped the body: the connection stays in step.
    let id = put(&mut c, 0, 0, 30, b"0123456789").await;
    assert_eq!(found(ask(&mut c, Command::Peek(id)).await).1, b"0123456789");
    let s = server_stats(&mut c).await;
    assert_eq!((s.max_job_size, s.total_jobs), (10, 1));

    // A client whose own limit is larger forwards the put and maps the reply.
    let client = bsjobs::Client::new(&srv.url()).unwrap();
    let e = client
        .put("t", 0, 0, 30, b"01234567890".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::ServerJobTooBig), "{e:?}");
    // A client configured with the server's limit refuses before sending.
    let mut cfg = bsjobs::ClientConfig::from_url(&srv.url()).unwrap();
    cfg.max_job_size = 10;
    let strict = bsjobs::Client::with_config(cfg);
    let e = strict
        .put("t", 0, 0, 30, b"01234567890".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(e, bsjobs::Error::JobTooBig { len: 11, max: 10 }),
        "{e:?}"
    );
}

#[tokio::test]
async fn expected_crlf_after_a_body() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    // The body (3 bytes) is followed by "XY" instead of CRLF.
    c.queue_raw(b"put 0 0 10 3\r\nabcXY");
    c.flush().await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Response::ExpectedCrlf);
    // No job was made and the connection is still usable.
    let id = put(&mut c, 0, 0, 10, b"abc").await;
    let s = server_stats(&mut c).await;
    assert_eq!((s.total_jobs, s.current_jobs_ready), (1, 1));
    assert_eq!(found(ask(&mut c, Command::Peek(id)).await).1, b"abc");
}

#[tokio::test]
async fn bad_format_and_unknown_command() {
    let (srv, _client) = server();
    let mut c = raw(&srv).await;
    c.queue_raw(b"put x\r\n");
    c.flush().await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Response::BadFormat);
    c.queue_raw(b"frobnicate\r\n");
    c.flush().await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Response::UnknownCommand);
    // A command with a bad argument, sent through the typed encoder.
    assert_eq!(ask(&mut c, Command::Use("-bad")).await, Response::BadFormat);
    let long = "a".repeat(201);
    assert_eq!(
        ask(&mut c, Command::Watch(long.as_str())).await,
        Response::BadFormat
    );
    c.queue_raw(b"delete abc\r\n");
    c.flush().await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Response::BadFormat);
    // Several bad lines in one write, answered in order, and then a good one.
    // (A bare `kick` without its argument would be UNKNOWN_COMMAND: the
    // server matches `kick ` with the space.)
    c.queue_raw(b"put 1 2\r\nnope\r\nkick x\r\n");
    c.queue(&Command::ListTubeUsed);
    c.flush().await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Response::BadFormat);
    assert_eq!(c.recv().await.unwrap(), Response::UnknownCommand);
    assert_eq!(c.recv().await.unwrap(), Response::BadFormat);
    assert_eq!(c.recv().await.unwrap(), Response::Using("default".into()));
}

/// The same malformed input over a bare socket: the reply bytes are exactly
/// what the decoder expects, however the reads split them.
#[tokio::test]
async fn error_replies_as_raw_bytes() {
    let (srv, _client) = server();
    let mut s = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    s.write_all(b"put 0 0 10 3\r\nabcXYput x\r\nfrobnicate\r\nignore default\r\n")
        .await
        .unwrap();
    let want: &[u8] = b"EXPECTED_CRLF\r\nBAD_FORMAT\r\nUNKNOWN_COMMAND\r\nNOT_IGNORED\r\n";
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < want.len() && Instant::now() < deadline {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(n > 0, "server closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, want);
    // Decode them back to back, and check that every prefix is "need more".
    let mut replies = Vec::new();
    let mut rest = &got[..];
    while !rest.is_empty() {
        let (r, used) = decode(rest, MAX_BODY).unwrap().unwrap();
        for cut in 0..used {
            assert_eq!(decode(&rest[..cut], MAX_BODY), Ok(None));
        }
        replies.push(r);
        rest = &rest[used..];
    }
    assert_eq!(
        replies,
        [
            Response::ExpectedCrlf,
            Response::BadFormat,
            Response::UnknownCommand,
            Response::NotIgnored
        ]
    );
}

#[tokio::test]
async fn draining_refuses_puts() {
    let (srv, client) = server();
    let mut c = raw(&srv).await;
    let before = put(&mut c, 0, 0, 30, b"before").await;
    let pid = srv.pid().expect("running");
    // SIGUSR1 puts beanstalkd in drain mode.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server_stats(&mut c).await.draining {
        assert!(Instant::now() < deadline, "server never reported draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        ask(&mut c, put_cmd(0, 0, 30, b"after")).await,
        Response::Draining
    );
    // The body was consumed: the connection stays in step.
    assert_eq!(found(ask(&mut c, Command::Peek(before)).await).1, b"before");
    let e = client
        .put("t", 0, 0, 30, b"after".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(e, bsjobs::Error::Draining), "{e:?}");
    // Existing jobs can still be worked.
    assert_eq!(reserved(ask(&mut c, Command::Reserve).await).0, before);
    assert_eq!(
        ask(&mut c, Command::Delete(before)).await,
        Response::Deleted
    );
    assert_eq!(server_stats(&mut c).await.total_jobs, 1);
}

/// OUT_OF_MEMORY, INTERNAL_ERROR and `BURIED <id>` (a put that could not
/// grow the ready heap) cannot be provoked in a real beanstalkd on demand, so
/// only their decoding is checked here, plus the client mapping through a
/// scripted server below.
#[test]
fn untriggerable_replies_decode() {
    for (bytes, want) in [
        (&b"OUT_OF_MEMORY\r\n"[..], Response::OutOfMemory),
        (b"INTERNAL_ERROR\r\n", Response::InternalError),
        (b"BURIED 42\r\n", Response::BuriedId(42)),
    ] {
        let (r, used) = decode(bytes, MAX_BODY).unwrap().unwrap();
        assert_eq!((r, used), (want, bytes.len()));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], MAX_BODY), Ok(None));
        }
    }
    assert!(decode(b"OUT_OF_MEMORY 1\r\n", MAX_BODY).is_err());
    assert!(decode(b"BURIED x\r\n", MAX_BODY).is_err());
}

/// A fake server that answers `use` properly and each `put` with the next
/// canned reply, to check how the client maps replies beanstalkd cannot be
/// made to send.
#[tokio::test]
async fn client_maps_untriggerable_replies() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut canned: std::collections::VecDeque<&[u8]> = [
            &b"OUT_OF_MEMORY\r\n"[..],
            b"INTERNAL_ERROR\r\n",
            b"BURIED 7\r\n",
            b"INSERTED 8\r\n",
        ]
        .into();
        let mut buf = Vec::new();
        loop {
            // Answer every complete command in the buffer.
            while let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(buf[..eol].to_vec()).unwrap();
                let mut used = eol + 2;
                let reply: Vec<u8> = if let Some(tube) = line.strip_prefix("use ") {
                    format!("USING {tube}\r\n").into_bytes()
                } else if line.starts_with("put ") {
                    let len: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
                    if buf.len() < used + len + 2 {
                        break;
                    }
                    used += len + 2;
                    canned
                        .pop_front()
                        .expect("more puts than scripted")
                        .to_vec()
                } else {
                    b"UNKNOWN_COMMAND\r\n".to_vec()
                };
                buf.drain(..used);
                s.write_all(&reply).await.unwrap();
            }
            let mut chunk = [0u8; 1024];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let mut cfg = bsjobs::ClientConfig::from_url(&format!("beanstalk://{addr}")).unwrap();
    cfg.io_timeout = Duration::from_secs(2);
    let client = bsjobs::Client::with_config(cfg);
    let put_x = || client.put("t", 0, 0, 30, b"x".to_vec());
    let e = put_x().await.unwrap_err();
    assert!(matches!(e, bsjobs::Error::OutOfMemory), "{e:?}");
    let e = put_x().await.unwrap_err();
    assert!(matches!(e, bsjobs::Error::InternalError), "{e:?}");
    let e = put_x().await.unwrap_err();
    assert!(matches!(e, bsjobs::Error::BuriedOnArrival(7)), "{e:?}");
    assert_eq!(put_x().await.unwrap(), 8);
    drop(client);
    fake.abort();
}

// ---------------------------------------------------------------- pipelining

#[tokio::test]
async fn thousand_pipelined_puts_in_one_write() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "pipe").await;
    let bodies: Vec<Vec<u8>> = (0..1000).map(|i| format!("job-{i}").into_bytes()).collect();
    for b in &bodies {
        c.queue(&put_cmd(0, 0, 60, b));
    }
    assert!(c.queued() > 1000 * 10);
    c.flush().await.unwrap();
    assert_eq!(c.queued(), 0);
    let mut ids = Vec::with_capacity(1000);
    for _ in 0..1000 {
        match c.recv().await.unwrap() {
            Response::Inserted(id) => ids.push(id),
            r => panic!("unexpected {r:?}"),
        }
    }
    let first = ids[0];
    assert_eq!(ids, (first..first + 1000).collect::<Vec<_>>());
    assert_eq!(tube_stats(&mut c, "pipe").await.current_jobs_ready, 1000);
    // Each id carries its own body.
    for (i, id) in ids.iter().enumerate().step_by(97) {
        assert_eq!(found(ask(&mut c, Command::Peek(*id)).await).1, bodies[i]);
    }
}

#[tokio::test]
async fn pipelined_reserves_and_deletes_in_one_write() {
    let (srv, _client) = server();
    let mut c = on_tube(&srv, "batch").await;
    for i in 0..100u32 {
        c.queue(&put_cmd(0, 0, 60, &i.to_be_bytes()));
    }
    c.flush().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..100 {
        match c.recv().await.unwrap() {
            Response::Inserted(id) => ids.push(id),
            r => panic!("unexpected {r:?}"),
        }
    }
    // Jobs of equal priority are reserved in id order, so the deletes can be
    // written before the reserves are answered.
    for &id in &ids {
        c.queue(&Command::ReserveWithTimeout(0));
        c.queue(&Command::Delete(id));
    }
    c.queue(&Command::ReserveWithTimeout(0));
    c.queue(&Command::StatsTube("batch"));
    c.flush().await.unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let (got, body) = reserved(c.recv().await.unwrap());
        assert_eq!((got, body), (id, (i as u32).to_be_bytes().to_vec()));
        assert_eq!(c.recv().await.unwrap(), Response::Deleted);
    }
    assert_eq!(c.recv().await.unwrap(), Response::TimedOut);
    let t = TubeStats::parse(&ok_body(c.recv().await.unwrap())).unwrap();
    assert_eq!(
        (t.total_jobs, t.current_jobs_ready, t.cmd_delete),
        (100, 0, 100)
    );
    assert!(!c.has_buffered_reply());
}
