//! Chain tokens: how a repeating chain stays exactly one chain — never two,
//! never none — whatever crashes, with its bookkeeping in one tube.
//!
//! # The token
//! Every repeating chain has a *token*: one job in the fixed tube
//! [`TOKEN_TUBE`] (`bsjobs.chains`), put by the producer just before the
//! chain's first job, whose id every job of the chain carries in its
//! envelope (`tok`). The token's **priority names the chain's current
//! job**: the low 32 bits of its beanstalkd id ([`mark`]), or [`UNBOUND`]
//! while the first job (generation 0) is current, or [`CANCELLED`]. One tube
//! serves every chain: beanstalkd walks every tube on each reserve, so a
//! tube per chain would slow down every job on the server.
//!
//! # The rule
//! A chain job runs only if the token names it ([`standing`] is
//! [`Standing::Current`]), or if the job the token names is gone; a job
//! the token does not name is deleted unrun while the named job exists. At
//! most one job matches the token, so the chain cannot fork; and a job is
//! only dropped in favour of one that exists, so the chain cannot die, even
//! when beanstalkd loses or reverts the token itself (beanstalkd 1.12 can,
//! for a buried job updated soon after a restart: `tests/binlog.rs`).
//!
//! # A step
//! A step (the next run, a retry, or the end) goes out on the connection
//! that reserved the job, in two writes:
//!
//! ```text
//! 1.  reserve-job <tok>   stats-job <tok>   put <next>
//! 2.  bury <tok> <mark(next)>   delete <job>          (token named us, put INSERTED)
//! ```
//!
//! The token only moves after the `put` of the job it names has been
//! answered, and the current job is only deleted after the token moved; so
//! beanstalkd and the worker may die at any point:
//! - before write 2 is applied: the old job is still there and still named
//!   by the token (its reservation ends with the connection, or after its
//!   TTR): it runs again, at least once, as after any crash. The `put` of
//!   write 1, if it happened, left a job the token does not name: when it
//!   comes due it is deleted unrun.
//! - `bury` applied, `delete` not: the old job is no longer named: deleted
//!   unrun when it comes due; the new one carries on.
//!
//! A job is only deleted unrun when the token names another job, and the
//! token only names a job whose `put` succeeded: so a chain never dies of a
//! crash. When beanstalkd refuses the `put` (`JOB_TOO_BIG`, `DRAINING`, out
//! of memory) the token stays and the job is buried, kept for an operator
//! ([`Step::decide`]).
//!
//! A token that is gone (deleted by hand, or lost by beanstalkd 1.12 itself,
//! which can lose a buried job updated soon after a restart) is replaced
//! before the next run ([`adopt`]): once per lost token, under a lock, so
//! that twins a crash left adopt the same replacement and the rule above
//! applies again (`tests/repeat.rs`).
//!
//! # Cancel
//! `Client::cancel` holds the token (`reserve-job`), deletes the job it
//! names if that job is waiting (then the token: nothing is left), or else
//! buries the token with priority [`CANCELLED`]; the run in progress
//! sees it at its step and ends the chain, deleting job and token.

use super::cmd::Cmd;
use crate::proto::stats::{JobState, JobStats};
use crate::proto::{JobId, Response};

/// The one tube that holds every chain token.
pub(crate) const TOKEN_TUBE: &str = "bsjobs.chains";
/// Token priority while the chain's first job (generation 0) is current.
pub(crate) const UNBOUND: u32 = 0;
/// Token priority of a cancelled chain.
pub(crate) const CANCELLED: u32 = u32::MAX;
/// TTR of a token: it is held for one round trip at a time; the TTR only
/// frees a token held by a connection that hangs.
pub(crate) const TOKEN_TTR: u32 = 60;

/// The token priority that names job `id`: its low 32 bits, never one of
/// the reserved values. (Two jobs of one chain whose ids differ by a
/// multiple of 2^32 would share a mark: a server would have to create four
/// billion jobs during one repeat interval.)
pub(crate) fn mark(id: JobId) -> u32 {
    match id as u32 {
        UNBOUND | CANCELLED => (id as u32) ^ 1,
        m => m,
    }
}

