//! The operator's side: list, decode and act on jobs across every server of
//! a URL. The `bsjobs` command line and the `bsjobs-web` dashboard are thin
//! faces over [`Admin`].
//!
//! ```no_run
//! # async fn f() -> Result<(), bsjobs_core::Error> {
//! use bsjobs_core::admin::{Admin, JobQuery};
//! use bsjobs_core::proto::stats::JobState;
//!
//! let admin = Admin::new(bsjobs_core::Client::new("beanstalk://127.0.0.1:11300")?);
//! for tube in admin.overview(false).await?.tubes {
//!     println!("{}: {} buried", tube.name, tube.buried);
//! }
//! let page = admin.jobs(&JobQuery::new("email").state(JobState::Buried).limit(20)).await?;
//! for job in &page.jobs {
//!     if let Some(env) = job.envelope() {
//!         println!("{} {} attempt {} {:?}", job.at.id, env.args, env.attempt, env.error);
//!     }
//!     admin.kick_job(job.at).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! beanstalkd has no command that lists jobs: [`Admin::jobs`] walks job ids
//! in pipelined batches; `scan`'s documentation says how and what it costs.
//! Tubes whose name starts with `bsjobs.` hold the runtime's bookkeeping
//! (chain tokens in [`CHAINS_TUBE`]); [`Admin::overview`] hides them unless
//! asked, and [`Admin::chains`] reads them.

mod chains;
pub mod scan;
mod view;

pub use chains::{ChainInfo, ChainList};
pub use view::{decode_body, Body, EnvelopeView, JobInfo, RAW_SHOWN};

use crate::job::JobHandle;
use crate::proto::stats::{JobState, JobStats, ServerStats, TubeStats};
use crate::proto::{Command, JobId, Response};
use crate::{Client, Error};
use futures_util::StreamExt as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The tube that holds one token per repeating chain.
pub const CHAINS_TUBE: &str = "bsjobs.chains";
/// Prefix of the runtime's own tubes.
pub const INTERNAL_PREFIX: &str = "bsjobs.";
/// Ids a listing looks at per server before it returns a cursor, by default.
pub const DEFAULT_BUDGET: u64 = 2_000_000;

/// Whether `tube` is one of the runtime's own (`bsjobs.*`).
pub fn is_internal(tube: &str) -> bool {
    tube.starts_with(INTERNAL_PREFIX)
}

/// A job on one server of the URL.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub struct JobRef {
    /// Index of the server in the URL's list.
    pub server: usize,
    /// The beanstalkd job id on that server.
    pub id: JobId,
}

/// The operator's API over a [`Client`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

/// One server: reachable or not, and its counters.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    /// Index in the URL's list.
    pub index: usize,
    /// `host:port`.
    pub addr: String,
    /// Why the server could not be read; `None` when it answered.
    pub error: Option<String>,
    /// Its counters, when it answered.
    pub stats: Option<ServerSummary>,
}

/// The counters of a server an operator looks at.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    /// beanstalkd version.
    pub version: String,
    /// Seconds since it started.
    pub uptime: u64,
    /// Ready jobs.
    pub ready: u64,
    /// Reserved jobs.
    pub reserved: u64,
    /// Delayed jobs.
    pub delayed: u64,
    /// Buried jobs.
    pub buried: u64,
    /// `put`s since start.
    pub total_jobs: u64,
    /// `delete`s since start.
    pub deletes: u64,
    /// Open connections.
    pub connections: u64,
    /// Connections that reserved.
    pub workers: u64,
    /// Tubes.
    pub tubes: u64,
    /// Whether it writes a binlog.
    pub binlog: bool,
    /// Whether it is draining (refuses new jobs).
    pub draining: bool,
}

impl From<&ServerStats> for ServerSummary {
    fn from(s: &ServerStats) -> Self {
        ServerSummary {
            version: s.version.clone(),
            uptime: s.uptime,
            ready: s.current_jobs_ready,
            reserved: s.current_jobs_reserved,
            delayed: s.current_jobs_delayed,
            buried: s.current_jobs_buried,
            total_jobs: s.total_jobs,
            deletes: s.cmd_delete,
            connections: s.current_connections,
            workers: s.current_workers,
            tubes: s.current_tubes,
            binlog: s.binlog_current_index > 0,
            draining: s.draining,
        }
    }
}

