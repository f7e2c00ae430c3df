use super::{Envelope, Fields, JobOptions};
use crate::client::Client;
use crate::proto::JobId;
use crate::Error;
use std::time::{Duration, SystemTime};

/// A job about to be enqueued, with per-call options.
///
/// Made by the generated `new` of a job type (`Email::new(…)`); finish with
/// [`Enqueue::enqueue`].
#[derive(Debug)]
#[must_use = "a job is only enqueued by .enqueue().await"]
pub struct Enqueue {
    tube: &'static str,
    options: &'static JobOptions,
    args: Result<Vec<u8>, String>,
    /// `args` is the whole body (a raw job), not the envelope's arguments.
    raw: bool,
    delay: Option<Duration>,
    at: Option<SystemTime>,
    priority: Option<u32>,
    ttr: Option<u32>,
    client: Option<Client>,
}

/// What an enqueue returns: the beanstalkd job id and, for a repeating job,
/// the chain id that names every later run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobHandle {
    /// beanstalkd id of the job that was put: the *current* job. A retry,
    /// a burial with its error or the next run of a chain is a new
    /// beanstalkd job with a new id; [`JobHandle::identity`] stays.
    pub id: JobId,
    /// The job's stable identity, the same for its whole life: across
    /// retries, burial, kicks and every run of a chain (whose identity is
    /// its chain id). It is the envelope's `id` (or `chain`).
    pub identity: String,
    /// The tube it was put into.
    pub tube: &'static str,
    /// Chain id of a repeating job; `None` for one-shot jobs.
    pub chain: Option<String>,
    /// beanstalkd id of a repeating chain's token (a job in tube
    /// `bsjobs.chains` that names the chain's current job); `None` for
    /// one-shot jobs.
    pub token: Option<JobId>,
    /// Index of the server (in the client's list) that holds the job.
    pub server: usize,
}

impl JobHandle {
    /// Stops this job: a one-shot job is deleted if it has not been reserved;
    /// a repeating chain runs no more: its waiting job is deleted, or a run
    /// in progress is its last. Nothing of the chain is left behind.
    ///
    /// Returns `true` if a waiting job was deleted right away.
    pub async fn cancel(&self, client: &Client) -> Result<bool, Error> {
        client.cancel(self).await
    }
}

impl Enqueue {
    /// Prepares a job for `tube` with `args` serialized as a JSON object.
    pub fn new<A: serde::Serialize + ?Sized>(
        tube: &'static str,
        options: &'static JobOptions,
        args: &A,
    ) -> Self {
        Enqueue {
            tube,
            options,
            args: serde_json::to_vec(args).map_err(|e| e.to_string()),
            raw: false,
            delay: None,
            at: None,
            priority: None,
            ttr: None,
            client: None,
        }
    }

    /// Prepares a raw job (`#[job(raw)]`) for `tube` whose body is exactly
    /// `body`: no envelope, nothing added.
    pub fn raw(tube: &'static str, options: &'static JobOptions, body: Vec<u8>) -> Self {
        Enqueue {
            tube,
            options,
            args: Ok(body),
            raw: true,
            delay: None,
            at: None,
            priority: None,
            ttr: None,
            client: None,
        }
    }

    /// Prepares a raw job for `tube` whose body is `body` as JSON, nothing
    /// added.
    pub fn raw_json<T: serde::Serialize + ?Sized>(
        tube: &'static str,
        options: &'static JobOptions,
        body: &T,
    ) -> Self {
        let mut e = Self::raw(tube, options, Vec::new());
        e.args = serde_json::to_vec(body).map_err(|e| e.to_string());
        e
    }

    /// Runs the job after `delay` (whole seconds; sub-second parts round up).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self.at = None;
        self
    }

    /// Runs the job at wall-clock time `at`; an instant in the past runs now.
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self.delay = None;
        self
    }

    /// beanstalkd priority for this job; smaller runs first.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Time to run for this job (whole seconds, at least one).
    pub fn ttr(mut self, ttr: Duration) -> Self {
        self.ttr = Some(secs_ceil(ttr).max(1));
        self
    }

    /// Uses `client` instead of the process-wide default ([`Client::global`]).
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// The tube this job goes to.
    pub fn tube(&self) -> &'static str {
        self.tube
    }

    /// Builds the beanstalkd `put` parameters: (priority, delay, ttr, body, chain).
    pub fn into_put(self) -> Result<PreparedPut, Error> {
        let args = self.args.map_err(Error::Serialize)?;
        let delay = match (self.delay, self.at) {
            (Some(d), _) => secs_ceil(d),
            (None, Some(at)) => at
                .duration_since(SystemTime::now())
                .map(secs_ceil)
                .unwrap_or(0),
            (None, None) => self.options.delay,
        };
        let chain = if self.raw {
            // A raw job cannot repeat (the attribute refuses it).
            None
        } else {
            self.options.repeat.map(|_| new_chain_id())
        };
        // A chain's identity is its chain id; a one-shot job gets its own.
        let identity = chain.clone().unwrap_or_else(new_chain_id);
        let body = if self.raw {
            // Exactly the bytes given: nothing is added.
            args
        } else {
            let mut body = Vec::with_capacity(args.len() + 96);
            Envelope::write(
                &mut body,
                &args,
                Fields {
                    chain: chain.as_deref(),
                    id: chain.is_none().then_some(identity.as_str()),
                    pri: self.priority,
                    ttr: self.ttr,
                    ..Fields::default()
                },
            );
            body
        };
        Ok(PreparedPut {
            tube: self.tube,
            pri: self.priority.unwrap_or(self.options.priority),
            delay,
            ttr: self.ttr.unwrap_or(self.options.ttr),
            body,
            chain,
            identity,
            client: self.client,
        })
    }

    /// Puts the job into its tube and returns its handle.
    pub async fn enqueue(self) -> Result<JobHandle, Error> {
        let p = self.into_put()?;
        let client = match &p.client {
            Some(c) => c.clone(),
            None => Client::global()?.clone(),
        };
        client.put_prepared(p).await
    }
}

/// A job ready to be put, produced by [`Enqueue::into_put`].
#[derive(Debug)]
pub struct PreparedPut {
    /// Destination tube.
    pub tube: &'static str,
    /// Priority.
    pub pri: u32,
    /// Delay in seconds.
    pub delay: u32,
    /// TTR in seconds.
    pub ttr: u32,
    /// The envelope (for a raw job, the body as given).
    pub body: Vec<u8>,
    /// Chain id of a repeating job.
    pub chain: Option<String>,
    /// The job's stable identity (see [`JobHandle::identity`]).
    pub identity: String,
    /// The client chosen with [`Enqueue::client`].
    pub client: Option<Client>,
}

/// Whole seconds, rounding a fractional second up (beanstalkd's grain).
pub(crate) fn secs_ceil(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(s).unwrap_or(u32::MAX)
}

/// Adds `"tok":<token>` to an envelope written by [`Envelope::write`].
pub(crate) fn set_token(body: &mut Vec<u8>, token: JobId) {
    use std::io::Write as _;
    debug_assert_eq!(body.last(), Some(&b'}'));
    body.pop();
    let _ = write!(body, ",\"tok\":{token}}}");
}

/// Adds `"due":<ms>` to an envelope written by [`Envelope::write`] without
/// a `due` field.
pub(crate) fn set_due(body: &mut Vec<u8>, due_ms: i64) {
    use std::io::Write as _;
    debug_assert_eq!(body.last(), Some(&b'}'));
    body.pop();
    let _ = write!(body, ",\"due\":{due_ms}}}");
}

/// A 128-bit random id in hex.
pub(crate) fn new_chain_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
