//! The reserve loop of one tube on one server.

use super::execute::{execute, Ctx, Outcome};
use super::link::{Ask, Link, Msg};
use super::Shutdown;
use crate::client::{Client, ClientConfig, Connection};
use crate::job::JobDescriptor;
use crate::proto::{Command, JobId, Response};
use crate::Error;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

/// Most `reserve-with-timeout 0` sent in one write.
const RESERVE_BATCH: usize = 64;
/// Blocking reserve timeout while nothing is in flight (seconds). Only
/// bounds how long a silently dead connection goes unnoticed.
const IDLE_WAIT: u32 = 30;
/// How often a tube is looked at for new jobs while jobs are in flight and
/// the tube was empty at the last look.
const BUSY_POLL: Duration = Duration::from_millis(50);
/// Longest pause between reconnect attempts.
const MAX_RECONNECT: Duration = Duration::from_secs(1);

pub(super) struct Settings {
    pub(super) addr: String,
    pub(super) server: usize,
    pub(super) config: ClientConfig,
    pub(super) descriptor: &'static JobDescriptor,
    pub(super) concurrency: usize,
    pub(super) grace: Duration,
    pub(super) shutdown: Shutdown,
    pub(super) control: Client,
}

/// A job task reports its outcome with this.
pub(super) struct Done {
    pub(super) epoch: u64,
    pub(super) id: JobId,
    pub(super) outcome: Outcome,
}

/// An [`Ask`] whose replies are still coming in.
struct Pending {
    remaining: usize,
    replies: Vec<Response>,
    reply: oneshot::Sender<Vec<Response>>,
}

struct InFlight {
    next_touch: Instant,
    abort: AbortHandle,
}

/// What a reply on the wire answers.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Reserve,
    Delete(JobId),
    PutNext(JobId),
    Release(JobId),
    Bury(JobId),
    Touch(JobId),
    /// A command of the oldest pending [`Ask`].
    Ask,
}

pub(super) struct TubeLoop {
    s: Settings,
    ctx: Arc<Ctx>,
    conn: Option<Connection>,
    /// Bumped on every new connection; outcomes of older reservations are void.
    epoch: u64,
    inflight: HashMap<JobId, InFlight>,
    /// Job tasks alive, of this connection or older ones.
    running: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    expect: VecDeque<Expect>,
    /// Asks sent and not fully answered, oldest first.
    asks: VecDeque<Pending>,
    /// The last non-blocking reserve found the tube empty.
    empty: bool,
    touch_every: Duration,
    grace_deadline: Option<Instant>,
    last_log: Option<std::time::Instant>,
}