/// A tube's counts, summed over every server; an absent tube is all zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TubeInfo {
    /// The tube.
    pub name: String,
    /// Ready jobs.
    pub ready: u64,
    /// Ready jobs with priority below 1024.
    pub urgent: u64,
    /// Reserved (running) jobs.
    pub reserved: u64,
    /// Delayed jobs.
    pub delayed: u64,
    /// Buried jobs.
    pub buried: u64,
    /// Jobs ever put into it (since each server started).
    pub total_jobs: u64,
    /// `delete`s of its jobs (since each server started).
    pub deletes: u64,
    /// Connections watching it.
    pub watching: u64,
    /// Connections waiting for one of its jobs.
    pub waiting: u64,
    /// Seconds it stays paused (the longest over the servers); 0 if not paused.
    pub paused_for: i64,
}

impl TubeInfo {
    fn add(&mut self, t: &TubeStats) {
        self.ready += t.current_jobs_ready;
        self.urgent += t.current_jobs_urgent;
        self.reserved += t.current_jobs_reserved;
        self.delayed += t.current_jobs_delayed;
        self.buried += t.current_jobs_buried;
        self.total_jobs += t.total_jobs;
        self.deletes += t.cmd_delete;
        self.watching += t.current_watching;
        self.waiting += t.current_waiting;
        if t.pause > 0 {
            self.paused_for = self.paused_for.max(t.pause_time_left.max(0));
        }
    }

    /// Jobs in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Ready => self.ready,
            JobState::Delayed => self.delayed,
            JobState::Reserved => self.reserved,
            JobState::Buried => self.buried,
        }
    }

    /// Jobs in it now, in any state.
    pub fn current(&self) -> u64 {
        self.ready + self.reserved + self.delayed + self.buried
    }
}

/// Servers and tubes at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Every server of the URL, in order.
    pub servers: Vec<ServerInfo>,
    /// Every tube of the servers that answered, by name.
    pub tubes: Vec<TubeInfo>,
}

impl Overview {
    /// The first server that could not be read, if any.
    pub fn unreachable(&self) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.error.is_some())
    }
}

/// What [`Admin::jobs`] looks for.
#[derive(Debug, Clone)]
pub struct JobQuery {
    /// The tube.
    pub tube: String,
    /// Only jobs in this state; `None`: any.
    pub state: Option<JobState>,
    /// Jobs per page.
    pub limit: usize,
    /// Continue below this job (a cursor from [`JobPage::next`]).
    pub after: Option<JobRef>,
    /// Ids looked at per server before returning a cursor.
    pub budget: u64,
    /// Decode bodies (`peek` each listed job); off for counting or bulk actions.
    pub bodies: bool,
}

impl JobQuery {
    /// Every job of `tube`, newest first, 50 a page.
    pub fn new(tube: &str) -> Self {
        JobQuery {
            tube: tube.to_owned(),
            state: None,
            limit: 50,
            after: None,
            budget: DEFAULT_BUDGET,
            bodies: true,
        }
    }

    /// Only jobs in `state`.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Jobs per page (at least 1).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// Continue below `after`.
    pub fn after(mut self, after: Option<JobRef>) -> Self {
        self.after = after;
        self
    }

    /// Ids looked at per server before returning a cursor.
    pub fn budget(mut self, budget: u64) -> Self {
        self.budget = budget.max(1);
        self
    }
}

/// One page of jobs, newest first per server.
#[derive(Debug, Clone, Serialize)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobInfo>,
    /// Where the next page starts; `None` when nothing is left.
    pub next: Option<JobRef>,
    /// Jobs in the tube in the state asked for, at the start (all servers).
    pub matching: u64,
    /// Ids looked at.
    pub examined: u64,
}

/// What [`Admin::cancel`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Cancelled {
    /// The job it acted on.
    pub job: JobRef,
    /// The chain, for a repeating job.
    pub chain: Option<String>,
    /// `true` when a waiting job was deleted at once (what [`Client::cancel`] returns).
    pub deleted: bool,
}

