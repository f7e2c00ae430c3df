//! Finding jobs on a server that has no listing command.
//!
//! beanstalkd can name only the *head* of each state of a tube (`peek-ready`,
//! `peek-delayed`, `peek-buried`); everything else is reached by id. Ids are
//! handed out by one counter per server, from 1 upwards, so every job the
//! server holds has an id in `1..=top`. A listing therefore walks ids from
//! `top` downwards (newest first), `stats-job` for each, in pipelined
//! batches of [`BATCH`] commands with [`IN_FLIGHT`] batches on the wire, and
//! keeps the jobs whose tube and state match. Ids that are gone answer
//! `NOT_FOUND` (12 bytes), live ones about 230 bytes of YAML.
//!
//! **Where `top` comes from.** `stats` gives `total-jobs`, the number of
//! `put`s since the server started; without a binlog that is the highest id
//! ever handed out. With a binlog, jobs restored at start keep their ids and
//! later ones continue above them, so `total-jobs` can be too low: `top` is
//! also raised to the ids of the tube's heads, and then probed upwards
//! [`PROBE`] ids at a time while a probe finds any job. Only a job lying more
//! than [`PROBE`] ids above every job found that way can be missed (a binlog
//! restart followed by the deletion of over [`PROBE`] consecutive newer jobs).
//!
//! **When a walk stops.** When the page is full; when the caller has found as
//! many jobs as `stats-tube` counted in that tube and state (jobs are unique,
//! so none is left); when it reaches id 1; or when it has looked at its
//! budget of ids, in which case the caller hands back a cursor to continue.
//!
//! **Cost.** One `stats-job` per id between `top` and the lowest job that
//! has to be found, plus one `peek` per job listed. beanstalkd is
//! single-threaded and formats each `stats-job` reply (about 230 bytes):
//! on the 2-core development VM (load average 5) it answered 77,700
//! pipelined `stats-job` per second on one raw connection, and a walk
//! through [`Client::read_many`] covered 73,700 ids per second (measured by
//! `target/release/examples/list_bench`, see the README). So on a server
//! whose ids span 1M a full walk takes about 14 s there (up to 3× more on a
//! loaded machine), moves about 230 MB over loopback and keeps beanstalkd
//! busy meanwhile (other clients are served between batches, more slowly);
//! the first page of the newest
//! buried jobs stops as soon as it is full (tens of ms). A listing holds
//! one page of bodies in memory, never the whole server.

use crate::proto::stats::JobStats;
use crate::proto::{Command, JobId, Response};
use crate::{Client, Error};
use futures_util::{Stream, StreamExt as _};

/// `stats-job` commands per write.
pub const BATCH: u64 = 1000;
/// Batches on the wire at once.
pub const IN_FLIGHT: usize = 4;
/// Ids probed above the highest known id, per step.
pub const PROBE: u64 = 256;

/// The highest job id `server` may hold (see the module docs).
pub(crate) async fn top_id(
    client: &Client,
    server: usize,
    tube: Option<&str>,
) -> Result<JobId, Error> {
    let stats = client.stats(server).await?;
    let mut top = stats.total_jobs;
    if let Some(tube) = tube {
        let heads = client
            .read_many(
                server,
                Some(tube),
                &[
                    Command::PeekReady,
                    Command::PeekDelayed,
                    Command::PeekBuried,
                ],
            )
            .await?;
        for r in heads {
            if let Response::Found { id, .. } = r {
                top = top.max(id);
            }
        }
    }
    loop {
        let (jobs, _) = stats_range(client, server, top + 1, top + PROBE).await?;
        match jobs.iter().map(|j| j.id).max() {
            Some(id) => top = id,
            None => return Ok(top),
        }
    }
}

/// `stats-job` for every id in `lo..=hi`: the jobs that exist, and how many
/// ids were looked at.
pub(crate) async fn stats_range(
    client: &Client,
    server: usize,
    lo: JobId,
    hi: JobId,
) -> Result<(Vec<JobStats>, u64), Error> {
    if hi < lo {
        return Ok((Vec::new(), 0));
    }
    let cmds: Vec<Command<'_>> = (lo..=hi).rev().map(Command::StatsJob).collect();
    let replies = client.read_many(server, None, &cmds).await?;
    let mut jobs = Vec::new();
    for r in replies {
        match r {
            Response::Ok(yaml) => {
                jobs.push(JobStats::parse(&yaml).map_err(|e| Error::Unexpected(e.to_string()))?)
            }
            Response::NotFound => {}
            r => return Err(crate::client::other(r)),
        }
    }
    Ok((jobs, hi - lo + 1))
}

/// One batch of a walk: the existing jobs among ids `low..=high`, newest first.
#[derive(Debug)]
pub(super) struct Batch {
    /// The lowest id looked at.
    pub(super) low: JobId,
    /// The jobs that exist, in descending id order.
    pub(super) jobs: Vec<JobStats>,
}

/// Walks ids from `from` down to 1 (or until `budget` ids are looked at), in
/// batches, several on the wire at once; yields them in descending order.
/// Dropping the stream stops the walk.
pub(super) fn walk(
    client: &Client,
    server: usize,
    from: JobId,
    budget: u64,
) -> impl Stream<Item = Result<Batch, Error>> + '_ {
    let ranges = ranges(from, budget);
    futures_util::stream::iter(ranges)
        .map(move |(lo, hi)| async move {
            let (jobs, _) = stats_range(client, server, lo, hi).await?;
            Ok(Batch { low: lo, jobs })
        })
        .buffered(IN_FLIGHT)
}

/// The id ranges `(lo, hi)` of a walk from `from` down over `budget` ids
/// (at least one), each at most [`BATCH`] long, highest first.
fn ranges(from: JobId, budget: u64) -> impl Iterator<Item = (JobId, JobId)> {
    // At least 1: ids start there.
    let floor = from.saturating_sub(budget.max(1)) + 1;
    std::iter::successors(
        (from >= floor).then(|| (from.saturating_sub(BATCH - 1).max(floor), from)),
        move |&(lo, _)| {
            (lo > floor).then(|| ((lo - 1).saturating_sub(BATCH - 1).max(floor), lo - 1))
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_cover_every_id_once() {
        for (from, budget) in [
            (1, 10),
            (999, 5000),
            (1000, 5000),
            (2501, 5000),
            (5000, 1200),
            (3, 1),
            (0, 9),
        ] {
            let seen: Vec<u64> = super::ranges(from, budget)
                .inspect(|&(lo, hi)| assert!(lo <= hi && hi - lo < super::BATCH))
                .flat_map(|(lo, hi)| (lo..=hi).rev())
                .collect();
            let floor = from.saturating_sub(budget.max(1)) + 1;
            let want: Vec<u64> = (floor.max(1)..=from).rev().collect();
            assert_eq!(seen, want, "from {from} budget {budget}");
        }
    }
}
