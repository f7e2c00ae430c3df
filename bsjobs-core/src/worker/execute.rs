//! One job, start to verdict: decode, check the chain's token, run the
//! handler, and decide what beanstalkd should do with the job. Nothing here
//! writes to the reserving connection: the verdict is data the reserve loop
//! carries out (`settle.rs`). Reads that change nothing (a job's stats, a
//! token's priority) go through the worker's shared control client.

use super::chain::{self, Next, Standing};
use super::cron;
use super::settle::{Purpose, Verdict};
use super::Shutdown;
use crate::client::Client;
use crate::hook::{Event, Hooks};
use crate::job::{
    secs_ceil, ArgsHandler, CatchUp, Envelope, Failure, Fields, Handler, HandlerFuture, JobContext,
    JobDescriptor, JobOptions, Retry,
};
use crate::proto::stats::JobState;
use crate::proto::JobId;
use crate::Error;
use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// Longest backoff between retries.
pub(super) const MAX_BACKOFF: u32 = 3600;

/// What a job task needs besides the job.
pub(super) struct Ctx {
    pub(super) descriptor: &'static JobDescriptor,
    pub(super) control: Client,
    pub(super) server: usize,
    pub(super) hooks: Hooks,
    /// Ends a raw job's backoff early (the job is released at once).
    pub(super) shutdown: Shutdown,
}

tokio::task_local! {
    static CURRENT: JobContext;
}

