//! Hooks: one way to observe and shape jobs on both sides.
//!
//! A [`Hook`] registered on a [`Client`](crate::Client)
//! ([`Client::add_hook`](crate::Client::add_hook)) sees every job that
//! client enqueues and may change or refuse it; registered on a
//! [`Worker`](crate::Worker) ([`Worker::hook`](crate::Worker::hook)) it
//! wraps every run of a handler, like a tower layer, and hears every
//! lifecycle event, like a tracing subscriber. Every method has a default
//! that does nothing, so a hook implements only what it needs:
//!
//! ```
//! use bsjobs::hook::{Event, Hook, Outgoing};
//!
//! /// Counts outcomes and tags every job with the app's version.
//! #[derive(Default)]
//! struct Audit(std::sync::atomic::AtomicU64);
//!
//! impl Hook for Audit {
//!     fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
//!         job.set_meta("version", "1.4.2");
//!         Ok(())
//!     }
//!     fn on_event(&self, event: &Event<'_>) {
//!         if let Event::Buried { job, error } = event {
//!             eprintln!("job {} of {} buried: {error}", job.id, job.tube);
//!         }
//!         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     }
//! }
//! ```
//! Wrapping every run, like a tower layer ([`HandlerFuture`] is the run;
//! its [`Outcome`] is `Ok(())` or the [`Failure`] the worker acts on):
//!
//! ```
//! use bsjobs::hook::{HandlerFuture, Hook};
//! use bsjobs::CurrentJob;
//!
//! struct Timing;
//!
//! impl Hook for Timing {
//!     fn around(&self, job: &CurrentJob, run: HandlerFuture) -> HandlerFuture {
//!         let (tube, id) = (job.tube, job.id);
//!         Box::pin(async move {
//!             let began = std::time::Instant::now();
//!             let outcome = run.await;
//!             eprintln!("{tube} {id}: ok={} in {:?}", outcome.is_ok(), began.elapsed());
//!             outcome
//!         })
//!     }
//! }
//! ```
//!
//! Metadata set on the enqueue side travels in the envelope (`meta`) and is
//! seen by the handler's side as [`JobContext::meta`](crate::job::JobContext::meta). With the cargo
//! feature `opentelemetry`, every client starts with one hook of its own,
//! ahead of those added: it sets `meta.traceparent` (module `otel`).
//!
//! # Per job
//! [`Client::add_hook_for`](crate::Client::add_hook_for) and
//! [`Worker::hook_for`](crate::Worker::hook_for) register a hook for one
//! job type, named by the type `#[bsjobs::job]` generates: it sees that
//! job's enqueues, runs and events and nothing else. The hooks of a job run
//! in this order: the global ones first, each group in the order it was
//! registered; so a global hook's `around` wraps the job's own hooks, and
//! a global `on_enqueue` has run when the job's own sees the job.
//!
//! ```
//! # use bsjobs::hook::Hook;
//! # struct Timing; impl Hook for Timing {}
//! # struct MarkFailed; impl Hook for MarkFailed {}
//! #[bsjobs::job(tube = "charge")]
//! async fn charge(order: u64) {}
//!
//! # fn main() -> Result<(), bsjobs::Error> {
//! let worker = bsjobs::Worker::from_url("beanstalk://127.0.0.1:11300")?
//!     .hook_for::<Charge>(MarkFailed) // inside Timing, for Charge only
//!     .hook(Timing); // every job
//! # let _ = worker; Ok(()) }
//! ```
//! Naming a type that is not a job does not compile:
//! ```compile_fail
//! # struct Timing; impl bsjobs::hook::Hook for Timing {}
//! # fn f(client: &bsjobs::Client) {
//! client.add_hook_for::<String>(Timing);
//! # }
//! ```

pub use crate::job::{Failure, HandlerFuture, Outcome};
use crate::proto::JobId;
pub use crate::worker::CurrentJob;
use std::sync::Arc;
use std::time::Duration;

/// Observes and shapes jobs; see the [module docs](self).
pub trait Hook: Send + Sync + 'static {
    /// A job is about to be put: read or change it; `Err` refuses the
    /// enqueue with [`Error::Refused`](crate::Error::Refused).
    fn on_enqueue(&self, job: &mut Outgoing<'_>) -> Result<(), String> {
        let _ = job;
        Ok(())
    }

    /// Wraps one run of a handler (time it, enter a span, catch something).
    /// The returned future is what the worker runs.
    fn around(&self, job: &CurrentJob, run: HandlerFuture) -> HandlerFuture {
        let _ = job;
        run
    }

    /// A lifecycle event of a job on the worker side.
    fn on_event(&self, event: &Event<'_>) {
        let _ = event;
    }
}

