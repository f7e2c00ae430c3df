//! The beanstalkd protocol, sans-IO.
//!
//! [`Command`]s encode to bytes with [`Command::encode`]; replies decode from a
//! byte buffer with [`decode`]. Nothing here performs I/O or knows about tokio,
//! which is what lets the decoder be hammered by property tests.
//!
//! Server answers that describe the state of a job or tube (`NOT_FOUND`,
//! `TIMED_OUT`, `BURIED`, …) are values of [`Response`], not decode errors; a
//! [`ProtoError`] means the byte stream itself cannot be trusted any more.

mod command;
mod response;
pub mod stats;

pub use command::{validate_tube, Command, MAX_TUBE_NAME};
pub use response::{decode, ProtoError, Response, MAX_BODY, MAX_LINE};

/// A beanstalkd job id.
pub type JobId = u64;
