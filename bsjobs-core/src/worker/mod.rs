//! The worker runtime: reserve loops, handlers, outcomes, shutdown.
//!
//! [`Worker::run`] runs one reserve loop per (server, tube) (`tube.rs`). A
//! job travels one way: the loop reserves it and spawns a task; the task
//! (`execute.rs`) runs the handler and returns a verdict, data that says what
//! should become of the job; the loop turns the verdict into the commands
//! that settle it (`settle.rs`, and `chain.rs` for steps of a repeating
//! chain), sent on the connection that reserved the job, batched with the
//! next reserves. See the README for the semantics.

pub(crate) mod chain;
mod cmd;
pub(crate) mod cron;
mod execute;
mod log;
mod raw;
mod settle;
mod shutdown;
mod status;
mod tube;

pub use crate::job::CurrentJob;
pub use execute::current_job;
#[doc(hidden)]
pub use execute::with_current_job;
pub use shutdown::Shutdown;
pub use status::{ServerState, WorkerStatus};

use crate::client::{Client, ClientConfig};
use crate::hook::{Hook, HookSet};
use crate::job::JobDescriptor;
use crate::Error;
use std::collections::HashMap;
use std::time::Duration;

/// Default number of jobs of one tube that run at once.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Configures and runs a worker.
///
/// ```no_run
/// # async fn f() -> Result<(), bsjobs::Error> {
/// use std::time::Duration;
/// bsjobs::Worker::from_env()?
///     .concurrency(64)
///     .tube_concurrency("email", 4)
///     .grace(Duration::from_secs(10))
///     .run()
///     .await
/// # }
/// ```
/// Defaults: servers from `BSJOBS_URL` (else `127.0.0.1:11300`), every tube
/// registered with `#[job]`, [`DEFAULT_CONCURRENCY`] jobs per tube, 30 s
/// grace period, SIGINT/SIGTERM as the shutdown signal.
#[derive(Debug, Clone)]
pub struct Worker {
    config: ClientConfig,
    tubes: Option<Vec<String>>,
    concurrency: usize,
    per_tube: HashMap<String, usize>,
    grace: Duration,
    shutdown: Option<Shutdown>,
    hooks: HookSet,
    metrics: Option<std::net::SocketAddr>,
    status: Option<WorkerStatus>,
}

impl Worker {
    /// A worker for the servers of `config`.
    pub fn new(config: ClientConfig) -> Self {
        Worker {
            config,
            tubes: None,
            concurrency: DEFAULT_CONCURRENCY,
            per_tube: HashMap::new(),
            grace: Duration::from_secs(30),
            shutdown: None,
            hooks: HookSet::default(),
            metrics: None,
            status: None,
        }
    }

    /// A worker for the servers named by `BSJOBS_URL`; with
    /// `BSJOBS_METRICS_ADDR` (`host:port`) set, it serves Prometheus metrics
    /// there (see [`Worker::metrics`]).
    pub fn from_env() -> Result<Self, Error> {
        let mut w = Self::new(ClientConfig::from_env()?);
        if let Ok(addr) = std::env::var("BSJOBS_METRICS_ADDR") {
            if !addr.trim().is_empty() {
                let addr = addr.trim().parse().map_err(|_| Error::BadUrl {
                    url: addr.clone(),
                    reason: "BSJOBS_METRICS_ADDR must be host:port, e.g. 127.0.0.1:9187",
                })?;
                w.metrics = Some(addr);
            }
        }
        Ok(w)
    }

    /// Serves Prometheus metrics at `http://<addr>/metrics`: jobs
    /// succeeded, failed, buried and undecodable, run duration and queue
    /// latency histograms, jobs in flight, and queue depth per state read
    /// from beanstalkd at each scrape, all by tube. Bind to loopback unless
    /// the network in between is yours.
    pub fn metrics(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics = Some(addr);
        self
    }

