//! Several servers behind one [`Client`](super::Client): where a put goes,
//! and what happens when a server dies.
//!
//! # Placement
//! - A put without a key goes to the live servers in turn, each getting a
//!   share of puts proportional to its weight (smooth round robin over the
//!   weights; equal weights alternate).
//! - A put with a key (`.key(k)`) goes to the live server with the highest
//!   *rendezvous* score for that key: `weight / -ln(u)` where `u` is a
//!   stable 64-bit hash of (server address, key) mapped into (0, 1). Every
//!   producer computes the same order for a key, whatever the order of the
//!   URL's list; adding a server moves only the keys that now score highest
//!   on it (its share, about 1/n), and removing one moves only its keys.
//!
//! # A server that fails
//! - A put that fails **before anything was stored** (no connection,
//!   `DRAINING`, `OUT_OF_MEMORY`) marks the server down and is sent to the
//!   next live server at once: to the next in turn, or for a keyed put to
//!   the key's next server in rendezvous order (the same for every
//!   producer). The jobs of one key therefore meet on one server while the
//!   set of live servers is stable; while the key's server is down they go
//!   to its second server. This is the documented policy: availability
//!   first, the key's ordering holds within each of the two periods.
//! - A put whose connection failed **after it was written**
//!   ([`Error::OutcomeUnknown`]) marks the server down and is returned to
//!   the caller as is: the job may exist, so it is never repeated elsewhere.
//! - A server marked down is left out of placement and re-probed in the
//!   background (connect + `stats`, not draining), 25 ms after the failure,
//!   then with doubling delays up to 1 s, until it answers; then it takes
//!   puts again. No caller waits for a probe.
//! - When every server is down or drained, a put fails at once with
//!   [`Error::NoServerUp`] listing each server and why.
//! - With a single server, there is nothing to fail over to: each put tries
//!   it, as a client for one server always did.

use super::{ClientConfig, Connection};
use crate::error::ServerDown;
use crate::proto::stats::ServerStats;
use crate::proto::{Command, Response};
use crate::Error;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First re-probe after a failure.
const PROBE_FIRST: Duration = Duration::from_millis(25);
/// Longest wait between re-probes.
const PROBE_MAX: Duration = Duration::from_secs(1);

/// What a client knows about each of its servers.
pub(super) struct Fleet {
    servers: Vec<Server>,
    /// Puts placed without a key so far (drives the round robin).
    turn: AtomicU64,
}

struct Server {
    addr: String,
    weight: AtomicU32,
    down: AtomicBool,
    /// A probe task is running for this server.
    probing: AtomicBool,
    /// The last failure, and when it was seen.
    last_error: Mutex<Option<(String, Instant)>>,
}

/// The state of one server as a [`Client`](super::Client) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// `host:port`.
    pub addr: String,
    /// Share of new puts; 0 when drained.
    pub weight: u32,
    /// Marked down after a failure, and not yet answering a re-probe.
    pub down: bool,
    /// The last failure seen on it, if any.
    pub last_error: Option<String>,
}