/// The id of the job a token's priority names, given any job id of the
/// same chain (`near`) to supply the high bits. `None` when the token is
/// unbound or cancelled.
pub(crate) fn named(pri: u32, near: JobId) -> Option<JobId> {
    if pri == UNBOUND || pri == CANCELLED {
        return None;
    }
    let high = near & !0xFFFF_FFFF;
    let id = high | u64::from(pri);
    Some(if id < near && near - id > 1 << 31 {
        id + (1 << 32)
    } else {
        id
    })
}

/// The body of a chain's token: what it is, and whose.
pub(crate) fn token_body(chain: &str, tube: &str) -> Vec<u8> {
    let mut b = br#"{"bsjobs":"chain-token","chain":"#.to_vec();
    let _ = serde_json::to_writer(&mut b, chain);
    b.extend_from_slice(br#","tube":"#);
    let _ = serde_json::to_writer(&mut b, tube);
    b.push(b'}');
    b
}

/// Where a chain job stands, as its token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// The token names this job: it is the chain's current job.
    Current,
    /// The token names another job (this one is a crash's leftover).
    Superseded,
    /// The chain was cancelled.
    Cancelled,
    /// No token (gone, or the id is not a token): nothing to check against.
    Missing,
}

/// Whether `tube` holds chain tokens: [`TOKEN_TUBE`], or the cron tokens'
/// tube (see `cron.rs`).
pub(crate) fn is_token_tube(tube: &str) -> bool {
    tube == TOKEN_TUBE || tube == super::cron::CRON_TUBE
}

/// The command that puts a held token back with priority `pri`: buried,
/// chain and cron tokens alike (`bury` is written to the binlog; a release
/// with no delay is not, so a restart would revert the token).
fn put_back(token: JobId, _tube: &str, pri: u32) -> Cmd {
    Cmd::Bury { id: token, pri }
}

/// The tube of records of lost tokens and their replacements (see
/// [`adopt`]).
pub(crate) const LOST_TUBE: &str = "bsjobs.chains.lost";
/// How long a record of a lost token is kept.
const LOST_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(serde::Deserialize)]
struct LostRecord {
    lost: JobId,
    token: JobId,
    at: i64,
}

/// Gives job `job` of `chain`, whose token `lost` is gone (deleted, or lost
/// by beanstalkd 1.12 itself), the chain's replacement token: one per lost
/// token, made under the lock of `cron.rs` on [`LOST_TUBE`] and recorded
/// there, so that every job of the chain (twins a crash left included)
/// adopts the same one and the rule of this module applies again. A new
/// token names `job`.
pub(super) async fn adopt(
    addr: &str,
    config: &crate::client::ClientConfig,
    chain: &str,
    tube: &str,
    lost: JobId,
    job: JobId,
) -> Result<JobId, crate::Error> {
    use super::cron;
    use crate::proto::Command;
    let mut conn = crate::client::Connection::connect(addr, config).await?;
    let mut held = cron::hold_exclusive(&mut conn, LOST_TUBE).await?;
    let now = cron::now_ms();
    let mut found = None;
    for h in held.iter_mut() {
        if let Ok(r) = serde_json::from_slice::<LostRecord>(&h.body) {
            if r.lost == lost {
                found = Some(r.token);
            } else if now - r.at > LOST_KEEP_MS {
                h.drop = true;
            }
        }
    }
    let live = match found {
        Some(t) => matches!(conn.request(&Command::StatsJob(t)).await?, Response::Ok(_)),
        None => false,
    };
    let token = match (found, live) {
        (Some(t), true) => t,
        _ => {
            let t = cron::put(
                &mut conn,
                TOKEN_TUBE,
                mark(job),
                &token_body(chain, tube),
                0,
            )
            .await?;
            let record = serde_json::json!({
                "bsjobs": "lost-token",
                "lost": lost,
                "token": t,
                "chain": chain,
                "at": now,
            })
            .to_string();
            cron::put(&mut conn, LOST_TUBE, 0, record.as_bytes(), 0).await?;
            tracing::warn!(
                chain,
                lost,
                token = t,
                "the chain's token was gone; made a new one"
            );
            t
        }
    };
    cron::release_all(&mut conn, &held).await?;
    Ok(token)
}