    /// A worker for `url` (`beanstalk://host:port[,host:port…]`).
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Self::new(ClientConfig::from_url(url)?))
    }

    /// Runs only these tubes (each must have a registered handler).
    pub fn tubes<I, S>(mut self, tubes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tubes = Some(tubes.into_iter().map(Into::into).collect());
        self
    }

    /// Jobs per tube that run at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Jobs of `tube` that run at once, overriding [`Worker::concurrency`].
    pub fn tube_concurrency(mut self, tube: impl Into<String>, n: usize) -> Self {
        self.per_tube.insert(tube.into(), n.max(1));
        self
    }

    /// How long in-flight jobs may run on after shutdown before they are
    /// released back to the queue.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Adds a [hook](crate::hook) that wraps every run and hears every
    /// lifecycle event; hooks run in the order they are added, the first
    /// outermost.
    pub fn hook(mut self, hook: impl Hook) -> Self {
        self.hooks.add(std::sync::Arc::new(hook));
        self
    }

    /// Adds a [hook](crate::hook) for the jobs of one type only, `J` (the
    /// type `#[bsjobs::job]` generates: `Charge` for `charge`): it wraps
    /// their runs and hears their events, and sees no other job. A job's
    /// global hooks ([`Worker::hook`]) are outside its own: they run first
    /// and wrap the per-job ones, whatever the order of registration.
    ///
    /// ```
    /// use bsjobs::hook::{Event, Hook};
    ///
    /// #[bsjobs::job(tube = "charge", retries = 5)]
    /// async fn charge(order: u64) {}
    ///
    /// /// Marks an order failed once its charge is given up.
    /// struct MarkFailed;
    /// impl Hook for MarkFailed {
    ///     fn on_event(&self, event: &Event<'_>) {
    ///         if let Event::Buried { job, error } = event {
    ///             eprintln!("charge {:?} given up: {error}", job.identity);
    ///         }
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), bsjobs::Error> {
    /// let worker = bsjobs::Worker::from_url("beanstalk://127.0.0.1:11300")?
    ///     .hook_for::<Charge>(MarkFailed);
    /// # let _ = worker; Ok(()) }
    /// ```
    pub fn hook_for<J: crate::job::Job>(mut self, hook: impl Hook) -> Self {
        self.hooks.add_for(J::TUBE, std::sync::Arc::new(hook));
        self
    }

    /// A live view of this worker's servers, up or down, each seen by its
    /// own reserve loops; call before [`Worker::run`] and read it while the
    /// worker runs.
    pub fn status(&mut self) -> WorkerStatus {
        self.status
            .get_or_insert_with(|| WorkerStatus::new(&self.config.servers))
            .clone()
    }

    /// Stops on this signal instead of SIGINT/SIGTERM.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// The handlers this worker would run, checked: one per tube, every
    /// selected tube known. Each [`JobDescriptor`] names a job function,
    /// its tube, its options and where it is defined; sorted by tube.
    ///
    /// Fails with [`Error::DuplicateTube`] when two functions claim one tube,
    /// [`Error::UnknownTube`] for a selected tube without a handler, and
    /// [`Error::NoJobs`] when there is nothing to run (a jobs crate that is
    /// not linked: see [`run`](crate::run)).
    pub fn descriptors(&self) -> Result<Vec<&'static JobDescriptor>, Error> {
        let mut by_tube: HashMap<&'static str, &'static JobDescriptor> = HashMap::new();
        let mut all: Vec<&'static JobDescriptor> = JobDescriptor::all().collect();
        all.sort_by_key(|d| (d.tube, d.file, d.line));
        for d in all {
            if let Some(first) = by_tube.insert(d.tube, d) {
                return Err(Error::DuplicateTube {
                    tube: d.tube,
                    first: first.name,
                    first_at: first.location(),
                    second: d.name,
                    second_at: d.location(),
                });
            }
        }
        let mut chosen: Vec<&'static JobDescriptor> = match &self.tubes {
            None => by_tube.into_values().collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    by_tube
                        .get(n.as_str())
                        .copied()
                        .ok_or_else(|| Error::UnknownTube(n.clone()))
                })
                .collect::<Result<_, _>>()?,
        };
        if chosen.is_empty() {
            return Err(Error::NoJobs);
        }
        chosen.sort_by_key(|d| d.tube);
        Ok(chosen)
    }

    /// Runs until the shutdown signal, then drains in-flight work within the
    /// grace period and returns.
    pub async fn run(self) -> Result<(), Error> {
        let descriptors = self.descriptors()?;
        let shutdown = match &self.shutdown {
            Some(s) => s.clone(),
            None => {
                let s = Shutdown::new();
                s.on_signals();
                s
            }
        };
        let control = Client::with_config(self.config.clone());
        let log = log::Limiter::default();
        let status = self
            .status
            .clone()
            .unwrap_or_else(|| WorkerStatus::new(&self.config.servers));
        let mut tasks = tokio::task::JoinSet::new();
        let mut hooks = self.hooks.clone();
        if let Some(addr) = self.metrics {
            let m = crate::metrics::Metrics::new();
            hooks.add(std::sync::Arc::new(crate::metrics::MetricsHook(m.clone())));
            tasks.spawn(crate::metrics::serve(
                addr,
                m,
                control.clone(),
                descriptors.iter().map(|d| d.tube).collect(),
                shutdown.clone(),
            ));
        }
        for (server, addr) in self.config.servers.iter().enumerate() {
            for d in &descriptors {
                let concurrency = self
                    .per_tube
                    .get(d.tube)
                    .copied()
                    .unwrap_or(self.concurrency);
                let lp = tube::TubeLoop::new(tube::Settings {
                    addr: addr.clone(),
                    server,
                    config: self.config.clone(),
                    descriptor: d,
                    concurrency,
                    grace: self.grace,
                    shutdown: shutdown.clone(),
                    control: control.clone(),
                    log: log.clone(),
                    hooks: hooks.for_tube(d.tube),
                    status: status.clone(),
                });
                tasks.spawn(lp.run());
            }
        }
        let crons = descriptors
            .iter()
            .filter_map(|d| cron::schedule_of(d).map(|s| (*d, s)))
            .map(|(d, s)| {
                s.map(|s| (d, s)).map_err(|reason| Error::BadSchedule {
                    tube: d.tube,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        for (server, group) in cron::by_server(crons, self.config.servers.len()) {
            let addr = self.config.servers[server].clone();
            tasks.spawn(bootstrap_cron(
                addr,
                self.config.clone(),
                group,
                shutdown.clone(),
                log.clone(),
            ));
        }
        tracing::info!(
            tubes = ?descriptors.iter().map(|d| d.tube).collect::<Vec<_>>(),
            servers = ?self.config.servers,
            "bsjobs worker started"
        );
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                if e.is_panic() {
                    shutdown.trigger();
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        tracing::info!("bsjobs worker stopped");
        Ok(())
    }
}

/// Gives every cron job of `group` its one chain on the server at `addr`,
/// trying again (with a pause) while the server cannot be reached.
async fn bootstrap_cron(
    addr: String,
    config: ClientConfig,
    group: Vec<(&'static JobDescriptor, cron::Schedule)>,
    shutdown: Shutdown,
    log: log::Limiter,
) {
    let mut pause = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        match cron::ensure(&addr, &config, &group).await {
            Ok(()) => return,
            Err(e) => {
                if log.allow() {
                    tracing::warn!(server = %addr, error = %e, "cannot schedule cron jobs yet; trying again");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
