//! Settling a job: from the task's verdict to the commands that end its
//! reservation, as pure decisions the reserve loop carries out.
//!
//! A job travels one way: the reserve loop hands it to a task, the task
//! runs it and returns a [`Verdict`] (data, no I/O), and the loop turns the
//! verdict into a [`Settle`] whose decisions ([`Settle::begin`],
//! [`Settle::decide`]) say what to write on the reserving connection next.
//!
//! # Never delete before the next job exists
//! A retry or a next run is a new job (`put`) replacing the current one
//! (`delete`). The `delete` is only sent once beanstalkd has answered
//! `INSERTED` to the `put`; when it refuses (`JOB_TOO_BIG`, `DRAINING`,
//! `OUT_OF_MEMORY`) the job is buried instead, with the reason logged, and
//! nothing is lost. A crash between the two writes leaves the current job
//! (back to ready when its reservation ends) and possibly the new one: a
//! repeated run, never a lost job. Jobs of a chain go through their token
//! ([`super::chain`]), which also makes the repeat of a chain step harmless.

use super::chain::{Decision, Next, Step, StepEnd};
use super::cmd::{refusal, Cmd};
use crate::proto::{JobId, Response};

/// Delay of the copy a burial puts, until the same step buries it (see
/// [`Verdict::BuryCopy`]); only a crash between the two writes lets it run
/// out, and the worker deletes such a copy unrun (it was never kicked).
pub(super) const COPY_DELAY: u32 = 7 * 24 * 3600;

/// Why a job is replaced by a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A failed attempt, tried again after a backoff.
    Retry,
    /// The next run of a repeating job.
    NextRun,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Retry => "the retry",
            Purpose::NextRun => "the next run",
        }
    }
}

/// What a job task decided, without having sent anything.
#[derive(Debug)]
pub(super) enum Verdict {
    /// Done for good: `delete`.
    Delete,
    /// Give up: `bury`, for an operator to inspect and kick (a body that
    /// cannot be decoded is buried as it is).
    Bury { pri: u32 },
    /// Give up, saying why: the job is replaced by a copy whose envelope
    /// carries the burial record (`err`), and the copy is buried. beanstalkd
    /// cannot change a body, so: `put` the copy delayed ([`COPY_DELAY`]),
    /// then, once it exists, `reserve-job` it, `bury` it and `delete` the
    /// job in one write. A crash before that write leaves the job (it runs
    /// again, at least once, as after any crash) and a delayed copy that
    /// the worker deletes unrun when it comes due; after it, the buried
    /// copy. Nothing is lost at any point. A refused copy buries the job
    /// as it is.
    BuryCopy { pri: u32, copy: Next },
    /// Replace the job by `next` (a retry or the next run): `put`, then
    /// `delete` once the put is answered.
    Replace {
        next: Next,
        pri: u32,
        purpose: Purpose,
    },
    /// A step of a chain guarded by its token `token` (see `chain.rs`);
    /// without `next`, the chain's end.
    Step {
        token: JobId,
        gen: u32,
        prev: Option<JobId>,
        next: Option<Next>,
        pri: u32,
        purpose: Purpose,
    },
    /// A cancelled chain: delete the job and its token.
    Cancelled { token: JobId },
    /// Hand the job back as it is, ready at once, keeping its priority: a
    /// raw job's retry once its backoff has passed (see `raw.rs`).
    Release { pri: u32 },
}

/// A job being settled.
#[derive(Debug)]
pub(super) enum Settle {
    /// Commands whose replies are only checked.
    Final,
    Replace {
        job: JobId,
        pri: u32,
        purpose: Purpose,
    },
    Chain {
        step: Step,
        purpose: Purpose,
    },
    BuryCopy {
        job: JobId,
        pri: u32,
    },
}

/// What the reserve loop does next for a job being settled.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Send these; their replies go to [`Settle::decide`].
    Send(Vec<Cmd>),
    /// Send these after a short pause (a chain token is held elsewhere).
    Wait(Vec<Cmd>),
    /// Send these last commands and check their replies; then the job is
    /// settled. The note says what happened, when it is worth a log line.
    Finish(Vec<Cmd>, Option<Note>),
}

