use crate::proto::JobId;
use std::time::SystemTime;

/// What a running job knows about itself.
///
/// Take it as a parameter of a job function, in any position; it is not one
/// of the job's arguments (`enqueue` does not take it) but is filled in by
/// the worker for each run:
///
/// ```
/// use bsjobs::JobContext;
///
/// #[bsjobs::job(tube = "charge", retries = 5)]
/// async fn charge(order: u64, ctx: JobContext) -> Result<(), String> {
///     if ctx.attempt > 1 {
///         // `id` is this attempt's beanstalkd job; `identity` and
///         // `enqueued_at` are the same for every attempt.
///         let waited = ctx.enqueued_at.and_then(|t| t.elapsed().ok());
///         println!(
///             "order {order}: attempt {} (job {}, {:?}), enqueued {waited:?} ago",
///             ctx.attempt, ctx.id, ctx.identity
///         );
///     }
///     Ok(())
/// }
///
/// # async fn app() -> Result<(), bsjobs::Error> {
/// Charge::enqueue(42).await?; // the context is not an argument
/// # Ok(()) }
/// # fn main() {}
/// ```
///
/// The function stays an ordinary function: to call it directly, for
/// instance in a unit test, make a context with [`JobContext::new`].
///
/// Counters start at 1. A retry or the next run of a repeating job is a new
/// beanstalkd job, so [`id`](Self::id) changes between attempts and runs;
/// [`identity`](Self::identity), `chain` and
/// [`enqueued_at`](Self::enqueued_at) do not.
///
/// # One type for handlers and hooks
/// The same value is what [`current_job`](crate::worker::current_job)
/// returns inside a handler (async or plain `fn`) and what
/// [hooks](crate::hook) see
/// (there under its other name, [`CurrentJob`]): a handler that wants it
/// without changing its signature calls `bsjobs::current_job()`, and a
/// hook reads the fields a handler reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobContext {
    /// beanstalkd id of the current job (of this attempt of this run).
    pub id: JobId,
    /// The tube the job was reserved from.
    pub tube: &'static str,
    /// Which attempt this is: 1 for the first, 2 for the first retry, ….
    /// A kicked job keeps counting until it fails again, which then starts
    /// a fresh set of attempts.
    pub attempt: u32,
    /// Which run of a repeating job this is: 1 for the first; always 1 for
    /// a one-shot job.
    pub run: u32,
    /// Chain id of a repeating job, the same for all its runs; `None` for a
    /// one-shot job.
    pub chain: Option<String>,
    /// Index of the server (in the worker's list) the job came from.
    pub server: usize,
    /// The job's stable identity, the same across retries, burial, kicks
    /// and the runs of a chain (see `JobHandle::identity`); `None` for a
    /// body put without one (another language's producer, a raw job).
    pub identity: Option<String>,
    /// When the job was first enqueued (the envelope's `enq`), the same for
    /// every attempt; for a repeating chain, when the chain was enqueued,
    /// the same for every run. A raw job's is its age in beanstalkd (reset
    /// by nothing but a new put). `None` when not known: a body put without
    /// `enq` by another producer.
    pub enqueued_at: Option<SystemTime>,
    /// The tick of a cron job's schedule this run is for (Unix seconds).
    pub tick: Option<i64>,
    /// Metadata enqueue hooks added (the envelope's `meta`).
    pub meta: Option<serde_json::Value>,
}

/// The job a handler runs for, as [hooks](crate::hook) and
/// [`current_job`](crate::worker::current_job) name it: the same type as
/// [`JobContext`] (hooks were written against this name first; both stay).
pub type CurrentJob = JobContext;

impl JobContext {
    /// A context for the first attempt of the first run of job `id` in
    /// `tube`, with no chain, server 0 and no identity: what a unit test
    /// passes when it calls a job function directly. Change the public
    /// fields to test other cases.
    pub fn new(tube: &'static str, id: JobId) -> Self {
        JobContext {
            id,
            tube,
            attempt: 1,
            run: 1,
            chain: None,
            server: 0,
            identity: None,
            enqueued_at: None,
            tick: None,
            meta: None,
        }
    }
}
