//! Unique jobs: at most one live job per key, on beanstalkd alone, without a
//! leader and without a tube per key.
//!
//! # The registry
//! beanstalkd can find a job only by its id, and a tube by its name; a tube
//! per key would make every command of the server slower (beanstalkd walks
//! every tube on each reserve and each tick). So keys are hashed into
//! [`BUCKETS`] fixed tubes, `bsjobs.unique.00` … `bsjobs.unique.63`, and
//! each bucket tube holds one *registry* job whose body lists the bucket's
//! keys, one line each:
//!
//! ```text
//! bsjobs unique-registry 1
//! <key hash, 16 hex> <token id> <first job id> <held until, Unix ms> <identity>
//! ```
//!
//! # The lock
//! A producer holds a bucket by reserving every job of its tube, and only
//! if `stats-tube` then counts no job it does not hold (none reserved by
//! another producer, none come free since): the same leaderless lock the
//! cron chains use. An empty bucket first gets an empty registry
//! (duplicates of it are merged). A producer that dies loses its
//! reservations with its connection: the lock frees itself.
//!
//! # Whether a key is taken
//! A unique job carries a chain token (`bsjobs.chains`, the same mechanism
//! that keeps a repeating chain one chain): its priority names the job's
//! current beanstalkd id through retries, and the worker deletes it when the
//! job ends. A key is taken while its entry's token exists and the job the
//! token names exists and is not buried, or until its `unique_for` window
//! ends, whichever is later.
//!
//! # An enqueue
//! First, without the lock: `peek-ready` the bucket's registry; if it shows
//! the key taken, that is the answer (an entry only leaves a registry once
//! its job is gone and its window over, so even a stale registry is right
//! about a taken key). Otherwise, holding the bucket: read the registry; if the key is taken, let go and
//! return the existing job's handle. Otherwise put the token, then the job,
//! then the new registry (the entry added, up to [`PRUNE`] expired entries
//! whose job is gone dropped), then delete the old registry, which lets go.
//! A crash before the new registry is put leaves the old one, which comes
//! back with the connection: the job may exist without its entry, and the
//! next enqueue of that key then puts a second job. A crash after it leaves
//! two registries, merged by the next holder.

use super::{Client, ClientConfig, Connection};
use crate::job::{set_token, JobHandle, PreparedPut, Unique};
use crate::proto::stats::{JobState, JobStats, TubeStats};
use crate::proto::{Command, JobId, Response};
use crate::worker::chain;
use crate::Error;
use std::time::{Duration, Instant};

/// How many bucket tubes the keys are spread over.
pub(crate) const BUCKETS: u64 = 64;
/// The tube every unique connection watches (it never holds a job), so that
/// watching and ignoring a bucket never leaves a connection watching
/// nothing or `default`.
const HOME: &str = "bsjobs.unique";
/// First line of a registry body.
const HEAD: &str = "bsjobs unique-registry 1";
/// TTR of a registry: it is held for a few round trips at a time; the TTR
/// only frees one held by a producer that hangs.
const REGISTRY_TTR: u32 = 60;
/// At most this many expired entries are checked (and dropped if their
/// job is gone) per registry write.
pub(crate) const PRUNE: usize = 16;
/// How long an enqueue waits for a bucket other producers hold.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);
/// Idle connections kept per server.
const POOL: usize = 4;

/// The 64-bit FNV-1a hash of a unique key within its tube.
pub(crate) fn key_hash(tube: &str, key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in tube.as_bytes().iter().chain([0xffu8].iter()).chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket tube of a key hash.
pub(crate) fn bucket_tube(hash: u64) -> String {
    format!("{HOME}.{:02}", hash % BUCKETS)
}

/// One key of a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) hash: u64,
    pub(crate) token: JobId,
    pub(crate) first: JobId,
    pub(crate) until_ms: i64,
    pub(crate) identity: String,
}

