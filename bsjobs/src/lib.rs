//! Typed background jobs for Rust on top of [beanstalkd](https://beanstalkd.github.io/).
//!
//! # A job is a function
//!
//! ```
//! #[bsjobs::job(tube = "email", priority = 10, retries = 5)]
//! async fn send_email(to: String, subject: String) -> Result<(), std::io::Error> {
//!     println!("to {to}: {subject}");
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//! The attribute keeps `send_email` as it is and adds a type `SendEmail` whose
//! `enqueue` takes exactly the function's arguments. The job is registered
//! with every worker binary it is linked into; see [`job`] for the arguments.
//!
//! # Enqueue it
//!
//! ```no_run
//! # #[bsjobs::job(tube = "email")]
//! # async fn send_email(to: String, subject: String) {}
//! # async fn app() -> Result<(), bsjobs::Error> {
//! use std::time::{Duration, SystemTime};
//! // Right away, through the client for BSJOBS_URL (or Client::set_global).
//! let handle = SendEmail::enqueue("ada@example.com".into(), "Welcome".into()).await?;
//! println!("job {}", handle.id);
//! // With per-call options.
//! SendEmail::new("bob@example.com".into(), "Reminder".into())
//!     .delay(Duration::from_secs(90))
//!     .priority(5)
//!     .enqueue()
//!     .await?;
//! SendEmail::new("eve@example.com".into(), "Report".into())
//!     .at(SystemTime::now() + Duration::from_secs(3600))
//!     .enqueue()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Arguments are checked by the compiler:
//!
//! ```compile_fail
//! # #[bsjobs::job(tube = "email")]
//! # async fn send_email(to: String, subject: String) {}
//! # async fn app() -> Result<(), bsjobs::Error> {
//! SendEmail::enqueue("ada@example.com".into(), 42).await?; // subject is a String
//! # Ok(()) }
//! ```
//!
//! # The job's context
//!
//! A parameter of type [`JobContext`], in any position, is not an argument:
//! the worker fills it for each run.
//!
//! ```
//! use bsjobs::JobContext;
//!
//! #[bsjobs::job(tube = "charge", retries = 5)]
//! async fn charge(order: u64, ctx: JobContext) -> Result<(), String> {
//!     if ctx.attempt > 1 {
//!         println!("order {order}: attempt {} (job {})", ctx.attempt, ctx.id);
//!     }
//!     Ok(())
//! }
//!
//! # async fn app() -> Result<(), bsjobs::Error> {
//! Charge::enqueue(42).await?; // the context is not an argument
//! # Ok(()) }
//! # fn main() {
//! // A direct call, as in a unit test, makes its own context:
//! # let _ =
//! charge(42, JobContext::new("charge", 1));
//! # }
//! ```
//!
//! # The job's life around the handler
//!
//! A job keeps one identity, [`JobHandle::identity`], for its whole life,
//! while [`JobHandle::id`] is only the *current* beanstalkd job: a retry,
//! the copy a burial leaves and each run of a chain are new beanstalkd
//! jobs. The handler sees both, and when the job was first enqueued, in its
//! [`JobContext`]; returning a [`JobError`] gives up at once or picks the
//! retry delay:
//!
//! ```
//! use bsjobs::{JobContext, JobError};
//! use std::time::Duration;
//!
//! #[bsjobs::job(tube = "invoice", retries = 5)]
//! async fn invoice(order: u64, ctx: JobContext) -> Result<(), JobError> {
//!     let waited = ctx.enqueued_at.and_then(|t| t.elapsed().ok());
//!     println!("invoice {:?} (attempt {}, waited {waited:?})", ctx.identity, ctx.attempt);
//!     match order {
//!         // Buried now; its body keeps `err`: the error, the attempt, when,
//!         // the host and pid (the README shows one).
//!         0 => Err(JobError::permanent("order 0 does not exist")),
//!         // Tried again in a minute, while retries are left.
//!         1 => Err(JobError::retry_in(Duration::from_secs(60), "ledger locked")),
//!         _ => Ok(()),
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! [Hooks](hook) see and shape the jobs a [`Client`] enqueues and wrap the
//! runs of a [`Worker`]; registered for one job type
//! ([`Client::add_hook_for`], [`Worker::hook_for`]), they see only that
//! job, inside the global ones.
//!
//! # Unique jobs
//!
//! While a job with the same key waits, is delayed or runs (or for
//! `unique_for` after its enqueue), another enqueue puts nothing and returns
//! that job's handle, marked [`existing`](JobHandle::existing). The key is
//! the job's tube and arguments, or one given per call:
//!
//! ```no_run
//! #[bsjobs::job(tube = "sync_user", unique_for = "10m")]
//! async fn sync_user(user: u64) {}
//!
//! # async fn app() -> Result<(), bsjobs::Error> {
//! let first = SyncUser::enqueue(42).await?;
//! let again = SyncUser::enqueue(42).await?;
//! assert!(again.existing && again.identity == first.identity);
//! SyncUser::new(7).unique_key("user-7").enqueue().await?;
//! # Ok(()) }
//! # fn main() {}
//! ```
//!
//! It runs on beanstalkd alone, with no leader and no tube per key; the
//! README's "Unique jobs" says how, what it costs, and what a burial, a
//! restart or a crash does to a key.
//!
//! # Run a worker
//!
//! ```no_run
//! #[tokio::main]
//! async fn main() -> Result<(), bsjobs::Error> {
//!     bsjobs::run().await // every job linked into this binary, until SIGINT/SIGTERM
//! }
//! ```
//! [`Worker`] configures what `run` defaults: servers, tubes, concurrency,
//! shutdown signal, grace period. When the jobs live in another crate, the
//! worker names it with [`link!`] (`bsjobs::link!(shop_jobs);`), or Cargo
//! does not link it and `run` finds no job.
//!
//! # Look at a server
//!
//! The admin methods of [`Client`] read and act on one server (named by its
//! index in the URL's list, see [`Client`]): [`Client::stats_tube`] gives a
//! [`TubeStats`] (an absent tube reads as zero counts),
//! [`Client::stats_job`] a [`JobStats`] with its [`JobState`],
//! [`Client::stats`] the [`ServerStats`]; then peeks, kicks and deletes.
//!
//! ```no_run
//! # async fn f(handle: bsjobs::JobHandle) -> Result<(), bsjobs::Error> {
//! let client = bsjobs::Client::from_env()?;
//! let job = client.stats_job(handle.server, handle.id).await?;
//! if job.state == bsjobs::JobState::Buried {
//!     client.kick_job(handle.server, handle.id).await?;
//! }
//! let tube = client.stats_tube(0, "email").await?;
//! println!("{} ready, {} buried", tube.current_jobs_ready, tube.current_jobs_buried);
//! # Ok(()) }
//! ```
//!
//! # End to end, against a real beanstalkd
//!
//! [`testing::Beanstalkd`] starts a private server on a free loopback port:
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! static SEEN: AtomicU32 = AtomicU32::new(0);
//!
//! #[bsjobs::job(tube = "doc_add")]
//! async fn add(n: u32) {
//!     SEEN.fetch_add(n, Ordering::SeqCst);
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bsjobs::Error> {
//! let server = bsjobs::testing::Beanstalkd::start();
//! let client = bsjobs::Client::new(&server.url())?;
//! Add::new(2).client(&client).enqueue().await?;
//! Add::new(3).client(&client).enqueue().await?;
//!
//! let stop = bsjobs::Shutdown::new();
//! let worker = bsjobs::Worker::from_url(&server.url())?
//!     .tubes(["doc_add"])
//!     .shutdown(stop.clone());
//! let running = tokio::spawn(worker.run());
//! while SEEN.load(Ordering::SeqCst) < 5 {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! stop.trigger();
//! running.await.unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `opentelemetry` (off by default): an enqueue made inside a `tracing`
//!   span carries its W3C trace context in the envelope, and the worker's
//!   span for each attempt continues that trace; the module `otel` tells
//!   how.
#![warn(missing_docs, unreachable_pub)]

pub use bsjobs_core::admin;
pub use bsjobs_core::client::{Client, ClientConfig, ServerSpec, ServerStatus};
pub use bsjobs_core::hook;
pub use bsjobs_core::job::{
    CatchUp, Enqueue, Failure, Job, JobContext, JobDescriptor, JobError, JobHandle, JobOptions,
    PreparedPut, Retry, Unique,
};
#[cfg(feature = "opentelemetry")]
pub use bsjobs_core::otel;
pub use bsjobs_core::proto::stats::{JobState, JobStats, ServerStats, TubeStats};
pub use bsjobs_core::proto::JobId;
pub use bsjobs_core::testing;
pub use bsjobs_core::worker::{
    current_job, CurrentJob, ServerState, Shutdown, Worker, WorkerStatus, DEFAULT_CONCURRENCY,
};
pub use bsjobs_core::{run, Error, ServerDown};
/// **Jobs in another crate**: a worker runs the jobs *linked into its
/// binary*, and Cargo links a dependency only when the binary's code names
/// it. A worker whose jobs live in another crate names it once in its
/// `main.rs`, `bsjobs::link!(shop_jobs);` (or `use shop_jobs as _;`), or
/// [`run`] stops with [`Error::NoJobs`]. See [`link!`].
///
pub use bsjobs_macros::job;

/// Links crates whose `#[bsjobs::job]` functions this binary must run.
///
/// A worker runs every job linked into its binary, and Cargo links a
/// dependency only when the binary's code names it. In the usual layout,
/// jobs in a `shop-jobs` crate and a `shop-worker` binary that lists it in
/// `Cargo.toml` and calls [`run`], nothing names `shop_jobs`, the crate is
/// not linked, and `run` stops with [`Error::NoJobs`]. One line in the
/// worker's `main.rs` fixes that:
///
/// ```ignore
/// bsjobs::link!(shop_jobs); // several: bsjobs::link!(shop_jobs, billing_jobs);
///
/// #[tokio::main]
/// async fn main() -> Result<(), bsjobs::Error> {
///     bsjobs::run().await
/// }
/// ```
/// It expands to `use shop_jobs as _;`, which does the same.
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $(
            #[allow(unused_imports)]
            use $krate as _;
        )+
    };
}

