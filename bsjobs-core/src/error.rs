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
    /// An argument holds a float that JSON cannot carry (NaN or an
    /// infinity); nothing was sent. serde_json would write it as `null`, and
    /// the worker could not decode the job.
    #[error("job argument `{path}` is {value}, which JSON cannot carry; nothing was enqueued")]
    NonFiniteArgument {
        /// Where the value is in the arguments, such as `lines[2].amount`.
        path: String,
        /// `NaN`, `inf` or `-inf`.
        value: String,
    },
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
    /// The connection failed after the command was written and before its
    /// reply arrived: the server may or may not have executed it (a `put`
    /// may have created the job). bsjobs never sends such a command again by
    /// itself; a caller that retries a put accepts a possible duplicate.
    ///
    /// A connection that the server closed while it was idle (a restart) is
    /// noticed before anything is written to it, and replaced: that case is
    /// not an unknown outcome.
    #[error("beanstalkd at {addr} did not answer ({reason}); the command was sent and may or may not have taken effect")]
    OutcomeUnknown {
        /// The server the command was sent to.
        addr: String,
        /// What happened to the connection.
        reason: String,
    },
    /// No server of the client takes new jobs: each is down (refused,
    /// timed out, draining) or drained by its weight. Nothing was sent.
    /// Returned at once while every server is marked down; the client
    /// re-probes them in the background and uses the first that answers.
    #[error("no beanstalkd server takes new jobs: {}", list_servers(.servers))]
    NoServerUp {
        /// Every server and why it takes no job.
        servers: Vec<ServerDown>,
    },
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
    /// No `#[bsjobs::job]` function is linked into the worker binary.
    ///
    /// Usually the jobs live in another crate that the worker lists in
    /// `Cargo.toml` but never names in its code, so Cargo does not link it:
    /// add `bsjobs::link!(that_crate);` (or `use that_crate as _;`) to the
    /// worker's `main.rs`.
    #[error("no job is linked into this worker binary. If your #[bsjobs::job] functions live in another crate, say `shop_jobs`, the worker must name that crate or it is not linked: add `bsjobs::link!(shop_jobs);` (or `use shop_jobs as _;`) to the worker's main.rs")]
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
    /// A unique enqueue that cannot be done: a raw job, a registry that
    /// is full, or a registry that stayed locked by other producers.
    #[error("unique job: {0}")]
    NotUnique(String),
    /// A client [hook](crate::hook::Hook) refused the job; nothing was sent.
    #[error("enqueue refused by a hook: {0}")]
    Refused(String),
    /// A tube was selected that has no handler in this binary.
    #[error("no handler is linked into this worker binary for tube {0:?}. If its #[bsjobs::job] function lives in another crate, say `shop_jobs`, add `bsjobs::link!(shop_jobs);` (or `use shop_jobs as _;`) to the worker's main.rs")]
    UnknownTube(String),
}

/// A server that takes no new jobs, in [`Error::NoServerUp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDown {
    /// `host:port`.
    pub addr: String,
    /// Why: the last error seen, or "drained".
    pub reason: String,
}

fn list_servers(servers: &[ServerDown]) -> String {
    servers
        .iter()
        .map(|s| format!("{} ({})", s.addr, s.reason))
        .collect::<Vec<_>>()
        .join(", ")
}