/// A job about to be enqueued, as a [`Hook`] sees it.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Destination tube.
    pub tube: &'a str,
    /// beanstalkd priority.
    pub priority: u32,
    /// Delay in seconds.
    pub delay: u32,
    /// Time to run in seconds.
    pub ttr: u32,
    pub(crate) meta: serde_json::Map<String, serde_json::Value>,
}

impl Outgoing<'_> {
    /// Adds `key: value` to the job's metadata (the envelope's `meta`).
    pub fn set_meta(&mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) {
        self.meta.insert(key.into(), value.into());
    }

    /// The metadata set so far.
    pub fn meta(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.meta
    }
}

/// What happened to a job on the worker side.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The handler is about to run. `waited`: how long the job was due
    /// before it started (queue latency), when its envelope says when it
    /// became due.
    Started {
        /// The job.
        job: &'a CurrentJob,
        /// Queue latency.
        waited: Option<Duration>,
    },
    /// The handler succeeded.
    Succeeded {
        /// The job.
        job: &'a CurrentJob,
        /// How long the handler ran.
        took: Duration,
    },
    /// The handler failed and the job will be retried.
    Failed {
        /// The job.
        job: &'a CurrentJob,
        /// The error's text.
        error: &'a str,
        /// Seconds until the retry.
        retry_in: u32,
        /// How long the handler ran.
        took: Duration,
    },
    /// The job was given up and buried (retries spent, or a permanent
    /// failure).
    Buried {
        /// The job.
        job: &'a CurrentJob,
        /// The last error's text.
        error: &'a str,
    },
    /// A repeating (or cron) chain ended: its last run is done (`max`
    /// reached), or it was cancelled; its last job and its token are
    /// deleted.
    ChainEnded {
        /// Its tube.
        tube: &'a str,
        /// beanstalkd id of its last job.
        id: JobId,
        /// Why it ended.
        reason: ChainEnd,
    },
    /// The body could not be decoded; the job was buried without running.
    Undecodable {
        /// Its tube.
        tube: &'a str,
        /// Its id.
        id: JobId,
        /// Why.
        error: &'a str,
    },
}

/// Why a chain ended ([`Event::ChainEnded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainEnd {
    /// It ran `max` times.
    MaxRuns,
    /// It was cancelled ([`JobHandle::cancel`](crate::job::JobHandle::cancel)).
    Cancelled,
}

/// The hooks one job sees, in order: the global ones, then its own.
#[derive(Clone, Default)]
pub(crate) struct Hooks(pub(crate) Vec<Arc<dyn Hook>>);

/// The hooks registered on one side: global ones, and per-job ones keyed
/// by the job's tube (one tube, one job type).
#[derive(Clone, Default)]
pub(crate) struct HookSet {
    global: Vec<Arc<dyn Hook>>,
    per_job: Vec<(&'static str, Arc<dyn Hook>)>,
}

impl std::fmt::Debug for HookSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} global hooks, {} per-job hooks",
            self.global.len(),
            self.per_job.len()
        )
    }
}

impl HookSet {
    /// The hooks a new client starts with: none, or with the feature
    /// `opentelemetry` the one that puts the trace context into `meta`,
    /// ahead of every hook added.
    pub(crate) fn for_client() -> Self {
        let built_in: Vec<Arc<dyn Hook>> = vec![
            #[cfg(feature = "opentelemetry")]
            Arc::new(crate::otel::Inject),
        ];
        HookSet {
            global: built_in,
            per_job: Vec::new(),
        }
    }

    /// Adds a hook for every job.
    pub(crate) fn add(&mut self, hook: Arc<dyn Hook>) {
        self.global.push(hook);
    }

    /// Adds a hook for the jobs of `tube` only.
    pub(crate) fn add_for(&mut self, tube: &'static str, hook: Arc<dyn Hook>) {
        self.per_job.push((tube, hook));
    }

    /// The hooks a job of `tube` sees: the global ones first (outermost),
    /// then its own, each group in order of registration.
    pub(crate) fn iter_for<'a>(&'a self, tube: &'a str) -> impl Iterator<Item = &'a Arc<dyn Hook>> {
        self.global.iter().chain(
            self.per_job
                .iter()
                .filter(move |(t, _)| *t == tube)
                .map(|(_, h)| h),
        )
    }

    /// [`HookSet::iter_for`], collected.
    pub(crate) fn for_tube(&self, tube: &str) -> Hooks {
        Hooks(self.iter_for(tube).cloned().collect())
    }
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} hooks", self.0.len())
    }
}

impl Hooks {
    pub(crate) fn event(&self, e: &Event<'_>) {
        for h in &self.0 {
            h.on_event(e);
        }
    }

    /// The handler's future wrapped by every hook, the first registered
    /// outermost.
    pub(crate) fn wrap(&self, job: &CurrentJob, mut run: HandlerFuture) -> HandlerFuture {
        for h in self.0.iter().rev() {
            run = h.around(job, run);
        }
        run
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