impl Fleet {
    pub(super) fn new(config: &ClientConfig) -> Fleet {
        Fleet {
            servers: config
                .servers
                .iter()
                .enumerate()
                .map(|(i, addr)| Server {
                    addr: addr.clone(),
                    weight: AtomicU32::new(config.weights.get(i).copied().unwrap_or(1)),
                    down: AtomicBool::new(false),
                    probing: AtomicBool::new(false),
                    last_error: Mutex::new(None),
                })
                .collect(),
            turn: AtomicU64::new(0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.servers.len()
    }

    pub(super) fn addr(&self, server: usize) -> &str {
        &self.servers[server].addr
    }

    pub(super) fn set_weight(&self, server: usize, weight: u32) {
        self.servers[server].weight.store(weight, Ordering::Relaxed);
    }

    pub(super) fn status(&self) -> Vec<ServerStatus> {
        self.servers
            .iter()
            .map(|s| ServerStatus {
                addr: s.addr.clone(),
                weight: s.weight.load(Ordering::Relaxed),
                down: s.down.load(Ordering::Relaxed),
                last_error: lock(&s.last_error).as_ref().map(|(e, _)| e.clone()),
            })
            .collect()
    }

    /// The server for the next put: `None` when no server outside `tried`
    /// is up and weighted.
    pub(super) fn choose(&self, key: Option<&[u8]>, tried: &[bool]) -> Option<usize> {
        let usable = |i: usize| {
            let s = &self.servers[i];
            !tried.get(i).copied().unwrap_or(false)
                && !s.down.load(Ordering::Relaxed)
                && s.weight.load(Ordering::Relaxed) > 0
        };
        match key {
            Some(key) => (0..self.servers.len())
                .filter(|&i| usable(i))
                .map(|i| {
                    let s = &self.servers[i];
                    (score(key, &s.addr, s.weight.load(Ordering::Relaxed)), i)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, i)| i),
            None => {
                let weights: Vec<u64> = (0..self.servers.len())
                    .map(|i| {
                        if usable(i) {
                            u64::from(self.servers[i].weight.load(Ordering::Relaxed))
                        } else {
                            0
                        }
                    })
                    .collect();
                let turn = self.turn.fetch_add(1, Ordering::Relaxed);
                round_robin(&weights, turn)
            }
        }
    }

    /// Marks `server` down after `e`. Returns true if it was up until now
    /// (the caller starts the probe).
    pub(super) fn mark_down(&self, server: usize, e: &Error) -> bool {
        let s = &self.servers[server];
        *lock(&s.last_error) = Some((e.to_string(), Instant::now()));
        let was_up = !s.down.swap(true, Ordering::AcqRel);
        if was_up {
            tracing::warn!(
                server = %s.addr,
                error = %e,
                "beanstalkd server down: puts go to the other servers (keyed puts to each key's next server) until it answers again"
            );
        }
        was_up
    }

    /// Claims the probe of `server`: true if it is down and no probe runs.
    pub(super) fn claim_probe(&self, server: usize) -> bool {
        let s = &self.servers[server];
        s.down.load(Ordering::Acquire) && !s.probing.swap(true, Ordering::AcqRel)
    }

    pub(super) fn release_probe(&self, server: usize) {
        self.servers[server].probing.store(false, Ordering::Release);
    }

    /// Servers that are down with no probe running (a probe dies with the
    /// runtime it was spawned on).
    pub(super) fn unprobed(&self) -> impl Iterator<Item = usize> + '_ {
        self.servers.iter().enumerate().filter_map(|(i, s)| {
            (s.down.load(Ordering::Relaxed) && !s.probing.load(Ordering::Relaxed)).then_some(i)
        })
    }

    pub(super) fn mark_up(&self, server: usize) {
        let s = &self.servers[server];
        if s.down.swap(false, Ordering::AcqRel) {
            tracing::info!(server = %s.addr, "beanstalkd server answers again: it takes puts again");
        }
    }

    pub(super) fn note_probe_failure(&self, server: usize, e: &Error) {
        *lock(&self.servers[server].last_error) = Some((e.to_string(), Instant::now()));
    }

    /// The error for "no server takes new jobs".
    pub(super) fn none_up(&self) -> Error {
        Error::NoServerUp {
            servers: self
                .servers
                .iter()
                .map(|s| ServerDown {
                    addr: s.addr.clone(),
                    reason: if s.weight.load(Ordering::Relaxed) == 0 {
                        "drained".to_owned()
                    } else {
                        match &*lock(&s.last_error) {
                            Some((e, at)) => {
                                format!("down: {e}, {:.1} s ago", at.elapsed().as_secs_f64())
                            }
                            None => "down".to_owned(),
                        }
                    },
                })
                .collect(),
        }
    }
}

/// The delay before re-probe number `attempt` (0-based).
pub(super) fn probe_delay(attempt: u32) -> Duration {
    PROBE_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(PROBE_MAX)
}

/// One probe: the server accepts a connection, answers `stats`, and is not
/// draining.
pub(super) async fn probe(addr: &str, config: &ClientConfig) -> Result<(), Error> {
    let mut c = Connection::connect(addr, config).await?;
    match c.request(&Command::Stats).await? {
        Response::Ok(body) => {
            let stats = ServerStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))?;
            if stats.draining {
                return Err(Error::Draining);
            }
            Ok(())
        }
        r => Err(super::other(r)),
    }
}

