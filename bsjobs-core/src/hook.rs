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
//! Metadata set on the enqueue side travels in the envelope (`meta`) and is
//! seen by the handler's side as [`CurrentJob::meta`]. With the cargo
//! feature `opentelemetry`, every client starts with one hook of its own,
//! ahead of those added: it sets `meta.traceparent` (module `otel`).

use crate::job::HandlerFuture;
use crate::proto::JobId;
pub use crate::worker::CurrentJob;
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

/// The hooks of one side, in order of registration.
#[derive(Clone, Default)]
pub(crate) struct Hooks(pub(crate) Vec<std::sync::Arc<dyn Hook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} hooks", self.0.len())
    }
}

impl Hooks {
    /// The hooks a new client starts with: none, or with the feature
    /// `opentelemetry` the one that puts the trace context into `meta`.
    pub(crate) fn for_client() -> Self {
        let built_in: Vec<std::sync::Arc<dyn Hook>> = vec![
            #[cfg(feature = "opentelemetry")]
            std::sync::Arc::new(crate::otel::Inject),
        ];
        Hooks(built_in)
    }

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
