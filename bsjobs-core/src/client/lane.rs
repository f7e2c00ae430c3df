//! A lane: one connection to one server, shared by every caller of a
//! [`Client`](super::Client).
//!
//! There are two ways through a lane, and a caller takes whichever is free:
//! - **direct**: a caller that finds the lane idle (no request queued in
//!   the last few milliseconds, the connection not in use) takes the
//!   connection, writes its request and
//!   reads the reply on its own task. No task hop: one task enqueuing in a
//!   loop is as fast as a plain sequential client.
//! - **pipelined**: a caller that finds the lane busy hands its request to
//!   the lane's task, which writes all queued requests back to back and
//!   hands each caller its replies in order. Many tasks enqueuing at once
//!   share round trips this way, with no batching by hand.
//!
//! Failure cases, and what a caller sees:
//! - the server closed the connection while it was idle (a restart): found
//!   before anything is written ([`Connection::peer_closed`]), and the
//!   connection is replaced; the request goes out on the new one and
//!   succeeds if the server is up;
//! - connecting fails: nothing was sent, [`Error::Connect`];
//! - the connection fails after the request was written: the server may
//!   have executed it, [`Error::OutcomeUnknown`]; the lane never writes it
//!   again (the caller decides; [`Client::request`](super::Client::request)
//!   repeats read-only commands once);
//! - a caller abandons a direct exchange half way (its future is dropped):
//!   the connection is marked and replaced before the next request, since a
//!   reply nobody reads is still on its way.

use super::{ClientConfig, Connection};
use crate::proto::{Command, Response};
use crate::Error;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

type Reply = Result<Vec<Response>, Error>;

/// What a caller hands to the lane task: encoded commands and where the
/// replies go.
struct Request {
    /// Tube the commands need `use`d first, if any.
    tube: Option<String>,
    bytes: Vec<u8>,
    replies: usize,
    tx: oneshot::Sender<Reply>,
}

/// Caller side of a lane. The task is started on first use, in the caller's
/// runtime, and started again (with a fresh connection) if that runtime has
/// gone away.
pub(super) struct Lane {
    addr: String,
    config: ClientConfig,
    shared: Mutex<Option<Arc<Shared>>>,
}

/// What the callers and the task of one lane share.
struct Shared {
    /// Requests for the task (the pipelined way).
    tx: mpsc::Sender<Request>,
    /// When the lane was made: the origin of `last_queued`.
    born: Instant,
    /// Microseconds after `born` at which a caller last took the pipelined
    /// way (0: never). While callers queue, the direct way is not taken: a direct
    /// exchange holds the connection for a whole round trip, one request
    /// alone on the wire, while the queue waits.
    last_queued: AtomicU64,
    /// The connection; held by whoever is exchanging on it.
    slot: tokio::sync::Mutex<Slot>,
}

/// The connection of a lane and what is known about its state.
struct Slot {
    conn: Option<Connection>,
    /// The tube the connection currently `use`s.
    using: Option<String>,
    /// A direct exchange was abandoned half way: replies may be in flight.
    dirty: bool,
}

/// The direct way is taken only after this long without a queued request.
const QUIET: Duration = Duration::from_millis(5);
/// Requests queued per lane before callers wait for room.
const QUEUE: usize = 4096;
/// Replies outstanding on the wire before the lane stops writing more.
const MAX_IN_FLIGHT: usize = 8192;
/// Bytes gathered into one write at most.
const MAX_WRITE: usize = 256 * 1024;

impl Lane {
    pub(super) fn new(addr: String, config: ClientConfig) -> Self {
        Lane {
            addr,
            config,
            shared: Mutex::new(None),
        }
    }

