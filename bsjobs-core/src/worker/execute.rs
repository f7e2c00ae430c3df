//! One job, start to verdict: decode, check the chain's token, run the
//! handler, and decide what beanstalkd should do with the job. Nothing here
//! writes to the reserving connection: the verdict is data the reserve loop
//! carries out (`settle.rs`). Reads that change nothing (a job's stats, a
//! token's priority) go through the worker's shared control client.

use super::chain::{self, Next, Standing};
use super::settle::{Purpose, Verdict};
use super::Shutdown;
use crate::client::Client;
use crate::job::{
    ArgsHandler, Envelope, Handler, HandlerFuture, JobContext, JobDescriptor, JobOptions,
};
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
    /// Ends a raw job's backoff early (the job is released at once).
    pub(super) shutdown: Shutdown,
}

/// How a run ended.
#[derive(Debug)]
pub(super) enum RunResult {
    Ok,
    Failed(String),
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
    let env = match Envelope::parse(body) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job body; burying it");
            return Verdict::Bury { pri: o.priority };
        }
    };
    let pri = env.pri.unwrap_or(o.priority);
    let token = env
        .tok
        .filter(|_| o.repeat.is_some() && env.chain.is_some());
    if let Some(token) = token {
        match token_standing(ctx, id, env.gen, token).await {
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
    if o.repeat.is_some() && o.max.is_some_and(|max| env.run >= max) {
        tracing::info!(
            tube = d.tube,
            id,
            runs = env.run,
            "repeating job already reached max runs; ending it unrun"
        );
        return end(token, &env, pri);
    }
    let result = run(ctx, id, &env, handler).await;
    let result = match result {
        Ok(r) => r,
        Err(v) => return v,
    };
    let kicked = match &result {
        RunResult::Ok => false,
        RunResult::Failed(_) => kicked(ctx, id).await,
    };
    decide(d.tube, o, id, &env, pri, token, result, kicked)
}

/// The chain's end (or a chainless repeating job's): through the token
/// when there is one.
fn end(token: Option<JobId>, env: &Envelope<'_>, pri: u32) -> Verdict {
    match token {
        Some(token) => Verdict::Step {
            token,
            gen: env.gen,
            next: None,
            pri,
            purpose: Purpose::NextRun,
        },
        None => Verdict::Delete,
    }
}

async fn token_standing(ctx: &Ctx, id: JobId, gen: u32, token: JobId) -> Standing {
    match ctx.control.stats_job(ctx.server, token).await {
        Ok(s) => chain::standing(id, gen, Some(&s)),
        Err(Error::NotFound) => Standing::Missing,
        Err(e) => {
            // Never drop a job on doubt: run it; its step checks again.
            tracing::warn!(tube = ctx.descriptor.tube, id, error = %e, "cannot read the chain's token; running the job");
            Standing::Current
        }
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
    let job = context(ctx, id, env);
    let started = match std::panic::catch_unwind(|| handler(env.args.get(), job)) {
        Ok(Ok(fut)) => fut,
        Ok(Err(e)) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job arguments; burying it");
            return Err(Verdict::Bury { pri });
        }
        Err(p) => {
            let msg = super::panic_message(&*p);
            tracing::error!(tube = d.tube, id, error = %msg, "job arguments panicked while decoding; burying it");
            return Err(Verdict::Bury { pri });
        }
    };
    Ok(supervise(started, o.timeout).await)
}

/// Runs a started handler within `timeout` seconds, catching a panic.
pub(super) async fn supervise(started: HandlerFuture, timeout: Option<u32>) -> RunResult {
    let run = AssertUnwindSafe(started).catch_unwind();
    let result = match timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs(t.into()), run).await {
            Ok(r) => r,
            Err(_) => Ok(Err(format!("timed out after {t}s"))),
        },
        None => run.await,
    };
    match result.unwrap_or_else(|p| Err(format!("panicked: {}", super::panic_message(&*p)))) {
        Ok(()) => RunResult::Ok,
        Err(e) => RunResult::Failed(e),
    }
}

/// What the handler of job `id` is told about it.
fn context(ctx: &Ctx, id: JobId, env: &Envelope<'_>) -> JobContext {
    let mut job = JobContext::new(ctx.descriptor.tube, id);
    job.attempt = env.attempt.saturating_add(1);
    job.run = env.run.saturating_add(1);
    job.chain = env.chain.map(str::to_owned);
    job.server = ctx.server;
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
) -> Verdict {
    let ttr = env.ttr.unwrap_or(o.ttr);
    let replace = |next: Next, purpose: Purpose| match token {
        Some(token) => Verdict::Step {
            token,
            gen: env.gen,
            next: Some(next),
            pri,
            purpose,
        },
        None => Verdict::Replace { next, pri, purpose },
    };
    match result {
        RunResult::Ok => {
            let Some(every) = o.repeat else {
                return Verdict::Delete;
            };
            let done = env.run.saturating_add(1);
            if o.max.is_some_and(|max| done >= max) {
                tracing::info!(tube, id, runs = done, "repeating job reached max runs");
                return end(token, env, pri);
            }
            let next = Next {
                body: env.successor(id, done, 0),
                pri,
                delay: every,
                ttr,
            };
            replace(next, Purpose::NextRun)
        }
        RunResult::Failed(error) => {
            // The attempt number travels in the envelope of the replacement
            // job; a kicked job starts a fresh set of attempts.
            let attempt = if kicked {
                1
            } else {
                env.attempt.saturating_add(1)
            };
            if attempt > o.retries {
                tracing::error!(
                    tube,
                    id,
                    attempt,
                    error,
                    "job failed and its retries are spent; burying it"
                );
                return Verdict::Bury { pri };
            }
            let delay = backoff(o.backoff, attempt);
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
            decide("t", &o, 1, &env, 9, None, RunResult::Ok, false),
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
                false
            ),
            Verdict::Bury { pri: 9 }
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
                true
            ),
            Verdict::Replace { .. }
        ));
    }

    #[test]
    fn chain_jobs_step_through_their_token_and_end_at_max() {
        let env = Envelope::parse(br#"{"args":{},"chain":"c","tok":5,"run":1,"gen":3}"#).unwrap();
        let o = opts(Some(30), Some(3), 3);
        match decide("t", &o, 8, &env, 1, Some(5), RunResult::Ok, false) {
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
            decide("t", &o, 8, &last, 1, Some(5), RunResult::Ok, false),
            Verdict::Step {
                token: 5,
                next: None,
                ..
            }
        ));
    }
}
