//! Async access to beanstalkd: single [`Connection`]s and the shared [`Client`].
//!
//! A [`Client`] is what producers use. It is cheap to clone and safe to share
//! between any number of tasks: each server gets a small set of *lanes*, one
//! connection driven by one task, and the requests of all tasks are written
//! back to back on a lane and matched to their replies in order. Many tasks
//! enqueuing at once therefore pipeline automatically — no batching by hand.

mod conn;
mod fleet;
mod lane;
pub(crate) mod unique;
mod url;

pub use conn::Connection;
pub use fleet::ServerStatus;
pub use url::{parse_servers, parse_url, ServerSpec, MAX_WEIGHT};

use crate::job::{secs_ceil, set_token, Enqueue, JobHandle, PreparedPut};
use crate::proto::stats::{parse_list, JobStats, ServerStats, TubeStats};
use crate::proto::{validate_tube, Command, JobId, Response};
use crate::worker::chain;
use crate::Error;
use fleet::Fleet;
use lane::Lane;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
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
    /// Share of new puts of each server, in the order of `servers`; a
    /// missing entry counts as 1, and 0 drains the server (no new puts;
    /// workers keep reserving from it). Set from the URL's `;weight=N` and
    /// `;drain` options. See [Servers](Client#servers).
    pub weights: Vec<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            servers: vec!["127.0.0.1:11300".to_owned()],
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(5),
            max_job_size: 65_535,
            lanes: 1,
            weights: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Settings for the servers of a URL: `beanstalk://host:port`, or several
    /// separated by commas (`beanstalk://a:11300,b:11300`), each optionally
    /// followed by `;weight=N` or `;drain` ([`parse_servers`]).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        let specs = parse_servers(url)?;
        Ok(ClientConfig {
            servers: specs.iter().map(|s| s.addr.clone()).collect(),
            weights: specs.iter().map(|s| s.weight).collect(),
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
/// # #[bsjobs::job(tube = "email")]
/// # async fn send_email(to: String) {}
/// # async fn f() -> Result<(), bsjobs::Error> {
/// let client = bsjobs::Client::new("beanstalk://127.0.0.1:11300")?;
/// // Generated types: with this client, or with the default one.
/// let handle = SendEmail::new("ada@example.com".into()).client(&client).enqueue().await?;
/// // Raw puts (a producer's own envelope, see the README).
/// let id = client.put("email", 1024, 0, 60, br#"{"args":{"to":"bob@example.com"}}"#.to_vec()).await?;
/// // Admin calls name the server by its index in the URL's list.
/// let stats = client.stats_tube(handle.server, "email").await?;
/// println!("{} ready", stats.current_jobs_ready);
/// # Ok(()) }
/// ```
/// Connections are opened lazily, on the first request, and re-opened after a
/// failure; a request fails with a typed error within the configured timeouts
/// when no server answers.
///
/// # Servers
///
/// A client built for `beanstalk://a:11300,b:11300` spreads puts over the
/// servers. The admin methods (`peek*`, `delete`, `kick*`, `stats*`,
/// `list_tubes`, `pause_tube`, [`Client::request`]) act on one server and
/// take its `server: usize`: the index of that server in the URL's list
/// (`0` for `a`, `1` for `b`; always `0` with one server). A job's server is
/// in its [`JobHandle::server`]. An index past the end wraps around.
///
/// # Which client `enqueue` uses
///
/// `Job::enqueue(..)` and `.enqueue()` without `.client(..)` use
/// [`Client::current`]: the client of the enclosing [`Client::scope`], else
/// the process-wide [`Client::global`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    hooks: std::sync::RwLock<crate::hook::HookSet>,
    /// `lanes[server][lane]`.
    lanes: Vec<Vec<Lane>>,
    next: AtomicUsize,
    fleet: Fleet,
    /// Idle connections for unique enqueues, per server.
    unique: Vec<unique::Pool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("servers", &self.inner.config.servers)
            .finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Client> = OnceLock::new();

tokio::task_local! {
    /// The client of the innermost [`Client::scope`] of the current task.
    static SCOPED: Client;
}

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
        let unique = config.servers.iter().map(|_| Default::default()).collect();
        Client {
            inner: Arc::new(Inner {
                unique,
                fleet: Fleet::new(&config),
                config,
                hooks: std::sync::RwLock::new(crate::hook::HookSet::for_client()),
                lanes,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The process-wide client: the one installed with
    /// [`Client::set_global`], or else one built from `BSJOBS_URL`.
    /// Generated `enqueue` calls use it outside any [`Client::scope`].
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
            .add(Arc::new(hook));
    }

    /// Adds a [hook](crate::hook) that sees (and may change or refuse) the
    /// jobs of type `J` only (the type `#[bsjobs::job]` generates), that
    /// this client and its clones enqueue from now on. Global hooks
    /// ([`Client::add_hook`]) see a job first, then its own.
    ///
    /// ```
    /// use bsjobs::hook::{Hook, Outgoing};
    ///
    /// #[bsjobs::job(tube = "charge")]
    /// async fn charge(order: u64) {}
    ///
    /// /// No charges while the payment provider is down.
    /// struct Maintenance;
    /// impl Hook for Maintenance {
    ///     fn on_enqueue(&self, _job: &mut Outgoing<'_>) -> Result<(), String> {
    ///         Err("payments are paused".into())
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), bsjobs::Error> {
    /// let client = bsjobs::Client::new("beanstalk://127.0.0.1:11300")?;
    /// client.add_hook_for::<Charge>(Maintenance); // other jobs go through
    /// # Ok(()) }
    /// ```
    pub fn add_hook_for<J: crate::job::Job>(&self, hook: impl crate::hook::Hook) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add_for(J::TUBE, Arc::new(hook));
    }

    /// Runs the enqueue hooks on `p` and stamps when it is enqueued and
    /// when it becomes due.
    fn prepare(&self, p: &mut PreparedPut) -> Result<(), Error> {
        let hooks = self.inner.hooks.read().unwrap_or_else(|p| p.into_inner());
        let mut hooks = hooks.iter_for(p.tube).peekable();
        if hooks.peek().is_some() {
            let mut out = crate::hook::Outgoing {
                tube: p.tube,
                priority: p.pri,
                delay: p.delay,
                ttr: p.ttr,
                meta: serde_json::Map::new(),
            };
            for h in hooks {
                h.on_enqueue(&mut out).map_err(Error::Refused)?;
            }
            p.pri = out.priority;
            p.delay = out.delay;
            p.ttr = out.ttr.max(1);
            // A raw body is put exactly as given: no metadata can travel.
            if !out.meta.is_empty() && !p.raw {
                let meta = serde_json::Value::Object(out.meta).to_string();
                p.body.pop();
                p.body.extend_from_slice(b",\"meta\":");
                p.body.extend_from_slice(meta.as_bytes());
                p.body.push(b'}');
            }
        }
        if !p.raw {
            let now = crate::worker::cron::now_ms();
            crate::job::set_enqueued(&mut p.body, now);
            crate::job::set_due(&mut p.body, now + i64::from(p.delay) * 1000);
        }
        Ok(())
    }

    /// Runs `fut` with this client as the one that generated `enqueue`
    /// calls use, instead of the process-wide [`Client::global`].
    ///
    /// The scope is the task running `fut` (a tokio task-local): tasks
    /// spawned inside it do not inherit it, so scope them too
    /// (`tokio::spawn(client.scope(async move { … }))`). An explicit
    /// `.client(&c)` on the builder still wins; an inner scope wins over an
    /// outer one.
    ///
    /// This is how tests that each start their own
    /// [`Beanstalkd`](crate::testing::Beanstalkd) keep their jobs apart:
    /// the process-wide client is set once per process, and tests run in
    /// parallel threads of one process.
    ///
    /// ```no_run
    /// # #[bsjobs::job(tube = "email")]
    /// # async fn send_email(to: String) {}
    /// # async fn f() -> Result<(), bsjobs::Error> {
    /// let client = bsjobs::Client::new("beanstalk://127.0.0.1:11301")?;
    /// client
    ///     .scope(async {
    ///         // Goes to 127.0.0.1:11301, whatever the global client is.
    ///         SendEmail::enqueue("ada@example.com".into()).await
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn scope<F: std::future::Future>(
        &self,
        fut: F,
    ) -> impl std::future::Future<Output = F::Output> {
        SCOPED.scope(self.clone(), fut)
    }

    /// The client generated `enqueue` calls use here: the one of the
    /// innermost [`Client::scope`] around the current task, else
    /// [`Client::global`].
    pub fn current() -> Result<Client, Error> {
        match SCOPED.try_with(Client::clone) {
            Ok(c) => Ok(c),
            Err(_) => Client::global().cloned(),
        }
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

    /// What this client knows of each server, in the order of the URL's
    /// list: weight, marked down or not, last error.
    pub fn servers(&self) -> Vec<ServerStatus> {
        self.inner.fleet.status()
    }

    /// Sets the share of new puts that `server` (an index into the URL's
    /// list) gets, relative to the others; 0 drains it. Takes effect for
    /// the next put. Workers are not affected: they keep reserving from
    /// every server.
    pub fn set_weight(&self, server: usize, weight: u32) {
        self.inner
            .fleet
            .set_weight(server % self.server_count(), weight);
    }

    /// Drains `server`: no new puts go to it (keyed puts go to each key's
    /// next server), while workers keep reserving from it until it is
    /// empty. The same as `set_weight(server, 0)`; undo with `set_weight`.
    pub fn drain(&self, server: usize) {
        self.set_weight(server, 0);
    }

    /// The server that a put with `key` (see [`Enqueue::key`]) goes to
    /// now, or `None` when no server takes new jobs.
    pub fn server_for_key(&self, key: &str) -> Option<usize> {
        self.inner.fleet.choose(Some(key.as_bytes()), &[])
    }

    /// Puts on a server chosen by placement, failing over to the next when
    /// one refuses before storing anything; see `fleet.rs` for the rules.
    #[allow(clippy::too_many_arguments)]
    async fn put_placed(
        &self,
        key: Option<&[u8]>,
        tube: &str,
        pri: u32,
        delay: u32,
        ttr: u32,
        body: &[u8],
    ) -> Result<(usize, JobId), Error> {
        let fleet = &self.inner.fleet;
        if fleet.len() == 1 {
            return self.put_on(0, tube, pri, delay, ttr, body).await;
        }
        for server in fleet.unprobed() {
            self.start_probe(server);
        }
        let mut tried = vec![false; fleet.len()];
        loop {
            let Some(server) = fleet.choose(key, &tried) else {
                return Err(fleet.none_up());
            };
            match self.put_on(server, tube, pri, delay, ttr, body).await {
                Err(e) if fleet::refused_before_storing(&e) => {
                    self.server_failed(server, &e);
                    tried[server] = true;
                }
                Err(e @ Error::OutcomeUnknown { .. }) => {
                    // The job may exist: never put it anywhere else.
                    self.server_failed(server, &e);
                    return Err(e);
                }
                r => return r,
            }
        }
    }

    /// Marks `server` down after `e` and makes sure it is being re-probed.
    fn server_failed(&self, server: usize, e: &Error) {
        if self.server_count() > 1 {
            self.inner.fleet.mark_down(server, e);
            self.start_probe(server);
        }
    }

    /// Starts the background re-probe of `server`, unless one runs. The
    /// task holds the client weakly: dropping the client ends it.
    fn start_probe(&self, server: usize) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.inner.fleet.claim_probe(server) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            let _release = ProbeGuard {
                inner: weak.clone(),
                server,
            };
            for attempt in 0.. {
                tokio::time::sleep(fleet::probe_delay(attempt)).await;
                let Some(inner) = weak.upgrade() else { return };
                let addr = inner.fleet.addr(server).to_owned();
                let config = inner.config.clone();
                drop(inner);
                let result = fleet::probe(&addr, &config).await;
                let Some(inner) = weak.upgrade() else { return };
                match result {
                    Ok(()) => {
                        inner.fleet.mark_up(server);
                        return;
                    }
                    Err(e) => inner.fleet.note_probe_failure(server, &e),
                }
            }
        });
    }

    /// Sends one command to `server` (an index into the URL's list, see
    /// [Servers](Client#servers)), after a `use tube` when `tube` is given,
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
        let first = lane.call(tube, bytes.clone(), 1).await;
        let mut replies = match first {
            // The connection failed under the request (a connection that
            // died while idle is replaced before writing, but the server
            // may die just then): a read-only command is safe to send once
            // more, on a fresh connection.
            Err(Error::OutcomeUnknown { .. } | Error::Io(_) | Error::Closed) if read_only(cmd) => {
                lane.call(tube, bytes, 1).await?
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
        self.put_placed(None, tube, pri, delay, ttr, &body)
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
        let mut r = self.lane(server).call(Some(tube), bytes, 1).await?;
        put_result(r.pop().expect("one reply")).map(|id| (server % self.server_count(), id))
    }

    /// Puts a prepared job (see [`Enqueue::into_put`]) on the server its
    /// key or the placement chooses ([Servers](Client#servers)). A
    /// repeating job's chain token is put first, on the same server: the
    /// chain's (placed by its key, else by its chain id).
    pub async fn put_prepared(&self, mut p: PreparedPut) -> Result<JobHandle, Error> {
        self.prepare(&mut p)?;
        self.place(p).await
    }

    /// Puts a job [`Client::prepare`] has seen.
    async fn place(&self, p: PreparedPut) -> Result<JobHandle, Error> {
        if let Some(u) = p.unique {
            check_tube(p.tube)?;
            return self.place_unique(p, u).await;
        }
        let Some(chain_id) = p.chain.clone() else {
            let key = p.key.as_deref().map(str::as_bytes);
            let (server, id) = self
                .put_placed(key, p.tube, p.pri, p.delay, p.ttr, &p.body)
                .await?;
            return Ok(JobHandle {
                id,
                identity: p.identity,
                tube: p.tube,
                chain: p.chain,
                token: None,
                server,
                existing: false,
            });
        };
        let key = p.key.clone().unwrap_or_else(|| chain_id.clone());
        let (server, token) = self
            .put_placed(
                Some(key.as_bytes()),
                chain::TOKEN_TUBE,
                chain::UNBOUND,
                0,
                chain::TOKEN_TTR,
                &chain::token_body(&chain_id, p.tube),
            )
            .await?;
        let mut body = p.body;
        set_token(&mut body, token);
        let put = match self.check_body(body.len()) {
            Ok(()) => {
                self.put_on(server, p.tube, p.pri, p.delay, p.ttr, &body)
                    .await
            }
            Err(e) => Err(e),
        };
        let (server, id) = match put {
            Ok(r) => r,
            Err(e) => {
                // The chain never started: do not leave its token behind.
                let _ = self.delete(server, token).await;
                return Err(e);
            }
        };
        Ok(JobHandle {
            id,
            identity: p.identity,
            tube: p.tube,
            chain: p.chain,
            token: Some(token),
            server,
            existing: false,
        })
    }

    /// Enqueues many jobs, a batch of up to 1024 puts per write, with
    /// several batches in flight at once.
    ///
    /// Returns one result per job, in order. Much cheaper than as many
    /// `enqueue` calls: the puts travel together and are answered together.
    /// Each job is placed like a single put (its key, or the turn of the
    /// live servers); a batch refused before storing anything (its server
    /// died) is placed again job by job on the other servers.
    /// The tokens of repeating jobs go first, in a batch of their own.
    pub async fn enqueue_many(
        &self,
        jobs: impl IntoIterator<Item = Enqueue>,
    ) -> Vec<Result<JobHandle, Error>> {
        use futures_util::StreamExt as _;
        let fleet = &self.inner.fleet;
        let single = fleet.len() == 1;
        if !single {
            for server in fleet.unprobed() {
                self.start_probe(server);
            }
        }
        // Consecutive jobs for the same tube and server form one batch.
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
            if p.unique.is_some() {
                slots.push(Slot::Unique(p));
                continue;
            }
            let server = if single {
                0
            } else {
                match fleet.choose(
                    p.key.as_deref().or(p.chain.as_deref()).map(str::as_bytes),
                    &[],
                ) {
                    Some(s) => s,
                    None => {
                        slots.push(Slot::Failed(fleet.none_up()));
                        continue;
                    }
                }
            };
            let open = matches!(slots.last(), Some(Slot::Batch(b)) if b.tube == p.tube && b.server == server && b.puts.len() < BULK_BATCH);
            if !open {
                slots.push(Slot::Batch(Batch {
                    tube: p.tube,
                    server,
                    puts: Vec::new(),
                }));
            }
            let Some(Slot::Batch(b)) = slots.last_mut() else {
                unreachable!("a batch was just opened")
            };
            b.puts.push(p);
        }
        let results: Vec<Vec<Result<JobHandle, Error>>> = futures_util::stream::iter(slots)
            .map(|slot| async move {
                match slot {
                    Slot::Failed(e) => vec![Err(e)],
                    Slot::Batch(b) => self.send_batch(b, single).await,
                    Slot::Unique(p) => vec![self.place(p).await],
                }
            })
            .buffered(BULK_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().flatten().collect()
    }

    async fn send_batch(&self, mut b: Batch, single: bool) -> Vec<Result<JobHandle, Error>> {
        let n = b.puts.len();
        // Tokens of the repeating jobs first, on this server: their ids go
        // into the bodies.
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
                .call(Some(chain::TOKEN_TUBE), bytes, chained.len())
                .await
            {
                Ok(replies) => {
                    for (&i, r) in chained.iter().zip(replies) {
                        tokens[i] = Some(put_result(r));
                    }
                }
                Err(e) => {
                    let mut out = vec![Err(same_error(&e))];
                    out.extend((1..n).map(|_| Err(same_error(&e))));
                    return out;
                }
            }
        }
        let mut failed: Vec<Option<Error>> = (0..n).map(|_| None).collect();
        for (i, p) in b.puts.iter_mut().enumerate() {
            match tokens[i].take() {
                Some(Ok(t)) => {
                    set_token(&mut p.body, t);
                    if let Err(e) = self.check_body(p.body.len()) {
                        let _ = self.delete(b.server, t).await;
                        failed[i] = Some(e);
                    } else {
                        tokens[i] = Some(Ok(t));
                    }
                }
                Some(Err(e)) => failed[i] = Some(e),
                None => {}
            }
        }
        let mut bytes = Vec::with_capacity(b.puts.iter().map(|p| p.body.len() + 32).sum());
        let mut sent = 0;
        for (i, p) in b.puts.iter().enumerate() {
            if failed[i].is_some() {
                continue;
            }
            sent += 1;
            Command::Put {
                pri: p.pri,
                delay: p.delay,
                ttr: p.ttr,
                body: &p.body,
            }
            .encode(&mut bytes);
        }
        let server = b.server;
        let token_of = |t: &Option<Result<JobId, Error>>| match t {
            Some(Ok(t)) => Some(*t),
            _ => None,
        };
        let handle = |p: PreparedPut, id, token| JobHandle {
            id,
            identity: p.identity,
            tube: p.tube,
            chain: p.chain,
            token,
            server,
            existing: false,
        };
        let mut out = Vec::with_capacity(n);
        match self.lane(b.server).call(Some(b.tube), bytes, sent).await {
            Ok(replies) => {
                let mut replies = replies.into_iter();
                for (i, p) in b.puts.into_iter().enumerate() {
                    if let Some(e) = failed[i].take() {
                        out.push(Err(e));
                        continue;
                    }
                    let token = token_of(&tokens[i]);
                    let r = replies.next().map_or_else(
                        || Err(Error::Unexpected("missing reply".to_owned())),
                        put_result,
                    );
                    match r {
                        Ok(id) => out.push(Ok(handle(p, id, token))),
                        // DRAINING, OUT_OF_MEMORY: this job was not stored.
                        Err(e)
                            if !single && token.is_none() && fleet::refused_before_storing(&e) =>
                        {
                            self.server_failed(b.server, &e);
                            out.push(self.place(p).await);
                        }
                        Err(e) => {
                            if let Some(t) = token {
                                let _ = self.delete(b.server, t).await;
                            }
                            out.push(Err(e));
                        }
                    }
                }
            }
            Err(e) if !single && chained.is_empty() && fleet::refused_before_storing(&e) => {
                // Nothing of the batch was sent: place each job again.
                self.server_failed(b.server, &e);
                for p in b.puts {
                    out.push(self.place(p).await);
                }
            }
            Err(e) => {
                if matches!(e, Error::OutcomeUnknown { .. }) {
                    self.server_failed(b.server, &e);
                }
                out.extend((1..n).map(|_| Err(same_error(&e))));
                out.insert(0, Err(e));
            }
        }
        out
    }

    /// Deletes a job that is ready, delayed or buried (or reserved by no one),
    /// on `server` (an index into the URL's list: [Servers](Client#servers)).
    pub async fn delete(&self, server: usize, id: JobId) -> Result<(), Error> {
        match self.request(server, None, &Command::Delete(id)).await? {
            Response::Deleted => Ok(()),
            r => Err(other(r)),
        }
    }

    /// `peek <id>` on `server` ([Servers](Client#servers)): the body of any
    /// job, or `None` if it does not exist.
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

    /// The next ready job of `tube` on `server` ([Servers](Client#servers)),
    /// without reserving it.
    pub async fn peek_ready(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekReady).await
    }

    /// The delayed job of `tube` on `server` ([Servers](Client#servers)) that
    /// becomes ready first.
    pub async fn peek_delayed(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekDelayed).await
    }

    /// The oldest buried job of `tube` on `server` ([Servers](Client#servers)).
    pub async fn peek_buried(
        &self,
        server: usize,
        tube: &str,
    ) -> Result<Option<(JobId, Vec<u8>)>, Error> {
        self.peek_in(server, tube, Command::PeekBuried).await
    }

    /// Kicks up to `bound` buried (or else delayed) jobs of `tube` on `server`
    /// ([Servers](Client#servers)) back to ready; returns how many moved.
    pub async fn kick(&self, server: usize, tube: &str, bound: u32) -> Result<u64, Error> {
        match self
            .request(server, Some(tube), &Command::Kick(bound))
            .await?
        {
            Response::KickedCount(n) => Ok(n),
            r => Err(other(r)),
        }
    }

    /// Kicks one buried or delayed job on `server` ([Servers](Client#servers))
    /// back to ready.
    pub async fn kick_job(&self, server: usize, id: JobId) -> Result<(), Error> {
        match self.request(server, None, &Command::KickJob(id)).await? {
            Response::Kicked => Ok(()),
            r => Err(other(r)),
        }
    }

    /// `stats-job`: the state and counters of one job on `server`
    /// ([Servers](Client#servers)).
    pub async fn stats_job(&self, server: usize, id: JobId) -> Result<JobStats, Error> {
        let body = ok_body(self.request(server, None, &Command::StatsJob(id)).await?)?;
        JobStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `stats-tube`: counts of one tube on `server` ([Servers](Client#servers)).
    ///
    /// A tube that does not exist has zero counts ([`TubeStats::empty`]):
    /// beanstalkd deletes a tube as soon as no job is in it and no
    /// connection uses or watches it, so an empty tube is usually an absent
    /// one.
    pub async fn stats_tube(&self, server: usize, tube: &str) -> Result<TubeStats, Error> {
        match self
            .request(server, None, &Command::StatsTube(tube))
            .await?
        {
            Response::NotFound => Ok(TubeStats::empty(tube)),
            r => TubeStats::parse(&ok_body(r)?).map_err(|e| Error::Unexpected(e.to_string())),
        }
    }

    /// `stats`: the counters of `server` ([Servers](Client#servers)).
    pub async fn stats(&self, server: usize) -> Result<ServerStats, Error> {
        let body = ok_body(self.request(server, None, &Command::Stats).await?)?;
        ServerStats::parse(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `list-tubes`: every tube that exists on `server`
    /// ([Servers](Client#servers)).
    pub async fn list_tubes(&self, server: usize) -> Result<Vec<String>, Error> {
        let body = ok_body(self.request(server, None, &Command::ListTubes).await?)?;
        parse_list(&body).map_err(|e| Error::Unexpected(e.to_string()))
    }

    /// `pause-tube`: no job of `tube` on `server` ([Servers](Client#servers))
    /// is reserved for `delay`.
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
        match lane.call(tube, bytes.clone(), cmds.len()).await {
            // As in `request`: an idle connection that died is retried once.
            Err(Error::Io(_) | Error::Closed) => lane.call(tube, bytes, cmds.len()).await,
            r => r,
        }
    }

    /// Finds the job that replaced `handle`'s (a retry, or its burial with
    /// the error) by its identity among the jobs put after it, and deletes
    /// it if it waits. Bounded: at most [`REPLACEMENT_WALK`] ids after the
    /// handle's, read by pipelined `stats-job` (see the admin module).
    async fn cancel_replacement(&self, handle: &JobHandle) -> Result<bool, Error> {
        use crate::admin::scan;
        use crate::proto::stats::JobState;
        let server = handle.server;
        let top = scan::top_id(self, server, Some(handle.tube)).await?;
        let hi = top.min(handle.id.saturating_add(REPLACEMENT_WALK));
        let mut lo = handle.id + 1;
        while lo <= hi {
            let end = (lo + scan::BATCH - 1).min(hi);
            let (jobs, _) = scan::stats_range(self, server, lo, end).await?;
            for j in jobs.iter().filter(|j| j.tube == handle.tube) {
                let Some(body) = self.peek(server, j.id).await? else {
                    continue;
                };
                let same = crate::job::Envelope::parse(&body)
                    .is_ok_and(|e| e.identity() == Some(handle.identity.as_str()));
                if !same {
                    continue;
                }
                return match j.state {
                    JobState::Reserved => Ok(false),
                    _ => match self.delete(server, j.id).await {
                        Ok(()) => Ok(true),
                        Err(Error::NotFound) => Ok(false),
                        Err(e) => Err(e),
                    },
                };
            }
            lo = end + 1;
        }
        Ok(false)
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
                // Running, done, or replaced by a retry (a new job with
                // the same identity): look for the replacement.
                Err(Error::NotFound) => self.cancel_replacement(handle).await,
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
                    return Err(conn::timed_out(config.io_timeout));
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

/// Most job ids after a one-shot job's own that `cancel` reads to find its
/// replacement (a retry is a new job with the same identity).
const REPLACEMENT_WALK: u64 = 200_000;

/// Puts per write in [`Client::enqueue_many`].
const BULK_BATCH: usize = 1024;
/// Batches of [`Client::enqueue_many`] in flight at once.
const BULK_IN_FLIGHT: usize = 8;

/// One step of [`Client::enqueue_many`]: a job refused before sending, or a
/// batch of puts for one tube.
enum Slot {
    Failed(Error),
    Batch(Batch),
    /// A unique job: through its bucket's lock, on its own.
    Unique(PreparedPut),
}

struct Batch {
    tube: &'static str,
    server: usize,
    puts: Vec<PreparedPut>,
}

/// Releases the probe claim of a server when its probe task ends, however
/// it ends (its runtime may shut down): the next put starts a new one.
struct ProbeGuard {
    inner: Weak<Inner>,
    server: usize,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.fleet.release_probe(self.server);
        }
    }
}

/// An error of the same kind as `e`, for each job of a batch that failed
/// as a whole.
fn same_error(e: &Error) -> Error {
    match e {
        Error::OutcomeUnknown { addr, reason } => Error::OutcomeUnknown {
            addr: addr.clone(),
            reason: reason.clone(),
        },
        Error::Connect { addr, source } => Error::Connect {
            addr: addr.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::NoServerUp { servers } => Error::NoServerUp {
            servers: servers.clone(),
        },
        e => Error::Unexpected(e.to_string()),
    }
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