/// The entries of a registry body; lines that do not parse (and bodies
/// that are not registries) add nothing.
pub(crate) fn parse(body: &[u8]) -> Vec<Entry> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEAD) {
        return Vec::new();
    }
    lines.filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut f = line.split(' ');
    let e = Entry {
        hash: u64::from_str_radix(f.next()?, 16).ok()?,
        token: f.next()?.parse().ok()?,
        first: f.next()?.parse().ok()?,
        until_ms: f.next()?.parse().ok()?,
        identity: f.next()?.to_owned(),
    };
    f.next().is_none().then_some(e)
}

/// The entry of key `hash` in a registry body, found without parsing the
/// others (the check of a key that is taken reads one line).
pub(crate) fn find(body: &[u8], hash: u64) -> Option<Entry> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.strip_prefix(HEAD)?;
    let needle = format!("\n{hash:016x} ");
    let at = rest.find(&needle)? + 1;
    parse_line(rest[at..].lines().next()?)
}

/// A registry body holding `entries`.
pub(crate) fn render(entries: &[Entry]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(HEAD.len() + 1 + entries.len() * 80);
    s.push_str(HEAD);
    s.push('\n');
    for e in entries {
        let _ = writeln!(
            s,
            "{:016x} {} {} {} {}",
            e.hash, e.token, e.first, e.until_ms, e.identity
        );
    }
    s.into_bytes()
}

/// The union of several registries (two exist after a crash between the
/// put of a new one and the delete of the old): for a key in both, the
/// newer job's entry.
pub(crate) fn merge(pages: impl IntoIterator<Item = Vec<Entry>>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in pages.into_iter().flatten() {
        match out.iter_mut().find(|o| o.hash == e.hash) {
            Some(o) if e.first > o.first => *o = e,
            Some(_) => {}
            None => out.push(e),
        }
    }
    out
}

/// A job held by [`lock`].
struct Held {
    id: JobId,
    body: Vec<u8>,
}

/// The idle unique connections of one server.
#[derive(Default)]
pub(super) struct Pool(std::sync::Mutex<Vec<Connection>>);

impl Pool {
    fn take(&self) -> Option<Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL {
            idle.push(conn);
        }
    }
}