/// Lower-level access: the sans-IO protocol and raw connections.
pub mod proto {
    pub use bsjobs_core::client::Connection;
    pub use bsjobs_core::proto::*;
}

#[doc(hidden)]
pub mod __private {
    pub use bsjobs_core::job::{
        decode_json, decode_text, BodyError, CatchUp, Enqueue, Handler, HandlerFuture, IntoOutcome,
        Job, JobContext, JobDescriptor, JobHandle, JobOptions, Outcome,
    };
    pub use bsjobs_core::Error;
    pub use inventory;
    pub use serde;
    pub use serde_json;
    pub use std::string::String;

    /// Runs a plain (non-async) job function on tokio's blocking pool.
    pub fn blocking<F>(f: F) -> HandlerFuture
    where
        F: FnOnce() -> Outcome + Send + 'static,
    {
        Box::pin(async move {
            // The job's span (`job{tube=… id=…}`) and the subscriber in
            // force are per-thread state: carry both to the blocking thread,
            // so the function's log lines read like an async job's.
            let span = tracing::Span::current();
            let dispatch = tracing::dispatcher::get_default(Clone::clone);
            // So is the job `current_job()` answers.
            let job = bsjobs_core::worker::current_job();
            let run = move || {
                bsjobs_core::worker::with_current_job(job, || {
                    tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
                })
            };
            match tokio::task::spawn_blocking(run).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    Err(format!("panicked: {}", panic_message(e.into_panic())).into())
                }
                Err(e) => Err(e.to_string().into()),
            }
        })
    }

    fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
        bsjobs_core::worker::panic_message(&*p)
    }
}