/// Something about a settlement worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Note {
    /// beanstalkd refused the replacement; the job was buried instead.
    Refused {
        what: &'static str,
        reply: String,
        chain: bool,
    },
    /// The replacement was stored buried (server out of memory).
    StoredBuried { next: JobId },
    /// A newer job of the chain holds the token: this one ended without a
    /// successor.
    Superseded,
    /// The chain was cancelled during this run.
    Cancelled,
    /// The chain ended.
    Ended,
}

impl Settle {
    /// The settlement of job `job` for `verdict`, and its first commands.
    pub(super) fn begin(job: JobId, verdict: Verdict) -> (Settle, Progress) {
        match verdict {
            Verdict::Delete => (
                Settle::Final,
                Progress::Finish(vec![Cmd::Delete(job)], None),
            ),
            Verdict::Bury { pri } => (
                Settle::Final,
                Progress::Finish(vec![Cmd::Bury { id: job, pri }], None),
            ),
            Verdict::BuryCopy { pri, copy } => (
                Settle::BuryCopy { job, pri },
                Progress::Send(vec![copy.put()]),
            ),
            Verdict::Release { pri } => (
                Settle::Final,
                Progress::Finish(vec![Cmd::Release { id: job, pri }], None),
            ),
            Verdict::Cancelled { token } => (
                Settle::Final,
                Progress::Finish(
                    vec![Cmd::Delete(job), Cmd::Delete(token)],
                    Some(Note::Cancelled),
                ),
            ),
            Verdict::Replace { next, pri, purpose } => {
                let cmds = vec![next.put()];
                (Settle::Replace { job, pri, purpose }, Progress::Send(cmds))
            }
            Verdict::Step {
                token,
                gen,
                prev,
                next,
                pri,
                purpose,
            } => {
                let step = Step::new(job, gen, token, next, pri).with_prev(prev);
                let cmds = step.begin();
                (Settle::Chain { step, purpose }, Progress::Send(cmds))
            }
        }
    }

