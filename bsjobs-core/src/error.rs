use crate::proto::{JobId, ProtoError};

/// Everything that can go wrong in bsjobs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `beanstalk://` URL that cannot be used.
    #[error("invalid beanstalkd URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tube name beanstalkd would refuse; nothing was sent.
    #[error("invalid tube name {tube:?}: {reason}")]
    BadTube {
        /// The name as given.
        tube: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A job body larger than the client's limit; nothing was sent.
    #[error("job body of {len} bytes exceeds the {max}-byte limit (beanstalkd -z)")]
    JobTooBig {
        /// Body length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The job's arguments could not be serialized.
    #[error("cannot serialize job arguments: {0}")]
    Serialize(String),
    /// Connecting to beanstalkd failed or timed out.
    #[error("cannot connect to beanstalkd at {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// An I/O error or timeout on an established connection.
    #[error("beanstalkd connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not the beanstalkd protocol.
    #[error("beanstalkd protocol error: {0}")]
    Protocol(#[from] ProtoError),
    /// The server closed the connection.
    #[error("beanstalkd closed the connection")]
    Closed,
    /// `OUT_OF_MEMORY`: the server cannot allocate the job.
    #[error("beanstalkd is out of memory")]
    OutOfMemory,
    /// `INTERNAL_ERROR`: a bug in the server.
    #[error("beanstalkd reported an internal error")]
    InternalError,
    /// `DRAINING`: the server is in drain mode and refuses new jobs.
    #[error("beanstalkd is draining and accepts no new jobs")]
    Draining,
    /// `JOB_TOO_BIG`: the server's limit (`-z`) is smaller than the body.
    #[error("beanstalkd refused the job as too big (raise its -z limit)")]
    ServerJobTooBig,
    /// `BURIED <id>`: the job was stored but buried because the server could
    /// not grow its priority queue (out of memory).
    #[error("beanstalkd buried job {0} on arrival (server out of memory)")]
    BuriedOnArrival(JobId),
    /// `NOT_FOUND` where the operation needs the job or tube to exist.
    #[error("not found")]
    NotFound,
    /// A reply the command cannot have, such as `BAD_FORMAT` or
    /// `UNKNOWN_COMMAND`, which point at a bug in the client.
    #[error("unexpected reply from beanstalkd: {0}")]
    Unexpected(String),
    /// A command that depends on one connection's state was sent through the
    /// shared [`Client`](crate::Client); use a [`Connection`](crate::client::Connection).
    #[error("{0} cannot go through the shared client: use a Connection")]
    NotShareable(String),
    /// A command that changes state was given to a read-only batch
    /// ([`Client::read_many`](crate::Client::read_many)); nothing was sent.
    #[error("{0} changes state: only read-only commands can be batched with read_many")]
    NotReadOnly(String),
    /// A job reference (`id` or `id@host:port`) that names no job of the URL.
    #[error("invalid job {text:?}: {reason}")]
    BadJobRef {
        /// The reference as given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two job functions claim one tube.
    #[error(
        "tube {tube:?} has two handlers: `{first}` at {first_at} and `{second}` at {second_at}"
    )]
    DuplicateTube {
        /// The tube.
        tube: &'static str,
        /// First function.
        first: &'static str,
        /// Where it is.
        first_at: String,
        /// Second function.
        second: &'static str,
        /// Where it is.
        second_at: String,
    },
    /// The worker was asked to run no tube at all.
    #[error("no job is registered: add #[bsjobs::job] functions to the worker binary, or name tubes that have handlers")]
    NoJobs,
    /// A cron job's schedule or time zone cannot be used (the attribute
    /// checks them at compile time; this catches descriptors made by hand).
    #[error("cron job of tube {tube:?}: {reason}")]
    BadSchedule {
        /// The job's tube.
        tube: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A client [hook](crate::hook::Hook) refused the job; nothing was sent.
    #[error("enqueue refused by a hook: {0}")]
    Refused(String),
    /// A tube was selected that has no handler in this binary.
    #[error("no handler is registered for tube {0:?}")]
    UnknownTube(String),
}
