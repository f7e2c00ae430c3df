//! One job, start to outcome: decode, cancel check, run, decide what beanstalkd
//! should do with it.

use crate::client::{cancel_tube, Client};
use crate::job::{Envelope, JobDescriptor};
use crate::proto::JobId;
use crate::Error;
use futures_util::FutureExt as _;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

/// Longest backoff between retries.
pub(super) const MAX_BACKOFF: u32 = 3600;

/// What the reserving connection must do with a job once its run is over.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Done for good: `delete`.
    Delete,
    /// Replace the job by a new one: `put` this body, then `delete` the
    /// current job, both in one write. Used where the envelope must change:
    /// retries of a repeating job, and the periodic rebase of a chain.
    Replace {
        body: Vec<u8>,
        pri: u32,
        delay: u32,
        ttr: u32,
    },
    /// Run again later: `release` with a delay. One atomic command: the next
    /// run of a repeating job, and the retry of a one-shot job.
    Release { pri: u32, delay: u32 },
    /// Give up: `bury`, for an operator to inspect and kick.
    Bury { pri: u32 },
}

/// A repeating job is released for its next run (one atomic command that
/// can neither fork nor end the chain), but beanstalkd 1.12 keeps a binlog
/// record for every delayed release of a job for as long as the job lives
/// (upstream issue 622: 20 000 releases kept 1.7 MB of binlog here, against
/// 64 KB for put + delete). So every this many runs, the chain moves to a
/// fresh job with put + delete, which lets the binlog compact
/// ([`Worker::rebase_every`](super::Worker::rebase_every) changes it).
pub const DEFAULT_REBASE_EVERY: u64 = 64;

/// What a job task needs besides the job.
pub(super) struct Ctx {
    pub(super) descriptor: &'static JobDescriptor,
    pub(super) control: Client,
    pub(super) server: usize,
    pub(super) rebase_every: u64,
}

/// Runs the job with id `id` and body `body`, never panicking.
pub(super) async fn execute(ctx: &Ctx, id: JobId, body: &[u8]) -> Outcome {
    let d = ctx.descriptor;
    let o = &d.options;
    let env = match Envelope::parse(body) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job body; burying it");
            return Outcome::Bury { pri: o.priority };
        }
    };
    let pri = env.pri.unwrap_or(o.priority);
    let chain = env.chain.filter(|_| o.repeat.is_some());
    if let Some(chain) = chain {
        if cancelled(ctx, chain).await {
            return Outcome::Delete;
        }
    }
    let started = match std::panic::catch_unwind(|| (d.handler)(env.args.get())) {
        Ok(Ok(fut)) => fut,
        Ok(Err(e)) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job arguments; burying it");
            return Outcome::Bury { pri };
        }
        Err(p) => {
            let msg = super::panic_message(&*p);
            tracing::error!(tube = d.tube, id, error = %msg, "job arguments panicked while decoding; burying it");
            return Outcome::Bury { pri };
        }
    };
    let run = AssertUnwindSafe(started).catch_unwind();
    let result = match o.timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs(t.into()), run).await {
            Ok(r) => r,
            Err(_) => Ok(Err(format!("timed out after {t}s"))),
        },
        None => run.await,
    };
    let result = result.unwrap_or_else(|p| Err(format!("panicked: {}", super::panic_message(&*p))));
    match result {
        Ok(()) => after_success(ctx, id, &env, pri).await,
        Err(error) => after_failure(ctx, id, &env, pri, &error).await,
    }
}

/// Job counters that beanstalkd keeps (and persists in its binlog).
struct Counters {
    releases: u64,
    buries: u64,
    kicks: u64,
}

async fn counters(ctx: &Ctx, id: JobId) -> Option<Counters> {
    match ctx.control.stats_job(ctx.server, id).await {
        Ok(s) => Some(Counters {
            releases: s.releases,
            buries: s.buries,
            kicks: s.kicks,
        }),
        Err(e) => {
            tracing::warn!(tube = ctx.descriptor.tube, id, error = %e, "cannot read job stats");
            None
        }
    }
}

