//! The reserve loop of one tube on one server.
//!
//! # Connections
//! A job can only be settled (deleted, buried, touched, released) on the
//! connection that reserved it, and a connection blocked in `reserve` can
//! send nothing until the reserve returns. So the loop keeps a small set of
//! connections to the server:
//! - at most one *waiter*: a connection holding no job, blocked in
//!   `reserve-with-timeout`, so that a new job starts the moment it is put,
//!   whatever else is running;
//! - *busy* connections, holding the jobs they reserved, never blocked:
//!   they carry those jobs' touches and settlements, and batches of
//!   non-blocking reserves while the tube has a backlog.
//!
//! When the waiter receives a job it becomes busy, and a connection that
//! holds nothing (or a new one) becomes the waiter. A tube therefore uses
//! one connection plus one per connection still holding running jobs, at
//! most [`MAX_CONNS`]; when all of them hold jobs the loop falls back to
//! looking at the tube every [`POLL`].
//!
//! # Concurrency
//! Reserves outstanding count against the tube's concurrency like running
//! jobs, so the limit holds exactly: a waiter takes one unit.
//!
//! # Faults
//! A connection that fails takes its reservations with it: beanstalkd puts
//! those jobs back; their tasks run on, and what they report is ignored.
//! Reconnects back off (jittered, capped at [`MAX_RECONNECT`]); the backoff
//! only resets once a connection did useful work (a reserve answered), so a
//! server that accepts connections and then fails cannot make the worker
//! spin. Log lines about an unavailable server are limited worker-wide.

use super::cmd::Cmd;
use super::execute::{execute, Ctx};
use super::log::Limiter;
use super::settle::{Note, Progress, Settle, Verdict};
use super::Shutdown;
use crate::client::{Client, ClientConfig, Connection};
use crate::hook::ChainEnd;
use crate::job::JobDescriptor;
use crate::proto::{Command, JobId, Response};
use crate::Error;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

/// Most non-blocking reserves sent in one write.
const RESERVE_BATCH: usize = 64;
/// Timeout of the waiter's blocking reserve (seconds). Only bounds how long
/// a silently dead connection goes unnoticed.
const IDLE_WAIT: u32 = 30;
/// How often the tube is looked at when every connection holds running
/// jobs and no other may be opened.
pub(super) const POLL: Duration = Duration::from_millis(50);
/// Most connections of one tube loop.
pub(super) const MAX_CONNS: usize = 4;
/// Longest pause between reconnect attempts.
const MAX_RECONNECT: Duration = Duration::from_secs(1);
/// When a running job whose TTR is not known yet is first touched (and its
/// TTR read). beanstalkd's smallest TTR is one second.
const FIRST_TOUCH: Duration = Duration::from_millis(500);
/// Pause before trying again to hold a chain token held elsewhere.
const TOKEN_PAUSE: Duration = Duration::from_millis(20);
/// A connection that held nothing for this long is closed (one is kept).
const IDLE_CLOSE: Duration = Duration::from_secs(10);

pub(super) struct Settings {
    pub(super) addr: String,
    pub(super) server: usize,
    pub(super) config: ClientConfig,
    pub(super) descriptor: &'static JobDescriptor,
    pub(super) concurrency: usize,
    pub(super) grace: Duration,
    pub(super) shutdown: Shutdown,
    pub(super) control: Client,
    pub(super) log: Limiter,
    pub(super) status: super::status::WorkerStatus,
    pub(super) hooks: crate::hook::Hooks,
}

/// What a job task reports: its verdict, for the reserving connection.
pub(super) struct Report {
    conn: u64,
    id: JobId,
    verdict: Verdict,
}

/// What a reply on the wire answers.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Reserve {
        blocking: bool,
    },
    Touch(JobId),
    /// `stats-job` of a running job, to learn its TTR and priority.
    Learn(JobId),
    /// `stats-job` before releasing a job whose priority is not known yet.
    ReleaseStats(JobId),
    Release(JobId),
    /// One reply of a settlement's deciding write.
    Settle(JobId),
    /// One reply of a settlement's last write.
    Check(JobId),
}

