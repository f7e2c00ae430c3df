//! The protocol, client and worker runtime behind [bsjobs](https://docs.rs/bsjobs).
//!
//! Applications use the `bsjobs` facade; this crate is its engine room:
//! - [`admin`]: list, decode and act on jobs, for operators' tools;
//! - [`proto`]: the beanstalkd protocol, sans-IO;
//! - [`client`]: async connections and the shared producer [`Client`];
//! - [`job`]: job descriptors, options, the envelope, enqueueing;
//! - [`worker`]: the runtime that reserves and runs jobs;
//! - [`testing`]: a real beanstalkd on a free loopback port, for tests;
//! - `otel` (cargo feature `opentelemetry`): W3C trace context from the
//!   enqueue to the handler's span.
#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod client;
mod error;
pub mod hook;
pub mod job;
mod metrics;
#[cfg(feature = "opentelemetry")]
pub mod otel;
pub mod proto;
pub mod testing;
pub mod worker;

pub use client::Client;
pub use error::{Error, ServerDown};
pub use worker::Worker;

/// Runs a worker with default settings for every job linked into this binary,
/// until SIGINT or SIGTERM. See [`Worker`] for what the defaults are.
///
/// "Linked" is meant literally: Cargo links a dependency into a binary only
/// when the binary's code names it. When the jobs live in another crate
/// (`shop_jobs`, used by a `shop-worker` binary that has nothing else to say
/// about it), name it once in the worker's `main.rs`, or `run` stops with
/// [`Error::NoJobs`]:
///
/// ```ignore
/// bsjobs::link!(shop_jobs); // the same as `use shop_jobs as _;`
///
/// #[tokio::main]
/// async fn main() -> Result<(), bsjobs::Error> {
///     bsjobs::run().await
/// }
/// ```
pub async fn run() -> Result<(), Error> {
    Worker::from_env()?.run().await
}
