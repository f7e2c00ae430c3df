//! Async access to beanstalkd: single [`Connection`]s and the shared [`Client`].
//!
//! A [`Client`] is what producers use. It is cheap to clone and safe to share
//! between any number of tasks: each server gets a small set of *lanes*, one
//! connection driven by one task, and the requests of all tasks are written
//! back to back on a lane and matched to their replies in order. Many tasks
//! enqueuing at once therefore pipeline automatically — no batching by hand.

mod conn;
mod lane;
mod url;

pub(crate) use conn::timed_out;
pub use conn::Connection;
pub use url::parse_url;

use crate::job::{secs_ceil, set_token, Enqueue, JobHandle, PreparedPut};
use crate::proto::stats::{parse_list, JobStats, ServerStats, TubeStats};
use crate::proto::{validate_tube, Command, JobId, Response};
use crate::worker::chain;
use crate::Error;
use lane::Lane;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Settings of a [`Client`] (and of the connections a worker opens).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of each beanstalkd server. Jobs are spread over them.
    pub servers: Vec<String>,
    /// Longest wait for a TCP connection. Default 1 s.
    pub connect_timeout: Duration,
    /// Longest wait for a reply to a non-blocking command. Default 5 s.
    pub io_timeout: Duration,
    /// Largest job body sent; beanstalkd's own default (`-z`) is 65 535 bytes.
    pub max_job_size: usize,
    /// Connections per server that a [`Client`] multiplexes requests over. Default 1.
    pub lanes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            servers: vec!["127.0.0.1:11300".to_owned()],
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(5),
            max_job_size: 65_535,
            lanes: 1,
        }
    }
}

impl ClientConfig {
    /// Settings for the servers of a URL: `beanstalk://host:port`, or several
    /// separated by commas (`beanstalk://a:11300,b:11300`).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(ClientConfig {
            servers: parse_url(url)?,
            ..ClientConfig::default()
        })
    }

    /// Settings from the `BSJOBS_URL` environment variable, or the default
    /// `beanstalk://127.0.0.1:11300`.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var("BSJOBS_URL") {
            Ok(url) if !url.trim().is_empty() => Self::from_url(&url),
            _ => Ok(ClientConfig::default()),
        }
    }
}

/// A shared, pipelining beanstalkd client for producers.
///
/// ```no_run
/// # async fn f() -> Result<(), bsjobs_core::Error> {
/// let client = bsjobs_core::Client::new("beanstalk://127.0.0.1:11300")?;
/// let id = client.put("email", 1024, 0, 60, b"{\"args\":{}}".to_vec()).await?;
/// # Ok(()) }
/// ```
/// Connections are opened lazily, on the first request, and re-opened after a
/// failure; a request fails with a typed error within the configured timeouts
/// when no server answers.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    hooks: std::sync::RwLock<crate::hook::Hooks>,
    /// `lanes[server][lane]`.
    lanes: Vec<Vec<Lane>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.inner.config.servers)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Client> = OnceLock::new();