struct Conn {
    key: u64,
    c: Connection,
    expect: VecDeque<Expect>,
    /// Jobs reserved on this connection and not settled yet.
    jobs: usize,
    /// A blocking reserve is outstanding: nothing else may be sent.
    blocking: bool,
    last_used: Instant,
}

struct Job {
    conn: u64,
    next_touch: Instant,
    ttr: Option<u32>,
    pri: Option<u32>,
    /// The running task; `None` once it reported (or for a job only
    /// reserved to be released).
    abort: Option<AbortHandle>,
    settling: Option<Settling>,
    released: bool,
}

struct Settling {
    settle: Settle,
    replies: Vec<Response>,
    awaiting: usize,
    /// The last commands, whose replies are only checked.
    checks: VecDeque<Cmd>,
    last: bool,
    /// Commands to send once the pause is over (token held elsewhere).
    later: Option<(Instant, Vec<Cmd>)>,
}

/// Decrements the running count when a job task ends, however it ends.
struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

enum Event {
    Report(Report),
    Reply(u64, Result<Response, Error>),
    Tick,
}

pub(super) struct TubeLoop {
    s: Settings,
    ctx: Arc<Ctx>,
    conns: Vec<Conn>,
    next_key: u64,
    jobs: HashMap<JobId, Job>,
    /// Job tasks alive, of this loop's connections or of lost ones.
    running: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Report>,
    rx: mpsc::UnboundedReceiver<Report>,
    /// Reserves sent and not answered (each may bring a job).
    reserving: usize,
    /// Non-blocking reserves sent and not answered.
    probing: usize,
    /// The last non-blocking reserve found the tube empty.
    empty: bool,
    /// Non-blocking reserves per batch: grows while batches come back
    /// full, drops to one after the waiter brought a job.
    batch: usize,
    /// When to look at the tube again (fallback polling).
    poll_at: Option<Instant>,
    /// No connection attempt before this (reconnect backoff).
    retry_at: Option<Instant>,
    pause: Duration,
    grace_deadline: Option<Instant>,
    released_all: bool,
}

impl TubeLoop {
    pub(super) fn new(s: Settings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(Ctx {
            descriptor: s.descriptor,
            control: s.control.clone(),
            server: s.server,
            hooks: s.hooks.clone(),
            shutdown: s.shutdown.clone(),
        });
        TubeLoop {
            ctx,
            conns: Vec::new(),
            next_key: 0,
            jobs: HashMap::new(),
            running: Arc::new(AtomicUsize::new(0)),
            tx,
            rx,
            reserving: 0,
            probing: 0,
            empty: false,
            batch: RESERVE_BATCH,
            poll_at: None,
            retry_at: None,
            pause: Duration::from_millis(50),
            grace_deadline: None,
            released_all: false,
            s,
        }
    }