    fn shared(&self) -> Arc<Shared> {
        let mut guard = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some(s) if !s.tx.is_closed() => s.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                let shared = Arc::new(Shared {
                    tx,
                    born: Instant::now(),
                    last_queued: AtomicU64::new(0),
                    slot: tokio::sync::Mutex::new(Slot {
                        conn: None,
                        using: None,
                        dirty: false,
                    }),
                });
                let task = LaneTask {
                    addr: self.addr.clone(),
                    config: self.config.clone(),
                    rx,
                    shared: shared.clone(),
                    pending: VecDeque::new(),
                };
                tokio::spawn(task.run());
                *guard = Some(shared.clone());
                shared
            }
        }
    }

    /// Sends `bytes` (holding `replies` commands, after a `use tube` when
    /// `tube` is given) and returns the replies, within the connect timeout
    /// plus the I/O timeout.
    pub(super) async fn call(
        &self,
        tube: Option<&str>,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Response>, Error> {
        let shared = self.shared();
        // Direct: nobody queued lately, and nobody holds the connection.
        let now = micros(shared.born.elapsed());
        let last = shared.last_queued.load(Ordering::Relaxed);
        let quiet = last == 0 || now.saturating_sub(last) >= micros(QUIET);
        if quiet && shared.tx.capacity() == QUEUE {
            if let Ok(mut slot) = shared.slot.try_lock() {
                return slot
                    .exchange(&self.addr, &self.config, tube, &bytes, replies)
                    .await;
            }
        }
        self.pipelined(&shared, tube, bytes, replies).await
    }

    /// The pipelined way: through the lane's task.
    async fn pipelined(
        &self,
        shared: &Shared,
        tube: Option<&str>,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Response>, Error> {
        let now = micros(shared.born.elapsed()).max(1);
        shared.last_queued.store(now, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let req = Request {
            tube: tube.map(str::to_owned),
            bytes,
            replies,
            tx,
        };
        let deadline = self.config.connect_timeout + self.config.io_timeout;
        let fut = async {
            shared.tx.send(req).await.map_err(|_| Error::Closed)?;
            rx.await.map_err(|_| Error::Closed)?
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::OutcomeUnknown {
                addr: self.addr.clone(),
                reason: format!("no reply within {deadline:?}"),
            }),
        }
    }
}

impl Slot {
    /// Makes sure there is a connection that can take a new request:
    /// replaces one that the server closed while it was idle or that an
    /// abandoned exchange left out of step, and connects when there is none.
    /// Nothing has been written when this fails.
    async fn ready(&mut self, addr: &str, config: &ClientConfig) -> Result<(), Error> {
        if self.dirty || self.conn.as_ref().is_some_and(Connection::peer_closed) {
            if !self.dirty {
                tracing::debug!(addr, "beanstalkd closed an idle connection; reconnecting");
            }
            self.conn = None;
            self.dirty = false;
        }
        if self.conn.is_none() {
            self.conn = Some(Connection::connect(addr, config).await?);
            self.using = None;
        }
        Ok(())
    }

    /// The direct way: one request, written and answered on the caller's task.
    async fn exchange(
        &mut self,
        addr: &str,
        config: &ClientConfig,
        tube: Option<&str>,
        bytes: &[u8],
        replies: usize,
    ) -> Result<Vec<Response>, Error> {
        self.ready(addr, config).await?;
        let switch = tube.filter(|t| self.using.as_deref() != Some(*t));
        let conn = self.conn.as_mut().expect("connected");
        if let Some(t) = switch {
            conn.queue(&Command::Use(t));
        }
        conn.queue_raw(bytes);
        // From here on the request may reach the server. If this future is
        // dropped before the replies are read, `dirty` stays set and the
        // next user replaces the connection.
        self.dirty = true;
        let res = async {
            conn.flush().await?;
            if switch.is_some() {
                conn.recv().await?;
            }
            let mut got = Vec::with_capacity(replies);
            for _ in 0..replies {
                got.push(conn.recv().await?);
            }
            Ok::<_, Error>(got)
        }
        .await;
        self.dirty = false;
        match res {
            Ok(got) => {
                if let Some(t) = switch {
                    self.using = Some(t.to_owned());
                }
                Ok(got)
            }
            Err(e) => {
                self.conn = None;
                self.using = None;
                Err(unknown(addr, &e))
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The error of a request whose connection failed after it was written.
fn unknown(addr: &str, e: &Error) -> Error {
    Error::OutcomeUnknown {
        addr: addr.to_owned(),
        reason: e.to_string(),
    }
}

/// Who waits for the next reply on the wire.
enum Waiter {
    /// The reply to a `use` the lane inserted itself.
    Use,
    /// A caller, collecting `left` more replies into `got`.
    Caller {
        got: Vec<Response>,
        left: usize,
        tx: oneshot::Sender<Reply>,
    },
}

struct LaneTask {
    addr: String,
    config: ClientConfig,
    rx: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    pending: VecDeque<Waiter>,
}

impl LaneTask {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let shared = self.shared.clone();
            let mut slot = shared.slot.lock().await;
            if let Err(e) = slot.ready(&self.addr, &self.config).await {
                let _ = first.tx.send(Err(e));
                // Fail what is queued now too: each caller would otherwise
                // wait for its own connect attempt.
                while let Ok(r) = self.rx.try_recv() {
                    let _ = r.tx.send(Err(Error::Connect {
                        addr: self.addr.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "connection attempt failed just before",
                        ),
                    }));
                }
                continue;
            }
            if let Err(e) = self.serve(&mut slot, first).await {
                self.fail_all(&e);
                slot.conn = None;
                slot.using = None;
            }
        }
    }

    /// Writes `first` and everything queued behind it, then reads replies
    /// while writing newer requests, until nothing is outstanding.
    async fn serve(&mut self, slot: &mut Slot, first: Request) -> Result<(), Error> {
        let mut next = Some(first);
        loop {
            // Gather a batch: the request in hand plus whatever is queued.
            while let Some(req) = next.take() {
                self.encode(slot, req);
                let conn = slot.conn.as_ref().expect("connected");
                if conn.queued() >= MAX_WRITE || self.pending.len() >= MAX_IN_FLIGHT {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            let conn = slot.conn.as_mut().expect("connected");
            conn.flush().await?;
            // Read replies; new requests arriving meanwhile go out in the
            // next batch as soon as the replies of this one are in.
            loop {
                if self.pending.is_empty() {
                    return Ok(());
                }
                let resp = conn.recv().await?;
                self.deliver(resp);
                if !conn.has_buffered_reply() {
                    if let Ok(req) = self.rx.try_recv() {
                        next = Some(req);
                        break;
                    }
                }
            }
        }
    }

    fn encode(&mut self, slot: &mut Slot, req: Request) {
        if req.tx.is_closed() {
            // Its caller gave up (timed out, or was dropped) before it was
            // written: sending it now would only act behind the caller's back.
            return;
        }
        let conn = slot.conn.as_mut().expect("connected");
        if let Some(tube) = req.tube {
            if slot.using.as_deref() != Some(tube.as_str()) {
                conn.queue(&Command::Use(&tube));
                self.pending.push_back(Waiter::Use);
                slot.using = Some(tube);
            }
        }
        conn.queue_raw(&req.bytes);
        self.pending.push_back(Waiter::Caller {
            got: Vec::with_capacity(req.replies),
            left: req.replies,
            tx: req.tx,
        });
    }

    fn deliver(&mut self, resp: Response) {
        match self.pending.front_mut() {
            Some(Waiter::Use) => {
                self.pending.pop_front();
            }
            Some(Waiter::Caller { got, left, .. }) => {
                got.push(resp);
                *left -= 1;
                if *left == 0 {
                    if let Some(Waiter::Caller { got, tx, .. }) = self.pending.pop_front() {
                        let _ = tx.send(Ok(got));
                    }
                }
            }
            None => {}
        }
    }

    fn fail_all(&mut self, e: &Error) {
        for w in self.pending.drain(..) {
            if let Waiter::Caller { tx, .. } = w {
                let _ = tx.send(Err(unknown(&self.addr, e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Beanstalkd;

    fn put(body: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        Command::Put {
            pri: 0,
            delay: 0,
            ttr: 60,
            body,
        }
        .encode(&mut b);
        b
    }

    async fn ready_count(lane: &Lane) -> Vec<u8> {
        let mut b = Vec::new();
        Command::StatsTube("t").encode(&mut b);
        match lane.call(None, b, 1).await.unwrap().pop() {
            Some(Response::Ok(body)) => body,
            r => panic!("{r:?}"),
        }
    }

    /// Both ways through a lane notice a connection that the server closed
    /// while it was idle, and replace it before writing.
    #[tokio::test]
    async fn both_ways_replace_a_connection_closed_while_idle() {
        let mut srv = Beanstalkd::start();
        let lane = Lane::new(srv.addr(), ClientConfig::default());
        // Pipelined, then a restart, then pipelined again.
        let shared = lane.shared();
        lane.pipelined(&shared, Some("t"), put(b"a"), 1)
            .await
            .unwrap();
        srv.restart();
        let r = lane.pipelined(&shared, Some("t"), put(b"b"), 1).await;
        assert!(
            matches!(r.as_deref(), Ok([Response::Inserted(_)])),
            "pipelined put after a restart: {r:?}"
        );
        // Direct, after another restart.
        srv.restart();
        let r = lane.call(Some("t"), put(b"c"), 1).await;
        assert!(
            matches!(r.as_deref(), Ok([Response::Inserted(_)])),
            "direct put after a restart: {r:?}"
        );
        let stats = String::from_utf8(ready_count(&lane).await).unwrap();
        assert!(stats.contains("current-jobs-ready: 1\n"), "{stats}");
    }

    /// A queued request whose caller gave up before the lane could write it
    /// is never written: no put lands behind the caller's back.
    #[tokio::test]
    async fn a_request_abandoned_while_queued_is_not_written() {
        let srv = Beanstalkd::start();
        let config = ClientConfig {
            connect_timeout: std::time::Duration::from_millis(100),
            io_timeout: std::time::Duration::from_millis(100),
            ..ClientConfig::default()
        };
        let lane = Lane::new(srv.addr(), config);
        let shared = lane.shared();
        // Someone holds the connection (as a slow direct exchange would).
        let held = shared.slot.try_lock().unwrap();
        let r = lane.pipelined(&shared, Some("t"), put(b"late"), 1).await;
        assert!(matches!(r, Err(Error::OutcomeUnknown { .. })), "{r:?}");
        drop(held);
        // The lane now serves its queue: the abandoned put must be skipped.
        let r = lane.call(None, stats_cmd(), 1).await.unwrap();
        let Some(Response::Ok(body)) = r.into_iter().next() else {
            panic!("stats")
        };
        let stats = String::from_utf8(body).unwrap();
        assert!(stats.contains("\ncmd-put: 0\n"), "{stats}");
    }

    fn stats_cmd() -> Vec<u8> {
        let mut b = Vec::new();
        Command::Stats.encode(&mut b);
        b
    }

    /// A direct exchange abandoned after writing leaves its reply in flight:
    /// the next request must not read it as its own.
    #[tokio::test]
    async fn an_abandoned_direct_exchange_does_not_shift_replies() {
        let srv = Beanstalkd::start();
        let lane = Lane::new(srv.addr(), ClientConfig::default());
        // A reserve that blocks for 1 s, abandoned at once.
        let mut raw = Vec::new();
        Command::ReserveWithTimeout(1).encode(&mut raw);
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            lane.call(None, raw, 1),
        )
        .await;
        assert!(abandoned.is_err(), "the reserve was still waiting");
        let r = lane.call(Some("t"), put(b"x"), 1).await;
        assert!(
            matches!(r.as_deref(), Ok([Response::Inserted(_)])),
            "the put got its own reply: {r:?}"
        );
    }
}
