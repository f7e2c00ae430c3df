//! Chain tokens: how a repeating chain stays one chain when beanstalkd dies
//! between the `put` of the next step and the `delete` of the current one.
//!
//! beanstalkd has no transaction: a step of a chain (next run, or retry) is
//! a `put` of the new job and a `delete` of the old one, and a server killed
//! between the two keeps both. Each job of a chain carries a generation
//! (`gen` in the envelope, +1 per step), and each chain has a *token*: one
//! job in tube `bsjobs.chain.<chain>`, kept buried, whose priority is the
//! newest generation scheduled. A step is one write on the connection that
//! holds both the job and the token (`reserve-job` of the token first):
//!
//! ```text
//! put <next, gen g+1>   bury <token> <g+1>   delete <job>
//! ```
//!
//! beanstalkd runs and logs them in this order, so after a crash:
//! - nothing or only the `put` ran: the old job (gen g) is back; it is not
//!   older than the token (g), so it runs again (at least once, as after any
//!   crash) and its step writes a second job of gen g+1. Two jobs of one
//!   generation: the first to run moves the token to g+2, and the other
//!   is then older than the token and is deleted when it comes due, unrun.
//! - `put` and `bury` ran: the old job is older than the token: deleted,
//!   unrun; the new one carries on.
//!
//! A job is only ever dropped for being older than the token, and the token
//! only moves after the `put` of a newer job; so a chain never dies of this,
//! and a fork lasts at most until its twin comes due.

use super::execute::Ctx;
use super::link::{Link, Op};
use crate::job::Envelope;
use crate::proto::stats::{JobStats, TubeStats};
use crate::proto::{validate_tube, JobId, Response};
use std::time::Duration;

/// TTR of a token. It is held for one round trip at a time; the TTR only
/// frees a token held by a connection that hangs.
const TOKEN_TTR: u32 = 60;
/// How long a step waits for a token another worker holds, in tries of
/// [`BUSY_PAUSE`].
const BUSY_TRIES: u32 = 50;
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// The tube holding the token of `chain`, if the chain id makes a valid
/// tube name (chain ids bsjobs makes always do).
pub(super) fn token_tube(chain: &str) -> Option<String> {
    let t = format!("bsjobs.chain.{chain}");
    validate_tube(&t).is_ok().then_some(t)
}

fn token_body(chain: &str) -> Vec<u8> {
    let mut b = br#"{"bsjobs":"chain-token","chain":"#.to_vec();
    let _ = serde_json::to_writer(&mut b, chain);
    b.push(b'}');
    b
}

/// The chain's newest generation, read without holding the token (through
/// the control client); `None` when there is no token or it cannot be read.
/// Lets a stale twin be dropped before it runs.
pub(super) async fn newest_gen(ctx: &Ctx, chain: &str) -> Option<u32> {
    let tube = token_tube(chain)?;
    let body = token_body(chain);
    // Both peeks go out together on the control lane: one round trip.
    let (buried, ready) = tokio::join!(
        ctx.control.peek_buried(ctx.server, &tube),
        ctx.control.peek_ready(ctx.server, &tube)
    );
    let id = [buried, ready].into_iter().find_map(|found| match found {
        Ok(Some((id, b))) if b == body => Some(id),
        _ => None,
    })?;
    ctx.control
        .stats_job(ctx.server, id)
        .await
        .ok()
        .map(|s| s.pri)
}

/// The chain's token, as found by a step.
enum Token {
    /// Reserved by this connection; `gen` is the newest generation.
    Held { id: JobId, gen: u32 },
    /// No token yet (the chain's first step) or lost.
    Missing,
    /// Another connection holds it and did not let go in time.
    Busy,
}

/// Finds and reserves the chain's token on the reserving connection.
/// `None`: the connection is gone.
async fn hold(link: &Link, job_tube: &str, chain: &str, tube: &str) -> Option<Token> {
    let body = token_body(chain);
    for _ in 0..BUSY_TRIES {
        let r = link
            .ask(
                vec![
                    Op::Use(tube.to_owned()),
                    Op::PeekBuried,
                    Op::PeekReady,
                    Op::StatsTube(tube.to_owned()),
                    Op::Use(job_tube.to_owned()),
                ],
                false,
            )
            .await?;
        let found = r[1..3].iter().find_map(|r| match r {
            Response::Found { id, body: b } if *b == body => Some(*id),
            _ => None,
        });
        let Some(id) = found else {
            let held_elsewhere = match &r[3] {
                Response::Ok(yaml) => TubeStats::parse(yaml)
                    .map(|s| s.current_jobs_reserved > 0)
                    .unwrap_or(false),
                _ => false,
            };
            if !held_elsewhere {
                return Some(Token::Missing);
            }
            tokio::time::sleep(BUSY_PAUSE).await;
            continue;
        };
        let r = link
            .ask(vec![Op::ReserveJob(id), Op::StatsJob(id)], false)
            .await?;
        let pri = match &r[1] {
            Response::Ok(yaml) => JobStats::parse(yaml).ok().map(|s| s.pri),
            _ => None,
        };
        match (&r[0], pri) {
            (Response::Reserved { body: b, .. }, Some(gen)) if *b == body => {
                return Some(Token::Held { id, gen });
            }
            (Response::Reserved { .. }, pri) => {
                // Not the token after all; hand it back untouched.
                let pri = pri.unwrap_or(0);
                link.ask(vec![Op::Release { id, pri }], false).await?;
                return Some(Token::Missing);
            }
            _ => tokio::time::sleep(BUSY_PAUSE).await,
        }
    }
    Some(Token::Busy)
}