    fn tube(&self) -> &'static str {
        self.s.descriptor.tube
    }

    fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    pub(super) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let stopping = self.s.shutdown.is_triggered();
            if stopping && self.grace_deadline.is_none() {
                self.grace_deadline = Some(now + self.s.grace);
                // Nothing is reserved on a waiter: drop it, so that a job
                // put meanwhile stays in the queue.
                self.conns.retain(|c| !c.blocking);
                self.recount();
            }
            if stopping {
                let grace_over =
                    self.grace_deadline.is_some_and(|d| now >= d) || self.s.shutdown.is_forced();
                if grace_over && !self.released_all {
                    self.release_all();
                }
                let settled = self.running() == 0 || grace_over;
                let quiet = self.jobs.is_empty() && self.conns.iter().all(|c| c.expect.is_empty());
                // A server that answers too slowly cannot hold the worker
                // past the grace period by more than one I/O timeout.
                let hard = self
                    .grace_deadline
                    .is_some_and(|d| now >= d + self.s.config.io_timeout);
                if (settled && quiet) || hard {
                    if hard && !quiet {
                        tracing::warn!(
                            tube = self.tube(),
                            "grace period over and beanstalkd has not answered; leaving the rest to TTR"
                        );
                    }
                    return;
                }
            }
            while let Ok(r) = self.rx.try_recv() {
                self.on_report(r);
            }
            self.queue_due(now);
            if !stopping {
                self.plan_reserves(now).await;
            }
            self.flush_all().await;
            match self.wait(stopping).await {
                Event::Report(r) => {
                    self.on_report(r);
                    // Let the other finished tasks report too, so that their
                    // outcomes share one write.
                    if self.running() > 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Event::Reply(key, r) => self.on_reply_and_buffered(key, r).await,
                Event::Tick => {}
            }
        }
    }

    // ----- connections -------------------------------------------------

    fn conn(&mut self, key: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.key == key)
    }

    async fn open(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.retry_at.is_some_and(|t| now < t) {
            return None;
        }
        match self.connect().await {
            Ok(c) => {
                self.retry_at = None;
                let key = self.next_key;
                self.next_key += 1;
                self.conns.push(Conn {
                    key,
                    c,
                    expect: VecDeque::new(),
                    jobs: 0,
                    blocking: false,
                    last_used: now,
                });
                Some(key)
            }
            Err(e) => {
                self.log_down(&e);
                let jitter = fastrand::u64(0..=self.pause.as_millis() as u64 / 2);
                self.retry_at = Some(Instant::now() + self.pause + Duration::from_millis(jitter));
                self.pause = (self.pause * 2).min(MAX_RECONNECT);
                None
            }
        }
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let mut conn = Connection::connect(&self.s.addr, &self.s.config).await?;
        let tube = self.tube();
        conn.queue(&Command::Watch(tube));
        conn.queue(&Command::Use(tube));
        let mut replies = 2;
        if tube != "default" {
            conn.queue(&Command::Ignore("default"));
            replies += 1;
        }
        conn.flush().await?;
        for _ in 0..replies {
            match conn.recv().await? {
                Response::Watching(_) | Response::Using(_) => {}
                r => {
                    return Err(Error::Unexpected(format!(
                        "{r:?} while setting up tube {tube}"
                    )))
                }
            }
        }
        Ok(conn)
    }

    fn log_down(&self, e: &Error) {
        self.s.status.down(self.s.server, e);
        if self.s.log.allow() {
            tracing::warn!(tube = self.tube(), server = %self.s.addr, error = %e, "beanstalkd unavailable; reconnecting");
        }
    }

    /// A reserve was answered: the server works; reconnects start over
    /// from the shortest pause.
    fn useful(&mut self) {
        self.pause = Duration::from_millis(50);
        self.s.status.up(self.s.server);
        if self.s.log.reset() {
            tracing::info!(tube = self.tube(), server = %self.s.addr, "reconnected to beanstalkd");
        }
    }

    /// Drops a failed connection: its reservations are void.
    fn drop_conn(&mut self, key: u64, e: &Error) {
        self.log_down(e);
        self.conns.retain(|c| c.key != key);
        // The jobs it reserved are back in the queue (or soon will be);
        // their tasks run on, and their reports are ignored.
        self.jobs.retain(|_, j| j.conn != key);
        self.recount();
        if self.conns.is_empty() && self.retry_at.is_none() {
            // Pause before the next attempt: the server may be going down.
            let jitter = fastrand::u64(0..=self.pause.as_millis() as u64 / 2);
            self.retry_at = Some(Instant::now() + self.pause + Duration::from_millis(jitter));
            self.pause = (self.pause * 2).min(MAX_RECONNECT);
        }
    }

    fn recount(&mut self) {
        let mut reserving = 0;
        let mut probing = 0;
        for c in &self.conns {
            for e in &c.expect {
                if let Expect::Reserve { blocking } = e {
                    reserving += 1;
                    if !blocking {
                        probing += 1;
                    }
                }
            }
        }
        self.reserving = reserving;
        self.probing = probing;
    }

    fn send(&mut self, key: u64, cmd: &Command<'_>, e: Expect) {
        if let Some(c) = self.conn(key) {
            c.c.queue(cmd);
            c.expect.push_back(e);
            c.last_used = Instant::now();
        }
    }

    async fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for c in &mut self.conns {
            if c.c.queued() > 0 {
                if let Err(e) = c.c.flush().await {
                    failed.push((c.key, e));
                }
            }
        }
        for (key, e) in failed {
            self.drop_conn(key, &e);
        }
    }

    // ----- reserving ---------------------------------------------------

    async fn plan_reserves(&mut self, now: Instant) {
        if self.poll_at.is_some_and(|t| now >= t) {
            self.poll_at = None;
            self.empty = false;
        }
        let cap = self
            .s
            .concurrency
            .saturating_sub(self.running() + self.reserving);
        if cap == 0 {
            return;
        }
        if !self.empty {
            // Reserve in batches: while jobs run, wait until half a batch
            // of slots is free, so that the reserves of many finished jobs
            // travel together (and with their deletes) instead of one
            // small write per job.
            let running = self.running();
            let half = self.batch.min(self.s.concurrency).div_ceil(2);
            if self.probing > 0 || (running > 0 && cap < half) {
                return;
            }
            // Reserve on a busy connection, best one already writing.
            let key = self
                .conns
                .iter()
                .filter(|c| !c.blocking)
                .max_by_key(|c| (!c.expect.is_empty(), c.jobs))
                .map(|c| c.key);
            let key = match key {
                Some(k) => k,
                None => {
                    if self.conns.len() >= MAX_CONNS {
                        return;
                    }
                    match self.open().await {
                        Some(k) => k,
                        None => return,
                    }
                }
            };
            let n = cap.min(self.batch);
            for _ in 0..n {
                self.send(
                    key,
                    &Command::ReserveWithTimeout(0),
                    Expect::Reserve { blocking: false },
                );
            }
            self.reserving += n;
            self.probing += n;
            return;
        }
        if self.reserving > 0 {
            return;
        }
        // The tube is empty: a connection holding nothing waits in a
        // blocking reserve (and makes polling unnecessary).
        let key = self
            .conns
            .iter()
            .find(|c| c.jobs == 0 && c.expect.is_empty() && !c.blocking)
            .map(|c| c.key);
        if key.is_some() {
            self.poll_at = None;
        } else if self.poll_at.is_some() {
            return;
        }
        let key = match key {
            Some(k) => Some(k),
            None if self.conns.len() < MAX_CONNS => self.open().await,
            None => None,
        };
        match key {
            Some(k) => {
                self.send(
                    k,
                    &Command::ReserveWithTimeout(IDLE_WAIT),
                    Expect::Reserve { blocking: true },
                );
                if let Some(c) = self.conn(k) {
                    c.blocking = true;
                }
                self.reserving += 1;
            }
            None if !self.conns.is_empty() => self.poll_at = Some(now + POLL),
            None => {}
        }
    }

    // ----- waiting -----------------------------------------------------

    async fn wait(&mut self, stopping: bool) -> Event {
        let next = self.next_timer(stopping);
        let io = self.s.config.io_timeout;
        let Self { conns, rx, s, .. } = self;
        let readers: Vec<_> = conns
            .iter_mut()
            .filter(|c| !c.expect.is_empty())
            .map(|c| {
                let limit = if c.blocking {
                    Duration::from_secs(u64::from(IDLE_WAIT)) + io
                } else {
                    io
                };
                let key = c.key;
                Box::pin(async move { (key, c.c.recv_within(Some(limit)).await) })
            })
            .collect();
        let reading = !readers.is_empty();
        let replies = async move {
            if readers.is_empty() {
                std::future::pending::<(u64, Result<Response, Error>)>().await
            } else {
                futures_util::future::select_all(readers).await.0
            }
        };
        tokio::select! {
            (key, r) = replies, if reading => Event::Reply(key, r),
            r = rx.recv() => match r {
                Some(r) => Event::Report(r),
                None => Event::Tick,
            },
            _ = tokio::time::sleep_until(next) => Event::Tick,
            _ = s.shutdown.wait(), if !stopping => Event::Tick,
            _ = s.shutdown.wait_forced(), if stopping && !s.shutdown.is_forced() => Event::Tick,
        }
    }

    fn next_timer(&self, stopping: bool) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut t = far;
        for j in self.jobs.values() {
            if j.settling.as_ref().is_none_or(|s| !s.last) && !j.released {
                t = t.min(j.next_touch);
            }
            if let Some((at, _)) = j.settling.as_ref().and_then(|s| s.later.as_ref()) {
                t = t.min(*at);
            }
        }
        if let Some(p) = self.poll_at {
            t = t.min(p);
        }
        if let Some(r) = self.retry_at {
            if !stopping {
                t = t.min(r);
            }
        }
        if let Some(g) = self.grace_deadline {
            if Instant::now() < g {
                t = t.min(g);
            } else {
                t = t.min(g + self.s.config.io_timeout);
            }
        }
        if self.conns.len() > 1 {
            for c in &self.conns {
                if c.jobs == 0 && c.expect.is_empty() && !c.blocking {
                    t = t.min(c.last_used + IDLE_CLOSE);
                }
            }
        }
        if stopping {
            // Look at the running count now and then: tasks of lost
            // connections end without a report.
            t = t.min(Instant::now() + Duration::from_millis(100));
        }
        t
    }

    /// Touches, paused settlements and idle connections that are due.
    fn queue_due(&mut self, now: Instant) {
        let mut touch = Vec::new();
        let mut later = Vec::new();
        for (id, j) in self.jobs.iter_mut() {
            let last = j.settling.as_ref().is_some_and(|s| s.last);
            if !last && !j.released && j.next_touch <= now {
                let ttr = j.ttr;
                j.next_touch = now + ttr.map_or(FIRST_TOUCH, half);
                touch.push((*id, j.conn, ttr.is_none()));
            }
            if let Some(s) = j.settling.as_mut() {
                if s.later.as_ref().is_some_and(|(at, _)| *at <= now) {
                    let (_, cmds) = s.later.take().expect("checked");
                    later.push((*id, cmds));
                }
            }
        }
        for (id, key, learn) in touch {
            self.send(key, &Command::Touch(id), Expect::Touch(id));
            if learn {
                self.send(key, &Command::StatsJob(id), Expect::Learn(id));
            }
        }
        for (id, cmds) in later {
            self.send_settle(id, cmds);
        }
        if self.conns.len() > 1 {
            let idle: Vec<u64> = self
                .conns
                .iter()
                .filter(|c| {
                    c.jobs == 0
                        && c.expect.is_empty()
                        && !c.blocking
                        && now.duration_since(c.last_used) >= IDLE_CLOSE
                })
                .map(|c| c.key)
                .collect();
            for key in idle {
                if self.conns.len() > 1 {
                    self.conns.retain(|c| c.key != key);
                }
            }
        }
    }

    fn release_all(&mut self) {
        self.released_all = true;
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.abort.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(j) = self.jobs.get_mut(&id) else {
                continue;
            };
            if let Some(a) = j.abort.take() {
                a.abort();
            }
            tracing::warn!(
                tube = self.s.descriptor.tube,
                id,
                "shutting down; releasing unfinished job"
            );
            self.release(id);
        }
    }

    /// Hands job `id` back to the queue with its own priority.
    fn release(&mut self, id: JobId) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        j.released = true;
        let key = j.conn;
        match j.pri {
            Some(pri) => self.send(
                key,
                &Command::Release { id, pri, delay: 0 },
                Expect::Release(id),
            ),
            None => self.send(key, &Command::StatsJob(id), Expect::ReleaseStats(id)),
        }
    }

    // ----- jobs --------------------------------------------------------

    fn start(&mut self, key: u64, id: JobId, body: Vec<u8>) {
        let ctx = self.ctx.clone();
        let tx = self.tx.clone();
        self.running.fetch_add(1, Ordering::AcqRel);
        let guard = RunningGuard(self.running.clone());
        let span = tracing::info_span!("job", tube = ctx.descriptor.tube, id);
        // Feature `opentelemetry`: this attempt's span continues the trace
        // the envelope carries (before its first enter, when it starts).
        #[cfg(feature = "opentelemetry")]
        crate::otel::continue_trace(&span, ctx.descriptor, &body);
        let handle = tokio::spawn(
            async move {
                let _guard = guard;
                let verdict = execute(&ctx, id, &body).await;
                let _ = tx.send(Report {
                    conn: key,
                    id,
                    verdict,
                });
            }
            .instrument(span),
        );
        self.jobs.insert(
            id,
            Job {
                conn: key,
                next_touch: Instant::now() + FIRST_TOUCH,
                ttr: None,
                pri: None,
                abort: Some(handle.abort_handle()),
                settling: None,
                released: false,
            },
        );
    }

    fn on_report(&mut self, r: Report) {
        let Some(j) = self.jobs.get_mut(&r.id) else {
            tracing::debug!(
                tube = self.tube(),
                id = r.id,
                "outcome of a reservation that is gone; ignored"
            );
            return;
        };
        if j.conn != r.conn || j.released || j.settling.is_some() {
            return;
        }
        j.abort = None;
        let (settle, progress) = Settle::begin(r.id, r.verdict);
        j.settling = Some(Settling {
            settle,
            replies: Vec::new(),
            awaiting: 0,
            checks: VecDeque::new(),
            last: false,
            later: None,
        });
        // A slot is free: look for work in the same write as the outcome.
        self.empty = false;
        self.progress(r.id, progress);
    }

    fn progress(&mut self, id: JobId, p: Progress) {
        match p {
            Progress::Send(cmds) => self.send_settle(id, cmds),
            Progress::Wait(cmds) => {
                if let Some(s) = self.jobs.get_mut(&id).and_then(|j| j.settling.as_mut()) {
                    s.later = Some((Instant::now() + TOKEN_PAUSE, cmds));
                }
            }
            Progress::Finish(cmds, note) => {
                if let Some(n) = note {
                    self.log_note(id, &n);
                }
                if cmds.is_empty() {
                    self.settled(id);
                    return;
                }
                let Some(j) = self.jobs.get_mut(&id) else {
                    return;
                };
                let key = j.conn;
                let Some(s) = j.settling.as_mut() else {
                    return;
                };
                s.last = true;
                s.checks = cmds.iter().cloned().collect();
                for c in &cmds {
                    self.send(key, &c.command(), Expect::Check(id));
                }
            }
        }
    }

    fn send_settle(&mut self, id: JobId, cmds: Vec<Cmd>) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        let key = j.conn;
        let Some(s) = j.settling.as_mut() else {
            return;
        };
        s.replies.clear();
        s.awaiting = cmds.len();
        for c in &cmds {
            self.send(key, &c.command(), Expect::Settle(id));
        }
    }

    fn settled(&mut self, id: JobId) {
        if let Some(j) = self.jobs.remove(&id) {
            if let Some(c) = self.conn(j.conn) {
                c.jobs = c.jobs.saturating_sub(1);
            }
        }
    }

    fn log_note(&self, id: JobId, n: &Note) {
        let tube = self.tube();
        match n {
            Note::Refused { what, reply, chain } => {
                if *chain {
                    tracing::error!(tube, id, reply = %reply, "beanstalkd refused {what} of this repeating job; the job is kept, buried, and the chain resumes when it is kicked");
                } else {
                    tracing::error!(tube, id, reply = %reply, "beanstalkd refused {what} of this job; the job is kept, buried");
                }
            }
            Note::StoredBuried { next } => {
                tracing::error!(tube, id, next, "beanstalkd is out of memory: the job's replacement was stored buried; kick it to run it");
            }
            Note::Superseded => tracing::info!(
                tube,
                id,
                "the chain's token names a newer job (a leftover of a crash); this one ends without a successor"
            ),
            Note::Cancelled => tracing::info!(tube, id, "repeating job cancelled; the chain ends here"),
            Note::Ended => tracing::debug!(tube, id, "chain ended"),
        }
        // A unique one-shot job also ends through its token: only a
        // repeating or cron job's end is a chain's.
        let o = &self.s.descriptor.options;
        let reason = match n {
            Note::Cancelled => Some(ChainEnd::Cancelled),
            Note::Ended => Some(ChainEnd::MaxRuns),
            _ => None,
        };
        if let Some(reason) = reason.filter(|_| o.repeat.is_some() || o.cron.is_some()) {
            self.s
                .hooks
                .event(&crate::hook::Event::ChainEnded { tube, id, reason });
        }
    }

    // ----- replies -----------------------------------------------------

    async fn on_reply_and_buffered(&mut self, key: u64, first: Result<Response, Error>) {
        let mut r = first;
        loop {
            let resp = match r {
                Ok(resp) => resp,
                Err(e) => {
                    self.drop_conn(key, &e);
                    return;
                }
            };
            let Some(c) = self.conn(key) else {
                return;
            };
            let Some(e) = c.expect.pop_front() else {
                return;
            };
            if let Err(e) = self.on_reply(key, e, resp) {
                self.drop_conn(key, &e);
                return;
            }
            let Some(c) = self.conn(key) else {
                return;
            };
            if c.expect.is_empty() || !c.c.has_buffered_reply() {
                return;
            }
            r = c.c.recv().await;
        }
    }

    fn on_reply(&mut self, key: u64, e: Expect, r: Response) -> Result<(), Error> {
        let tube = self.tube();
        match (e, r) {
            (Expect::Reserve { blocking }, r) => {
                self.reserving = self.reserving.saturating_sub(1);
                if !blocking {
                    self.probing = self.probing.saturating_sub(1);
                }
                if let Some(c) = self.conn(key) {
                    if blocking {
                        c.blocking = false;
                    }
                }
                match r {
                    Response::Reserved { id, body } => {
                        self.useful();
                        if let Some(c) = self.conn(key) {
                            c.jobs += 1;
                        }
                        if blocking {
                            // One job arrived: probe gently for more.
                            self.batch = 1;
                            self.empty = false;
                        } else if self.probing == 0 {
                            self.batch = (self.batch * 2).min(RESERVE_BATCH);
                        }
                        if self.s.shutdown.is_triggered() {
                            self.jobs.insert(
                                id,
                                Job {
                                    conn: key,
                                    next_touch: Instant::now() + FIRST_TOUCH,
                                    ttr: None,
                                    pri: None,
                                    abort: None,
                                    settling: None,
                                    released: false,
                                },
                            );
                            self.release(id);
                        } else {
                            self.start(key, id, body);
                        }
                    }
                    Response::TimedOut => {
                        self.useful();
                        if !blocking {
                            self.empty = true;
                        }
                    }
                    Response::DeadlineSoon => {
                        // A job of this connection is about to time out.
                        let now = Instant::now();
                        for j in self.jobs.values_mut() {
                            if j.conn == key {
                                j.next_touch = now;
                            }
                        }
                    }
                    r => {
                        return Err(Error::Unexpected(format!(
                            "{r:?} in reply to reserve on tube {tube}"
                        )))
                    }
                }
            }
            (Expect::Touch(_), Response::Touched) => {}
            (Expect::Touch(id), Response::NotFound) => {
                tracing::warn!(
                    tube,
                    id,
                    "job no longer reserved by this worker (TTR passed?); it may run again"
                );
            }
            (Expect::Learn(id), r) => {
                if let (Some(s), Some(j)) = (super::chain::job_stats(&r), self.jobs.get_mut(&id)) {
                    j.ttr = Some(s.ttr.max(1));
                    j.pri = Some(s.pri);
                    j.next_touch = Instant::now() + half(s.ttr.max(1));
                }
            }
            (Expect::ReleaseStats(id), r) => {
                let pri = super::chain::job_stats(&r)
                    .map(|s| s.pri)
                    .unwrap_or(self.s.descriptor.options.priority);
                if let Some(j) = self.jobs.get_mut(&id) {
                    j.pri = Some(pri);
                    let key = j.conn;
                    self.send(
                        key,
                        &Command::Release { id, pri, delay: 0 },
                        Expect::Release(id),
                    );
                }
            }
            (Expect::Release(id), r) => {
                match r {
                    Response::Released => {}
                    Response::BuriedId(_) | Response::Buried => tracing::error!(
                        tube,
                        id,
                        "server out of memory: job buried instead of released"
                    ),
                    r => tracing::warn!(tube, id, reply = ?r, "release refused"),
                }
                self.settled(id);
            }
            (Expect::Settle(id), r) => {
                let decided = match self.jobs.get_mut(&id).and_then(|j| j.settling.as_mut()) {
                    Some(s) => {
                        s.replies.push(r);
                        s.awaiting = s.awaiting.saturating_sub(1);
                        if s.awaiting == 0 {
                            let replies = std::mem::take(&mut s.replies);
                            Some(s.settle.decide(&replies))
                        } else {
                            None
                        }
                    }
                    None => None,
                };
                if let Some(p) = decided {
                    self.progress(id, p);
                }
            }
            (Expect::Check(id), r) => {
                let done = match self.jobs.get_mut(&id).and_then(|j| j.settling.as_mut()) {
                    Some(s) => {
                        if let Some(cmd) = s.checks.pop_front() {
                            check(tube, id, &cmd, &r);
                        }
                        s.checks.is_empty()
                    }
                    None => false,
                };
                if done {
                    self.settled(id);
                }
            }
            (e, r) => {
                tracing::error!(tube, expected = ?e, reply = ?r, "unexpected reply from beanstalkd");
            }
        }
        Ok(())
    }
}

/// Logs a last command's reply that is not its success.
fn check(tube: &str, id: JobId, cmd: &Cmd, r: &Response) {
    if cmd.succeeded(r) {
        return;
    }
    match (cmd, r) {
        (
            Cmd::Delete(d) | Cmd::Bury { id: d, .. } | Cmd::Release { id: d, .. },
            Response::NotFound,
        ) if *d == id => {
            tracing::warn!(
                tube,
                id,
                "job no longer reserved by this worker (TTR passed?); it may run again"
            );
        }
        (Cmd::Bury { .. } | Cmd::Release { .. }, Response::BuriedId(_)) => {}
        (Cmd::Release { .. }, Response::Buried) => {
            tracing::error!(
                tube,
                id,
                "server out of memory: job buried instead of released"
            );
        }
        (cmd, r) => {
            tracing::warn!(tube, id, command = cmd.name(), reply = ?r, "unexpected reply while settling a job");
        }
    }
}

fn half(ttr: u32) -> Duration {
    Duration::from_millis(u64::from(ttr.max(1)) * 500)
}
