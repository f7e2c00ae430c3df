//! What a job is: its registered descriptor, its options, its envelope.

mod body;
mod context;
mod enqueue;
mod envelope;
mod finite;

pub use body::{decode_json, decode_text, BodyError};
pub use context::{CurrentJob, JobContext};

pub(crate) use enqueue::{secs_ceil, set_due, set_enqueued, set_token};
pub use enqueue::{Enqueue, JobHandle, PreparedPut, Unique};

pub use envelope::{Envelope, Fields, ENVELOPE_VERSION};

use std::future::Future;
use std::pin::Pin;

/// The future a handler returns: the outcome of one run.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// The outcome of one run of a handler.
pub type Outcome = Result<(), Failure>;

/// How a run failed: the error's text and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error's `Display` text.
    pub message: String,
    /// Whether and when to try again.
    pub retry: Retry,
}

/// Whether and when a failed job is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retry {
    /// After the job's backoff, while retries are left (the default).
    #[default]
    Backoff,
    /// After this delay (whole seconds, rounded up), while retries are left.
    After(std::time::Duration),
    /// Never: bury the job now.
    Never,
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::from(message.to_owned())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            retry: Retry::Backoff,
        }
    }
}

/// An error a job function returns to say more than "failed":
/// `Result<(), bsjobs::JobError>`. Any `Display` error converts into it
/// with `?` (an ordinary failure, retried with backoff); the constructors
/// give up at once or ask for a specific delay.
///
/// ```
/// use bsjobs::JobError;
///
/// #[bsjobs::job(tube = "charge", retries = 5)]
/// async fn charge(order: u64) -> Result<(), JobError> {
///     if order == 0 {
///         // No retry can fix this: bury the job now, with this error.
///         return Err(JobError::permanent("order 0 does not exist"));
///     }
///     // Rate limited: try again in a minute (counts as an attempt).
///     Err(JobError::retry_in(std::time::Duration::from_secs(60), "gateway busy"))
/// }
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct JobError(Failure);

impl JobError {
    /// A failure no retry can fix: the job is buried at once.
    pub fn permanent(error: impl std::fmt::Display) -> Self {
        JobError(Failure {
            message: error.to_string(),
            retry: Retry::Never,
        })
    }

    /// A failure to retry after `delay` rather than the backoff (while
    /// retries are left).
    pub fn retry_in(delay: std::time::Duration, error: impl std::fmt::Display) -> Self {
        JobError(Failure {
            message: error.to_string(),
            retry: Retry::After(delay),
        })
    }

    /// What the worker makes of it.
    pub fn failure(&self) -> &Failure {
        &self.0
    }
}

impl<E: std::fmt::Display> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError(Failure::from(e.to_string()))
    }
}

/// Decodes the `args` object of an envelope and starts the job function,
/// handing it `ctx` if it takes a [`JobContext`] parameter.
///
/// An `Err` means the arguments could not be decoded; the job is buried.
pub type ArgsHandler = fn(args: &str, ctx: JobContext) -> Result<HandlerFuture, serde_json::Error>;

/// Starts the function of a raw job with the job's whole body, handing it
/// `ctx` if it takes a [`JobContext`] parameter.
///
/// An `Err` means the body could not be decoded; the job is buried.
pub type RawHandler = fn(body: &[u8], ctx: JobContext) -> Result<HandlerFuture, BodyError>;

/// How the worker starts a job function.
#[derive(Debug, Clone, Copy)]
pub enum Handler {
    /// A job whose body is the bsjobs envelope: its `args` go to the function.
    Args(ArgsHandler),
    /// A raw job (`#[job(raw)]`): the body is the producer's bytes, given to
    /// the function whole.
    Raw {
        /// Starts the function.
        run: RawHandler,
        /// Whether the function takes a [`JobContext`]: the worker then reads
        /// the job's counters from beanstalkd before the run.
        context: bool,
    },
}

/// A job type: implemented by the type `#[bsjobs::job]` generates for a
/// job function (`Charge` for `charge`). Typed APIs take it as a type
/// parameter, so that naming something that is not a job is a compile
/// error: per-job hooks
/// ([`Worker::hook_for`](crate::Worker::hook_for),
/// [`Client::add_hook_for`](crate::Client::add_hook_for)).
///
/// ```
/// #[bsjobs::job(tube = "charge")]
/// async fn charge(order: u64) {}
///
/// fn tube_of<J: bsjobs::Job>() -> &'static str {
///     J::TUBE
/// }
/// assert_eq!(tube_of::<Charge>(), "charge");
/// ```
/// Implement it only through the attribute: a job is its tube, and the
/// attribute registers the handler for it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a bsjobs job type",
    label = "not generated by #[bsjobs::job]",
    note = "name the type `#[bsjobs::job]` generates for a job function: `Charge` for `async fn charge(..)`"
)]
pub trait Job: 'static {
    /// The beanstalkd tube of the job (the attribute's `tube`).
    const TUBE: &'static str;
}