    /// Decides from the replies to the commands of the last [`Progress::Send`]
    /// or [`Progress::Wait`].
    pub(super) fn decide(&mut self, replies: &[Response]) -> Progress {
        match self {
            Settle::Final => Progress::Finish(Vec::new(), None),
            Settle::Replace { job, pri, purpose } => match replies.first() {
                Some(Response::Inserted(_)) => Progress::Finish(vec![Cmd::Delete(*job)], None),
                // Stored, but buried: it exists, so the current job can go.
                Some(Response::BuriedId(next)) => Progress::Finish(
                    vec![Cmd::Delete(*job)],
                    Some(Note::StoredBuried { next: *next }),
                ),
                other => Progress::Finish(
                    vec![Cmd::Bury {
                        id: *job,
                        pri: *pri,
                    }],
                    Some(Note::Refused {
                        what: purpose.as_str(),
                        reply: other.map_or_else(|| "no reply".to_owned(), refusal),
                        chain: false,
                    }),
                ),
            },
            Settle::BuryCopy { job, pri } => match replies.first() {
                Some(Response::Inserted(copy)) => Progress::Finish(
                    vec![
                        Cmd::ReserveJob(*copy),
                        Cmd::Bury {
                            id: *copy,
                            pri: *pri,
                        },
                        Cmd::Delete(*job),
                    ],
                    None,
                ),
                // Stored buried already (server out of memory): done.
                Some(Response::BuriedId(_)) => Progress::Finish(vec![Cmd::Delete(*job)], None),
                other => Progress::Finish(
                    vec![Cmd::Bury {
                        id: *job,
                        pri: *pri,
                    }],
                    Some(Note::Refused {
                        what: "the copy that records why it is buried",
                        reply: other.map_or_else(|| "no reply".to_owned(), refusal),
                        chain: false,
                    }),
                ),
            },
            Settle::Chain { step, purpose } => match step.decide(replies) {
                Decision::Send(c) => Progress::Send(c),
                Decision::Wait(c) => Progress::Wait(c),
                Decision::Finish(c, end) => {
                    let note = match end {
                        StepEnd::Stepped { .. } => None,
                        StepEnd::Ended => Some(Note::Ended),
                        StepEnd::Cancelled => Some(Note::Cancelled),
                        StepEnd::Superseded => Some(Note::Superseded),
                        StepEnd::Refused { reply } => Some(Note::Refused {
                            what: purpose.as_str(),
                            reply,
                            chain: true,
                        }),
                    };
                    Progress::Finish(c, note)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next() -> Next {
        Next {
            body: b"{}".to_vec(),
            pri: 5,
            delay: 3,
            ttr: 60,
        }
    }

    fn replace(purpose: Purpose) -> (Settle, Progress) {
        Settle::begin(
            10,
            Verdict::Replace {
                next: next(),
                pri: 5,
                purpose,
            },
        )
    }

    #[test]
    fn a_replacement_is_put_alone_and_the_job_deleted_only_once_it_exists() {
        let (mut s, p) = replace(Purpose::Retry);
        assert_eq!(p, Progress::Send(vec![next().put()]));
        assert_eq!(
            s.decide(&[Response::Inserted(11)]),
            Progress::Finish(vec![Cmd::Delete(10)], None)
        );
    }

    #[test]
    fn a_refused_replacement_buries_the_job_and_says_so_accurately() {
        for (purpose, what) in [
            (Purpose::Retry, "the retry"),
            (Purpose::NextRun, "the next run"),
        ] {
            for refusal in [Response::JobTooBig, Response::Draining] {
                let (mut s, _) = replace(purpose);
                let p = s.decide(std::slice::from_ref(&refusal));
                assert_eq!(
                    p,
                    Progress::Finish(
                        vec![Cmd::Bury { id: 10, pri: 5 }],
                        Some(Note::Refused {
                            what,
                            reply: refusal_name(&refusal),
                            chain: false
                        })
                    )
                );
            }
        }
    }

    fn refusal_name(r: &Response) -> String {
        refusal(r)
    }

    #[test]
    fn a_burial_with_its_record_deletes_the_job_only_after_the_copy_is_buried() {
        let (mut s, p) = Settle::begin(
            10,
            Verdict::BuryCopy {
                pri: 5,
                copy: next(),
            },
        );
        assert_eq!(p, Progress::Send(vec![next().put()]));
        assert_eq!(
            s.decide(&[Response::Inserted(11)]),
            Progress::Finish(
                vec![
                    Cmd::ReserveJob(11),
                    Cmd::Bury { id: 11, pri: 5 },
                    Cmd::Delete(10)
                ],
                None
            )
        );
        let (mut s, _) = Settle::begin(
            10,
            Verdict::BuryCopy {
                pri: 5,
                copy: next(),
            },
        );
        let Progress::Finish(cmds, Some(Note::Refused { .. })) = s.decide(&[Response::JobTooBig])
        else {
            panic!("a refused copy is reported");
        };
        assert_eq!(
            cmds,
            vec![Cmd::Bury { id: 10, pri: 5 }],
            "the job itself is kept"
        );
    }

    #[test]
    fn final_verdicts_need_one_write() {
        assert_eq!(
            Settle::begin(10, Verdict::Delete).1,
            Progress::Finish(vec![Cmd::Delete(10)], None)
        );
        assert_eq!(
            Settle::begin(10, Verdict::Bury { pri: 3 }).1,
            Progress::Finish(vec![Cmd::Bury { id: 10, pri: 3 }], None)
        );
        // A raw job's retry: the same job, ready again, its priority kept.
        assert_eq!(
            Settle::begin(10, Verdict::Release { pri: 7 }).1,
            Progress::Finish(vec![Cmd::Release { id: 10, pri: 7 }], None)
        );
    }
}