/// Where job `id` (generation `gen`) stands, given its token's `stats-job`.
pub(super) fn standing(id: JobId, gen: u32, token: Option<&JobStats>) -> Standing {
    let Some(t) = token else {
        return Standing::Missing;
    };
    if !is_token_tube(&t.tube) {
        return Standing::Missing;
    }
    match t.pri {
        CANCELLED => Standing::Cancelled,
        UNBOUND if gen == 0 => Standing::Current,
        p if p == mark(id) => Standing::Current,
        _ => Standing::Superseded,
    }
}

/// The job a token of priority `pri` names, as seen by job `id` of
/// generation `gen` that it does not name: the job its mark names, or for
/// an unbound token the chain's first job, which a generation-1 job knows
/// as its `prev`. `None` when it cannot be told (the token is then stale).
pub(super) fn named_by(pri: u32, gen: u32, prev: Option<JobId>, id: JobId) -> Option<JobId> {
    match pri {
        UNBOUND if gen == 1 => prev,
        UNBOUND | CANCELLED => None,
        p => named(p, id),
    }
}

/// Parses a `stats-job` reply.
pub(super) fn job_stats(r: &Response) -> Option<JobStats> {
    match r {
        Response::Ok(yaml) => JobStats::parse(yaml).ok(),
        _ => None,
    }
}

/// The next job of a step: its `put` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Next {
    pub(super) body: Vec<u8>,
    pub(super) pri: u32,
    pub(super) delay: u32,
    pub(super) ttr: u32,
}

impl Next {
    pub(super) fn put(&self) -> Cmd {
        Cmd::Put {
            pri: self.pri,
            delay: self.delay,
            ttr: self.ttr,
            body: self.body.clone(),
        }
    }
}

/// What a chain step came to, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepEnd {
    /// The next job is in place and the token names it.
    Stepped { next: JobId },
    /// The chain ended (max runs, or a job with no successor); job and
    /// token deleted.
    Ended,
    /// The chain was cancelled: job and token deleted.
    Cancelled,
    /// A newer job holds the token: this one ends without a successor.
    Superseded,
    /// beanstalkd refused the next job: the token stays, the job is buried.
    Refused { reply: String },
}

/// A step in progress: the decision after each write, as a pure function
/// of the replies.
#[derive(Debug)]
pub(super) struct Step {
    pub(super) job: JobId,
    pub(super) gen: u32,
    pub(super) token: JobId,
    pub(super) next: Option<Next>,
    /// Priority to bury the job with if the next job is refused.
    pub(super) pri: u32,
    /// The next job, once put (kept across retries of the hold).
    put: Option<JobId>,
    /// beanstalkd's refusal of the next job, once refused.
    refused: Option<String>,
    /// The job this one replaced (envelope `prev`).
    prev: Option<JobId>,
    /// Waiting for `stats-job` of the job the token names (priority and
    /// tube of the token).
    verify: Option<(u32, String)>,
}

/// What to do after the replies of a write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// Send these and call [`Step::decide`] with their replies.
    Send(Vec<Cmd>),
    /// The token is held by another connection (a cancel, or a step of a
    /// twin): wait a little, then send these.
    Wait(Vec<Cmd>),
    /// Send these last commands (their replies are only checked), and the
    /// step has ended so.
    Finish(Vec<Cmd>, StepEnd),
}

impl Step {
    pub(super) fn new(job: JobId, gen: u32, token: JobId, next: Option<Next>, pri: u32) -> Step {
        Step {
            job,
            gen,
            token,
            next,
            pri,
            put: None,
            refused: None,
            prev: None,
            verify: None,
        }
    }

    /// The job this one replaced, to check a token that still names the
    /// chain's first job.
    pub(super) fn with_prev(mut self, prev: Option<JobId>) -> Step {
        self.prev = prev;
        self
    }

    fn needs_put(&self) -> bool {
        self.next.is_some() && self.put.is_none() && self.refused.is_none()
    }

    /// The first write: hold the token, read it, and put the next job.
    pub(super) fn begin(&self) -> Vec<Cmd> {
        let mut cmds = vec![Cmd::ReserveJob(self.token), Cmd::StatsJob(self.token)];
        if self.needs_put() {
            cmds.extend(self.next.as_ref().map(Next::put));
        }
        cmds
    }

