//! Cron jobs: repeating chains whose next delay comes from a schedule, and
//! exactly one chain per cron job, made without a leader.
//!
//! # One mechanism
//! A cron job is a repeating chain (`chain.rs`): one job at a time, a token
//! naming it, a step per run. Only the delay differs: each run schedules the
//! next one at the schedule's first tick strictly after both its own tick
//! and now ([`Schedule::next_after`]). So every guarantee of a chain holds:
//! it never forks, never dies, and a tick runs twice only when a crash hits
//! it. Ticks missed while no worker ran are caught up by one run (the job
//! waited, ready, at its tick), then the schedule goes on from now; with
//! `catch_up = "none"` a run that starts more than [`LATE`] after its tick
//! is skipped instead.
//!
//! # Exactly one chain, no leader
//! Cron tokens live in the fixed tube [`CRON_TUBE`], kept *buried* like
//! chain tokens (`bury` is written to the binlog; a release with no delay is
//! not, so a restart would revert a ready token). At start every worker runs
//! [`ensure`] on the server its cron jobs live on. It first takes the lock:
//! it reserves every job of [`CRON_LOCK_TUBE`], and holds them all only if
//! `stats-tube` counts no job it does not hold (none reserved by another,
//! none come free since); another worker finds nothing to reserve and sees
//! reservations it does not hold, so it backs off and tries again. An empty
//! lock tube gets a lock job first (duplicates of it are harmless). Holding
//! the lock, it kicks the tokens and holds every one of them, unless a
//! worker's chain step holds one at that moment (then it puts them back
//! and tries again). It creates the chain of each cron job that has none (a
//! token, then the first job), repairs a chain whose token names no job,
//! reschedules a waiting job whose time no longer matches the schedule (a
//! deploy changed the expression), buries the tokens again and lets go of
//! the lock. A worker killed while holding loses its reservations with its
//! connection (tokens come back ready, which the next holder and the next
//! step bury again); nothing is half done that the next holder does not
//! repair.

use super::chain::{self, mark, named, UNBOUND};
use crate::client::{ClientConfig, Connection};
use crate::job::{Envelope, Fields, JobDescriptor};
use crate::proto::stats::{JobState, JobStats, TubeStats};
use crate::proto::{Command, JobId, Response};
use crate::Error;
use chrono::TimeZone as _;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The one tube holding the tokens of cron chains.
pub(crate) const CRON_TUBE: &str = "bsjobs.cron";
/// The tube of the cron lock's jobs.
pub(crate) const CRON_LOCK_TUBE: &str = "bsjobs.cron.lock";
/// How late a run may start before `catch_up = "none"` skips it.
pub(crate) const LATE: i64 = 60;

/// A parsed cron schedule in its time zone.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parses a 5-field (or 6-field, with leading seconds) expression and an
    /// IANA zone name (`None`: UTC).
    pub(crate) fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| format!("cron expression {expr:?}: {e}"))?;
        let tz = match tz {
            None => chrono_tz::UTC,
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map_err(|e| format!("time zone {name:?}: {e}"))?,
        };
        Ok(Schedule { cron, tz })
    }

    /// The first tick strictly after `after` (Unix seconds).
    pub(crate) fn next_after(&self, after: i64) -> Option<i64> {
        let mut from = self.tz.timestamp_opt(after, 0).single()?;
        // Around a daylight-saving change the search starts from wall-clock
        // time; never hand back a tick that is not strictly later.
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            if next.timestamp() > after {
                return Some(next.timestamp());
            }
            from = next + chrono::Duration::seconds(1);
        }
        None
    }

    /// A tick as wall-clock time in the schedule's zone, for log lines.
    pub(crate) fn show(&self, tick: i64) -> String {
        match self.tz.timestamp_opt(tick, 0).single() {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
            None => tick.to_string(),
        }
    }
}

/// Now, in Unix seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The schedule of a cron job's descriptor.
pub(crate) fn schedule_of(d: &JobDescriptor) -> Option<Result<Schedule, String>> {
    d.options
        .cron
        .map(|expr| Schedule::parse(expr, d.options.tz))
}

/// The chain id of a cron job: its tube.
pub(crate) fn chain_id(d: &JobDescriptor) -> String {
    format!("cron:{}", d.tube)
}

