//! Owned beanstalkd commands: what the decisions of `execute`, `settle` and
//! `chain` hand to the reserve loop to send.

use crate::proto::{Command, JobId, Response};

/// A command to send on the connection that reserved a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cmd {
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

impl Cmd {
    pub(super) fn command(&self) -> Command<'_> {
        match self {
            Cmd::ReserveJob(id) => Command::ReserveJob(*id),
            Cmd::StatsJob(id) => Command::StatsJob(*id),
            Cmd::Put {
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
            Cmd::Bury { id, pri } => Command::Bury { id: *id, pri: *pri },
            Cmd::Release { id, pri } => Command::Release {
                id: *id,
                pri: *pri,
                delay: 0,
            },
            Cmd::Delete(id) => Command::Delete(*id),
        }
    }

    /// Whether `r` is the success reply of this command.
    pub(super) fn succeeded(&self, r: &Response) -> bool {
        matches!(
            (self, r),
            (Cmd::ReserveJob(_), Response::Reserved { .. })
                | (Cmd::StatsJob(_), Response::Ok(_))
                | (Cmd::Put { .. }, Response::Inserted(_))
                | (Cmd::Bury { .. }, Response::Buried)
                | (Cmd::Release { .. }, Response::Released)
                | (Cmd::Delete(_), Response::Deleted)
        )
    }

    /// The command's name, for log lines.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Cmd::ReserveJob(_) => "reserve-job",
            Cmd::StatsJob(_) => "stats-job",
            Cmd::Put { .. } => "put",
            Cmd::Bury { .. } => "bury",
            Cmd::Release { .. } => "release",
            Cmd::Delete(_) => "delete",
        }
    }
}

/// A refusal of a `put`, in beanstalkd's words, for log lines and burial
/// reasons.
pub(super) fn refusal(r: &Response) -> String {
    match r {
        Response::JobTooBig => "JOB_TOO_BIG".to_owned(),
        Response::Draining => "DRAINING".to_owned(),
        Response::OutOfMemory => "OUT_OF_MEMORY".to_owned(),
        Response::InternalError => "INTERNAL_ERROR".to_owned(),
        other => format!("{other:?}"),
    }
}