impl Admin {
    /// An admin over `client`'s servers.
    pub fn new(client: Client) -> Self {
        Admin { client }
    }

    /// An admin for the servers of `url`.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Ok(Admin::new(Client::new(url)?))
    }

    /// The client it uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `host:port` of every server, in URL order.
    pub fn servers(&self) -> &[String] {
        &self.client.config().servers
    }

    /// `id`, or `id@host:port` when the URL names several servers.
    pub fn label(&self, r: JobRef) -> String {
        if self.servers().len() > 1 {
            format!("{}@{}", r.id, self.servers()[r.server])
        } else {
            r.id.to_string()
        }
    }

    /// Parses a cursor (`id`, or `id@host:port` for a server of the URL
    /// other than the first) without asking any server.
    pub fn resolve_cursor(&self, text: &str) -> Result<JobRef, Error> {
        let bad = |reason: String| Error::BadJobRef {
            text: text.to_owned(),
            reason,
        };
        let (id, server) = match text.split_once('@') {
            Some((id, addr)) => (
                id,
                self.servers()
                    .iter()
                    .position(|s| s == addr)
                    .ok_or_else(|| bad(format!("{addr} is not a server of the URL")))?,
            ),
            None => (text, 0),
        };
        let id = id
            .trim()
            .parse()
            .map_err(|_| bad("a job id is a positive number, optionally @host:port".into()))?;
        Ok(JobRef { server, id })
    }

    /// Parses `id` or `id@host:port` (a server of the URL). A bare id on a
    /// URL with several servers is looked up on each: it must exist on
    /// exactly one.
    pub async fn resolve(&self, text: &str) -> Result<JobRef, Error> {
        let bad = |reason: String| Error::BadJobRef {
            text: text.to_owned(),
            reason,
        };
        let (id, server) = match text.split_once('@') {
            Some((id, addr)) => {
                let server = self
                    .servers()
                    .iter()
                    .position(|s| s == addr)
                    .ok_or_else(|| {
                        bad(format!(
                            "{addr} is not a server of the URL ({})",
                            self.servers().join(", ")
                        ))
                    })?;
                (id, Some(server))
            }
            None => (text, None),
        };
        let id: JobId = id
            .trim()
            .parse()
            .map_err(|_| bad("a job id is a positive number, optionally @host:port".into()))?;
        if let Some(server) = server {
            return Ok(JobRef { server, id });
        }
        if self.servers().len() == 1 {
            return Ok(JobRef { server: 0, id });
        }
        let mut found = Vec::new();
        for server in 0..self.servers().len() {
            match self.client.stats_job(server, id).await {
                Ok(_) => found.push(server),
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        match found.as_slice() {
            [server] => Ok(JobRef {
                server: *server,
                id,
            }),
            [] => Err(Error::NotFound),
            many => Err(bad(format!(
                "job {id} exists on {} servers: write {id}@{}",
                many.len(),
                self.servers()[many[0]]
            ))),
        }
    }

    /// Every server's counters and every tube's counts (summed over the
    /// servers that answered). `bsjobs.*` tubes only with `internal`.
    pub async fn overview(&self, internal: bool) -> Result<Overview, Error> {
        let per_server = futures_util::future::join_all(
            (0..self.servers().len()).map(|s| self.server_overview(s)),
        )
        .await;
        let mut servers = Vec::new();
        let mut tubes: BTreeMap<String, TubeInfo> = BTreeMap::new();
        for (index, r) in per_server.into_iter().enumerate() {
            let addr = self.servers()[index].clone();
            match r {
                Ok((stats, ts)) => {
                    for t in ts.iter().filter(|t| internal || !is_internal(&t.name)) {
                        tubes
                            .entry(t.name.clone())
                            .or_insert_with(|| TubeInfo {
                                name: t.name.clone(),
                                ..TubeInfo::default()
                            })
                            .add(t);
                    }
                    servers.push(ServerInfo {
                        index,
                        addr,
                        error: None,
                        stats: Some(ServerSummary::from(&stats)),
                    });
                }
                Err(e) => servers.push(ServerInfo {
                    index,
                    addr,
                    error: Some(e.to_string()),
                    stats: None,
                }),
            }
        }
        Ok(Overview {
            servers,
            tubes: tubes.into_values().collect(),
        })
    }

    async fn server_overview(&self, server: usize) -> Result<(ServerStats, Vec<TubeStats>), Error> {
        let stats = self.client.stats(server).await?;
        let names = self.client.list_tubes(server).await?;
        let cmds: Vec<Command<'_>> = names.iter().map(|n| Command::StatsTube(n)).collect();
        let mut tubes = Vec::with_capacity(names.len());
        for r in self.client.read_many(server, None, &cmds).await? {
            match r {
                Response::Ok(yaml) => tubes
                    .push(TubeStats::parse(&yaml).map_err(|e| Error::Unexpected(e.to_string()))?),
                // Emptied and dropped by beanstalkd since list-tubes.
                Response::NotFound => {}
                r => return Err(crate::client::other(r)),
            }
        }
        Ok((stats, tubes))
    }

    /// One tube's counts over every server; an absent tube is all zeros.
    pub async fn tube(&self, name: &str) -> Result<TubeInfo, Error> {
        let mut info = TubeInfo {
            name: name.to_owned(),
            ..TubeInfo::default()
        };
        for t in self.tube_per_server(name).await?.iter().flatten() {
            info.add(t);
        }
        Ok(info)
    }

    async fn tube_per_server(&self, name: &str) -> Result<Vec<Option<TubeStats>>, Error> {
        let mut out = Vec::new();
        for server in 0..self.servers().len() {
            match self.client.stats_tube(server, name).await {
                Ok(t) => out.push(Some(t)),
                Err(Error::NotFound) => out.push(None),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One job, decoded; `None` if it does not exist.
    pub async fn job(&self, at: JobRef) -> Result<Option<JobInfo>, Error> {
        self.check(at)?;
        let r = self
            .client
            .read_many(
                at.server,
                None,
                &[Command::StatsJob(at.id), Command::Peek(at.id)],
            )
            .await?;
        match <[Response; 2]>::try_from(r) {
            Ok([Response::Ok(yaml), Response::Found { body, .. }]) => {
                let stats = JobStats::parse(&yaml).map_err(|e| Error::Unexpected(e.to_string()))?;
                Ok(Some(JobInfo::new(
                    at,
                    &self.servers()[at.server],
                    &stats,
                    &body,
                )))
            }
            Ok([Response::NotFound, _] | [_, Response::NotFound]) => Ok(None),
            Ok([r, _]) => Err(crate::client::other(r)),
            Err(_) => Err(Error::Unexpected("two replies expected".into())),
        }
    }

    /// A page of the jobs of a tube, newest first (server by server, in URL
    /// order), decoded. See the module `scan` for how and at what cost.
    pub async fn jobs(&self, q: &JobQuery) -> Result<JobPage, Error> {
        let (found, next, matching, examined) = self.find(q).await?;
        let mut jobs = Vec::with_capacity(found.len());
        if q.bodies {
            // Bodies, a batch of peeks per server.
            let mut by_server: BTreeMap<usize, Vec<(JobRef, JobStats)>> = BTreeMap::new();
            for (r, s) in found {
                by_server.entry(r.server).or_default().push((r, s));
            }
            for (server, list) in by_server {
                // Batches of peeks, several on the wire at once, as the walk.
                let group = scan::BATCH as usize * scan::IN_FLIGHT;
                for chunks in list.chunks(group) {
                    let replies = futures_util::future::join_all(
                        chunks
                            .chunks(scan::BATCH as usize)
                            .map(|chunk| self.peek_chunk(server, chunk)),
                    )
                    .await;
                    for (chunk, replies) in chunks.chunks(scan::BATCH as usize).zip(replies) {
                        for ((r, s), reply) in chunk.iter().zip(replies?) {
                            match reply {
                                Response::Found { body, .. } => {
                                    jobs.push(JobInfo::new(*r, &self.servers()[server], s, &body))
                                }
                                // Deleted since it was found.
                                Response::NotFound => {}
                                other => return Err(crate::client::other(other)),
                            }
                        }
                    }
                }
            }
        } else {
            jobs = found
                .into_iter()
                .map(|(r, s)| JobInfo::new(r, &self.servers()[r.server], &s, b""))
                .collect();
        }
        Ok(JobPage {
            jobs,
            next,
            matching,
            examined,
        })
    }

    async fn peek_chunk(
        &self,
        server: usize,
        chunk: &[(JobRef, JobStats)],
    ) -> Result<Vec<Response>, Error> {
        let cmds: Vec<_> = chunk.iter().map(|(r, _)| Command::Peek(r.id)).collect();
        self.client.read_many(server, None, &cmds).await
    }

    /// The ids and stats of a page; the cursor; the count expected; ids looked at.
    #[allow(clippy::type_complexity)]
    async fn find(
        &self,
        q: &JobQuery,
    ) -> Result<(Vec<(JobRef, JobStats)>, Option<JobRef>, u64, u64), Error> {
        crate::client::check_tube(&q.tube)?;
        let counts = self.tube_per_server(&q.tube).await?;
        let expected = |t: &Option<TubeStats>| -> u64 {
            let Some(t) = t else { return 0 };
            let mut info = TubeInfo::default();
            info.add(t);
            q.state.map_or(info.current(), |s| info.count(s))
        };
        let matching = counts.iter().map(expected).sum();
        let mut found = Vec::new();
        let mut examined = 0;
        let first = q.after.map_or(0, |a| a.server);
        for (server, count) in counts.iter().enumerate().skip(first) {
            let resume = q.after.filter(|a| a.server == server);
            let want = expected(count);
            if want == 0 {
                continue;
            }
            let from = match resume {
                Some(a) => a.id.saturating_sub(1),
                None => scan::top_id(&self.client, server, Some(&q.tube)).await?,
            };
            let mut here = 0;
            let mut walk = std::pin::pin!(scan::walk(&self.client, server, from, q.budget));
            let mut low = from + 1;
            while let Some(batch) = walk.next().await {
                let batch = batch?;
                for job in batch.jobs {
                    if job.tube == q.tube && q.state.is_none_or(|s| s == job.state) {
                        let r = JobRef { server, id: job.id };
                        found.push((r, job));
                        here += 1;
                        if found.len() >= q.limit {
                            examined += from - r.id + 1;
                            return Ok((found, Some(r), matching, examined));
                        }
                    }
                }
                low = batch.low;
                // Every job counted at the start is found: none is left.
                if resume.is_none() && here >= want {
                    break;
                }
            }
            examined += from + 1 - low;
            if low > 1 && !(resume.is_none() && here >= want) {
                // The budget ran out: hand back where to go on.
                return Ok((found, Some(JobRef { server, id: low }), matching, examined));
            }
        }
        Ok((found, None, matching, examined))
    }

    fn check(&self, at: JobRef) -> Result<(), Error> {
        if at.server >= self.servers().len() {
            return Err(Error::BadJobRef {
                text: format!("{at:?}"),
                reason: format!("the URL has {} server(s)", self.servers().len()),
            });
        }
        Ok(())
    }

    /// Kicks one buried or delayed job to ready.
    pub async fn kick_job(&self, at: JobRef) -> Result<(), Error> {
        self.check(at)?;
        self.client.kick_job(at.server, at.id).await
    }

    /// Kicks every buried job of `tube` (on every server) to ready; returns
    /// how many moved. Delayed jobs are left alone: a server with no buried
    /// job in the tube is not sent a `kick` (which would move delayed jobs).
    pub async fn kick_buried(&self, tube: &str) -> Result<u64, Error> {
        let mut moved = 0;
        for (server, t) in self.tube_per_server(tube).await?.into_iter().enumerate() {
            let Some(t) = t else { continue };
            if t.current_jobs_buried > 0 {
                let bound = u32::try_from(t.current_jobs_buried).unwrap_or(u32::MAX);
                moved += self.client.kick(server, tube, bound).await?;
            }
        }
        Ok(moved)
    }

    /// Deletes one job that is not reserved.
    pub async fn delete_job(&self, at: JobRef) -> Result<(), Error> {
        self.check(at)?;
        self.client.delete(at.server, at.id).await
    }

    /// Deletes every buried job of `tube` on every server; returns how many.
    ///
    /// The jobs are found by a walk (see `scan`), then deleted with many
    /// `delete`s in flight. A job kicked between the two is deleted too if
    /// it is still waiting; one a worker reserved meanwhile is not.
    pub async fn delete_buried(&self, tube: &str) -> Result<u64, Error> {
        let mut deleted = 0;
        let mut after = None;
        loop {
            let q = JobQuery {
                tube: tube.to_owned(),
                state: Some(JobState::Buried),
                limit: 10_000,
                after,
                budget: DEFAULT_BUDGET,
                bodies: false,
            };
            let (found, next, _, _) = self.find(&q).await?;
            let results: Vec<Result<(), Error>> = futures_util::stream::iter(found)
                .map(|(r, _)| self.client.delete(r.server, r.id))
                .buffer_unordered(256)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(()) => deleted += 1,
                    Err(Error::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) => after = Some(n),
                None => return Ok(deleted),
            }
        }
    }

    /// Pauses `tube` on every server that has it for `delay` (whole seconds,
    /// rounded up); returns on how many servers. A tube no server has is
    /// [`Error::NotFound`]. beanstalkd forgets the pause of a tube it drops
    /// (an empty tube nobody watches).
    pub async fn pause(&self, tube: &str, delay: Duration) -> Result<usize, Error> {
        crate::client::check_tube(tube)?;
        let mut paused = 0;
        for server in 0..self.servers().len() {
            match self.client.pause_tube(server, tube, delay).await {
                Ok(()) => paused += 1,
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        if paused == 0 {
            return Err(Error::NotFound);
        }
        Ok(paused)
    }

    /// Ends a pause of `tube` on every server that has it.
    pub async fn resume(&self, tube: &str) -> Result<usize, Error> {
        self.pause(tube, Duration::ZERO).await
    }

    /// Stops a job, and the whole chain of a repeating one, through
    /// [`Client::cancel`].
    pub async fn cancel(&self, at: JobRef) -> Result<Cancelled, Error> {
        let job = self.job(at).await?.ok_or(Error::NotFound)?;
        let chain = job.envelope().and_then(|e| e.chain.clone());
        let deleted = self
            .client
            .cancel(&self.handle(&job, chain.clone()))
            .await?;
        Ok(Cancelled {
            job: at,
            chain,
            deleted,
        })
    }

    /// Stops the repeating chain `chain`: finds its current job (a walk,
    /// see [`Admin::chains`]) and cancels it.
    pub async fn cancel_chain(&self, chain: &str) -> Result<Cancelled, Error> {
        let list = self.chains_matching(Some(chain), DEFAULT_BUDGET).await?;
        let job = list
            .chains
            .into_iter()
            .find(|c| c.chain == chain)
            .and_then(|c| c.job)
            .ok_or(Error::NotFound)?;
        let deleted = self
            .client
            .cancel(&self.handle(&job, Some(chain.to_owned())))
            .await?;
        Ok(Cancelled {
            job: job.at,
            chain: Some(chain.to_owned()),
            deleted,
        })
    }

    /// The handle `Client::cancel` takes.
    fn handle(&self, job: &JobInfo, chain: Option<String>) -> JobHandle {
        let env = job.envelope();
        JobHandle {
            id: job.at.id,
            identity: env
                .and_then(|e| e.identity.clone())
                .or_else(|| chain.clone())
                .unwrap_or_default(),
            tube: intern(&job.tube),
            chain,
            token: env.and_then(|e| e.tok),
            server: job.at.server,
            existing: false,
        }
    }

    /// The repeating chains of every server: their token in [`CHAINS_TUBE`]
    /// and their current job, found by a walk of at most `budget` ids per
    /// server (see `chains` for the cost).
    pub async fn chains(&self, budget: u64) -> Result<ChainList, Error> {
        self.chains_matching(None, budget).await
    }
}

/// A `&'static str` for a tube name, as [`JobHandle`] holds: each distinct
/// name is leaked once and reused.
fn intern(tube: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(tube) {
        return n;
    }
    let n: &'static str = Box::leak(tube.to_owned().into_boxed_str());
    names.insert(n);
    n
}