impl Client {
    /// A client for `url` (`beanstalk://host:port[,host:port…]`) with default settings.
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self::with_config(ClientConfig::from_url(url)?))
    }

    /// A client for the servers named by `BSJOBS_URL`.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::with_config(ClientConfig::from_env()?))
    }

    /// A client with explicit settings.
    pub fn with_config(config: ClientConfig) -> Self {
        let lanes = config
            .servers
            .iter()
            .map(|addr| {
                (0..config.lanes.max(1))
                    .map(|_| Lane::new(addr.clone(), config.clone()))
                    .collect()
            })
            .collect();
        Client {
            inner: Arc::new(Inner {
                config,
                hooks: Default::default(),
                lanes,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The process-wide client that generated `enqueue` calls use: the one
    /// installed with [`Client::set_global`], or else one built from `BSJOBS_URL`.
    pub fn global() -> Result<&'static Client, Error> {
        if let Some(c) = GLOBAL.get() {
            return Ok(c);
        }
        let c = Client::from_env()?;
        Ok(GLOBAL.get_or_init(|| c))
    }

    /// Installs `client` as the process-wide default. Returns `false` if a
    /// global client was already in use (it is not replaced).
    pub fn set_global(client: Client) -> bool {
        GLOBAL.set(client).is_ok()
    }

    /// Adds a [hook](crate::hook) that sees (and may change or refuse)
    /// every job this client, and every clone of it, enqueues from now on.
    pub fn add_hook(&self, hook: impl crate::hook::Hook) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .push(Arc::new(hook));
    }

    /// Runs the enqueue hooks on `p` and stamps when it becomes due.
    fn prepare(&self, p: &mut PreparedPut) -> Result<(), Error> {
        let hooks = self.inner.hooks.read().unwrap_or_else(|p| p.into_inner());
        if !hooks.is_empty() {
            let mut out = crate::hook::Outgoing {
                tube: p.tube,
                priority: p.pri,
                delay: p.delay,
                ttr: p.ttr,
                meta: serde_json::Map::new(),
            };
            for h in &hooks.0 {
                h.on_enqueue(&mut out).map_err(Error::Refused)?;
            }
            p.pri = out.priority;
            p.delay = out.delay;
            p.ttr = out.ttr.max(1);
            if !out.meta.is_empty() {
                let meta = serde_json::Value::Object(out.meta).to_string();
                p.body.pop();
                p.body.extend_from_slice(b",\"meta\":");
                p.body.extend_from_slice(meta.as_bytes());
                p.body.push(b'}');
            }
        }
        let due = crate::worker::cron::now_ms() + i64::from(p.delay) * 1000;
        crate::job::set_due(&mut p.body, due);
        Ok(())
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn server_count(&self) -> usize {
        self.inner.lanes.len()
    }

    fn lane(&self, server: usize) -> &Lane {
        let lanes = &self.inner.lanes[server % self.server_count()];
        if lanes.len() == 1 {
            return &lanes[0];
        }
        &lanes[self.inner.next.fetch_add(1, Ordering::Relaxed) % lanes.len()]
    }

    fn pick_server(&self) -> usize {
        if self.server_count() == 1 {
            0
        } else {
            self.inner.next.fetch_add(1, Ordering::Relaxed) % self.server_count()
        }
    }

    /// Sends one command to `server`, after a `use tube` when `tube` is given,
    /// and returns the reply, within the configured timeouts.
    ///
    /// Commands that belong to one connection (`use`, `watch`, `ignore`,
    /// `reserve*`, `quit`) are refused with [`Error::NotShareable`]: use a
    /// [`Connection`] for those.
    pub async fn request(
        &self,
        server: usize,
        tube: Option<&str>,
        cmd: &Command<'_>,
    ) -> Result<Response, Error> {
        if let Command::Use(_)
        | Command::Watch(_)
        | Command::Ignore(_)
        | Command::Reserve
        | Command::ReserveWithTimeout(_)
        | Command::ReserveJob(_)
        | Command::Quit = cmd
        {
            // These change or depend on the state of one connection, which
            // a shared client multiplexes between callers.
            return Err(Error::NotShareable(format!("{cmd:?}")));
        }
        for t in tube.into_iter().chain(cmd.tube()) {
            check_tube(t)?;
        }
        let mut bytes = Vec::with_capacity(64);
        cmd.encode(&mut bytes);
        let lane = self.lane(server);
        let first = lane.call(tube.map(str::to_owned), bytes.clone(), 1).await;
        let mut replies = match first {
            // A connection that died while idle (a server restart) is only
            // noticed by the next request on it: try a read-only command
            // once more, on a fresh connection.
            Err(Error::Io(_) | Error::Closed) if read_only(cmd) => {
                lane.call(tube.map(str::to_owned), bytes, 1).await?
            }
            r => r?,
        };
        Ok(replies.pop().expect("one reply per command"))
    }

    fn check_body(&self, len: usize) -> Result<(), Error> {
        let max = self.inner.config.max_job_size;
        if len > max {
            return Err(Error::JobTooBig { len, max });
        }
        Ok(())
    }

    /// Puts a job into `tube` and returns its id.
    pub async fn put(
        &self,
        tube: &str,
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Vec<u8>,
    ) -> Result<JobId, Error> {
        self.put_on(self.pick_server(), tube, pri, delay, ttr, &body)
            .await
            .map(|(_, id)| id)
    }

    async fn put_on(
        &self,
        server: usize,
        tube: &str,
        pri: u32,
        delay: u32,
        ttr: u32,
        body: &[u8],
    ) -> Result<(usize, JobId), Error> {
        check_tube(tube)?;
        self.check_body(body.len())?;
        let mut bytes = Vec::with_capacity(body.len() + 40);
        Command::Put {
            pri,
            delay,
            ttr,
            body,
        }
        .encode(&mut bytes);
        let mut r = self
            .lane(server)
            .call(Some(tube.to_owned()), bytes, 1)
            .await?;
        put_result(r.pop().expect("one reply")).map(|id| (server % self.server_count(), id))
    }

    /// Puts a prepared job (see [`Enqueue::into_put`]). A repeating job's
    /// chain token is put first, on the same server.
    pub async fn put_prepared(&self, mut p: PreparedPut) -> Result<JobHandle, Error> {
        self.prepare(&mut p)?;
        let server = self.pick_server();
        let mut body = p.body;
        self.check_body(body.len())?;
        let token = match &p.chain {
            Some(chain) => {
                let t = self
                    .put_on(
                        server,
                        chain::TOKEN_TUBE,
                        chain::UNBOUND,
                        0,
                        chain::TOKEN_TTR,
                        &chain::token_body(chain, p.tube),
                    )
                    .await?
                    .1;
                set_token(&mut body, t);
                Some(t)
            }
            None => None,
        };
        let put = match self.check_body(body.len()) {
            Ok(()) => {
                self.put_on(server, p.tube, p.pri, p.delay, p.ttr, &body)
                    .await
            }
            Err(e) => Err(e),
        };
        let (server, id) = match (put, token) {
            (Ok(r), _) => r,
            (Err(e), Some(t)) => {
                // The chain never started: do not leave its token behind.
                let _ = self.delete(server, t).await;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        Ok(JobHandle {
            id,
            identity: p.identity,
            tube: p.tube,
            chain: p.chain,
            token,
            server,
        })
    }

    /// Enqueues many jobs, a batch of up to 1024 puts per write, with
    /// several batches in flight at once.
    ///
    /// Returns one result per job, in order. Much cheaper than as many
    /// `enqueue` calls: the puts travel together and are answered together.
    /// The tokens of repeating jobs go first, in a batch of their own.
    pub async fn enqueue_many(
        &self,
        jobs: impl IntoIterator<Item = Enqueue>,
    ) -> Vec<Result<JobHandle, Error>> {
        use futures_util::StreamExt as _;
        // Consecutive jobs for the same tube form one batch.
        let mut slots: Vec<Slot> = Vec::new();
        for job in jobs {
            let p = match job
                .into_put()
                .and_then(|mut p| self.prepare(&mut p).map(|()| p))
            {
                Ok(p) => p,
                Err(e) => {
                    slots.push(Slot::Failed(e));
                    continue;
                }
            };
            if let Err(e) = check_tube(p.tube).and_then(|_| self.check_body(p.body.len())) {
                slots.push(Slot::Failed(e));
                continue;
            }
            let open = matches!(slots.last(), Some(Slot::Batch(b)) if b.tube == p.tube && b.puts.len() < BULK_BATCH);
            if !open {
                slots.push(Slot::Batch(Batch {
                    tube: p.tube,
                    server: self.pick_server(),
                    puts: Vec::new(),
                }));
            }
            let Some(Slot::Batch(b)) = slots.last_mut() else {
                unreachable!("a batch was just opened")
            };
            b.puts.push(p);
        }
        let servers = self.server_count();
        let results: Vec<Vec<Result<JobHandle, Error>>> = futures_util::stream::iter(slots)
            .map(|slot| async move {
                match slot {
                    Slot::Failed(e) => vec![Err(e)],
                    Slot::Batch(b) => self.put_batch(b, servers).await,
                }
            })
            .buffered(BULK_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    async fn put_batch(&self, mut b: Batch, servers: usize) -> Vec<Result<JobHandle, Error>> {
        let n = b.puts.len();
        let fail_all = |e: Error| {
            let msg = e.to_string();
            let mut v = vec![Err(e)];
            v.extend((1..n).map(|_| Err(Error::Unexpected(msg.clone()))));
            v
        };
        // Tokens of the repeating jobs first: their ids go into the bodies.
        let mut tokens: Vec<Option<Result<JobId, Error>>> = (0..n).map(|_| None).collect();
        let chained: Vec<usize> = (0..n).filter(|&i| b.puts[i].chain.is_some()).collect();
        if !chained.is_empty() {
            let mut bytes = Vec::with_capacity(chained.len() * 120);
            for &i in &chained {
                let body = chain::token_body(b.puts[i].chain.as_deref().unwrap_or(""), b.tube);
                Command::Put {
                    pri: chain::UNBOUND,
                    delay: 0,
                    ttr: chain::TOKEN_TTR,
                    body: &body,
                }
                .encode(&mut bytes);
            }
            match self
                .lane(b.server)
                .call(Some(chain::TOKEN_TUBE.to_owned()), bytes, chained.len())
                .await
            {
                Ok(replies) => {
                    for (&i, r) in chained.iter().zip(replies) {
                        tokens[i] = Some(put_result(r));
                    }
                }
                Err(e) => return fail_all(e),
            }
        }
        let mut bytes = Vec::with_capacity(n * 128);
        let mut sent = Vec::with_capacity(n);
        for (i, p) in b.puts.iter_mut().enumerate() {
            if let Some(Ok(t)) = &tokens[i] {
                let t = *t;
                set_token(&mut p.body, t);
                if let Err(e) = self.check_body(p.body.len()) {
                    let _ = self.delete(b.server, t).await;
                    tokens[i] = Some(Err(e));
                }
            }
            if matches!(tokens[i], Some(Err(_))) {
                continue;
            }
            Command::Put {
                pri: p.pri,
                delay: p.delay,
                ttr: p.ttr,
                body: &p.body,
            }
            .encode(&mut bytes);
            sent.push(i);
        }
        let mut replies = match self
            .lane(b.server)
            .call(Some(b.tube.to_owned()), bytes, sent.len())
            .await
        {
            Ok(r) => r.into_iter(),
            Err(e) => return fail_all(e),
        };
        let mut out = Vec::with_capacity(n);
        for (i, p) in b.puts.into_iter().enumerate() {
            let token = match tokens[i].take() {
                Some(Err(e)) => {
                    out.push(Err(e));
                    continue;
                }
                Some(Ok(t)) => Some(t),
                None => None,
            };
            let r = replies.next().map_or_else(
                || Err(Error::Unexpected("missing reply".to_owned())),
                put_result,
            );
            if let (Err(_), Some(t)) = (&r, token) {
                let _ = self.delete(b.server, t).await;
            }
            out.push(r.map(|id| JobHandle {
                id,
                identity: p.identity,
                tube: b.tube,
                chain: p.chain,
                token,
                server: b.server % servers,
            }));
        }
        out
    }

    /// Deletes a job that is ready, delayed or buried (or reserved by no one).
    pub async fn delete(&self, server: usize, id: JobId) -> Result<(), Error> {
        match self.request(server, None, &Command::Delete(id)).await? {
            Response::Deleted => Ok(()),
            r => Err(other(r)),
        }
    }

    /// `peek <id>`: the body of any job, or `None` if it does not exist.
    pub async fn peek(&self, server: usize, id: JobId) -> Result<Option<Vec<u8>>, Error> {
        found(self.request(server, None, &Command::Peek(id)).await?)
    }

    async fn peek_in(
        &self,
        server: usize,
        tube: &str,
        cmd: Command<'_>,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        match self.request(server, Some(tube), &cmd).await? {
            Response::Found { id, body } => Ok(Some((id, body))),
            Response::NotFound => Ok(None),
            r => Err(other(r)),
        }
    }

    /// The next ready job of `tube`, without reserving it.
    pub async fn peek_ready(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekReady).await
    }

    /// The delayed job of `tube` that becomes ready first.
    pub async fn peek_delayed(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekDelayed).await
    }

    /// The oldest buried job of `tube`.
    pub async fn peek_buried(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekBuried).await
    }

    /// Kicks up to `bound` buried (or else delayed) jobs of `tube` back to ready;
    /// returns how many moved.
    pub async fn kick(&self, server: usize, tube: &str, bound: u32) -> Result<u64, Error> {
        match self
            .request(server, Some(tube), &Command::Kick(bound))
            .await?
        {
            Response::KickedCount(n) => Ok(n),
            r => Err(other(r)),
        }
    }

    /// Kicks one buried or delayed job back to ready.
    pub async fn kick_job(&self, server: usize, id: JobId) -> Result<(), Error> {
        match self.request(server, None, &Command::KickJob(id)).await? {
            Response::Kicked => Ok(()),
            r => Err(other(r)),
        }
    }

    /// `stats-job`: the state and counters of one job.
    pub async fn stats_job(&self, server: usize, id: JobId) -> Result<JobStats, Error> {
        let body = ok_body(self.request(server, None, &Command::StatsJob(id)).await?)?;
        JobStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `stats-tube`: counts of one tube.
    pub async fn stats_tube(&self, server: usize, tube: &str) -> Result<TubeStats, Error> {
        let body = ok_body(
            self.request(server, None, &Command::StatsTube(tube))
                .await?,
        )?;
        TubeStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `stats`: the server's counters.
    pub async fn stats(&self, server: usize) -> Result<ServerStats, Error> {
        let body = ok_body(self.request(server, None, &Command::Stats).await?)?;
        ServerStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `list-tubes`: every tube that exists.
    pub async fn list_tubes(&self, server: usize) -> Result<Vec<String>, Error> {
        let body = ok_body(self.request(server, None, &Command::ListTubes).await?)?;
        parse_list(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `pause-tube`: no job of `tube` is reserved for `delay`.
    pub async fn pause_tube(
        &self,
        server: usize,
        tube: &str,
        delay: Duration,
    ) -> Result<(), Error> {
        let cmd = Command::PauseTube(tube, secs_ceil(delay));
        match self.request(server, None, &cmd).await? {
            Response::Paused => Ok(()),
            r => Err(other(r)),
        }
    }

    /// Sends read-only commands (`peek*`, `stats*`, `list-*`) to `server`
    /// in one write, after a `use tube` when `tube` is given, and returns
    /// their replies in order: one round trip for the whole batch.
    ///
    /// A command that changes anything is refused with
    /// [`Error::NotReadOnly`] before anything is sent.
    pub async fn read_many(
        &self,
        server: usize,
        tube: Option<&str>,
        cmds: &[Command<'_>],
    ) -> Result<Vec<Response>, Error> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let mut bytes = Vec::with_capacity(cmds.len() * 24);
        for cmd in cmds {
            if !read_only(cmd) {
                return Err(Error::NotReadOnly(format!("{cmd:?}")));
            }
            for t in tube.into_iter().chain(cmd.tube()) {
                check_tube(t)?;
            }
            cmd.encode(&mut bytes);
        }
        let lane = self.lane(server);
        match lane
            .call(tube.map(str::to_owned), bytes.clone(), cmds.len())
            .await
        {
            // As in `request`: an idle connection that died is retried once.
            Err(Error::Io(_) | Error::Closed) => {
                lane.call(tube.map(str::to_owned), bytes, cmds.len()).await
            }
            r => r,
        }
    }

    /// Stops a job: see [`JobHandle::cancel`].
    ///
    /// A repeating chain is cancelled through its token (see the worker's
    /// chain module): the token is held on a connection of its own, the job
    /// it names is deleted if it is waiting (and then the token: nothing of
    /// the chain is left), or else, while a run is in progress, the token
    /// is marked cancelled and that run's worker ends the chain.
    pub async fn cancel(&self, handle: &JobHandle) -> Result<bool, Error> {
        let Some(token) = handle.token else {
            return match self.delete(handle.server, handle.id).await {
                // The job had not run (or was buried): nothing follows it.
                Ok(()) => Ok(true),
                Err(Error::NotFound) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let config = &self.inner.config;
        let addr = &config.servers[handle.server % self.server_count()];
        let mut conn = Connection::connect(addr, config).await?;
        let deadline = std::time::Instant::now() + config.io_timeout;
        loop {
            conn.queue(&Command::ReserveJob(token));
            conn.queue(&Command::StatsJob(token));
            conn.flush().await?;
            let held = conn.recv().await?;
            let stats = match conn.recv().await? {
                Response::Ok(yaml) => JobStats::parse(&yaml).ok(),
                _ => None,
            };
            let Some(stats) = stats.filter(|s| s.tube == chain::TOKEN_TUBE) else {
                // No token: the chain is over (or never had one). A job
                // that never ran can still be deleted.
                return match self.delete(handle.server, handle.id).await {
                    Ok(()) => Ok(true),
                    Err(Error::NotFound) => Ok(false),
                    Err(e) => Err(e),
                };
            };
            if !matches!(held, Response::Reserved { .. }) {
                // A worker is moving the token right now: try again.
                if std::time::Instant::now() >= deadline {
                    return Err(timed_out(config.io_timeout));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if stats.pri == chain::CANCELLED {
                expect(
                    conn.request(&Command::Bury {
                        id: token,
                        pri: chain::CANCELLED,
                    })
                    .await?,
                    Response::Buried,
                )?;
                return Ok(false);
            }
            let current = chain::named(stats.pri, handle.id).unwrap_or(handle.id);
            return match conn.request(&Command::Delete(current)).await? {
                Response::Deleted => {
                    expect(
                        conn.request(&Command::Delete(token)).await?,
                        Response::Deleted,
                    )?;
                    Ok(true)
                }
                // Reserved: a run is in progress; its step sees the mark.
                Response::NotFound => {
                    expect(
                        conn.request(&Command::Bury {
                            id: token,
                            pri: chain::CANCELLED,
                        })
                        .await?,
                        Response::Buried,
                    )?;
                    Ok(false)
                }
                r => Err(other(r)),
            };
        }
    }
}

/// Puts per write in [`Client::enqueue_many`].
const BULK_BATCH: usize = 1024;
/// Batches of [`Client::enqueue_many`] in flight at once.
const BULK_IN_FLIGHT: usize = 8;

/// One step of [`Client::enqueue_many`]: a job refused before sending, or a
/// batch of puts for one tube.
enum Slot {
    Failed(Error),
    Batch(Batch),
}

struct Batch {
    tube: &'static str,
    server: usize,
    puts: Vec<PreparedPut>,
}

/// Commands that change nothing, so sending one twice is harmless.
fn read_only(cmd: &Command<'_>) -> bool {
    matches!(
        cmd,
        Command::Peek(_)
            | Command::PeekReady
            | Command::PeekDelayed
            | Command::PeekBuried
            | Command::StatsJob(_)
            | Command::StatsTube(_)
            | Command::Stats
            | Command::ListTubes
            | Command::ListTubeUsed
            | Command::ListTubesWatched
    )
}

pub(crate) fn check_tube(tube: &str) -> Result<(), Error> {
    validate_tube(tube).map_err(|reason| Error::BadTube {
        tube: tube.to_owned(),
        reason,
    })
}

/// Maps a reply that is not the expected success to an error.
pub(crate) fn other(r: Response) -> Error {
    match r {
        Response::NotFound => Error::NotFound,
        Response::OutOfMemory => Error::OutOfMemory,
        Response::InternalError => Error::InternalError,
        Response::Draining => Error::Draining,
        Response::JobTooBig => Error::ServerJobTooBig,
        Response::BuriedId(id) => Error::BuriedOnArrival(id),
        r => Error::Unexpected(format!("{r:?}")),
    }
}

fn expect(r: Response, want: Response) -> Result<(), Error> {
    if r == want {
        Ok(())
    } else {
        Err(other(r))
    }
}

fn put_result(r: Response) -> Result<JobId, Error> {
    match r {
        Response::Inserted(id) => Ok(id),
        r => Err(other(r)),
    }
}

fn found(r: Response) -> Result<Option<Vec<u8>>, Error> {
    match r {
        Response::Found { body, .. } => Ok(Some(body)),
        Response::NotFound => Ok(None),
        r => Err(other(r)),
    }
}

fn ok_body(r: Response) -> Result<Vec<u8>, Error> {
    match r {
        Response::Ok(b) => Ok(b),
        r => Err(other(r)),
    }
}