/// The next job of a step: its `put` parameters.
pub(super) struct Next {
    pub(super) body: Vec<u8>,
    pub(super) pri: u32,
    pub(super) delay: u32,
    pub(super) ttr: u32,
}

/// Ends job `id` of `chain` (generation of `env`) with one write on the
/// reserving connection: with `next`, a step to the next job; without, the
/// end of the chain (its token goes too).
pub(super) async fn step(
    ctx: &Ctx,
    link: &Link,
    id: JobId,
    env: &Envelope<'_>,
    chain: &str,
    next: Option<Next>,
) {
    let job_tube = ctx.descriptor.tube;
    let Some(tube) = token_tube(chain) else {
        plain(ctx, link, id, next).await;
        return;
    };
    let Some(token) = hold(link, job_tube, chain, &tube).await else {
        return;
    };
    let g = env.gen;
    let ops = match (token, next) {
        (Token::Held { id: t, gen }, Some(_)) if g < gen => {
            tracing::info!(
                tube = job_tube,
                id,
                chain,
                gen = g,
                newest = gen,
                "a newer job of this chain is already scheduled (a twin left by a server crash); this one ends without a successor"
            );
            vec![Op::Bury { id: t, pri: gen }, Op::Delete(id)]
        }
        (Token::Held { id: t, .. }, Some(n)) => vec![
            put(n),
            Op::Bury {
                id: t,
                pri: g.wrapping_add(1),
            },
            Op::Delete(id),
        ],
        (Token::Held { id: t, .. }, None) => vec![Op::Delete(id), Op::Delete(t)],
        (Token::Missing, Some(n)) => vec![
            put(n),
            Op::Use(tube),
            Op::Put {
                pri: g.wrapping_add(1),
                delay: 0,
                ttr: TOKEN_TTR,
                body: token_body(chain),
            },
            Op::Use(job_tube.to_owned()),
            Op::Delete(id),
        ],
        (Token::Missing, None) => vec![Op::Delete(id)],
        (Token::Busy, next) => {
            tracing::warn!(
                tube = job_tube,
                id,
                chain,
                "chain token held elsewhere for over a second; stepping without it"
            );
            plain(ctx, link, id, next).await;
            return;
        }
    };
    settle(ctx, link, id, ops).await;
}

fn put(n: Next) -> Op {
    Op::Put {
        pri: n.pri,
        delay: n.delay,
        ttr: n.ttr,
        body: n.body,
    }
}

/// A step without a token: put + delete, or delete.
async fn plain(ctx: &Ctx, link: &Link, id: JobId, next: Option<Next>) {
    let mut ops = Vec::with_capacity(2);
    ops.extend(next.map(put));
    ops.push(Op::Delete(id));
    settle(ctx, link, id, ops).await;
}

/// Sends the ops that end job `id` and logs what went wrong.
async fn settle(ctx: &Ctx, link: &Link, id: JobId, ops: Vec<Op>) {
    let tube = ctx.descriptor.tube;
    let Some(replies) = link.ask(ops.clone(), true).await else {
        return;
    };
    for (op, r) in ops.iter().zip(replies) {
        match (op, r) {
            (Op::Put { .. }, Response::Inserted(_))
            | (Op::Use(_), Response::Using(_))
            | (Op::Bury { .. }, Response::Buried)
            | (Op::Delete(_), Response::Deleted) => {}
            (Op::Put { .. }, Response::BuriedId(next)) => {
                tracing::error!(tube, id, next, "server out of memory: next job of the chain was stored buried; kick it to resume");
            }
            (Op::Delete(d), Response::NotFound) if *d == id => {
                tracing::warn!(
                    tube,
                    id,
                    "job no longer reserved by this worker (TTR passed?); it may run again"
                );
            }
            (op, r) => {
                tracing::error!(tube, id, op = ?kind(op), reply = ?r, "unexpected reply while ending a chain job");
            }
        }
    }
}

fn kind(op: &Op) -> &'static str {
    match op {
        Op::Use(_) => "use",
        Op::PeekReady => "peek-ready",
        Op::PeekBuried => "peek-buried",
        Op::StatsTube(_) => "stats-tube",
        Op::ReserveJob(_) => "reserve-job",
        Op::StatsJob(_) => "stats-job",
        Op::Put { .. } => "put",
        Op::Bury { .. } => "bury",
        Op::Release { .. } => "release",
        Op::Delete(_) => "delete",
    }
}