/// The server (index into the URL's list) a cron job's chain lives on: the
/// same for every worker, chosen by a stable hash of its tube.
pub(crate) fn server_of(tube: &str, servers: usize) -> usize {
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tube.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % servers.max(1) as u64) as usize
}

fn token_body(tube: &str) -> Vec<u8> {
    let mut b = br#"{"bsjobs":"cron-token","cron":"#.to_vec();
    let _ = serde_json::to_writer(&mut b, tube);
    b.push(b'}');
    b
}

const LOCK_BODY: &[u8] = br#"{"bsjobs":"cron-lock"}"#;

/// Which cron job a job of [`CRON_TUBE`] is the token of.
fn token_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        bsjobs: String,
        cron: String,
    }
    serde_json::from_slice::<Token>(body)
        .ok()
        .filter(|t| t.bsjobs == "cron-token")
        .map(|t| t.cron)
}

/// A job held by [`hold_exclusive`].
pub(super) struct Held {
    pub(super) id: JobId,
    pub(super) pri: u32,
    pub(super) body: Vec<u8>,
    cron: Option<String>,
    /// Delete instead of releasing (a second token of one cron job, an
    /// expired record).
    pub(super) drop: bool,
}

/// Makes sure every cron job in `crons` has exactly one live chain on the
/// server at `addr`. Safe to run from any number of workers at once.
pub(super) async fn ensure(
    addr: &str,
    config: &ClientConfig,
    crons: &[(&'static JobDescriptor, Schedule)],
) -> Result<(), Error> {
    let mut conn = Connection::connect(addr, config).await?;
    let lock = hold_exclusive(&mut conn, CRON_LOCK_TUBE).await?;
    let mut held = hold_tokens(&mut conn).await?;
    for (d, schedule) in crons {
        repair(&mut conn, &mut held, d, schedule).await?;
    }
    bury_all(&mut conn, &held).await?;
    release_all(&mut conn, &lock).await
}

/// Holding the lock: kicks every token of [`CRON_TUBE`] and holds them all,
/// once no chain step holds one (a step reserves its token for a round
/// trip): the tokens [`repair`] works on.
async fn hold_tokens(conn: &mut Connection) -> Result<Vec<Held>, Error> {
    expect(conn, &Command::Watch(CRON_TUBE), |r| {
        matches!(r, Response::Watching(_))
    })
    .await?;
    expect(conn, &Command::Ignore(CRON_LOCK_TUBE), |r| {
        matches!(r, Response::Watching(_))
    })
    .await?;
    expect(conn, &Command::Use(CRON_TUBE), |r| {
        matches!(r, Response::Using(_))
    })
    .await?;
    let mut held = Vec::new();
    for attempt in 0..400u32 {
        expect(conn, &Command::Kick(u32::MAX), |r| {
            matches!(r, Response::KickedCount(_))
        })
        .await?;
        held.extend(hold_all(conn).await?);
        let st = tube_stats(conn, CRON_TUBE).await?;
        if st.reserved > held.len() as u64 {
            // A chain step holds a token right now: put ours back, retry.
            bury_all(conn, &held).await?;
            held.clear();
            let pause = 5 + fastrand::u64(0..10 * u64::from(attempt.min(10) + 1));
            tokio::time::sleep(Duration::from_millis(pause)).await;
            continue;
        }
        if st.ready + st.buried > 0 {
            // A step put its token back since: take it too.
            continue;
        }
        return Ok(held);
    }
    bury_all(conn, &held).await?;
    Err(Error::Unexpected(
        "could not hold every cron token: chain steps kept them for too long".into(),
    ))
}

/// Puts held tokens back, buried with their priority (deleting those
/// marked `drop`).
async fn bury_all(conn: &mut Connection, held: &[Held]) -> Result<(), Error> {
    for h in held {
        conn.queue(&if h.drop || h.cron.is_none() {
            // A duplicate token, or a stray job (an older bsjobs kept its
            // lock jobs in this tube).
            Command::Delete(h.id)
        } else {
            Command::Bury {
                id: h.id,
                pri: h.pri,
            }
        });
    }
    conn.flush().await?;
    for _ in held {
        conn.recv().await?;
    }
    Ok(())
}

/// Holds every job of `tube` on `conn`, and returns them once no other
/// connection holds any: the lock of the module docs. Release them with
/// [`release_all`].
pub(super) async fn hold_exclusive(conn: &mut Connection, tube: &str) -> Result<Vec<Held>, Error> {
    expect(conn, &Command::Watch(tube), |r| {
        matches!(r, Response::Watching(_))
    })
    .await?;
    expect(conn, &Command::Ignore("default"), |r| {
        matches!(r, Response::Watching(_))
    })
    .await?;
    let mut held = Vec::new();
    for attempt in 0..400u32 {
        held.extend(hold_all(conn).await?);
        let st = tube_stats(conn, tube).await?;
        let mine = held.len() as u64;
        if st.total() == 0 {
            // Nothing to hold yet: put a lock job and try again.
            put(conn, tube, 0, LOCK_BODY, 0).await?;
            continue;
        }
        if st.reserved > mine {
            // Someone else holds some: let go and try again shortly.
            release_all(conn, &held).await?;
            held.clear();
            let pause = 5 + fastrand::u64(0..20 * u64::from(attempt.min(10) + 1));
            tokio::time::sleep(Duration::from_millis(pause)).await;
            continue;
        }
        if st.total() > mine {
            // Jobs came free after our last reserve (another worker is
            // letting go): take them too before deciding anything.
            continue;
        }
        // Every job of the tube is ours: no other worker is in here.
        return Ok(held);
    }
    release_all(conn, &held).await?;
    Err(Error::Unexpected(format!(
        "could not hold every job of {tube}: other workers kept them for too long"
    )))
}

async fn hold_all(conn: &mut Connection) -> Result<Vec<Held>, Error> {
    let mut held = Vec::new();
    loop {
        match conn.request(&Command::ReserveWithTimeout(0)).await? {
            Response::Reserved { id, body } => held.push(Held {
                id,
                pri: 0,
                cron: token_of(&body),
                body,
                drop: false,
            }),
            Response::TimedOut => break,
            Response::DeadlineSoon => continue,
            r => return Err(crate::client::other(r)),
        }
    }
    for h in &mut held {
        h.pri = job_stats(conn, h.id).await?.map_or(0, |s| s.pri);
    }
    Ok(held)
}

pub(super) async fn release_all(conn: &mut Connection, held: &[Held]) -> Result<(), Error> {
    for h in held {
        let cmd = if h.drop {
            Command::Delete(h.id)
        } else {
            Command::Release {
                id: h.id,
                pri: h.pri,
                delay: 0,
            }
        };
        conn.queue(&cmd);
    }
    conn.flush().await?;
    for _ in held {
        conn.recv().await?;
    }
    Ok(())
}

/// Gives cron job `d` exactly one live chain, holding every token.
async fn repair(
    conn: &mut Connection,
    held: &mut [Held],
    d: &'static JobDescriptor,
    schedule: &Schedule,
) -> Result<(), Error> {
    let mine: Vec<usize> = (0..held.len())
        .filter(|&i| held[i].cron.as_deref() == Some(d.tube))
        .collect();
    let now = now();
    let Some(next) = schedule.next_after(now) else {
        tracing::warn!(tube = d.tube, "cron schedule has no future tick");
        return Ok(());
    };
    let Some(&first) = mine.iter().min_by_key(|&&i| held[i].id) else {
        // No chain: a token, then the first job naming it (gen 0).
        let token = put(conn, CRON_TUBE, UNBOUND, &token_body(d.tube), 0).await?;
        let job = put_job(conn, d, token, 0, next, now).await?;
        tracing::info!(tube = d.tube, cron = d.options.cron, tz = d.options.tz.unwrap_or("UTC"), job, next = %schedule.show(next), "cron job scheduled");
        return Ok(());
    };
    for &i in &mine {
        if i != first {
            // Cannot happen under the lock; a leftover of an older bsjobs.
            held[i].drop = true;
        }
    }
    let token = held[first].id;
    let pri = held[first].pri;
    if pri == chain::CANCELLED {
        tracing::info!(
            tube = d.tube,
            token,
            "cron job was cancelled; delete its token to schedule it again"
        );
        return Ok(());
    }
    let current = match named(pri, token) {
        Some(id) => job_stats(conn, id).await?.filter(|s| s.tube == d.tube),
        // The first job: find it at the head of its tube.
        None => match first_job(conn, d.tube, token).await? {
            Some(id) => job_stats(conn, id).await?,
            None if tube_stats(conn, d.tube).await?.total() > 0 => {
                tracing::info!(tube = d.tube, "cron job is due or running");
                return Ok(());
            }
            None => None,
        },
    };
    match current {
        Some(s) if s.state == JobState::Delayed => {
            let due = now + s.time_left;
            if (due - next).abs() <= 1 {
                tracing::info!(tube = d.tube, next = %schedule.show(next), "cron job is scheduled");
                return Ok(());
            }
            // The schedule changed (a deploy): move the waiting run.
            if conn.request(&Command::Delete(s.id)).await? != Response::Deleted {
                return Ok(());
            }
            let job = put_job(conn, d, token, 1, next, now).await?;
            held[first].pri = mark(job);
            tracing::info!(tube = d.tube, job, next = %schedule.show(next), "cron schedule changed; next run moved");
        }
        Some(s) => {
            tracing::info!(tube = d.tube, job = s.id, state = ?s.state, "cron job is due or running");
        }
        None => {
            // The token names no job (a crash between the token and the
            // first job, or a job deleted by hand): start it again.
            let job = put_job(conn, d, token, 1, next, now).await?;
            held[first].pri = mark(job);
            tracing::info!(tube = d.tube, job, next = %schedule.show(next), "cron chain had no job; scheduled it again");
        }
    }
    Ok(())
}

/// The id of the first (generation 0) job of the chain of `token`, if it
/// waits at the head of `tube` (delayed or ready).
async fn first_job(
    conn: &mut Connection,
    tube: &str,
    token: JobId,
) -> Result<Option<JobId>, Error> {
    conn.request(&Command::Use(tube)).await?;
    for cmd in [Command::PeekDelayed, Command::PeekReady] {
        if let Response::Found { id, body } = conn.request(&cmd).await? {
            if Envelope::parse(&body).is_ok_and(|e| e.tok == Some(token)) {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

async fn put_job(
    conn: &mut Connection,
    d: &'static JobDescriptor,
    token: JobId,
    gen: u32,
    tick: i64,
    now: i64,
) -> Result<JobId, Error> {
    let chain = chain_id(d);
    let mut body = Vec::with_capacity(96);
    Envelope::write(
        &mut body,
        b"{}",
        Fields {
            chain: Some(&chain),
            tok: Some(token),
            tick: Some(tick),
            gen,
            // The chain's enqueue: when a worker put its first job.
            enq: Some(now_ms()),
            ..Fields::default()
        },
    );
    let delay = (tick - now).clamp(0, i64::from(u32::MAX)) as u32;
    put(conn, d.tube, d.options.priority, &body, delay).await
}

pub(super) async fn put(
    conn: &mut Connection,
    tube: &str,
    pri: u32,
    body: &[u8],
    delay: u32,
) -> Result<JobId, Error> {
    conn.queue(&Command::Use(tube));
    conn.queue(&Command::Put {
        pri,
        delay,
        ttr: chain::TOKEN_TTR,
        body,
    });
    conn.flush().await?;
    conn.recv().await?;
    match conn.recv().await? {
        Response::Inserted(id) => Ok(id),
        r => Err(crate::client::other(r)),
    }
}

async fn job_stats(conn: &mut Connection, id: JobId) -> Result<Option<JobStats>, Error> {
    match conn.request(&Command::StatsJob(id)).await? {
        Response::Ok(yaml) => Ok(JobStats::parse(&yaml).ok()),
        Response::NotFound => Ok(None),
        r => Err(crate::client::other(r)),
    }
}

/// Jobs of a tube by state; all zero for a tube that does not exist.
#[derive(Debug, Default)]
struct Counts {
    ready: u64,
    reserved: u64,
    delayed: u64,
    buried: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.ready + self.reserved + self.delayed + self.buried
    }
}

async fn tube_stats(conn: &mut Connection, tube: &str) -> Result<Counts, Error> {
    match conn.request(&Command::StatsTube(tube)).await? {
        Response::Ok(yaml) => {
            let s = TubeStats::parse(&yaml).map_err(|e| Error::Unexpected(e.to_string()))?;
            Ok(Counts {
                ready: s.current_jobs_ready,
                reserved: s.current_jobs_reserved,
                delayed: s.current_jobs_delayed,
                buried: s.current_jobs_buried,
            })
        }
        Response::NotFound => Ok(Counts::default()),
        r => Err(crate::client::other(r)),
    }
}

async fn expect(
    conn: &mut Connection,
    cmd: &Command<'_>,
    ok: impl Fn(&Response) -> bool,
) -> Result<(), Error> {
    let r = conn.request(cmd).await?;
    if ok(&r) {
        Ok(())
    } else {
        Err(crate::client::other(r))
    }
}

/// Cron jobs grouped by the server their chain lives on.
pub(super) fn by_server(
    crons: Vec<(&'static JobDescriptor, Schedule)>,
    servers: usize,
) -> HashMap<usize, Vec<(&'static JobDescriptor, Schedule)>> {
    let mut out: HashMap<usize, Vec<_>> = HashMap::new();
    for c in crons {
        out.entry(server_of(c.0.tube, servers)).or_default().push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(tz: chrono_tz::Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .timestamp()
    }

    fn ticks(s: &Schedule, from: i64, n: usize) -> Vec<String> {
        let mut t = from;
        (0..n)
            .map(|_| {
                t = s.next_after(t).unwrap();
                s.show(t)
            })
            .collect()
    }

    #[test]
    fn five_and_six_fields_and_zones_parse() {
        assert!(Schedule::parse("0 9 * * MON-FRI", Some("Europe/Berlin")).is_ok());
        assert!(Schedule::parse("*/5 * * * * *", None).is_ok());
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("* * *", None).is_err());
        assert!(Schedule::parse("* * * * *", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn every_five_seconds_ticks_strictly_forward() {
        let s = Schedule::parse("*/5 * * * * *", None).unwrap();
        let t0 = 1_800_000_000; // a multiple of 5
        assert_eq!(s.next_after(t0), Some(t0 + 5));
        assert_eq!(s.next_after(t0 + 1), Some(t0 + 5));
        assert_eq!(s.next_after(t0 + 4), Some(t0 + 5));
    }

    #[test]
    fn a_time_missing_on_spring_forward_day_runs_once() {
        // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let tz = chrono_tz::Europe::Berlin;
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let from = at(tz, 2026, 3, 28, 12, 0);
        assert_eq!(
            ticks(&s, from, 3),
            [
                "2026-03-29 03:00:00 CEST",
                "2026-03-30 02:30:00 CEST",
                "2026-03-31 02:30:00 CEST"
            ]
        );
    }

    #[test]
    fn a_time_repeated_on_fall_back_day_runs_once() {
        // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let tz = chrono_tz::Europe::Berlin;
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let from = at(tz, 2026, 10, 24, 12, 0);
        assert_eq!(
            ticks(&s, from, 3),
            [
                "2026-10-25 02:30:00 CEST",
                "2026-10-26 02:30:00 CET",
                "2026-10-27 02:30:00 CET"
            ]
        );
        // Asked again from inside the repeated hour (after the first
        // 02:30, before the second): still the next day, not a second run.
        let first = at(tz, 2026, 10, 25, 2, 30);
        for later in [first + 60, first + 1800, first + 3600, first + 3660] {
            assert_eq!(
                s.show(s.next_after(later).unwrap()),
                "2026-10-26 02:30:00 CET",
                "from {}",
                s.show(later)
            );
        }
    }

    /// An hourly schedule runs in both hours of a fall-back: every real
    /// hour gets its run.
    #[test]
    fn hourly_ticks_keep_both_hours_of_a_fall_back() {
        let tz = chrono_tz::Europe::Berlin;
        let s = Schedule::parse("0 * * * *", Some("Europe/Berlin")).unwrap();
        let from = at(tz, 2026, 10, 25, 1, 30);
        assert_eq!(
            ticks(&s, from, 3),
            [
                "2026-10-25 02:00:00 CEST",
                "2026-10-25 02:00:00 CET",
                "2026-10-25 03:00:00 CET"
            ]
        );
    }

    #[test]
    fn servers_are_chosen_stably() {
        assert_eq!(server_of("report", 1), 0);
        let a = server_of("report", 3);
        assert_eq!(a, server_of("report", 3));
        assert!(a < 3);
    }
}