    /// Decides from the replies to the commands [`Step::begin`] returned.
    pub(super) fn decide(&mut self, replies: &[Response]) -> Decision {
        if let Some((pri, tube)) = self.verify.take() {
            // The reply to `stats-job` of the job the token names: if that
            // job is gone, the token is stale (beanstalkd lost or reverted
            // it) and this job carries the chain on.
            let exists = replies
                .first()
                .and_then(job_stats)
                .is_some_and(|s| !is_token_tube(&s.tube));
            return if exists {
                self.superseded(pri, &tube)
            } else {
                self.current(pri, &tube)
            };
        }
        let held = matches!(replies.first(), Some(Response::Reserved { .. }));
        let stats = replies.get(1).and_then(job_stats);
        if self.needs_put() {
            match replies.get(2) {
                Some(Response::Inserted(id)) | Some(Response::BuriedId(id)) => self.put = Some(*id),
                Some(r) => self.refused = Some(super::cmd::refusal(r)),
                None => self.refused = Some("no reply to put".to_owned()),
            }
        }
        let refused = self.refused.clone();
        let t = self.token;
        let j = self.job;
        if !held {
            return match &stats {
                // Held by someone else right now: try again shortly. The
                // job stays reserved and touched meanwhile.
                Some(s) if s.state == JobState::Reserved && is_token_tube(&s.tube) => {
                    Decision::Wait(self.begin())
                }
                // Came free between the two commands: try again at once.
                Some(s) if is_token_tube(&s.tube) => Decision::Send(self.begin()),
                // No token: step without one (the chain runs on unguarded).
                _ => match (refused, self.put) {
                    (Some(reply), _) => Decision::Finish(
                        vec![Cmd::Bury {
                            id: j,
                            pri: self.pri,
                        }],
                        StepEnd::Refused { reply },
                    ),
                    (None, Some(next)) => {
                        Decision::Finish(vec![Cmd::Delete(j)], StepEnd::Stepped { next })
                    }
                    (None, None) => Decision::Finish(vec![Cmd::Delete(j)], StepEnd::Ended),
                },
            };
        }
        let pri = stats.as_ref().map_or(UNBOUND, |s| s.pri);
        let tube = stats
            .as_ref()
            .map_or(TOKEN_TUBE, |s| s.tube.as_str())
            .to_owned();
        match standing(j, self.gen, stats.as_ref()) {
            Standing::Cancelled => {
                let mut cmds: Vec<Cmd> = self.put.map(Cmd::Delete).into_iter().collect();
                cmds.extend([Cmd::Delete(j), Cmd::Delete(t)]);
                Decision::Finish(cmds, StepEnd::Cancelled)
            }
            Standing::Superseded => match named_by(pri, self.gen, self.prev, j) {
                // Only a job that exists can supersede this one: ask.
                Some(n) => {
                    self.verify = Some((pri, tube));
                    Decision::Send(vec![Cmd::StatsJob(n)])
                }
                None => self.current(pri, &tube),
            },
            // A held job that is not in the token tube is not our token:
            // hand it back as it was and step unguarded.
            Standing::Missing => {
                let mut cmds = vec![Cmd::Release { id: t, pri }];
                match (refused, self.put) {
                    (Some(reply), _) => {
                        cmds.push(Cmd::Bury {
                            id: j,
                            pri: self.pri,
                        });
                        Decision::Finish(cmds, StepEnd::Refused { reply })
                    }
                    (None, Some(next)) => {
                        cmds.push(Cmd::Delete(j));
                        Decision::Finish(cmds, StepEnd::Stepped { next })
                    }
                    (None, None) => {
                        cmds.push(Cmd::Delete(j));
                        Decision::Finish(cmds, StepEnd::Ended)
                    }
                }
            }
            Standing::Current => self.current(pri, &tube),
        }
    }

    /// A newer job holds the token: end without a successor.
    fn superseded(&self, pri: u32, tube: &str) -> Decision {
        let mut cmds: Vec<Cmd> = self.put.map(Cmd::Delete).into_iter().collect();
        cmds.extend([put_back(self.token, tube, pri), Cmd::Delete(self.job)]);
        Decision::Finish(cmds, StepEnd::Superseded)
    }

