//! What a job is: its registered descriptor, its options, its envelope.

mod enqueue;
mod envelope;
mod finite;

pub(crate) use enqueue::secs_ceil;
pub use enqueue::{Enqueue, JobHandle, PreparedPut};
pub use envelope::{Envelope, Fields, ENVELOPE_VERSION};

use std::future::Future;
use std::pin::Pin;

/// The future a handler returns: the outcome of one run.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// Decodes the `args` object of an envelope and starts the job function.
///
/// An `Err` means the arguments could not be decoded; the job is buried.
pub type Handler = fn(args: &str) -> Result<HandlerFuture, serde_json::Error>;

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
    /// Decodes arguments and runs the function.
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
    };
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Turns what a job function returns into an outcome.
///
/// Implemented for `()` and for `Result<(), E>` where `E: Display`.
#[diagnostic::on_unimplemented(
    message = "a bsjobs job must return `()` or `Result<(), E>` where `E: Display`",
    label = "this return type is not supported by #[bsjobs::job]"
)]
pub trait IntoOutcome {
    /// `Err` carries the error's `Display` text.
    fn into_outcome(self) -> Result<(), String>;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}
