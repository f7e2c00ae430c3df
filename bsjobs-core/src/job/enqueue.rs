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
    args: Result<Vec<u8>, Error>,
    /// `args` is the whole body (a raw job), not the envelope's arguments.
    raw: bool,
    delay: Option<Duration>,
    at: Option<SystemTime>,
    priority: Option<u32>,
    ttr: Option<u32>,
    key: Option<String>,
    unique_key: Option<String>,
    unique_for: Option<u32>,
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
    /// `true` when nothing was put because a unique job with the same key
    /// already exists (or was enqueued within its `unique_for`): this
    /// handle is that job's. Always `false` for jobs that are not unique.
    pub existing: bool,
}

impl JobHandle {
    /// Stops this job: a one-shot job is deleted if it has not been
    /// reserved, or, when it waits for a retry, its retry is (found by its
    /// identity among the jobs put after it);
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
            args: serialize_args(args),
            raw: false,
            delay: None,
            at: None,
            priority: None,
            ttr: None,
            key: None,
            unique_key: None,
            unique_for: options.unique_for,
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
            key: None,
            delay: None,
            at: None,
            priority: None,
            ttr: None,
            unique_key: None,
            unique_for: None,
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
        e.args = serde_json::to_vec(body).map_err(|e| Error::Serialize(e.to_string()));
        e
    }

    /// Runs the job after `delay` (whole seconds; sub-second parts round up;
    /// longer than `u32::MAX` seconds, about 136 years, counts as that).
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

    /// Time to run for this job (whole seconds, at least one, at most
    /// `u32::MAX`: longer TTRs, `Duration::MAX` included, count as that).
    pub fn ttr(mut self, ttr: Duration) -> Self {
        self.ttr = Some(secs_ceil(ttr).max(1));
        self
    }

    /// Places the job by `key` when the client has several servers: every
    /// job with the same key goes to the same server (rendezvous hashing
    /// over the live servers), so jobs of one entity meet on one server and
    /// keep their order there. When that server is down or drained, the
    /// key's jobs go to its next server in the same stable order, the same
    /// for every producer. Without a key, puts go to the live servers in
    /// turn. With one server, the key changes nothing.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Makes this a unique job with key `key` (within the job's tube):
    /// while a job of this tube enqueued with the same key waits, is delayed
    /// (a retry included) or runs, or within its `unique_for` window, this
    /// enqueue puts nothing and returns that job's handle, with
    /// [`JobHandle::existing`] set. Without this call, a job declared with
    /// `unique_for` is keyed by its serialized arguments. See the README's
    /// "Unique jobs" for what a crash or a burial does to a key.
    ///
    /// The key also places the job when the client has several servers
    /// (like [`Enqueue::key`], unless that is given too): every enqueue of
    /// one key meets on one server.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Makes this a unique job (keyed by its arguments, or by
    /// [`Enqueue::unique_key`]) that also holds its key for `window` after
    /// this enqueue, even once it has run: overrides the attribute's
    /// `unique_for`. Whole seconds, rounded up.
    pub fn unique_for(mut self, window: Duration) -> Self {
        self.unique_for = Some(secs_ceil(window));
        self
    }

    /// Uses `client` instead of the default ([`Client::current`]: the
    /// client of a [`Client::scope`], else the process-wide one).
    pub fn client(mut self, client: &Client) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// The tube this job goes to.
    pub fn tube(&self) -> &'static str {
        self.tube
    }

    /// Builds the beanstalkd `put` without sending it: a [`PreparedPut`]
    /// with the tube, priority, delay and TTR in seconds, the envelope
    /// (the JSON body), the chain id of a repeating job and the client chosen
    /// with [`Enqueue::client`]. Send it with [`Client::put_prepared`], or
    /// inspect it (tests, a producer that batches by hand).
    ///
    /// Fails when the arguments cannot be serialized
    /// ([`Error::Serialize`], [`Error::NonFiniteArgument`]).
    pub fn into_put(self) -> Result<PreparedPut, Error> {
        let args = self.args?;
        let unique = match (&self.unique_key, self.unique_for) {
            (None, None) => None,
            _ if self.raw => {
                return Err(Error::NotUnique(
                    "a raw job cannot be unique: its token would travel in an envelope, and a \
                     raw body is exactly the producer's bytes"
                        .into(),
                ))
            }
            (key, window) => Some(Unique {
                hash: crate::client::unique::key_hash(
                    self.tube,
                    key.as_deref().map_or(&args[..], str::as_bytes),
                ),
                window: window.unwrap_or(0),
            }),
        };
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
            key: self.key,
            unique,
            raw: self.raw,
            client: self.client,
        })
    }

    /// Puts the job into its tube and returns its handle.
    pub async fn enqueue(self) -> Result<JobHandle, Error> {
        let p = self.into_put()?;
        let client = match &p.client {
            Some(c) => c.clone(),
            None => Client::current()?,
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
    /// The placement key chosen with [`Enqueue::key`].
    pub key: Option<String>,
    /// What makes it a unique job, if it is one.
    pub unique: Option<Unique>,
    /// The body is a raw job's, to be put exactly as it is (no envelope).
    pub raw: bool,
    /// The client chosen with [`Enqueue::client`].
    pub client: Option<Client>,
}

/// The key of a unique job, as [`Enqueue::into_put`] worked it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unique {
    /// 64-bit hash of the tube and the key (the job's JSON arguments, or
    /// the [`Enqueue::unique_key`]).
    pub hash: u64,
    /// Seconds after the enqueue during which the key stays held even
    /// once the job is done (`unique_for`); 0: only while the job lives.
    pub window: u32,
}

/// The arguments as JSON, refusing what JSON cannot carry.
fn serialize_args<A: serde::Serialize + ?Sized>(args: &A) -> Result<Vec<u8>, Error> {
    super::finite::check(args).map_err(|f| Error::NonFiniteArgument {
        path: f.path,
        value: f.value,
    })?;
    serde_json::to_vec(args).map_err(|e| Error::Serialize(e.to_string()))
}

/// Whole seconds, rounding a fractional second up (beanstalkd's grain),
/// clamped to beanstalkd's range: delays and TTRs are 32-bit seconds on the
/// wire, so anything longer than `u32::MAX` seconds (about 136 years),
/// `Duration::MAX` included, becomes `u32::MAX`, which still means "not in
/// this lifetime" and which beanstalkd accepts.
pub(crate) fn secs_ceil(d: Duration) -> u32 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
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

/// Adds `"enq":<ms>` (when the job is first enqueued) to an envelope
/// written by [`Envelope::write`] without one.
pub(crate) fn set_enqueued(body: &mut Vec<u8>, enq_ms: i64) {
    use std::io::Write as _;
    debug_assert_eq!(body.last(), Some(&b'}'));
    body.pop();
    let _ = write!(body, ",\"enq\":{enq_ms}}}");
}

/// A 128-bit random id in hex.
pub(crate) fn new_chain_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_and_clamp_to_beanstalkd_range() {
        assert_eq!(secs_ceil(Duration::ZERO), 0);
        assert_eq!(secs_ceil(Duration::from_millis(1)), 1);
        assert_eq!(secs_ceil(Duration::from_millis(1500)), 2);
        assert_eq!(
            secs_ceil(Duration::from_secs(u64::from(u32::MAX))),
            u32::MAX
        );
        assert_eq!(
            secs_ceil(Duration::from_secs(u64::from(u32::MAX) + 1)),
            u32::MAX
        );
        assert_eq!(secs_ceil(Duration::MAX), u32::MAX);
    }
}