    /// This job is the chain's: move the token to the next job, or end.
    fn current(&self, pri: u32, tube: &str) -> Decision {
        let (t, j) = (self.token, self.job);
        let back = put_back(t, tube, pri);
        match (self.refused.clone(), self.put, &self.next) {
            (Some(reply), _, _) => Decision::Finish(
                vec![
                    back,
                    Cmd::Bury {
                        id: j,
                        pri: self.pri,
                    },
                ],
                StepEnd::Refused { reply },
            ),
            (None, Some(next), _) => Decision::Finish(
                vec![put_back(t, tube, mark(next)), Cmd::Delete(j)],
                StepEnd::Stepped { next },
            ),
            (None, None, None) => {
                Decision::Finish(vec![Cmd::Delete(j), Cmd::Delete(t)], StepEnd::Ended)
            }
            // A next job with no put reply cannot happen: begin sends the
            // put until one is answered. Keep the job and the token.
            (None, None, Some(_)) => Decision::Finish(
                vec![
                    back,
                    Cmd::Bury {
                        id: j,
                        pri: self.pri,
                    },
                ],
                StepEnd::Refused {
                    reply: "no reply to put".to_owned(),
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_stats(pri: u32, state: &str) -> Response {
        Response::Ok(
            format!(
                "---\nid: 7\ntube: {TOKEN_TUBE}\nstate: {state}\npri: {pri}\nage: 0\ndelay: 0\nttr: 60\n\
                 time-left: 0\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n"
            )
            .into_bytes(),
        )
    }

    fn held() -> Response {
        Response::Reserved {
            id: 7,
            body: Vec::new(),
        }
    }

    fn next() -> Next {
        Next {
            body: b"{}".to_vec(),
            pri: 5,
            delay: 30,
            ttr: 60,
        }
    }

    #[test]
    fn marks_avoid_the_reserved_values_and_round_trip() {
        assert_eq!(mark(42), 42);
        assert_ne!(mark(1 << 32), UNBOUND);
        assert_ne!(mark(u64::from(u32::MAX)), CANCELLED);
        assert_eq!(named(mark(42), 40), Some(42));
        assert_eq!(
            named(mark((1 << 32) + 3), (1 << 32) - 10),
            Some((1 << 32) + 3)
        );
        assert_eq!(named(UNBOUND, 9), None);
        assert_eq!(named(CANCELLED, 9), None);
    }

    #[test]
    fn only_the_named_job_is_current() {
        let t = |pri| {
            JobStats::parse(match &token_stats(pri, "buried") {
                Response::Ok(y) => y,
                _ => unreachable!(),
            })
            .unwrap()
        };
        assert_eq!(standing(10, 0, Some(&t(UNBOUND))), Standing::Current);
        assert_eq!(standing(10, 1, Some(&t(UNBOUND))), Standing::Superseded);
        assert_eq!(standing(10, 3, Some(&t(10))), Standing::Current);
        assert_eq!(standing(11, 3, Some(&t(10))), Standing::Superseded);
        assert_eq!(standing(10, 3, Some(&t(CANCELLED))), Standing::Cancelled);
        assert_eq!(standing(10, 3, None), Standing::Missing);
        let mut other = t(10);
        other.tube = "elsewhere".into();
        assert_eq!(standing(10, 3, Some(&other)), Standing::Missing);
    }

    #[test]
    fn a_step_moves_the_token_only_after_the_put_was_inserted() {
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        assert_eq!(
            s.begin(),
            vec![Cmd::ReserveJob(7), Cmd::StatsJob(7), next().put()]
        );
        let d = s.decide(&[held(), token_stats(10, "reserved"), Response::Inserted(11)]);
        assert_eq!(
            d,
            Decision::Finish(
                vec![Cmd::Bury { id: 7, pri: 11 }, Cmd::Delete(10)],
                StepEnd::Stepped { next: 11 }
            )
        );
    }

    #[test]
    fn a_refused_put_keeps_the_job_buried_and_the_token_unmoved() {
        for refusal in [
            Response::JobTooBig,
            Response::Draining,
            Response::OutOfMemory,
        ] {
            let mut s = Step::new(10, 3, 7, Some(next()), 5);
            let d = s.decide(&[held(), token_stats(10, "reserved"), refusal.clone()]);
            let Decision::Finish(cmds, StepEnd::Refused { .. }) = d else {
                panic!("{d:?}");
            };
            assert_eq!(
                cmds,
                vec![Cmd::Bury { id: 7, pri: 10 }, Cmd::Bury { id: 10, pri: 5 }]
            );
            assert!(!cmds.contains(&Cmd::Delete(10)), "the job is never deleted");
        }
    }

    #[test]
    fn a_superseded_or_cancelled_job_ends_and_removes_its_orphan() {
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[held(), token_stats(99, "reserved"), Response::Inserted(11)]);
        assert_eq!(
            d,
            Decision::Send(vec![Cmd::StatsJob(99)]),
            "does job 99 exist?"
        );
        let job_99 = Response::Ok(
            b"---\nid: 99\ntube: t\nstate: delayed\npri: 5\nage: 0\ndelay: 0\nttr: 60\ntime-left: 3\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n".to_vec(),
        );
        assert_eq!(
            s.decide(&[job_99]),
            Decision::Finish(
                vec![
                    Cmd::Delete(11),
                    Cmd::Bury { id: 7, pri: 99 },
                    Cmd::Delete(10)
                ],
                StepEnd::Superseded
            )
        );
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[
            held(),
            token_stats(CANCELLED, "reserved"),
            Response::Inserted(11),
        ]);
        assert_eq!(
            d,
            Decision::Finish(
                vec![Cmd::Delete(11), Cmd::Delete(10), Cmd::Delete(7)],
                StepEnd::Cancelled
            )
        );
    }

    /// beanstalkd 1.12 can lose or revert a token; a token naming a job
    /// that is gone must not kill the chain.
    #[test]
    fn a_token_naming_a_job_that_is_gone_lets_this_job_carry_the_chain() {
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[held(), token_stats(99, "reserved"), Response::Inserted(11)]);
        assert_eq!(d, Decision::Send(vec![Cmd::StatsJob(99)]));
        assert_eq!(
            s.decide(&[Response::NotFound]),
            Decision::Finish(
                vec![Cmd::Bury { id: 7, pri: 11 }, Cmd::Delete(10)],
                StepEnd::Stepped { next: 11 }
            )
        );
        // An unbound token seen by a generation-2 job is stale: no check.
        let mut s = Step::new(10, 2, 7, Some(next()), 5);
        let d = s.decide(&[
            held(),
            token_stats(UNBOUND, "reserved"),
            Response::Inserted(11),
        ]);
        assert!(
            matches!(d, Decision::Finish(_, StepEnd::Stepped { next: 11 })),
            "{d:?}"
        );
    }

    #[test]
    fn the_end_of_a_chain_deletes_job_then_token() {
        let mut s = Step::new(10, 3, 7, None, 5);
        assert_eq!(s.begin(), vec![Cmd::ReserveJob(7), Cmd::StatsJob(7)]);
        let d = s.decide(&[held(), token_stats(10, "reserved")]);
        assert_eq!(
            d,
            Decision::Finish(vec![Cmd::Delete(10), Cmd::Delete(7)], StepEnd::Ended)
        );
    }

    #[test]
    fn a_token_held_elsewhere_is_waited_for_without_putting_twice() {
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[
            Response::NotFound,
            token_stats(10, "reserved"),
            Response::Inserted(11),
        ]);
        assert_eq!(
            d,
            Decision::Wait(vec![Cmd::ReserveJob(7), Cmd::StatsJob(7)])
        );
        let d = s.decide(&[held(), token_stats(10, "reserved")]);
        assert_eq!(
            d,
            Decision::Finish(
                vec![Cmd::Bury { id: 7, pri: 11 }, Cmd::Delete(10)],
                StepEnd::Stepped { next: 11 }
            )
        );
    }

    #[test]
    fn without_a_token_the_chain_steps_on_unguarded() {
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[
            Response::NotFound,
            Response::NotFound,
            Response::Inserted(11),
        ]);
        assert_eq!(
            d,
            Decision::Finish(vec![Cmd::Delete(10)], StepEnd::Stepped { next: 11 })
        );
        let mut s = Step::new(10, 3, 7, Some(next()), 5);
        let d = s.decide(&[Response::NotFound, Response::NotFound, Response::Draining]);
        assert!(matches!(
            d,
            Decision::Finish(ref c, StepEnd::Refused { .. }) if c == &vec![Cmd::Bury { id: 10, pri: 5 }]
        ));
    }
}
