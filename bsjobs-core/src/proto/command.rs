use super::JobId;
use std::io::Write as _;

/// The longest tube name beanstalkd accepts, in bytes.
pub const MAX_TUBE_NAME: usize = 200;

/// A beanstalkd 1.12 command.
///
/// Borrowed where it can be so that a command can be encoded without copying
/// the job body or the tube name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `put <pri> <delay> <ttr> <bytes>` followed by the body.
    Put {
        /// Priority; smaller is more urgent.
        pri: u32,
        /// Seconds to wait in the delayed state.
        delay: u32,
        /// Time to run, in seconds.
        ttr: u32,
        /// The job body.
        body: &'a [u8],
    },
    /// `use <tube>`: the tube later `put`s go to.
    Use(&'a str),
    /// `reserve`: block until a job is ready in a watched tube.
    Reserve,
    /// `reserve-with-timeout <seconds>`.
    ReserveWithTimeout(u32),
    /// `reserve-job <id>`: reserve a specific job.
    ReserveJob(JobId),
    /// `delete <id>`.
    Delete(JobId),
    /// `release <id> <pri> <delay>`.
    Release {
        /// The job.
        id: JobId,
        /// New priority.
        pri: u32,
        /// Seconds in the delayed state before it is ready again.
        delay: u32,
    },
    /// `bury <id> <pri>`.
    Bury {
        /// The job.
        id: JobId,
        /// New priority.
        pri: u32,
    },
    /// `touch <id>`: ask for more time to run.
    Touch(JobId),
    /// `watch <tube>`.
    Watch(&'a str),
    /// `ignore <tube>`.
    Ignore(&'a str),
    /// `peek <id>`.
    Peek(JobId),
    /// `peek-ready` in the used tube.
    PeekReady,
    /// `peek-delayed` in the used tube.
    PeekDelayed,
    /// `peek-buried` in the used tube.
    PeekBuried,
    /// `kick <bound>` in the used tube.
    Kick(u32),
    /// `kick-job <id>`.
    KickJob(JobId),
    /// `stats-job <id>`.
    StatsJob(JobId),
    /// `stats-tube <tube>`.
    StatsTube(&'a str),
    /// `stats`.
    Stats,
    /// `list-tubes`.
    ListTubes,
    /// `list-tube-used`.
    ListTubeUsed,
    /// `list-tubes-watched`.
    ListTubesWatched,
    /// `pause-tube <tube> <delay>`.
    PauseTube(&'a str, u32),
    /// `quit`.
    Quit,
}

impl Command<'_> {
    /// Appends the wire form of this command to `out`.
    ///
    /// The caller is expected to have validated tube names with
    /// [`validate_tube`]; the client does so before anything is sent.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match self {
            Command::Put {
                pri,
                delay,
                ttr,
                body,
            } => {
                let _ = write!(out, "put {pri} {delay} {ttr} {}\r\n", body.len());
                out.extend_from_slice(body);
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Command::Use(t) => write!(out, "use {t}\r\n"),
            Command::Reserve => write!(out, "reserve\r\n"),
            Command::ReserveWithTimeout(s) => write!(out, "reserve-with-timeout {s}\r\n"),
            Command::ReserveJob(id) => write!(out, "reserve-job {id}\r\n"),
            Command::Delete(id) => write!(out, "delete {id}\r\n"),
            Command::Release { id, pri, delay } => write!(out, "release {id} {pri} {delay}\r\n"),
            Command::Bury { id, pri } => write!(out, "bury {id} {pri}\r\n"),
            Command::Touch(id) => write!(out, "touch {id}\r\n"),
            Command::Watch(t) => write!(out, "watch {t}\r\n"),
            Command::Ignore(t) => write!(out, "ignore {t}\r\n"),
            Command::Peek(id) => write!(out, "peek {id}\r\n"),
            Command::PeekReady => write!(out, "peek-ready\r\n"),
            Command::PeekDelayed => write!(out, "peek-delayed\r\n"),
            Command::PeekBuried => write!(out, "peek-buried\r\n"),
            Command::Kick(n) => write!(out, "kick {n}\r\n"),
            Command::KickJob(id) => write!(out, "kick-job {id}\r\n"),
            Command::StatsJob(id) => write!(out, "stats-job {id}\r\n"),
            Command::StatsTube(t) => write!(out, "stats-tube {t}\r\n"),
            Command::Stats => write!(out, "stats\r\n"),
            Command::ListTubes => write!(out, "list-tubes\r\n"),
            Command::ListTubeUsed => write!(out, "list-tube-used\r\n"),
            Command::ListTubesWatched => write!(out, "list-tubes-watched\r\n"),
            Command::PauseTube(t, d) => write!(out, "pause-tube {t} {d}\r\n"),
            Command::Quit => write!(out, "quit\r\n"),
        };
    }

    /// The tube name this command carries, if any.
    pub fn tube(&self) -> Option<&str> {
        match self {
            Command::Use(t)
            | Command::Watch(t)
            | Command::Ignore(t)
            | Command::StatsTube(t)
            | Command::PauseTube(t, _) => Some(t),
            _ => None,
        }
    }
}

/// Checks a tube name against beanstalkd's rules: 1–200 bytes of ASCII
/// letters, digits and `-+/;.$_()`, not starting with `-`.
///
/// Returns a human-readable reason when the name is refused.
pub fn validate_tube(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a tube name cannot be empty");
    }
    if name.len() > MAX_TUBE_NAME {
        return Err("a tube name is at most 200 bytes long");
    }
    if name.starts_with('-') {
        return Err("a tube name cannot start with '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-+/;.$_()".contains(&b))
    {
        return Err("a tube name may only contain ASCII letters, digits and -+/;.$_()");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: Command<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        c.encode(&mut v);
        v
    }

    #[test]
    fn encodes_put_with_body() {
        let got = enc(Command::Put {
            pri: 1,
            delay: 2,
            ttr: 3,
            body: b"hi",
        });
        assert_eq!(got, b"put 1 2 3 2\r\nhi\r\n");
    }

    #[test]
    fn encodes_simple_commands() {
        assert_eq!(enc(Command::Use("a")), b"use a\r\n");
        assert_eq!(
            enc(Command::ReserveWithTimeout(0)),
            b"reserve-with-timeout 0\r\n"
        );
        assert_eq!(
            enc(Command::Release {
                id: 7,
                pri: 8,
                delay: 9
            }),
            b"release 7 8 9\r\n"
        );
        assert_eq!(enc(Command::PauseTube("t", 4)), b"pause-tube t 4\r\n");
        assert_eq!(enc(Command::ListTubesWatched), b"list-tubes-watched\r\n");
    }

    #[test]
    fn validates_tube_names() {
        assert!(validate_tube("email").is_ok());
        assert!(validate_tube("a-b+c/d;e.f$g_h(i)").is_ok());
        assert!(validate_tube("").is_err());
        assert!(validate_tube("-x").is_err());
        assert!(validate_tube("a b").is_err());
        assert!(validate_tube("é").is_err());
        assert!(validate_tube(&"a".repeat(200)).is_ok());
        assert!(validate_tube(&"a".repeat(201)).is_err());
    }
}
