//! Raw-body jobs (`#[job(raw)]`): a body put by another system, run without
//! changing it.
//!
//! # What cannot be done, and what is done instead
//! An enveloped job's retry is a new job carrying its attempt count
//! (`settle.rs`). A raw job's body belongs to its producer and may have
//! other consumers, so nothing may be added to it: the count must come from
//! beanstalkd. And beanstalkd 1.12 with a binlog loses a job `release`d
//! *with a delay* across a restart (README, "Next steps are put + delete"),
//! so the backoff cannot be beanstalkd's either.
//!
//! So a failed raw job with retries left is **held**: its task waits out
//! the backoff while the job stays reserved by this worker (the reserve
//! loop keeps touching it, so TTR does not hand it to anyone else), then
//! returns [`Verdict::Release`]: `release <id> <its priority> 0`. The job
//! keeps its id, body and priority; beanstalkd counts the release.
//!
//! # Counting attempts
//! Failed attempts before this one = `releases - kicks × retries` from
//! `stats-job` (at least 0): every failure with retries left is one release;
//! when `retries` releases are spent the job is buried, and a kick grants a
//! fresh set of `retries`. A release at shutdown also counts (beanstalkd
//! cannot tell the two apart), so a job interrupted by a deploy has one
//! retry less; a job whose worker died (TTR expired) does not count, as for
//! enveloped jobs.
//!
//! # Never lost
//! - Crash of the worker at any point: the job is reserved by a dead
//!   connection and comes back after TTR (or at once, when the connection
//!   closes), unchanged; it runs again, its count as it was.
//! - Shutdown during a backoff: the hold ends at once and the job is
//!   released (ready now, counted); when the grace period ends first, the
//!   reserve loop releases it as any unfinished job.
//! - Server restart during a backoff: the reservation is void and the job
//!   is ready again on the restarted server (with a binlog), not delayed.
//! - `stats-job` unreadable after a failure: the count is unknown, so the
//!   job is retried after the first backoff (a warning is logged) rather
//!   than buried early or dropped (with `retries = 0` it is buried).
//!
//! # Cost
//! A held job takes one unit of the tube's concurrency for its backoff
//! (default 5 s, doubling per retry, capped at 1 h), and one `stats-job`
//! per failure (and per run when the function takes a `JobContext` or the
//! worker has hooks for the job, which see the same context).
//!
//! # Hooks
//! A raw job's run is wrapped by its hooks and sends their events as an
//! enveloped job's does; `Started` has no queue latency (the body carries
//! no due time).

use super::execute::{backoff, in_scope, supervise, Ctx, RunResult};
use super::settle::Verdict;
use crate::hook::Event;
use crate::job::{JobContext, JobOptions, RawHandler};
use crate::proto::stats::JobStats;
use crate::proto::JobId;
use std::time::{Duration, SystemTime};

/// Runs raw job `id` with body `body`, never panicking.
pub(super) async fn execute(
    ctx: &Ctx,
    id: JobId,
    body: &[u8],
    run: RawHandler,
    context: bool,
) -> Verdict {
    let d = ctx.descriptor;
    let o = &d.options;
    let hooked = !ctx.hooks.is_empty();
    // Hooks see the same context a handler would.
    let mut stats = if context || hooked {
        read(ctx, id).await
    } else {
        None
    };
    let mut job = JobContext::new(d.tube, id);
    job.server = ctx.server;
    if let Some(s) = &stats {
        job.attempt = failed_before(s.releases, s.kicks, o.retries).saturating_add(1);
        job.enqueued_at = SystemTime::now().checked_sub(Duration::from_secs(s.age));
    }
    let current = job.clone();
    let started = match std::panic::catch_unwind(|| run(body, job)) {
        Ok(Ok(fut)) => fut,
        Ok(Err(e)) => {
            tracing::error!(tube = d.tube, id, error = %e, "cannot decode job body; burying it");
            undecodable(ctx, id, &e.to_string());
            return Verdict::Bury {
                pri: priority(ctx, id, &mut stats).await,
            };
        }
        Err(p) => {
            let msg = super::panic_message(&*p);
            tracing::error!(tube = d.tube, id, error = %msg, "job body panicked while decoding; burying it");
            undecodable(ctx, id, &msg);
            return Verdict::Bury {
                pri: priority(ctx, id, &mut stats).await,
            };
        }
    };
    let started = if hooked {
        // A raw body carries no due time: no queue latency.
        ctx.hooks.event(&Event::Started {
            job: &current,
            waited: None,
        });
        ctx.hooks.wrap(&current, started)
    } else {
        started
    };
    let began = std::time::Instant::now();
    let result = supervise(in_scope(current.clone(), started), o.timeout).await;
    let took = began.elapsed();
    let failure = match result {
        RunResult::Ok => {
            ctx.hooks.event(&Event::Succeeded {
                job: &current,
                took,
            });
            return Verdict::Delete;
        }
        RunResult::Failed(e) => e,
    };
    let error = failure.message.as_str();
    // The counters after the run: a kick or release meanwhile is counted.
    let stats = read(ctx, id).await;
    let pri = stats.as_ref().map_or(o.priority, |s| s.pri);
    let decision = match (
        failure.retry,
        decide(o, stats.as_ref().map(|s| (s.releases, s.kicks))),
    ) {
        // A permanent failure: bury now (the body cannot carry why).
        (
            crate::job::Retry::Never,
            Decision::Retry { attempt, .. } | Decision::Bury { attempt },
        ) => Decision::Bury { attempt },
        (crate::job::Retry::After(d), Decision::Retry { attempt, .. }) => Decision::Retry {
            attempt,
            delay: crate::job::secs_ceil(d),
        },
        (_, d) => d,
    };
    match decision {
        Decision::Bury { attempt } => {
            tracing::error!(
                tube = d.tube,
                id,
                attempt,
                error,
                "job failed and its retries are spent; burying it"
            );
            ctx.hooks.event(&Event::Buried {
                job: &current,
                error,
            });
            Verdict::Bury { pri }
        }
        Decision::Retry { attempt, delay } => {
            tracing::warn!(
                tube = d.tube,
                id,
                attempt,
                retry_in = delay,
                error,
                "job failed; holding it for the backoff, then releasing it"
            );
            ctx.hooks.event(&Event::Failed {
                job: &current,
                error,
                retry_in: delay,
                took,
            });
            hold(ctx, delay).await;
            Verdict::Release { pri }
        }
    }
}

