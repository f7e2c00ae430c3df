//! One job, start to outcome: decode, cancel check, run, decide what beanstalkd
//! should do with it.

use super::chain::{self, Next};
use super::link::Link;
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
    /// Run again later with a new envelope: `put` the replacement (delayed),
    /// then `delete` this job, both in one write. The next run of a
    /// repeating job and every retry take this path.
    ///
    /// Not `release` with a delay, although it is one atomic command: with a
    /// binlog, beanstalkd 1.12 loses a job that was released with a delay
    /// and then saw the server killed and restarted a few times (reproduced
    /// here in 3 cycles; `release` with no delay and put + delete survive),
    /// and it keeps a binlog record per delayed release for as long as the
    /// job lives (upstream issue 622). Put + delete can be split by a crash
    /// of beanstalkd between the two commands, leaving both jobs: a repeated
    /// run, never a lost one. Jobs of a repeating chain take this path
    /// through the chain's token instead (`chain::step`), which keeps the
    /// chain from forking.
    Replace {
        body: Vec<u8>,
        pri: u32,
        delay: u32,
        ttr: u32,
    },
    /// Give up: `bury`, for an operator to inspect and kick.
    Bury { pri: u32 },
    /// Nothing left to do: the task ended the job itself through its
    /// [`Link`] (a step of a repeating chain), or the connection that
    /// reserved it is gone.
    Settled,
}

/// What a job task needs besides the job.
pub(super) struct Ctx {
    pub(super) descriptor: &'static JobDescriptor,
    pub(super) control: Client,
    pub(super) server: usize,
}

/// Runs the job with id `id` and body `body`, never panicking.
pub(super) async fn execute(ctx: &Ctx, link: &Link, id: JobId, body: &[u8]) -> Outcome {
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
    let Some(chain) = chain else {
        return run(ctx, id, &env, pri, None).await;
    };
    if let Some(newest) = chain::newest_gen(ctx, chain).await {
        if env.gen < newest {
            tracing::info!(
                tube = d.tube,
                id,
                chain,
                gen = env.gen,
                newest,
                "a newer job of this chain is already scheduled (a twin left by a server crash); deleting this one unrun"
            );
            return Outcome::Delete;
        }
    }
    // Every end of a chain job but burial goes through the chain's token.
    let next = match run(ctx, id, &env, pri, Some(chain)).await {
        Outcome::Replace {
            body,
            pri,
            delay,
            ttr,
        } => Some(Next {
            body,
            pri,
            delay,
            ttr,
        }),
        Outcome::Delete => None,
        other => return other,
    };
    chain::step(ctx, link, id, &env, chain, next).await;
    Outcome::Settled
}

/// Runs the handler and decides the outcome.
async fn run(ctx: &Ctx, id: JobId, env: &Envelope<'_>, pri: u32, chain: Option<&str>) -> Outcome {
    let d = ctx.descriptor;
    let o = &d.options;
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
        Ok(()) => after_success(ctx, id, env, pri).await,
        Err(error) => after_failure(ctx, id, env, pri, &error).await,
    }
}

/// After a successful run: done, or the next run of a repeating job.
async fn after_success(ctx: &Ctx, id: JobId, env: &Envelope<'_>, pri: u32) -> Outcome {
    let o = &ctx.descriptor.options;
    let Some(every) = o.repeat else {
        return Outcome::Delete;
    };
    let done = env.run.saturating_add(1);
    if o.max.is_some_and(|max| done >= max) {
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
    Outcome::Replace {
        body: env.successor(id, done, 0),
        pri,
        delay: every,
        ttr: env.ttr.unwrap_or(o.ttr),
    }
}

/// After a failed run: a retry after a backoff, or burial.
///
/// The attempt number travels in the envelope of the replacement job. A job
/// that an operator kicked (beanstalkd's `kicks` counter, read with
/// `stats-job`) starts a fresh set of attempts.
async fn after_failure(ctx: &Ctx, id: JobId, env: &Envelope<'_>, pri: u32, error: &str) -> Outcome {
    let d = ctx.descriptor;
    let kicked = match ctx.control.stats_job(ctx.server, id).await {
        Ok(s) => s.kicks > 0,
        Err(e) => {
            tracing::warn!(tube = d.tube, id, error = %e, "cannot read job stats; counting the attempt from the envelope");
            false
        }
    };
    let attempt = if kicked {
        1
    } else {
        env.attempt.saturating_add(1)
    };
    if attempt > d.options.retries {
        tracing::error!(
            tube = d.tube,
            id,
            attempt,
            error,
            "job failed and its retries are spent; burying it"
        );
        return Outcome::Bury { pri };
    }
    let delay = backoff(d.options.backoff, attempt);
    tracing::warn!(
        tube = d.tube,
        id,
        attempt,
        retry_in = delay,
        error,
        "job failed; will retry"
    );
    Outcome::Replace {
        body: env.successor(id, env.run, attempt),
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
        Ok(s) if s.current_jobs_ready + s.current_jobs_delayed + s.current_jobs_buried > 0 => {
            tracing::info!(tube = ctx.descriptor.tube, chain, "repeating job cancelled");
            if let Err(e) = clear_marker(ctx, &marker).await {
                tracing::warn!(chain, error = %e, "cannot remove cancel marker");
            }
            true
        }
        // An absent tube reads as zero counts: no marker.
        Ok(_) => false,
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