/// Decrements the running count when a job task ends, however it ends.
struct RunningGuard(Arc<AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TubeLoop {
    pub(super) fn new(s: Settings) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let ttr = s.descriptor.options.ttr.max(1);
        let ctx = Arc::new(Ctx {
            descriptor: s.descriptor,
            control: s.control.clone(),
            server: s.server,
        });
        TubeLoop {
            ctx,
            conn: None,
            epoch: 0,
            inflight: HashMap::new(),
            running: Arc::new(AtomicUsize::new(0)),
            tx,
            rx,
            expect: VecDeque::new(),
            asks: VecDeque::new(),
            empty: false,
            // Touch halfway through TTR; beanstalkd's own DEADLINE_SOON
            // covers the last second while we wait in a reserve.
            touch_every: Duration::from_millis(u64::from(ttr) * 500),
            grace_deadline: None,
            last_log: None,
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
        let mut pause = Duration::from_millis(50);
        loop {
            if self.s.shutdown.is_triggered() && self.grace_deadline.is_none() {
                self.grace_deadline = Some(Instant::now() + self.s.grace);
            }
            if self.conn.is_none() {
                if self.s.shutdown.is_triggered() {
                    // Reservations died with the connection; nothing to hand
                    // back. Let running tasks end within the grace period.
                    self.wait_running_out().await;
                    return;
                }
                match self.connect().await {
                    Ok(()) => pause = Duration::from_millis(50),
                    Err(e) => {
                        self.log_down(&e);
                        let jitter = fastrand::u64(0..=pause.as_millis() as u64 / 2);
                        tokio::select! {
                            _ = tokio::time::sleep(pause + Duration::from_millis(jitter)) => {}
                            _ = self.s.shutdown.wait() => {}
                        }
                        pause = (pause * 2).min(MAX_RECONNECT);
                        continue;
                    }
                }
            }
            match self.step().await {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    self.log_down(&e);
                    self.drop_conn();
                }
            }
        }
    }

    fn log_down(&mut self, e: &Error) {
        let now = std::time::Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.last_log = Some(now);
            tracing::warn!(tube = self.tube(), server = %self.s.addr, error = %e, "beanstalkd unavailable; reconnecting");
        }
    }

    async fn connect(&mut self) -> Result<(), Error> {
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
        if self.last_log.take().is_some() {
            tracing::info!(tube, server = %self.s.addr, "reconnected to beanstalkd");
        }
        self.conn = Some(conn);
        self.epoch += 1;
        self.empty = false;
        Ok(())
    }

    fn drop_conn(&mut self) {
        self.conn = None;
        // Jobs reserved on the lost connection are back in the queue (or
        // soon will be); their tasks run on, but their outcomes are void.
        self.inflight.clear();
        self.expect.clear();
        // Their tasks see the ask fail and leave the job to the server.
        self.asks.clear();
    }

    async fn wait_running_out(&mut self) {
        let deadline = self.grace_deadline.unwrap_or_else(Instant::now);
        while self.running() > 0 {
            tokio::select! {
                _ = self.rx.recv() => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// One round: outcomes and touches out, reserves out, replies in.
    /// Returns `Ok(false)` when the loop is finished.
    async fn step(&mut self) -> Result<bool, Error> {
        while let Ok(msg) = self.rx.try_recv() {
            self.on_msg(msg);
        }
        let now = Instant::now();
        self.queue_touches(now);
        let stopping = self.s.shutdown.is_triggered();
        if stopping {
            let grace_over = self.grace_deadline.is_some_and(|d| now >= d);
            if grace_over {
                self.release_all();
            }
            // After the grace period, tasks of lost connections are not
            // waited for: their jobs are back in the queue already.
            let settled = self.running() == 0 || grace_over;
            if settled && self.inflight.is_empty() && self.expect.is_empty() {
                return Ok(false);
            }
        }
        let capacity = self.s.concurrency.saturating_sub(self.running());
        if !stopping && capacity > 0 && !self.empty {
            for _ in 0..capacity.min(RESERVE_BATCH) {
                self.send(Command::ReserveWithTimeout(0), Expect::Reserve);
            }
        }
        if self.expect.is_empty() {
            self.wait(stopping, capacity).await?;
            return Ok(true);
        }
        self.exchange().await?;
        Ok(true)
    }

    fn send(&mut self, cmd: Command<'_>, expect: Expect) {
        self.conn.as_mut().expect("connected").queue(&cmd);
        self.expect.push_back(expect);
    }

    /// Flushes what is queued and handles every reply to it.
    async fn exchange(&mut self) -> Result<(), Error> {
        let conn = self.conn.as_mut().expect("connected");
        conn.flush().await?;
        while let Some(e) = self.expect.front().copied() {
            let r = self.conn.as_mut().expect("connected").recv().await?;
            self.expect.pop_front();
            self.on_reply(e, r);
        }
        Ok(())
    }

    /// Nothing to send: block in a reserve while nothing is in flight;
    /// otherwise wait for an outcome, a touch, or the next look at the tube.
    ///
    /// A blocking reserve cannot be interrupted, and the outcomes and touches
    /// of in-flight jobs must go out on this very connection; so while jobs
    /// run, the tube is looked at every [`BUSY_POLL`] instead.
    async fn wait(&mut self, stopping: bool, capacity: usize) -> Result<(), Error> {
        if !stopping && capacity > 0 && self.inflight.is_empty() {
            self.send(Command::ReserveWithTimeout(IDLE_WAIT), Expect::Reserve);
            let conn = self.conn.as_mut().expect("connected");
            conn.flush().await?;
            let limit = Some(Duration::from_secs(u64::from(IDLE_WAIT)) + self.s.config.io_timeout);
            // Nothing is reserved on this connection: on shutdown, drop it;
            // a job the server hands out meanwhile goes back to ready.
            let reply = tokio::select! {
                r = conn.recv_within(limit) => r?,
                _ = self.s.shutdown.wait() => {
                    self.drop_conn();
                    return Ok(());
                }
            };
            self.expect.pop_front();
            self.on_reply(Expect::Reserve, reply);
            return Ok(());
        }
        let next_touch = self.inflight.values().map(|f| f.next_touch).min();
        let far = Instant::now() + Duration::from_secs(3600);
        let grace = self.grace_deadline.unwrap_or(far);
        let poll = !stopping && capacity > 0;
        tokio::select! {
            m = self.rx.recv() => {
                if let Some(m) = m {
                    self.on_msg(m);
                }
            }
            _ = tokio::time::sleep_until(next_touch.unwrap_or(far)) => {}
            _ = tokio::time::sleep_until(grace), if stopping => {}
            _ = self.s.shutdown.wait(), if !stopping => {}
            _ = tokio::time::sleep(BUSY_POLL), if poll => self.empty = false,
        }
        Ok(())
    }

    fn queue_touches(&mut self, now: Instant) {
        let mut due = Vec::new();
        for (id, f) in self.inflight.iter_mut() {
            if f.next_touch <= now {
                f.next_touch = now + self.touch_every;
                due.push(*id);
            }
        }
        for id in due {
            self.send(Command::Touch(id), Expect::Touch(id));
        }
    }

    fn release_all(&mut self) {
        let ids: Vec<JobId> = self.inflight.keys().copied().collect();
        for id in ids {
            if let Some(f) = self.inflight.remove(&id) {
                f.abort.abort();
                tracing::warn!(
                    tube = self.tube(),
                    id,
                    "grace period over; releasing unfinished job"
                );
                let pri = self.s.descriptor.options.priority;
                self.send(Command::Release { id, pri, delay: 0 }, Expect::Release(id));
            }
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Done(d) => self.on_done(d),
            Msg::Ask(a) => self.on_ask(a),
        }
    }

    /// Sends a job task's commands, back to back, on this connection.
    /// Dropping the ask (reply channel closed) tells the task its
    /// reservation is gone.
    fn on_ask(&mut self, ask: Ask) {
        if ask.epoch != self.epoch || self.conn.is_none() {
            return;
        }
        if let Some(id) = ask.settles {
            // The ask ends the job (deletes or buries it): it must still be
            // ours, and is no longer in flight once sent.
            if self.inflight.remove(&id).is_none() {
                return;
            }
            self.empty = false;
        }
        if ask.ops.is_empty() {
            let _ = ask.reply.send(Vec::new());
            return;
        }
        for op in &ask.ops {
            self.send(op.command(), Expect::Ask);
        }
        self.asks.push_back(Pending {
            remaining: ask.ops.len(),
            replies: Vec::with_capacity(ask.ops.len()),
            reply: ask.reply,
        });
    }

    fn on_done(&mut self, done: Done) {
        if matches!(done.outcome, Outcome::Settled) {
            // Settled through an ask (already out of flight), or the ask
            // failed with its connection.
            if done.epoch == self.epoch && self.inflight.remove(&done.id).is_some() {
                tracing::warn!(
                    tube = self.tube(),
                    id = done.id,
                    "job left reserved by its task; it runs again after its TTR"
                );
            }
            return;
        }
        if done.epoch != self.epoch || self.inflight.remove(&done.id).is_none() {
            tracing::debug!(
                tube = self.tube(),
                id = done.id,
                "outcome of a reservation that is gone; ignored"
            );
            return;
        }
        let id = done.id;
        // A slot is free: look for work in the same write as the outcome.
        self.empty = false;
        match done.outcome {
            Outcome::Settled => {}
            Outcome::Delete => self.send(Command::Delete(id), Expect::Delete(id)),
            Outcome::Replace {
                body,
                pri,
                delay,
                ttr,
            } => {
                // One write: a worker dying around it cannot lose the job
                // or run it twice; beanstalkd dying between the two
                // commands leaves both (see `Outcome::Replace`).
                self.send(
                    Command::Put {
                        pri,
                        delay,
                        ttr,
                        body: &body,
                    },
                    Expect::PutNext(id),
                );
                self.send(Command::Delete(id), Expect::Delete(id));
            }
            Outcome::Bury { pri } => self.send(Command::Bury { id, pri }, Expect::Bury(id)),
        }
    }

    fn on_reply(&mut self, e: Expect, r: Response) {
        let tube = self.tube();
        match (e, r) {
            (Expect::Ask, r) => {
                if let Some(p) = self.asks.front_mut() {
                    p.replies.push(r);
                    p.remaining -= 1;
                    if p.remaining == 0 {
                        let p = self.asks.pop_front().expect("front exists");
                        let _ = p.reply.send(p.replies);
                    }
                }
            }
            (Expect::Reserve, Response::Reserved { id, body }) => {
                if self.s.shutdown.is_triggered() {
                    let pri = self.s.descriptor.options.priority;
                    self.send(Command::Release { id, pri, delay: 0 }, Expect::Release(id));
                } else {
                    self.empty = false;
                    self.start(id, body);
                }
            }
            (Expect::Reserve, Response::TimedOut) => self.empty = true,
            (Expect::Reserve, Response::DeadlineSoon) => {
                let now = Instant::now();
                for f in self.inflight.values_mut() {
                    f.next_touch = now;
                }
            }
            (Expect::Delete(_), Response::Deleted)
            | (Expect::Release(_), Response::Released)
            | (Expect::Bury(_), Response::Buried)
            | (Expect::Touch(_), Response::Touched)
            | (Expect::PutNext(_), Response::Inserted(_)) => {}
            (Expect::PutNext(id), Response::BuriedId(next)) => {
                tracing::error!(tube, id, next, "server out of memory: next run of the chain was stored buried; kick it to resume");
            }
            (Expect::PutNext(id), r) => {
                tracing::error!(tube, id, reply = ?r, "server refused the next run of a repeating job; the chain stops here");
            }
            (Expect::Release(id), Response::BuriedId(_) | Response::Buried) => {
                tracing::error!(
                    tube,
                    id,
                    "server out of memory: job buried instead of released"
                );
            }
            (
                Expect::Delete(id) | Expect::Release(id) | Expect::Bury(id) | Expect::Touch(id),
                Response::NotFound,
            ) => {
                self.inflight.remove(&id);
                tracing::warn!(
                    tube,
                    id,
                    "job no longer reserved by this worker (TTR passed?); it may run again"
                );
            }
            (e, r) => {
                tracing::error!(tube, expected = ?e, reply = ?r, "unexpected reply from beanstalkd");
            }
        }
    }

    fn start(&mut self, id: JobId, body: Vec<u8>) {
        let ctx = self.ctx.clone();
        let tx = self.tx.clone();
        let epoch = self.epoch;
        let link = Link::new(tx.clone(), epoch, id);
        self.running.fetch_add(1, Ordering::AcqRel);
        let guard = RunningGuard(self.running.clone());
        let span = tracing::info_span!("job", tube = ctx.descriptor.tube, id);
        let handle = tokio::spawn(
            async move {
                let _guard = guard;
                let outcome = execute(&ctx, &link, id, &body).await;
                let _ = tx.send(Msg::Done(Done { epoch, id, outcome }));
            }
            .instrument(span),
        );
        self.inflight.insert(
            id,
            InFlight {
                next_touch: Instant::now() + self.touch_every,
                abort: handle.abort_handle(),
            },
        );
    }
}