/// True for a put refused before the server stored anything: sending it to
/// another server cannot make a duplicate.
pub(super) fn refused_before_storing(e: &Error) -> bool {
    matches!(
        e,
        Error::Connect { .. } | Error::Draining | Error::OutOfMemory
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Smooth weighted round robin without shared state beyond a counter:
/// turn `t` goes to the server whose cumulative weight interval holds
/// `t mod total`, with the intervals interleaved so that equal weights
/// alternate (a, b, a, b) rather than run in blocks.
pub(crate) fn round_robin(weights: &[u64], turn: u64) -> Option<usize> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let max = weights.iter().copied().max().unwrap_or(0);
    // Round r of `max` rounds visits, in list order, every server whose
    // weight exceeds r: a server of weight w is visited in w rounds out of
    // max. `t mod total` indexes into that visiting order.
    let mut t = turn % total;
    for round in 0..max {
        for (i, &w) in weights.iter().enumerate() {
            if w > round {
                if t == 0 {
                    return Some(i);
                }
                t -= 1;
            }
        }
    }
    None
}

/// Rendezvous score of `key` on the server at `addr` with `weight`.
pub(crate) fn score(key: &[u8], addr: &str, weight: u32) -> f64 {
    let h = hash(addr.as_bytes(), key);
    // 53 high bits into (0, 1): never 0, never 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

/// A stable 64-bit hash of (`addr`, `key`): FNV-1a over both (with a
/// separator), then the splitmix64 finalizer to spread the bits. Stable
/// across processes, platforms and versions of Rust, unlike `std`'s hasher.
fn hash(addr: &[u8], key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in addr.iter().chain(&[0xff]).chain(key) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(key: &[u8], servers: &[(&str, u32)]) -> usize {
        servers
            .iter()
            .enumerate()
            .map(|(i, (a, w))| (score(key, a, *w), i))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
            .1
    }

    const THREE: [(&str, u32); 3] = [
        ("10.0.0.1:11300", 1),
        ("10.0.0.2:11300", 1),
        ("10.0.0.3:11300", 1),
    ];

    #[test]
    fn a_key_always_lands_on_the_same_server() {
        for k in 0..1000 {
            let key = format!("customer-{k}");
            let first = owner(key.as_bytes(), &THREE);
            for _ in 0..3 {
                assert_eq!(owner(key.as_bytes(), &THREE), first);
            }
            // The order of the URL's list does not matter.
            let reversed: Vec<_> = THREE.iter().rev().copied().collect();
            assert_eq!(THREE[first].0, reversed[owner(key.as_bytes(), &reversed)].0);
        }
    }

    #[test]
    fn keys_spread_evenly_and_a_fourth_server_takes_about_a_quarter() {
        const N: usize = 20_000;
        let four = [THREE[0], THREE[1], THREE[2], ("10.0.0.4:11300", 1)];
        let mut per = [0usize; 3];
        let mut moved = 0;
        for k in 0..N {
            let key = format!("order-{k}");
            let before = owner(key.as_bytes(), &THREE);
            let after = owner(key.as_bytes(), &four);
            per[before] += 1;
            if after != before {
                moved += 1;
                assert_eq!(after, 3, "a key only ever moves to the new server");
            }
        }
        for n in per {
            let share = n as f64 / N as f64;
            assert!((0.30..0.37).contains(&share), "share {share:.3} of {per:?}");
        }
        let share = moved as f64 / N as f64;
        assert!((0.22..0.28).contains(&share), "moved {share:.3}");
    }

    #[test]
    fn weights_scale_a_servers_share_of_keys() {
        const N: usize = 20_000;
        let weighted = [THREE[0], ("10.0.0.2:11300", 2), THREE[2]];
        let heavy = (0..N)
            .filter(|k| owner(format!("k{k}").as_bytes(), &weighted) == 1)
            .count();
        let share = heavy as f64 / N as f64;
        assert!((0.46..0.54).contains(&share), "weight 2 of 4: {share:.3}");
    }

    #[test]
    fn round_robin_follows_weights_and_skips_zero() {
        let pick = |w: &[u64], n: u64| -> Vec<usize> {
            (0..n).map(|t| round_robin(w, t).unwrap()).collect()
        };
        assert_eq!(pick(&[1, 1], 4), [0, 1, 0, 1]);
        assert_eq!(pick(&[1, 2, 0], 6), [0, 1, 1, 0, 1, 1]);
        assert_eq!(pick(&[0, 3], 3), [1, 1, 1]);
        assert_eq!(round_robin(&[0, 0], 5), None);
        assert_eq!(round_robin(&[], 0), None);
    }

    #[test]
    fn probe_delays_double_up_to_a_cap() {
        assert_eq!(probe_delay(0), Duration::from_millis(25));
        assert_eq!(probe_delay(1), Duration::from_millis(50));
        assert_eq!(probe_delay(5), Duration::from_millis(800));
        assert_eq!(probe_delay(6), PROBE_MAX);
        assert_eq!(probe_delay(60), PROBE_MAX);
    }
}
