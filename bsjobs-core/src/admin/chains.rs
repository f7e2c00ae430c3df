//! Listing repeating chains.
//!
//! A chain that has taken a step has a token in [`CHAINS_TUBE`]: a job whose
//! body is JSON with a `chain` field and whose priority is the chain's
//! newest generation. Its current job is wherever the chain is now (delayed
//! until the next run, reserved while running, buried when it failed out),
//! in the chain's own tube, carrying `chain` in its envelope. Neither points
//! to the other in a way beanstalkd can look up, so one walk (see `scan`)
//! does both: tokens are recognised by tube, and the bodies of the other
//! jobs met on the way are `peek`ed, a batch at a time, to read `chain`. The
//! walk stops once every token counted by `stats-tube` is found and every
//! token's chain has its job. Since each step of a chain puts a new job, the
//! current jobs are among the newest, but a token keeps the id it was made
//! with, so the walk reaches down to the oldest token: on a server holding
//! 1M jobs it costs up to one `stats-job` per id and one `peek` per job
//! above the oldest token (15–30 s for 1M ids on the development VM: see
//! `scan`), bounded by the budget. A chain whose job is not met within the
//! budget is listed with its token only. A unique job carries a token too
//! (named by the job's identity): it is listed as a chain of one job.

use super::view::{decode_body, Body};
use super::{scan, Admin, JobInfo, JobRef, CHAINS_TUBE};
use crate::proto::stats::JobStats;
use crate::proto::{Command, JobId, Response};
use crate::Error;
use futures_util::StreamExt as _;
use serde::Serialize;
use std::collections::BTreeMap;

/// A repeating chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainInfo {
    /// The chain id (the envelope's `chain`).
    pub chain: String,
    /// Index of the server it lives on.
    pub server: usize,
    /// Its token in [`CHAINS_TUBE`], if it has one yet.
    pub token: Option<JobId>,
    /// The newest generation, from the token's priority.
    pub token_gen: Option<u32>,
    /// Its current job (the newest met), if the walk met it.
    pub job: Option<JobInfo>,
}

/// The chains found, and whether the walk saw everything.
#[derive(Debug, Clone, Serialize)]
pub struct ChainList {
    /// Chains, by server then chain id.
    pub chains: Vec<ChainInfo>,
    /// `false` when a walk ran out of budget before finding every job.
    pub complete: bool,
}

impl Admin {
    pub(super) async fn chains_matching(
        &self,
        only: Option<&str>,
        budget: u64,
    ) -> Result<ChainList, Error> {
        let mut chains = Vec::new();
        let mut complete = true;
        for server in 0..self.servers().len() {
            let (mut found, done) = self.chains_on(server, only, budget).await?;
            complete &= done;
            chains.append(&mut found);
        }
        Ok(ChainList { chains, complete })
    }

    async fn chains_on(
        &self,
        server: usize,
        only: Option<&str>,
        budget: u64,
    ) -> Result<(Vec<ChainInfo>, bool), Error> {
        let tokens_expected = match self.client.stats_tube(server, CHAINS_TUBE).await {
            Ok(t) => {
                t.current_jobs_ready
                    + t.current_jobs_buried
                    + t.current_jobs_delayed
                    + t.current_jobs_reserved
            }
            Err(Error::NotFound) => 0,
            Err(e) => return Err(e),
        };
        let mut by_chain: BTreeMap<String, ChainInfo> = BTreeMap::new();
        let mut tokens_found = 0;
        // Peeking the heads of a tube `use`s it, which would create it.
        let heads = (tokens_expected > 0).then_some(CHAINS_TUBE);
        let from = scan::top_id(&self.client, server, heads).await?;
        let mut walk = std::pin::pin!(scan::walk(&self.client, server, from, budget));
        let mut reached_bottom = true;
        let mut last_low = from + 1;
        while let Some(batch) = walk.next().await {
            let batch = batch?;
            last_low = batch.low;
            let bodies = self.peek_all(server, &batch.jobs).await?;
            for (stats, body) in batch.jobs.iter().zip(bodies) {
                let Some(body) = body else { continue };
                let at = JobRef {
                    server,
                    id: stats.id,
                };
                match decode_body(&stats.tube, &body) {
                    Body::ChainToken { chain } => {
                        tokens_found += 1;
                        let c = entry(&mut by_chain, chain, server);
                        if c.token.is_none() {
                            c.token = Some(stats.id);
                            c.token_gen = Some(stats.pri);
                        }
                    }
                    Body::Envelope(env) if !super::is_internal(&stats.tube) => {
                        // A unique one-shot job's token is keyed by the
                        // job's identity (client/unique.rs).
                        let Some(chain) = env
                            .chain
                            .clone()
                            .or_else(|| env.tok.and(env.identity.clone()))
                        else {
                            continue;
                        };
                        let c = entry(&mut by_chain, chain, server);
                        // Walking downwards: the first job met is the newest.
                        if c.job.is_none() {
                            c.job = Some(JobInfo::new(at, &self.servers()[server], stats, &body));
                        }
                    }
                    _ => {}
                }
            }
            let done = tokens_found >= tokens_expected
                && by_chain
                    .values()
                    .filter(|c| c.token.is_some())
                    .all(|c| c.job.is_some());
            let wanted_found =
                only.is_some_and(|o| by_chain.get(o).is_some_and(|c| c.job.is_some()));
            if done || wanted_found {
                reached_bottom = false;
                break;
            }
        }
        let complete = !reached_bottom || last_low <= 1;
        let list = by_chain
            .into_values()
            .filter(|c| only.is_none_or(|o| o == c.chain))
            .collect();
        Ok((list, complete))
    }

    /// `peek` of each job (in one round trip); `None` for jobs gone meanwhile.
    async fn peek_all(
        &self,
        server: usize,
        jobs: &[JobStats],
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let cmds: Vec<_> = jobs.iter().map(|j| Command::Peek(j.id)).collect();
        self.client
            .read_many(server, None, &cmds)
            .await?
            .into_iter()
            .map(|r| match r {
                Response::Found { body, .. } => Ok(Some(body)),
                Response::NotFound => Ok(None),
                r => Err(crate::client::other(r)),
            })
            .collect()
    }
}

fn entry(map: &mut BTreeMap<String, ChainInfo>, chain: String, server: usize) -> &mut ChainInfo {
    map.entry(chain.clone()).or_insert_with(|| ChainInfo {
        chain,
        server,
        token: None,
        token_gen: None,
        job: None,
    })
}