/// The job the calling code runs for, when called from inside an `async`
/// or plain `fn` job handler: the same [`JobContext`] a job function can
/// take as a parameter. `None` elsewhere.
pub fn current_job() -> Option<JobContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` (a plain `fn` job, on a blocking thread) with `job` as what
/// [`current_job`] returns, so that it answers there as in an `async` job.
#[doc(hidden)]
pub fn with_current_job<R>(job: Option<JobContext>, f: impl FnOnce() -> R) -> R {
    match job {
        Some(job) => CURRENT.sync_scope(job, f),
        None => f(),
    }
}

/// `started` run with `job` as what [`current_job`] returns.
pub(super) fn in_scope(job: JobContext, started: HandlerFuture) -> HandlerFuture {
    Box::pin(CURRENT.scope(job, started))
}

/// When the next run of a repeating job is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cadence {
    /// `repeat`: this many seconds after the run.
    After(u32),
    /// `cron`: at this tick (Unix seconds), `delay` seconds from now.
    At { tick: i64, delay: u32 },
}

/// How a run ended.
#[derive(Debug)]
pub(super) enum RunResult {
    Ok,
    Failed(Failure),
}

/// Runs the job with id `id` and body `body`, never panicking.
pub(super) async fn execute(ctx: &Ctx, id: JobId, body: &[u8]) -> Verdict {
    let d = ctx.descriptor;
    let o = &d.options;
    let handler = match d.handler {
        Handler::Args(h) => h,
        Handler::Raw { run, context } => {
            return super::raw::execute(ctx, id, body, run, context).await
        }
    };
    // A body rewritten with a replacement token outlives the envelope.
    let rebuilt: Vec<u8>;
    let mut env = match Envelope::parse(body) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job body; burying it");
            ctx.hooks.event(&Event::Undecodable {
                tube: d.tube,
                id,
                error: &e.to_string(),
            });
            return Verdict::Bury { pri: o.priority };
        }
    };
    if env.err.is_some() && !kicked(ctx, id).await {
        // A buried copy comes back only by a kick; one that came out of its
        // delay is the leftover of a crash during its burial (settle.rs).
        tracing::info!(
            tube = d.tube,
            id,
            "copy of a buried job left by a crash; deleting it unrun"
        );
        return Verdict::Delete;
    }
    let pri = env.pri.unwrap_or(o.priority);
    let repeating = o.repeat.is_some() || o.cron.is_some();
    // A repeating chain's token, or a unique job's (client/unique.rs): the
    // same rule keeps either one job.
    let mut token = env.tok.filter(|_| env.chain.is_some() || env.id.is_some());
    let mut standing = match token {
        Some(t) => match token_standing(ctx, id, &env, t).await {
            Some(s) => Some(s),
            None => return token_held_too_long(d.tube, id, pri_of(&env, o)),
        },
        None => None,
    };
    if let (Some(lost), Some(Standing::Missing)) = (token, standing) {
        {
            // The token is gone: adopt the chain's replacement (made once
            // per lost token, so that twins agree), and check against it.
            let config = ctx.control.config();
            let addr = &config.servers[ctx.server % config.servers.len()];
            let chain_id = env.chain.or(env.id).unwrap_or_default();
            match chain::adopt(addr, config, chain_id, d.tube, lost, id).await {
                Ok(new) => {
                    let mut b = Vec::with_capacity(body.len() + 8);
                    Envelope::write(
                        &mut b,
                        env.args.get().as_bytes(),
                        Fields {
                            tok: Some(new),
                            ..env.fields()
                        },
                    );
                    rebuilt = b;
                    match Envelope::parse(&rebuilt) {
                        Ok(e) => {
                            env = e;
                            token = Some(new);
                            standing = match token_standing(ctx, id, &env, new).await {
                                Some(s) => Some(s),
                                None => return token_held_too_long(d.tube, id, pri_of(&env, o)),
                            };
                        }
                        Err(e) => {
                            tracing::error!(tube = d.tube, id, error = %e, "cannot rewrite the envelope; running unguarded");
                            token = None;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(tube = d.tube, id, error = %e, "cannot replace the chain's lost token; running unguarded");
                    token = None;
                }
            }
        }
    }
    if let (Some(token), Some(standing)) = (token, standing) {
        match standing {
            Standing::Superseded => {
                tracing::info!(
                    tube = d.tube,
                    id,
                    chain = env.chain,
                    "the chain's token names another job (a leftover of a crash); deleting this one unrun"
                );
                return Verdict::Delete;
            }
            Standing::Cancelled => {
                tracing::info!(
                    tube = d.tube,
                    id,
                    chain = env.chain,
                    "repeating job cancelled"
                );
                return Verdict::Cancelled { token };
            }
            Standing::Current | Standing::Missing => {}
        }
    }
    if repeating && o.max.is_some_and(|max| env.run >= max) {
        tracing::info!(
            tube = d.tube,
            id,
            runs = env.run,
            "repeating job already reached max runs; ending it unrun"
        );
        return end(token, &env, pri);
    }
    let next_run = || match cadence(d, &env, cron::now_ms()) {
        Ok(c) => Ok(c),
        Err(e) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot compute the next run; burying the job");
            Err(Verdict::Bury { pri })
        }
    };
    if let (Some(_), CatchUp::None, Some(tick)) = (o.cron, o.catch_up, env.tick) {
        if cron::now() - tick > cron::LATE {
            tracing::info!(
                tube = d.tube,
                id,
                tick,
                "cron tick missed while no worker ran; skipped (catch_up = \"none\")"
            );
            return match next_run() {
                Ok(c) => decide(
                    d.tube,
                    o,
                    id,
                    &env,
                    pri,
                    token,
                    RunResult::Ok,
                    false,
                    c,
                    cron::now_ms(),
                ),
                Err(v) => v,
            };
        }
    }
    let began = std::time::Instant::now();
    let result = run(ctx, id, &env, handler).await;
    let result = match result {
        Ok(r) => r,
        Err(v) => return v,
    };
    let took = began.elapsed();
    let kicked = match &result {
        RunResult::Ok => false,
        RunResult::Failed(_) => kicked(ctx, id).await,
    };
    if let RunResult::Ok = result {
        tracing::debug!(
            tube = d.tube,
            id,
            took_ms = took.as_millis() as u64,
            "job succeeded"
        );
    }
    let failure = match &result {
        RunResult::Ok => None,
        RunResult::Failed(f) => Some(f.message.clone()),
    };
    // After the run: the delay of the next one counts from now.
    let verdict = match next_run() {
        Ok(c) => decide(
            d.tube,
            o,
            id,
            &env,
            pri,
            token,
            result,
            kicked,
            c,
            cron::now_ms(),
        ),
        Err(v) => v,
    };
    if !ctx.hooks.is_empty() {
        let job = context(ctx, id, &env);
        let event = match (&failure, &verdict) {
            (None, _) => Event::Succeeded { job: &job, took },
            (Some(error), Verdict::BuryCopy { .. } | Verdict::Bury { .. }) => {
                Event::Buried { job: &job, error }
            }
            (
                Some(error),
                Verdict::Replace { next, .. }
                | Verdict::Step {
                    next: Some(next), ..
                },
            ) => Event::Failed {
                job: &job,
                error,
                retry_in: next.delay,
                took,
            },
            (Some(error), _) => Event::Buried { job: &job, error },
        };
        ctx.hooks.event(&event);
    }
    verdict
}

/// Buries job `id` with a record of why in its body: a copy with `err`
/// replaces it (see `settle.rs` for the crash analysis).
fn bury(
    id: JobId,
    env: &Envelope<'_>,
    pri: u32,
    attempt: u32,
    error: &str,
    now_ms: i64,
) -> Verdict {
    let record = serde_json::json!({
        "error": error,
        "attempt": attempt,
        "at": now_ms,
        "host": host(),
        "pid": std::process::id(),
        "job": id,
    })
    .to_string();
    // A kicked job that is buried again keeps its earlier records.
    let history = env.merged_history();
    let mut body = Vec::with_capacity(env.args.get().len() + record.len() + 96);
    Envelope::write(
        &mut body,
        env.args.get().as_bytes(),
        Fields {
            err: Some(&record),
            prev: Some(id),
            due: None,
            history: history.as_deref().or(env.history.map(|h| h.get())),
            ..env.fields()
        },
    );
    Verdict::BuryCopy {
        pri,
        copy: Next {
            body,
            pri,
            delay: super::settle::COPY_DELAY,
            ttr: env.ttr.unwrap_or(60),
        },
    }
}

/// This machine's name, for burial records.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// When the run after this one is due (`now_ms`: Unix milliseconds):
/// `repeat` after the run; `cron` at the tick after this job's own, or, if
/// that one has passed by a second or more (no worker ran: the missed ticks
/// were caught up by this one run), at the first tick after now. No tick
/// runs twice: the next tick is always later than this one.
pub(super) fn cadence(
    d: &JobDescriptor,
    env: &Envelope<'_>,
    now_ms: i64,
) -> Result<Option<Cadence>, String> {
    if let Some(every) = d.options.repeat {
        return Ok(Some(Cadence::After(every)));
    }
    let Some(schedule) = cron::schedule_of(d) else {
        return Ok(None);
    };
    if env.tok.is_none() {
        // Enqueued by hand (`Job::enqueue`), not by the schedule: it runs
        // once; the cron job's own chain is not touched.
        return Ok(None);
    }
    let schedule = schedule?;
    let now = now_ms.div_euclid(1000);
    let missing = || "the cron schedule has no future tick".to_owned();
    let mut tick = schedule
        .next_after(env.tick.unwrap_or(now))
        .ok_or_else(missing)?;
    if tick < now {
        tick = schedule.next_after(now).ok_or_else(missing)?;
    }
    // beanstalkd's delay is whole seconds from the put: round up, so that
    // a run never starts before its tick.
    let delay_ms = (tick * 1000 - now_ms).max(0);
    Ok(Some(Cadence::At {
        tick,
        delay: ((delay_ms + 999) / 1000).min(i64::from(u32::MAX)) as u32,
    }))
}

/// The chain's end (or a chainless repeating job's): through the token
/// when there is one.
fn end(token: Option<JobId>, env: &Envelope<'_>, pri: u32) -> Verdict {
    match token {
        Some(token) => Verdict::Step {
            token,
            gen: env.gen,
            prev: env.prev,
            next: None,
            pri,
            purpose: Purpose::NextRun,
        },
        None => Verdict::Delete,
    }
}

/// How long a job the token does not name waits for its chain to come to
/// rest (see [`token_standing`]) before it is put back.
const TOKEN_WAIT: Duration = Duration::from_secs(3);

fn pri_of(env: &Envelope<'_>, o: &crate::job::JobOptions) -> u32 {
    env.pri.unwrap_or(o.priority)
}

/// The verdict for a job whose chain stayed busy (its token held, or the job
/// it names running, for [`TOKEN_WAIT`]): back to the tube, checked again
/// when it is reserved again.
fn token_held_too_long(tube: &str, id: JobId, pri: u32) -> Verdict {
    tracing::info!(
        tube,
        id,
        "the chain is busy (its token held, or the job it names running); putting this job back"
    );
    Verdict::Release { pri }
}

/// Where this job stands by its chain's token, or `None` when the chain
/// stayed busy (see below) for [`TOKEN_WAIT`].
///
/// A job the token does not name is a leftover only if the chain is at
/// rest. While another connection holds the token, or runs the job the
/// token names, a step may be under way: between its `put` of the next job
/// and the `bury` that names it, that next job (put with no delay when a
/// cron run was late, or while the token was held by a cron repair) can
/// already be reserved here, and the token's old priority would condemn
/// it; the step would then name a job deleted unrun, and the chain would
/// die. So such a job waits for the chain to come to rest.
async fn token_standing(
    ctx: &Ctx,
    id: JobId,
    env: &Envelope<'_>,
    token: JobId,
) -> Option<Standing> {
    let until = std::time::Instant::now() + TOKEN_WAIT;
    loop {
        let stats = match ctx.control.stats_job(ctx.server, token).await {
            Ok(s) => s,
            Err(Error::NotFound) => return Some(Standing::Missing),
            Err(e) => {
                // Never drop a job on doubt: run it; its step checks again.
                tracing::warn!(tube = ctx.descriptor.tube, id, error = %e, "cannot read the chain's token; running the job");
                return Some(Standing::Current);
            }
        };
        let standing = chain::standing(id, env.gen, Some(&stats));
        if standing != Standing::Superseded {
            return Some(standing);
        }
        if stats.state != JobState::Reserved {
            // Only a job that exists supersedes this one: a token naming a
            // job that is gone is stale (beanstalkd lost or reverted it).
            let Some(named) = chain::named_by(stats.pri, env.gen, env.prev, id) else {
                return Some(Standing::Current);
            };
            match ctx.control.stats_job(ctx.server, named).await {
                Ok(s) if !chain::is_token_tube(&s.tube) && s.state != JobState::Reserved => {
                    return Some(Standing::Superseded);
                }
                // Running, or stepping: wait for it to settle.
                Ok(s) if !chain::is_token_tube(&s.tube) => {}
                Ok(_) | Err(Error::NotFound) => {
                    tracing::warn!(
                        tube = ctx.descriptor.tube,
                        id,
                        named,
                        "the chain's token names a job that is gone; this job carries the chain on"
                    );
                    return Some(Standing::Current);
                }
                Err(_) => return Some(Standing::Current),
            }
        }
        if std::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether an operator kicked the job (beanstalkd's `kicks` counter): a
/// kicked job starts a fresh set of attempts.
async fn kicked(ctx: &Ctx, id: JobId) -> bool {
    match ctx.control.stats_job(ctx.server, id).await {
        Ok(s) => s.kicks > 0,
        Err(e) => {
            tracing::warn!(tube = ctx.descriptor.tube, id, error = %e, "cannot read job stats; counting the attempt from the envelope");
            false
        }
    }
}

/// Runs the handler. `Err` carries the verdict for arguments that cannot be
/// decoded.
async fn run(
    ctx: &Ctx,
    id: JobId,
    env: &Envelope<'_>,
    handler: ArgsHandler,
) -> Result<RunResult, Verdict> {
    let d = ctx.descriptor;
    let o = &d.options;
    let pri = env.pri.unwrap_or(o.priority);
    let current = context(ctx, id, env);
    let job = current.clone();
    let decoded = std::panic::catch_unwind(|| handler(env.args.get(), job));
    let error = match decoded {
        Ok(Ok(fut)) => Ok(fut),
        Ok(Err(e)) => Err(format!("cannot decode job arguments: {e}")),
        Err(p) => Err(format!(
            "job arguments panicked while decoding: {}",
            super::panic_message(&*p)
        )),
    };
    let started = match error {
        Ok(fut) => fut,
        Err(error) => {
            tracing::error!(tube = d.tube, id, error, "burying the job");
            return Err(bury(id, env, pri, env.attempt, &error, cron::now_ms()));
        }
    };
    let started = if ctx.hooks.is_empty() {
        started
    } else {
        ctx.hooks.event(&Event::Started {
            job: &current,
            waited: env
                .due
                .map(|due| Duration::from_millis((cron::now_ms() - due).max(0) as u64)),
        });
        ctx.hooks.wrap(&current, started)
    };
    let started = in_scope(current, started);
    Ok(supervise(started, o.timeout).await)
}

/// Runs a started handler within `timeout` seconds, catching a panic.
pub(super) async fn supervise(started: HandlerFuture, timeout: Option<u32>) -> RunResult {
    let run = AssertUnwindSafe(started).catch_unwind();
    let result = match timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs(t.into()), run).await {
            Ok(r) => r,
            Err(_) => Ok(Err(Failure::from(format!("timed out after {t}s")))),
        },
        None => run.await,
    };
    match result.unwrap_or_else(|p| {
        Err(Failure::from(format!(
            "panicked: {}",
            super::panic_message(&*p)
        )))
    }) {
        Ok(()) => RunResult::Ok,
        Err(e) => RunResult::Failed(e),
    }
}

/// What the handler of job `id`, and the hooks around it, are told about
/// it.
fn context(ctx: &Ctx, id: JobId, env: &Envelope<'_>) -> JobContext {
    let mut job = JobContext::new(ctx.descriptor.tube, id);
    job.attempt = env.attempt.saturating_add(1);
    job.run = env.run.saturating_add(1);
    job.chain = env.chain.map(str::to_owned);
    job.server = ctx.server;
    job.identity = env.identity().map(str::to_owned);
    job.enqueued_at = env
        .enq
        .and_then(|ms| u64::try_from(ms).ok())
        .map(|ms| std::time::UNIX_EPOCH + Duration::from_millis(ms));
    job.tick = env.tick;
    job.meta = env.meta.and_then(|m| serde_json::from_str(m.get()).ok());
    job
}

/// What to do with job `id` after its run: a pure function of the run's
/// result, the envelope, the options and whether the job was kicked.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    tube: &str,
    o: &JobOptions,
    id: JobId,
    env: &Envelope<'_>,
    pri: u32,
    token: Option<JobId>,
    result: RunResult,
    kicked: bool,
    cadence: Option<Cadence>,
    now_ms: i64,
) -> Verdict {
    let ttr = env.ttr.unwrap_or(o.ttr);
    let replace = |mut next: Next, purpose: Purpose| {
        crate::job::set_due(&mut next.body, now_ms + i64::from(next.delay) * 1000);
        match token {
            Some(token) => Verdict::Step {
                token,
                gen: env.gen,
                prev: env.prev,
                next: Some(next),
                pri,
                purpose,
            },
            None => Verdict::Replace { next, pri, purpose },
        }
    };
    match result {
        RunResult::Ok => {
            let Some(cadence) = cadence else {
                // Done: with its token, if it has one (a unique job).
                return end(token, env, pri);
            };
            let done = env.run.saturating_add(1);
            if o.max.is_some_and(|max| done >= max) {
                tracing::info!(tube, id, runs = done, "repeating job reached max runs");
                return end(token, env, pri);
            }
            let next = match cadence {
                Cadence::After(every) => Next {
                    body: env.successor(id, done, 0),
                    pri,
                    delay: every,
                    ttr,
                },
                Cadence::At { tick, delay } => Next {
                    body: env.successor_at(id, done, tick),
                    pri,
                    delay,
                    ttr,
                },
            };
            replace(next, Purpose::NextRun)
        }
        RunResult::Failed(failure) => {
            let error = failure.message.as_str();
            // The attempt number travels in the envelope of the replacement
            // job; a kicked job starts a fresh set of attempts.
            let attempt = if kicked {
                1
            } else {
                env.attempt.saturating_add(1)
            };
            if failure.retry == Retry::Never {
                tracing::error!(
                    tube,
                    id,
                    attempt,
                    error,
                    "job failed permanently; burying it"
                );
                return bury(id, env, pri, attempt, error, now_ms);
            }
            if attempt > o.retries {
                tracing::error!(
                    tube,
                    id,
                    attempt,
                    error,
                    "job failed and its retries are spent; burying it"
                );
                return bury(id, env, pri, attempt, error, now_ms);
            }
            let delay = match failure.retry {
                Retry::After(d) => secs_ceil(d),
                _ => backoff(o.backoff, attempt),
            };
            tracing::warn!(
                tube,
                id,
                attempt,
                retry_in = delay,
                error,
                "job failed; will retry"
            );
            let next = Next {
                body: env.successor(id, env.run, attempt),
                pri,
                delay,
                ttr,
            };
            replace(next, Purpose::Retry)
        }
    }
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, and then
/// drawn uniformly from its upper half; whole seconds.
pub(super) fn backoff(base: u32, attempt: u32) -> u32 {
    let exp = u64::from(base) << attempt.saturating_sub(1).min(20);
    let full = exp.min(u64::from(MAX_BACKOFF)) as u32;
    if full <= 1 {
        return full;
    }
    full - fastrand::u32(0..=full / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0, 3), 0);
        assert_eq!(backoff(1, 1), 1);
        for _ in 0..100 {
            let b = backoff(5, 1);
            assert!((3..=5).contains(&b), "{b}");
            let b = backoff(5, 3);
            assert!((10..=20).contains(&b), "{b}");
            let b = backoff(5, 30);
            assert!((1800..=3600).contains(&b), "{b}");
        }
    }

    fn opts(repeat: Option<u32>, max: Option<u32>, retries: u32) -> JobOptions {
        JobOptions {
            repeat,
            max,
            retries,
            ..JobOptions::DEFAULT
        }
    }

    #[test]
    fn one_shot_success_deletes_and_failure_retries_then_buries() {
        let env = Envelope::parse(br#"{"args":{}}"#).unwrap();
        let o = opts(None, None, 1);
        assert!(matches!(
            decide("t", &o, 1, &env, 9, None, RunResult::Ok, false, None, 0),
            Verdict::Delete
        ));
        match decide(
            "t",
            &o,
            1,
            &env,
            9,
            None,
            RunResult::Failed("x".into()),
            false,
            None,
            0,
        ) {
            Verdict::Replace { next, pri, purpose } => {
                assert_eq!((pri, purpose), (9, Purpose::Retry));
                let n = Envelope::parse(&next.body).unwrap();
                assert_eq!((n.attempt, n.prev), (1, Some(1)));
            }
            v => panic!("{v:?}"),
        }
        let spent = Envelope::parse(br#"{"args":{},"attempt":1}"#).unwrap();
        assert!(matches!(
            decide(
                "t",
                &o,
                1,
                &spent,
                9,
                None,
                RunResult::Failed("x".into()),
                false,
                None,
                0
            ),
            Verdict::BuryCopy { pri: 9, .. }
        ));
        // A kick grants a fresh set of attempts.
        assert!(matches!(
            decide(
                "t",
                &o,
                1,
                &spent,
                9,
                None,
                RunResult::Failed("x".into()),
                true,
                None,
                0
            ),
            Verdict::Replace { .. }
        ));
    }

    #[test]
    fn permanent_failures_bury_at_once_and_chosen_delays_replace_the_backoff() {
        let env = Envelope::parse(br#"{"args":{"a":1}}"#).unwrap();
        let o = opts(None, None, 5);
        let never = Failure {
            message: "no".into(),
            retry: Retry::Never,
        };
        match decide(
            "t",
            &o,
            4,
            &env,
            9,
            None,
            RunResult::Failed(never),
            false,
            None,
            1000,
        ) {
            Verdict::BuryCopy { pri: 9, copy } => {
                let e = Envelope::parse(&copy.body).unwrap();
                let err: serde_json::Value = serde_json::from_str(e.err.unwrap().get()).unwrap();
                assert_eq!(
                    (err["error"].as_str(), err["attempt"].as_u64()),
                    (Some("no"), Some(1))
                );
                assert_eq!(e.args.get(), r#"{"a":1}"#);
            }
            v => panic!("{v:?}"),
        }
        let later = Failure {
            message: "busy".into(),
            retry: Retry::After(Duration::from_millis(2500)),
        };
        match decide(
            "t",
            &o,
            4,
            &env,
            9,
            None,
            RunResult::Failed(later),
            false,
            None,
            1000,
        ) {
            Verdict::Replace { next, .. } => {
                assert_eq!(next.delay, 3);
                assert_eq!(Envelope::parse(&next.body).unwrap().due, Some(4000));
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn chain_jobs_step_through_their_token_and_end_at_max() {
        let env = Envelope::parse(br#"{"args":{},"chain":"c","tok":5,"run":1,"gen":3}"#).unwrap();
        let o = opts(Some(30), Some(3), 3);
        match decide(
            "t",
            &o,
            8,
            &env,
            1,
            Some(5),
            RunResult::Ok,
            false,
            Some(Cadence::After(30)),
            0,
        ) {
            Verdict::Step {
                token: 5,
                gen: 3,
                next: Some(n),
                ..
            } => {
                let e = Envelope::parse(&n.body).unwrap();
                assert_eq!((e.run, e.gen, e.tok, n.delay), (2, 4, Some(5), 30));
            }
            v => panic!("{v:?}"),
        }
        let last = Envelope::parse(br#"{"args":{},"chain":"c","tok":5,"run":2}"#).unwrap();
        assert!(matches!(
            decide(
                "t",
                &o,
                8,
                &last,
                1,
                Some(5),
                RunResult::Ok,
                false,
                Some(Cadence::After(30)),
                0
            ),
            Verdict::Step {
                token: 5,
                next: None,
                ..
            }
        ));
    }
}