fn undecodable(ctx: &Ctx, id: JobId, error: &str) {
    ctx.hooks.event(&Event::Undecodable {
        tube: ctx.descriptor.tube,
        id,
        error,
    });
}

/// What becomes of a raw job that failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Hold it `delay` seconds, then release it; `attempt` failed.
    Retry { attempt: u32, delay: u32 },
    /// Its retries are spent; `attempt` failed.
    Bury { attempt: u32 },
}

/// The decision for a failed run, from the job's `(releases, kicks)`
/// counters after it; `None` when they could not be read.
pub(super) fn decide(o: &JobOptions, counters: Option<(u64, u64)>) -> Decision {
    let Some((releases, kicks)) = counters else {
        if o.retries == 0 {
            return Decision::Bury { attempt: 1 };
        }
        return Decision::Retry {
            attempt: 1,
            delay: backoff(o.backoff, 1),
        };
    };
    let attempt = failed_before(releases, kicks, o.retries).saturating_add(1);
    if attempt > o.retries {
        Decision::Bury { attempt }
    } else {
        Decision::Retry {
            attempt,
            delay: backoff(o.backoff, attempt),
        }
    }
}

/// Failed attempts since the job was put or last kicked: each retry is one
/// release, and each kick follows a burial after `retries` of them.
pub(super) fn failed_before(releases: u64, kicks: u64, retries: u32) -> u32 {
    let spent = kicks.saturating_mul(u64::from(retries));
    u32::try_from(releases.saturating_sub(spent)).unwrap_or(u32::MAX)
}

/// Waits `secs` seconds, or until shutdown begins.
async fn hold(ctx: &Ctx, secs: u32) {
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(secs.into())) => {}
        _ = ctx.shutdown.wait() => {}
    }
}

async fn read(ctx: &Ctx, id: JobId) -> Option<JobStats> {
    match ctx.control.stats_job(ctx.server, id).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(tube = ctx.descriptor.tube, id, error = %e, "cannot read the job's counters (stats-job)");
            None
        }
    }
}

/// The job's own priority, to keep it when burying.
async fn priority(ctx: &Ctx, id: JobId, stats: &mut Option<JobStats>) -> u32 {
    if stats.is_none() {
        *stats = read(ctx, id).await;
    }
    stats
        .as_ref()
        .map_or(ctx.descriptor.options.priority, |s| s.pri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(retries: u32, backoff: u32) -> JobOptions {
        JobOptions {
            retries,
            backoff,
            ..JobOptions::DEFAULT
        }
    }

    #[test]
    fn failures_are_counted_from_releases_and_a_kick_starts_afresh() {
        let o = opts(2, 0);
        // Put, then: fail, fail, fail → release, release, bury.
        assert_eq!(
            decide(&o, Some((0, 0))),
            Decision::Retry {
                attempt: 1,
                delay: 0
            }
        );
        assert_eq!(
            decide(&o, Some((1, 0))),
            Decision::Retry {
                attempt: 2,
                delay: 0
            }
        );
        assert_eq!(decide(&o, Some((2, 0))), Decision::Bury { attempt: 3 });
        // Kicked once: two more retries, then buried again.
        assert!(matches!(
            decide(&o, Some((2, 1))),
            Decision::Retry { attempt: 1, .. }
        ));
        assert!(matches!(
            decide(&o, Some((3, 1))),
            Decision::Retry { attempt: 2, .. }
        ));
        assert_eq!(decide(&o, Some((4, 1))), Decision::Bury { attempt: 3 });
        // Buried for another reason (a body that did not decode, an
        // operator) and kicked: never a negative count.
        assert_eq!(failed_before(0, 3, 2), 0);
        // No retries: the first failure buries.
        assert_eq!(
            decide(&opts(0, 5), Some((0, 0))),
            Decision::Bury { attempt: 1 }
        );
    }

    #[test]
    fn the_backoff_grows_with_the_attempt() {
        let o = opts(5, 4);
        for _ in 0..50 {
            match decide(&o, Some((2, 0))) {
                Decision::Retry { attempt: 3, delay } => {
                    assert!((8..=16).contains(&delay), "{delay}")
                }
                d => panic!("{d:?}"),
            }
        }
    }

    #[test]
    fn unreadable_counters_retry_rather_than_bury() {
        assert!(matches!(
            decide(&opts(2, 3), None),
            Decision::Retry { attempt: 1, .. }
        ));
        // Without retries there is nothing to count.
        assert_eq!(decide(&opts(0, 3), None), Decision::Bury { attempt: 1 });
    }
}
