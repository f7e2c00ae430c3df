//! How a job task has commands sent on the connection that reserved its job.
//!
//! Some commands only mean something on that connection: `delete` and `bury`
//! of the job, and `reserve-job` / `bury` of a chain token, which must be
//! held by the same connection as the job so that one write carries the
//! whole step and a worker dying around it cannot split it.

use super::tube::Done;
use crate::proto::{Command, JobId, Response};
use tokio::sync::{mpsc, oneshot};

/// A command a job task asks its reserve loop to send (owned, so it can
/// cross the channel).
#[derive(Debug, Clone)]
pub(super) enum Op {
    Use(String),
    PeekReady,
    PeekBuried,
    StatsTube(String),
    ReserveJob(JobId),
    StatsJob(JobId),
    Put {
        pri: u32,
        delay: u32,
        ttr: u32,
        body: Vec<u8>,
    },
    Bury {
        id: JobId,
        pri: u32,
    },
    Release {
        id: JobId,
        pri: u32,
    },
    Delete(JobId),
}

impl Op {
    pub(super) fn command(&self) -> Command<'_> {
        match self {
            Op::Use(t) => Command::Use(t),
            Op::PeekReady => Command::PeekReady,
            Op::PeekBuried => Command::PeekBuried,
            Op::StatsTube(t) => Command::StatsTube(t),
            Op::ReserveJob(id) => Command::ReserveJob(*id),
            Op::StatsJob(id) => Command::StatsJob(*id),
            Op::Put {
                pri,
                delay,
                ttr,
                body,
            } => Command::Put {
                pri: *pri,
                delay: *delay,
                ttr: *ttr,
                body,
            },
            Op::Bury { id, pri } => Command::Bury { id: *id, pri: *pri },
            Op::Release { id, pri } => Command::Release {
                id: *id,
                pri: *pri,
                delay: 0,
            },
            Op::Delete(id) => Command::Delete(*id),
        }
    }
}

/// Commands to send back to back on the reserving connection; the replies
/// come back in order, or the reply channel closes if the connection (and
/// with it the job's reservation) is gone.
pub(super) struct Ask {
    pub(super) epoch: u64,
    /// The job whose reservation these commands end (the last ones delete
    /// or bury it): it leaves the in-flight set when they are sent.
    pub(super) settles: Option<JobId>,
    pub(super) ops: Vec<Op>,
    pub(super) reply: oneshot::Sender<Vec<Response>>,
}

/// What a job task sends its reserve loop.
pub(super) enum Msg {
    Done(Done),
    Ask(Ask),
}

/// A job task's line to the reserve loop that holds its job.
pub(super) struct Link {
    tx: mpsc::UnboundedSender<Msg>,
    epoch: u64,
    id: JobId,
}

impl Link {
    pub(super) fn new(tx: mpsc::UnboundedSender<Msg>, epoch: u64, id: JobId) -> Link {
        Link { tx, epoch, id }
    }

    /// Sends `ops` on the reserving connection and returns their replies;
    /// `None` when the connection that reserved the job is gone (the job is
    /// back in the queue). With `settles`, the ops end this job's
    /// reservation.
    pub(super) async fn ask(&self, ops: Vec<Op>, settles: bool) -> Option<Vec<Response>> {
        let (reply, rx) = oneshot::channel();
        let ask = Ask {
            epoch: self.epoch,
            settles: settles.then_some(self.id),
            ops,
            reply,
        };
        self.tx.send(Msg::Ask(ask)).ok()?;
        rx.await.ok()
    }
}