/// Runs of a repeating chain are counted as `run` from the envelope (runs
/// before this job existed) plus this job's `releases`: every release of a
/// repeating job is a successful run, since its failures replace the job.
async fn after_success(ctx: &Ctx, id: JobId, env: &Envelope<'_>, pri: u32) -> Outcome {
    let o = &ctx.descriptor.options;
    let Some(every) = o.repeat else {
        return Outcome::Delete;
    };
    let Some(c) = counters(ctx, id).await else {
        // Without the count, keep the chain alive; never end it on doubt.
        return Outcome::Release { pri, delay: every };
    };
    let done = u64::from(env.run) + c.releases + 1;
    if o.max.is_some_and(|max| done >= u64::from(max)) {
        tracing::info!(
            tube = ctx.descriptor.tube,
            id,
            runs = done,
            "repeating job reached max runs"
        );
        return Outcome::Delete;
    }
    if let Some(chain) = env.chain {
        if cancelled(ctx, chain).await {
            return Outcome::Delete;
        }
    }
    if c.releases + 1 >= ctx.rebase_every {
        return Outcome::Replace {
            body: env.successor(id, u32::try_from(done).unwrap_or(u32::MAX), 0),
            pri,
            delay: every,
            ttr: env.ttr.unwrap_or(o.ttr),
        };
    }
    Outcome::Release { pri, delay: every }
}

async fn after_failure(ctx: &Ctx, id: JobId, env: &Envelope<'_>, pri: u32, error: &str) -> Outcome {
    let d = ctx.descriptor;
    let per_budget = u64::from(d.options.retries) + 1;
    let c = counters(ctx, id).await;
    let (attempt, runs_before) = match (&c, d.options.repeat) {
        // One-shot jobs are retried with `release`: beanstalkd's counters
        // are the attempt count (each failure so far was a release, or a
        // bury before a kick); a kick grants a fresh budget.
        (Some(c), None) => {
            let failures = c.releases + c.buries + 1;
            (
                failures
                    .saturating_sub(per_budget.saturating_mul(c.kicks))
                    .max(1),
                0,
            )
        }
        // Repeating jobs keep their attempt in the envelope, valid until the
        // job's first successful run (a release) or a kick.
        (Some(c), Some(_)) => {
            let before = if c.releases == 0 && c.kicks == 0 {
                u64::from(env.attempt)
            } else {
                0
            };
            (before + 1, c.releases)
        }
        (None, _) => (u64::from(env.attempt) + 1, 0),
    };
    if attempt >= per_budget {
        tracing::error!(
            tube = d.tube,
            id,
            attempt,
            error,
            "job failed and its retries are spent; burying it"
        );
        return Outcome::Bury { pri };
    }
    let delay = backoff(d.options.backoff, attempt as u32);
    tracing::warn!(
        tube = d.tube,
        id,
        attempt,
        retry_in = delay,
        error,
        "job failed; will retry"
    );
    if d.options.repeat.is_none() {
        return Outcome::Release { pri, delay };
    }
    let run = u64::from(env.run) + runs_before;
    Outcome::Replace {
        body: env.successor(id, u32::try_from(run).unwrap_or(u32::MAX), attempt as u32),
        pri,
        delay,
        ttr: env.ttr.unwrap_or(d.options.ttr),
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

/// Whether the chain has a cancel marker; when it has, remove it (the chain
/// ends here). Errors count as "not cancelled": never drop a job on doubt.
async fn cancelled(ctx: &Ctx, chain: &str) -> bool {
    let marker = cancel_tube(chain);
    match ctx.control.stats_tube(ctx.server, &marker).await {
        Ok(_) => {
            tracing::info!(tube = ctx.descriptor.tube, chain, "repeating job cancelled");
            if let Err(e) = clear_marker(ctx, &marker).await {
                tracing::warn!(chain, error = %e, "cannot remove cancel marker");
            }
            true
        }
        Err(Error::NotFound) => false,
        Err(e) => {
            tracing::warn!(chain, error = %e, "cannot check for cancellation; running on");
            false
        }
    }
}

async fn clear_marker(ctx: &Ctx, marker: &str) -> Result<(), Error> {
    while let Some((id, _)) = ctx.control.peek_delayed(ctx.server, marker).await? {
        ctx.control.delete(ctx.server, id).await?;
    }
    while let Some((id, _)) = ctx.control.peek_ready(ctx.server, marker).await? {
        ctx.control.delete(ctx.server, id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff;

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
}