impl Client {
    /// Enqueues a unique job: see the module docs.
    pub(super) async fn place_unique(&self, p: PreparedPut, u: Unique) -> Result<JobHandle, Error> {
        let fleet = &self.inner.fleet;
        let placement = p.key.clone().unwrap_or_else(|| format!("{:016x}", u.hash));
        let mut tried = vec![false; fleet.len()];
        loop {
            let server = if fleet.len() == 1 {
                0
            } else {
                fleet
                    .choose(Some(placement.as_bytes()), &tried)
                    .ok_or_else(|| fleet.none_up())?
            };
            let conn = match self.inner.unique[server].take() {
                Some(c) if !c.peer_closed() => Ok(c),
                _ => open(fleet.addr(server), &self.inner.config).await,
            };
            let mut conn = match conn {
                Ok(c) => c,
                Err(e) if fleet.len() > 1 && super::fleet::refused_before_storing(&e) => {
                    self.server_failed(server, &e);
                    tried[server] = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let max = self.inner.config.max_job_size;
            let r = enqueue(&mut conn, server, &p, u, max).await;
            let r = r
                .map(|(handle, reusable)| {
                    if reusable {
                        self.inner.unique[server].give(conn);
                    }
                    handle
                })
                .map_err(|(e, sent)| match e {
                    // The job's put was written and the connection failed:
                    // the job may exist (without its registry entry).
                    Error::Io(_) | Error::Closed if sent => Error::OutcomeUnknown {
                        addr: fleet.addr(server).to_owned(),
                        reason: e.to_string(),
                    },
                    e => e,
                });
            return r;
        }
    }
}

/// A connection that watches [`HOME`] only.
async fn open(addr: &str, config: &ClientConfig) -> Result<Connection, Error> {
    let mut conn = Connection::connect(addr, config).await?;
    conn.queue(&Command::Watch(HOME));
    conn.queue(&Command::Ignore("default"));
    conn.flush().await?;
    for _ in 0..2 {
        match conn.recv().await? {
            Response::Watching(_) => {}
            r => return Err(super::other(r)),
        }
    }
    Ok(conn)
}

/// One unique enqueue on `conn`, holding the key's bucket. An error says
/// whether the job's `put` had been written (its outcome may be unknown).
async fn enqueue(
    conn: &mut Connection,
    server: usize,
    p: &PreparedPut,
    u: Unique,
    max: usize,
) -> Result<(JobHandle, bool), (Error, bool)> {
    let bucket = bucket_tube(u.hash);
    let early = |e| (e, false);
    if let Some(handle) = taken_unlocked(conn, server, p, u, &bucket)
        .await
        .map_err(early)?
    {
        return Ok((handle, true));
    }
    let held = lock(conn, &bucket).await.map_err(early)?;
    let mut sent = false;
    let r = decide(conn, server, p, u, max, &bucket, &held, &mut sent).await;
    // A new registry is in: the old ones go, which lets go; else (nothing
    // changed, or the enqueue failed) they are released.
    let replaced = matches!(r, Ok((_, true)));
    let (handle, _) = r.map_err(|e| (e, sent))?;
    // The answer stands even if letting go fails (the connection's end lets
    // go; two registries left are merged by the next holder); only the
    // connection is not kept.
    let reusable = finish(conn, &bucket, &held, replaced).await.is_ok();
    Ok((handle, reusable))
}

/// The existing job's handle if the registry beanstalkd has ready shows the
/// key taken, without the lock: one `peek-ready`, then the key's check. A
/// key an older registry (one a crash left, not yet merged) shows taken is
/// taken too, since an entry only leaves a registry once its job is gone and
/// its window over. Anything else (no ready registry: a producer holds it;
/// the key absent or free) goes the locked way.
async fn taken_unlocked(
    conn: &mut Connection,
    server: usize,
    p: &PreparedPut,
    u: Unique,
    bucket: &str,
) -> Result<Option<JobHandle>, Error> {
    conn.queue(&Command::Use(bucket));
    conn.queue(&Command::PeekReady);
    conn.flush().await?;
    match conn.recv().await? {
        Response::Using(_) => {}
        r => return Err(super::other(r)),
    }
    let body = match conn.recv().await? {
        Response::Found { body, .. } => body,
        Response::NotFound => return Ok(None),
        r => return Err(super::other(r)),
    };
    let Some(e) = find(&body, u.hash) else {
        return Ok(None);
    };
    taken(conn, server, p, &e).await
}

/// The handle of `e`'s job if it still holds its key.
async fn taken(
    conn: &mut Connection,
    server: usize,
    p: &PreparedPut,
    e: &Entry,
) -> Result<Option<JobHandle>, Error> {
    let live = current(conn, std::slice::from_ref(e)).await?[0];
    if live.is_none() && crate::worker::cron::now_ms() >= e.until_ms {
        return Ok(None);
    }
    Ok(Some(JobHandle {
        id: live.unwrap_or(e.first),
        identity: e.identity.clone(),
        tube: p.tube,
        chain: p.chain.as_ref().map(|_| e.identity.clone()),
        token: Some(e.token),
        server,
        existing: true,
    }))
}

/// The handle to return, and whether a new registry was put.
#[allow(clippy::too_many_arguments)]
async fn decide(
    conn: &mut Connection,
    server: usize,
    p: &PreparedPut,
    u: Unique,
    max: usize,
    bucket: &str,
    held: &[Held],
    sent: &mut bool,
) -> Result<(JobHandle, bool), Error> {
    let mut entries = merge(held.iter().map(|h| parse(&h.body)));
    if let Some(e) = entries.iter().find(|e| e.hash == u.hash) {
        if let Some(handle) = taken(conn, server, p, e).await? {
            return Ok((handle, false));
        }
    }
    let now = crate::worker::cron::now_ms();
    entries.retain(|e| e.hash != u.hash);
    prune(conn, &mut entries, now).await?;
    let token = put(
        conn,
        chain::TOKEN_TUBE,
        chain::UNBOUND,
        0,
        chain::TOKEN_TTR,
        &chain::token_body(&p.identity, p.tube),
    )
    .await?;
    let mut body = p.body.clone();
    set_token(&mut body, token);
    let id = if body.len() > max {
        Err(Error::JobTooBig {
            len: body.len(),
            max,
        })
    } else {
        *sent = true;
        put(conn, p.tube, p.pri, p.delay, p.ttr, &body).await
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            delete(conn, &[token]).await?;
            return Err(e);
        }
    };
    entries.push(Entry {
        hash: u.hash,
        token,
        first: id,
        until_ms: now + i64::from(u.window) * 1000,
        identity: p.identity.clone(),
    });
    let page = render(&entries);
    let full = || {
        Error::NotUnique(format!(
            "the registry of {bucket} is full: {} keys take {} bytes, more than a job may \
             have; fewer keys held at once, shorter unique_for windows, or a larger max job \
             size (beanstalkd -z, and ClientConfig::max_job_size) make room",
            entries.len(),
            page.len()
        ))
    };
    let stored = if page.len() > max {
        Err(full())
    } else {
        match put(conn, bucket, 0, 0, REGISTRY_TTR, &page).await {
            Err(Error::JobTooBig { .. } | Error::ServerJobTooBig) => Err(full()),
            r => r,
        }
    };
    if let Err(e) = stored {
        // Without its entry the job would not be unique: take it back.
        delete(conn, &[id, token]).await?;
        return Err(e);
    }
    let handle = JobHandle {
        id,
        identity: p.identity.clone(),
        tube: p.tube,
        chain: p.chain.clone(),
        token: Some(token),
        server,
        existing: false,
    };
    Ok((handle, true))
}

/// Holds every job of `bucket` once no other connection holds any: the
/// lock of the module docs.
async fn lock(conn: &mut Connection, bucket: &str) -> Result<Vec<Held>, Error> {
    conn.queue(&Command::Watch(bucket));
    let mut watching = false;
    let began = Instant::now();
    let mut held: Vec<Held> = Vec::new();
    for attempt in 0u64.. {
        // One write: two reserves (a bucket has one registry, except after a
        // crash) and the counts; more reserves only if both got a job.
        let st = loop {
            conn.queue(&Command::ReserveWithTimeout(0));
            conn.queue(&Command::ReserveWithTimeout(0));
            conn.queue(&Command::StatsTube(bucket));
            conn.flush().await?;
            if !watching {
                match conn.recv().await? {
                    Response::Watching(_) => watching = true,
                    r => return Err(super::other(r)),
                }
            }
            let mut empty = false;
            for _ in 0..2 {
                match conn.recv().await? {
                    Response::Reserved { id, body } => held.push(Held { id, body }),
                    Response::TimedOut | Response::DeadlineSoon => empty = true,
                    r => return Err(super::other(r)),
                }
            }
            let st = match conn.recv().await? {
                Response::Ok(yaml) => {
                    TubeStats::parse(&yaml).map_err(|e| Error::Unexpected(e.to_string()))?
                }
                Response::NotFound => TubeStats::empty(bucket),
                r => return Err(super::other(r)),
            };
            if empty {
                break st;
            }
        };
        let mine = held.len() as u64;
        if st.current_jobs_ready + st.current_jobs_reserved == 0 {
            // Nothing to hold yet: an empty registry, then try again.
            put(conn, bucket, 0, 0, REGISTRY_TTR, &render(&[])).await?;
            continue;
        }
        if st.current_jobs_reserved > mine {
            // Another producer holds some: let go and try again shortly.
            finish_release(conn, &held).await?;
            held.clear();
            if began.elapsed() > LOCK_PATIENCE {
                ignore(conn, bucket).await?;
                return Err(Error::NotUnique(format!(
                    "{bucket} stayed held by other producers for {} s",
                    LOCK_PATIENCE.as_secs()
                )));
            }
            let pause = 1 + fastrand::u64(0..2 * (attempt.min(20) + 1));
            tokio::time::sleep(Duration::from_millis(pause)).await;
            continue;
        }
        if st.current_jobs_ready > 0 {
            // Jobs came free after our last reserve: take them too.
            continue;
        }
        return Ok(held);
    }
    unreachable!("the loop only ends by returning")
}

/// Lets go of `bucket`: deletes the held registries when a new one was put
/// (`replaced`), else releases them; then stops watching the bucket.
async fn finish(
    conn: &mut Connection,
    bucket: &str,
    held: &[Held],
    replaced: bool,
) -> Result<(), Error> {
    queue_let_go(conn, held, replaced);
    conn.queue(&Command::Ignore(bucket));
    recv_let_go(conn, held).await?;
    match conn.recv().await? {
        Response::Watching(_) => Ok(()),
        r => Err(super::other(r)),
    }
}

async fn finish_release(conn: &mut Connection, held: &[Held]) -> Result<(), Error> {
    queue_let_go(conn, held, false);
    recv_let_go(conn, held).await
}

/// Queues the deletes (`replaced`: a new registry is in) or releases of
/// the held registries.
fn queue_let_go(conn: &mut Connection, held: &[Held], replaced: bool) {
    for h in held {
        conn.queue(&if replaced {
            Command::Delete(h.id)
        } else {
            Command::Release {
                id: h.id,
                pri: 0,
                delay: 0,
            }
        });
    }
}

/// Sends what is queued and reads the replies of [`queue_let_go`].
async fn recv_let_go(conn: &mut Connection, held: &[Held]) -> Result<(), Error> {
    conn.flush().await?;
    for _ in held {
        match conn.recv().await? {
            Response::Deleted | Response::Released | Response::NotFound => {}
            r => return Err(super::other(r)),
        }
    }
    Ok(())
}

async fn ignore(conn: &mut Connection, bucket: &str) -> Result<(), Error> {
    match conn.request(&Command::Ignore(bucket)).await? {
        Response::Watching(_) => Ok(()),
        r => Err(super::other(r)),
    }
}

/// Deletes `ids`, one write; a job already gone is no error.
async fn delete(conn: &mut Connection, ids: &[JobId]) -> Result<(), Error> {
    for &id in ids {
        conn.queue(&Command::Delete(id));
    }
    conn.flush().await?;
    for _ in ids {
        match conn.recv().await? {
            Response::Deleted | Response::NotFound => {}
            r => return Err(super::other(r)),
        }
    }
    Ok(())
}

async fn put(
    conn: &mut Connection,
    tube: &str,
    pri: u32,
    delay: u32,
    ttr: u32,
    body: &[u8],
) -> Result<JobId, Error> {
    conn.queue(&Command::Use(tube));
    conn.queue(&Command::Put {
        pri,
        delay,
        ttr,
        body,
    });
    conn.flush().await?;
    match conn.recv().await? {
        Response::Using(_) => {}
        r => return Err(super::other(r)),
    }
    super::put_result(conn.recv().await?)
}

/// `stats-job` of each of `ids` in one write; `None` for a job that is gone.
async fn stats_many(conn: &mut Connection, ids: &[JobId]) -> Result<Vec<Option<JobStats>>, Error> {
    for &id in ids {
        conn.queue(&Command::StatsJob(id));
    }
    conn.flush().await?;
    let mut out = Vec::with_capacity(ids.len());
    for _ in ids {
        out.push(match conn.recv().await? {
            Response::Ok(yaml) => JobStats::parse(&yaml).ok(),
            Response::NotFound => None,
            r => return Err(super::other(r)),
        });
    }
    Ok(out)
}

/// For each entry, the id of its job if that job still holds the key: its
/// token exists, is not cancelled, and names a job that exists and is not
/// buried. Two writes for any number of entries.
async fn current(conn: &mut Connection, entries: &[Entry]) -> Result<Vec<Option<JobId>>, Error> {
    let tokens: Vec<JobId> = entries.iter().map(|e| e.token).collect();
    let named: Vec<Option<JobId>> = stats_many(conn, &tokens)
        .await?
        .into_iter()
        .zip(entries)
        .map(|(s, e)| {
            let s = s.filter(|s| s.tube == chain::TOKEN_TUBE)?;
            match s.pri {
                chain::CANCELLED => None,
                chain::UNBOUND => Some(e.first),
                pri => chain::named(pri, e.first),
            }
        })
        .collect();
    let ask: Vec<JobId> = named.iter().flatten().copied().collect();
    let mut jobs = stats_many(conn, &ask).await?.into_iter();
    Ok(named
        .into_iter()
        .map(|n| {
            let id = n?;
            let s = jobs.next().flatten()?;
            (s.state != JobState::Buried && !chain::is_token_tube(&s.tube)).then_some(id)
        })
        .collect())
}

/// Drops up to [`PRUNE`] entries whose window has passed and whose job no
/// longer holds the key, chosen at random among the expired ones so that
/// long-lived jobs do not starve the others.
async fn prune(conn: &mut Connection, entries: &mut Vec<Entry>, now: i64) -> Result<(), Error> {
    let mut expired: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].until_ms <= now)
        .collect();
    if expired.is_empty() {
        return Ok(());
    }
    fastrand::shuffle(&mut expired);
    expired.truncate(PRUNE);
    let check: Vec<Entry> = expired.iter().map(|&i| entries[i].clone()).collect();
    let live = current(conn, &check).await?;
    let mut dead: Vec<usize> = expired
        .into_iter()
        .zip(live)
        .filter_map(|(i, l)| l.is_none().then_some(i))
        .collect();
    dead.sort_unstable_by(|a, b| b.cmp(a));
    for i in dead {
        entries.swap_remove(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: u64, first: JobId) -> Entry {
        Entry {
            hash,
            token: first - 1,
            first,
            until_ms: 1_700_000_000_000,
            identity: format!("id{first}"),
        }
    }

    #[test]
    fn registries_round_trip_and_skip_what_does_not_parse() {
        let e = vec![entry(1, 10), entry(u64::MAX, 20)];
        assert_eq!(parse(&render(&e)), e);
        assert_eq!(parse(&render(&[])), vec![]);
        assert_eq!(parse(b"lock"), vec![]);
        let mut body = render(&e);
        body.extend_from_slice(b"zz 1 2 3 x\n00000000000000ff 1 2 3 x extra\n");
        assert_eq!(parse(&body), e);
        assert_eq!(find(&body, u64::MAX), Some(entry(u64::MAX, 20)));
        assert_eq!(find(&body, 1), Some(entry(1, 10)));
        assert_eq!(find(&body, 2), None);
        assert_eq!(find(b"lock", 1), None);
    }

    #[test]
    fn merging_keeps_every_key_once_with_its_newest_job() {
        let a = vec![entry(1, 10), entry(2, 11)];
        let b = vec![entry(2, 30), entry(3, 12)];
        let m = merge([a, b]);
        assert_eq!(m, vec![entry(1, 10), entry(2, 30), entry(3, 12)]);
    }

    #[test]
    fn keys_are_scoped_by_tube_and_spread_over_the_buckets() {
        assert_ne!(key_hash("a", b"k"), key_hash("b", b"k"));
        assert_ne!(key_hash("ab", b"c"), key_hash("a", b"bc"));
        let used: std::collections::HashSet<String> = (0..1000)
            .map(|i| bucket_tube(key_hash("t", format!("{i}").as_bytes())))
            .collect();
        assert_eq!(used.len() as u64, BUCKETS);
        assert!(used.contains("bsjobs.unique.00") && used.contains("bsjobs.unique.63"));
    }
}