/// Everything the worker knows about one job type. The `#[job]` attribute
/// registers one per function with `inventory`.
#[derive(Debug)]
pub struct JobDescriptor {
    /// The function's name.
    pub name: &'static str,
    /// The beanstalkd tube its jobs go to.
    pub tube: &'static str,
    /// Options from the attribute.
    pub options: JobOptions,
    /// Source file of the function.
    pub file: &'static str,
    /// Source line of the function.
    pub line: u32,
    /// Decodes arguments (or takes the raw body) and runs the function.
    pub handler: Handler,
}

inventory::collect!(JobDescriptor);

impl JobDescriptor {
    /// Every job linked into this binary, in no particular order.
    pub fn all() -> impl Iterator<Item = &'static JobDescriptor> {
        inventory::iter::<JobDescriptor>.into_iter()
    }

    /// `file:line` of the function, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Options of a job type; every duration is in whole seconds, beanstalkd's grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    /// beanstalkd priority, smaller runs first. Default 1024.
    pub priority: u32,
    /// Time to run in seconds. Default 60.
    pub ttr: u32,
    /// Delay before the first run, in seconds. Default 0.
    pub delay: u32,
    /// Seconds between runs of a repeating job; `None` for a one-shot job.
    pub repeat: Option<u32>,
    /// Number of successful runs after which a repeating job stops.
    pub max: Option<u32>,
    /// Retries after the first failed attempt. Default 3.
    pub retries: u32,
    /// Base backoff in seconds before the first retry; doubles per retry,
    /// with jitter, capped at one hour. Default 5.
    pub backoff: u32,
    /// Longest a single run may take before it counts as failed.
    pub timeout: Option<u32>,
    /// Cron schedule of a cron job: 5 fields (minute hour day-of-month
    /// month day-of-week) or 6 with leading seconds; `None` for other jobs.
    /// `#[job]` checks it at compile time with `croner` 4 as
    /// `CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed)`,
    /// and that it fires at least once; the runtime must parse it the same way.
    pub cron: Option<&'static str>,
    /// IANA time zone the cron schedule is read in; `None`: UTC. Checked at
    /// compile time to be a `chrono_tz::Tz` name.
    pub tz: Option<&'static str>,
    /// What a cron job does about ticks missed while no worker ran.
    pub catch_up: CatchUp,
    /// A unique job (`unique_for = "1h"`): seconds after its enqueue during
    /// which another enqueue with the same key returns this job instead of
    /// putting a second one (and for as long as it waits, is delayed or
    /// runs, whatever this says); `None` for jobs that are not unique.
    pub unique_for: Option<u32>,
}

/// What a cron job does about ticks missed while no worker was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// One run on return for all the missed ticks, then the schedule
    /// (`catch_up = "one"`, the default).
    #[default]
    One,
    /// Missed ticks are skipped (`catch_up = "none"`).
    None,
}

impl JobOptions {
    /// The defaults documented on `#[job]`.
    pub const DEFAULT: JobOptions = JobOptions {
        priority: 1024,
        ttr: 60,
        delay: 0,
        repeat: None,
        max: None,
        retries: 3,
        backoff: 5,
        timeout: None,
        cron: None,
        tz: None,
        catch_up: CatchUp::One,
        unique_for: None,
    };
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Turns what a job function returns into an outcome.
///
/// Implemented for `()`, for `Result<(), E>` where `E: Display`, and for
/// `Result<(), JobError>`.
#[diagnostic::on_unimplemented(
    message = "a bsjobs job must return `()` or `Result<(), E>` where `E: Display`",
    label = "this return type is not supported by #[bsjobs::job]"
)]
pub trait IntoOutcome {
    /// `Err` carries the error's `Display` text (and, for [`JobError`],
    /// what to do about it).
    fn into_outcome(self) -> Outcome;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Outcome {
        Ok(())
    }
}

impl<E: std::fmt::Display> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Outcome {
        self.map_err(|e| Failure::from(e.to_string()))
    }
}

impl IntoOutcome for Result<(), JobError> {
    fn into_outcome(self) -> Outcome {
        self.map_err(|e| e.0)
    }
}
