//! Typed views of the YAML bodies beanstalkd sends in `OK <bytes>` replies.
//!
//! `stats`, `stats-tube` and `stats-job` answer with a flat YAML mapping,
//! `list-tubes` and `list-tubes-watched` with a flat YAML sequence:
//!
//! ```text
//! ---
//! id: 1
//! tube: default
//! state: ready
//! ...
//! ```
//!
//! beanstalkd prints these with `printf`, so a full YAML parser would be
//! overkill: [`JobStats::parse`], [`TubeStats::parse`], [`ServerStats::parse`]
//! and [`parse_list`] read exactly this shape. A value may be wrapped in double
//! quotes (beanstalkd 1.12 quotes `version`; later versions also quote names).
//! Keys this crate does not know are skipped, so a newer server that reports
//! more counters still parses; a missing key or a value of the wrong shape is a
//! [`StatsError`] naming the key.
//!
//! ```
//! use bsjobs::proto::stats::{JobState, JobStats};
//!
//! let yaml = b"---\nid: 7\ntube: emails\nstate: delayed\npri: 10\nage: 3\n\
//!     delay: 60\nttr: 120\ntime-left: 57\nfile: 0\nreserves: 0\ntimeouts: 0\n\
//!     releases: 0\nburies: 0\nkicks: 0\n";
//! let stats = JobStats::parse(yaml)?;
//! assert_eq!(stats.tube, "emails");
//! assert_eq!(stats.state, JobState::Delayed);
//! assert_eq!(stats.time_left, 57);
//! # Ok::<(), bsjobs::proto::stats::StatsError>(())
//! ```

use super::JobId;

/// A stats or list body that is not what beanstalkd sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    /// The body does not start with the YAML document marker `---`.
    #[error("stats body does not start with `---`")]
    MissingHeader,
    /// A line is neither `key: value` (mappings) nor `- item` (lists).
    #[error("stats body line {line} is malformed")]
    Malformed {
        /// 1-based line number; the `---` marker is line 1.
        line: usize,
    },
    /// A key the reply must have is absent.
    #[error("stats body lacks `{key}`")]
    MissingKey {
        /// The beanstalkd key, such as `current-jobs-ready`.
        key: &'static str,
    },
    /// A key's value does not parse as the expected type.
    #[error("stats key `{key}` has unparseable value {value:?}")]
    InvalidValue {
        /// The beanstalkd key.
        key: &'static str,
        /// The value as sent (lossily decoded, cut to 64 bytes).
        value: String,
    },
}

/// The state of a job, as reported by `stats-job`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to be reserved.
    Ready,
    /// Waiting for its delay to run out before becoming ready.
    Delayed,
    /// Reserved by a worker, which must delete, release, bury or touch it
    /// before its time-to-run runs out.
    Reserved,
    /// Set aside until kicked.
    Buried,
}

impl JobState {
    /// The word beanstalkd uses: `ready`, `delayed`, `reserved` or `buried`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed => "delayed",
            JobState::Reserved => "reserved",
            JobState::Buried => "buried",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value type that can appear on the right of `key: value`.
trait StatValue: Sized {
    /// Parses the (already unquoted) value; `None` if it has the wrong shape.
    fn from_stat(raw: &[u8]) -> Option<Self>;
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces).
fn digits<T: std::str::FromStr>(raw: &[u8]) -> Option<T> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

macro_rules! unsigned_stat_value {
    ($($t:ty),*) => {$(
        impl StatValue for $t {
            fn from_stat(raw: &[u8]) -> Option<Self> {
                digits(raw)
            }
        }
    )*};
}
unsigned_stat_value!(u32, u64);

impl StatValue for i64 {
    fn from_stat(raw: &[u8]) -> Option<Self> {
        match raw.strip_prefix(b"-") {
            // Negate in i128 so that i64::MIN, whose magnitude is no i64, parses.
            Some(mag) => i64::try_from(-i128::from(digits::<u64>(mag)?)).ok(),
            None => digits(raw),
        }
    }
}

impl StatValue for f64 {
    fn from_stat(raw: &[u8]) -> Option<Self> {
        // beanstalkd prints rusage as `%d.%06d`; refuse `inf`, `NaN`, `1e5`, `+1`.
        if raw.is_empty() || !raw.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
            return None;
        }
        std::str::from_utf8(raw).ok()?.parse().ok()
    }
}

impl StatValue for bool {
    fn from_stat(raw: &[u8]) -> Option<Self> {
        match raw {
            b"true" => Some(true),
            b"false" => Some(false),
            _ => None,
        }
    }
}

impl StatValue for String {
    fn from_stat(raw: &[u8]) -> Option<Self> {
        // Host names and `uname` strings are not guaranteed UTF-8; a stray
        // byte there should not make the whole `stats` reply unreadable.
        Some(String::from_utf8_lossy(raw).into_owned())
    }
}

impl StatValue for JobState {
    fn from_stat(raw: &[u8]) -> Option<Self> {
        match raw {
            b"ready" => Some(JobState::Ready),
            b"delayed" => Some(JobState::Delayed),
            b"reserved" => Some(JobState::Reserved),
            b"buried" => Some(JobState::Buried),
            _ => None,
        }
    }
}

/// Strips one pair of surrounding double quotes, if present.
fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// The non-blank lines after the `---` marker, with their 1-based numbers.
fn body_lines(yaml: &[u8]) -> Result<impl Iterator<Item = (usize, &[u8])>, StatsError> {
    let mut lines = yaml
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, b"---")) => Ok(lines.filter(|(_, l)| !l.is_empty())),
        _ => Err(StatsError::MissingHeader),
    }
}

/// The `(key, value)` pairs of a flat YAML mapping, values unquoted. Keys
/// that are not UTF-8 cannot be known keys and are skipped.
fn mapping(
    yaml: &[u8],
) -> Result<impl Iterator<Item = Result<(&str, &[u8]), StatsError>>, StatsError> {
    Ok(body_lines(yaml)?.filter_map(|(n, line)| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Some(Err(StatsError::Malformed { line: n }));
        };
        let key = std::str::from_utf8(&line[..colon]).ok()?;
        let value = &line[colon + 1..];
        let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
        Some(Ok((key, unquote(&value[start..]))))
    }))
}

/// Parses `raw` as the value of `key`.
fn value<T: StatValue>(key: &'static str, raw: &[u8]) -> Result<T, StatsError> {
    T::from_stat(raw).ok_or_else(|| StatsError::InvalidValue {
        key,
        value: String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned(),
    })
}

/// Declares a stats struct and its parser from one list of
/// `field: Type = "beanstalkd-key"` entries.
macro_rules! stats_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident for $cmd:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $key:literal, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            #[doc = concat!("Parses the YAML body of the `OK` reply to `", $cmd, "`.")]
            ///
            /// Unknown keys are ignored; when a key appears twice, the first wins.
            pub fn parse(yaml: &[u8]) -> Result<Self, StatsError> {
                $( let mut $field: Option<$ty> = None; )*
                for pair in mapping(yaml)? {
                    let (key, raw) = pair?;
                    match key {
                        $( $key if $field.is_none() => $field = Some(value($key, raw)?), )*
                        _ => {}
                    }
                }
                Ok(Self {
                    $( $field: $field.ok_or(StatsError::MissingKey { key: $key })?, )*
                })
            }
        }
    };
}

stats_struct! {
    /// The reply to `stats-job <id>`: where a job is and what happened to it.
    ///
    /// Durations are whole seconds.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct JobStats for "stats-job" {
        /// The job id.
        id: JobId = "id",
        /// The tube the job is in.
        tube: String = "tube",
        /// The job's state.
        state: JobState = "state",
        /// Priority; lower is more urgent, below 1024 counts as urgent.
        pri: u32 = "pri",
        /// Seconds since the job was created.
        age: u64 = "age",
        /// The delay the job was last put or released with, in seconds.
        delay: u32 = "delay",
        /// Time-to-run, in seconds.
        ttr: u32 = "ttr",
        /// Seconds until a reserved job times out or a delayed job becomes
        /// ready; 0 in other states. Can be slightly negative when the server
        /// has not yet acted on an expired deadline.
        time_left: i64 = "time-left",
        /// The binlog file holding the job (0 without a binlog).
        file: u64 = "file",
        /// How many times the job was reserved.
        reserves: u64 = "reserves",
        /// How many times a reservation timed out.
        timeouts: u64 = "timeouts",
        /// How many times the job was released.
        releases: u64 = "releases",
        /// How many times the job was buried.
        buries: u64 = "buries",
        /// How many times the job was kicked.
        kicks: u64 = "kicks",
    }
}

stats_struct! {
    /// The reply to `stats-tube <tube>`: the counts of one tube.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TubeStats for "stats-tube" {
        /// The tube's name.
        name: String = "name",
        /// Ready jobs with priority below 1024.
        current_jobs_urgent: u64 = "current-jobs-urgent",
        /// Ready jobs.
        current_jobs_ready: u64 = "current-jobs-ready",
        /// Reserved jobs.
        current_jobs_reserved: u64 = "current-jobs-reserved",
        /// Delayed jobs.
        current_jobs_delayed: u64 = "current-jobs-delayed",
        /// Buried jobs.
        current_jobs_buried: u64 = "current-jobs-buried",
        /// Jobs ever created in this tube.
        total_jobs: u64 = "total-jobs",
        /// Connections that `use` this tube.
        current_using: u64 = "current-using",
        /// Connections watching this tube and waiting in a reserve.
        current_waiting: u64 = "current-waiting",
        /// Connections that watch this tube.
        current_watching: u64 = "current-watching",
        /// Seconds the tube was last paused for (`pause-tube`).
        pause: u32 = "pause",
        /// `delete` commands that hit a job of this tube.
        cmd_delete: u64 = "cmd-delete",
        /// `pause-tube` commands on this tube.
        cmd_pause_tube: u64 = "cmd-pause-tube",
        /// Seconds until the tube is unpaused; 0 when not paused.
        pause_time_left: i64 = "pause-time-left",
    }
}

impl TubeStats {
    /// The counts of a tube that does not exist: all zero. beanstalkd deletes
    /// a tube when its last job and its last watcher are gone, so "absent"
    /// and "empty" are the same state.
    pub fn empty(name: &str) -> TubeStats {
        TubeStats {
            name: name.to_owned(),
            current_jobs_urgent: 0,
            current_jobs_ready: 0,
            current_jobs_reserved: 0,
            current_jobs_delayed: 0,
            current_jobs_buried: 0,
            total_jobs: 0,
            current_using: 0,
            current_waiting: 0,
            current_watching: 0,
            pause: 0,
            cmd_delete: 0,
            cmd_pause_tube: 0,
            pause_time_left: 0,
        }
    }
}

stats_struct! {
    /// The reply to `stats`: the server-wide counters.
    ///
    /// `cmd_*` fields count commands of that name since the server started.
    #[derive(Debug, Clone, PartialEq)]
    pub struct ServerStats for "stats" {
        /// Ready jobs with priority below 1024.
        current_jobs_urgent: u64 = "current-jobs-urgent",
        /// Ready jobs.
        current_jobs_ready: u64 = "current-jobs-ready",
        /// Reserved jobs.
        current_jobs_reserved: u64 = "current-jobs-reserved",
        /// Delayed jobs.
        current_jobs_delayed: u64 = "current-jobs-delayed",
        /// Buried jobs.
        current_jobs_buried: u64 = "current-jobs-buried",
        /// `put` commands.
        cmd_put: u64 = "cmd-put",
        /// `peek` commands.
        cmd_peek: u64 = "cmd-peek",
        /// `peek-ready` commands.
        cmd_peek_ready: u64 = "cmd-peek-ready",
        /// `peek-delayed` commands.
        cmd_peek_delayed: u64 = "cmd-peek-delayed",
        /// `peek-buried` commands.
        cmd_peek_buried: u64 = "cmd-peek-buried",
        /// `reserve` commands.
        cmd_reserve: u64 = "cmd-reserve",
        /// `reserve-with-timeout` commands.
        cmd_reserve_with_timeout: u64 = "cmd-reserve-with-timeout",
        /// `delete` commands.
        cmd_delete: u64 = "cmd-delete",
        /// `release` commands.
        cmd_release: u64 = "cmd-release",
        /// `use` commands.
        cmd_use: u64 = "cmd-use",
        /// `watch` commands.
        cmd_watch: u64 = "cmd-watch",
        /// `ignore` commands.
        cmd_ignore: u64 = "cmd-ignore",
        /// `bury` commands.
        cmd_bury: u64 = "cmd-bury",
        /// `kick` commands.
        cmd_kick: u64 = "cmd-kick",
        /// `touch` commands.
        cmd_touch: u64 = "cmd-touch",
        /// `stats` commands.
        cmd_stats: u64 = "cmd-stats",
        /// `stats-job` commands.
        cmd_stats_job: u64 = "cmd-stats-job",
        /// `stats-tube` commands.
        cmd_stats_tube: u64 = "cmd-stats-tube",
        /// `list-tubes` commands.
        cmd_list_tubes: u64 = "cmd-list-tubes",
        /// `list-tube-used` commands.
        cmd_list_tube_used: u64 = "cmd-list-tube-used",
        /// `list-tubes-watched` commands.
        cmd_list_tubes_watched: u64 = "cmd-list-tubes-watched",
        /// `pause-tube` commands.
        cmd_pause_tube: u64 = "cmd-pause-tube",
        /// Reservations that timed out.
        job_timeouts: u64 = "job-timeouts",
        /// Jobs ever created.
        total_jobs: u64 = "total-jobs",
        /// The largest job body the server accepts, in bytes (`-z`).
        max_job_size: u64 = "max-job-size",
        /// Tubes that exist.
        current_tubes: u64 = "current-tubes",
        /// Open connections.
        current_connections: u64 = "current-connections",
        /// Open connections that have issued at least one `put`.
        current_producers: u64 = "current-producers",
        /// Open connections that have issued at least one reserve.
        current_workers: u64 = "current-workers",
        /// Connections waiting in a reserve.
        current_waiting: u64 = "current-waiting",
        /// Connections ever accepted.
        total_connections: u64 = "total-connections",
        /// The server's process id.
        pid: u64 = "pid",
        /// The server's version, such as `1.12`.
        version: String = "version",
        /// User CPU time of the server process, in seconds.
        rusage_utime: f64 = "rusage-utime",
        /// System CPU time of the server process, in seconds.
        rusage_stime: f64 = "rusage-stime",
        /// Seconds since the server started.
        uptime: u64 = "uptime",
        /// Index of the oldest binlog file still needed.
        binlog_oldest_index: u64 = "binlog-oldest-index",
        /// Index of the binlog file being written.
        binlog_current_index: u64 = "binlog-current-index",
        /// Binlog records written as part of compaction.
        binlog_records_migrated: u64 = "binlog-records-migrated",
        /// Binlog records written.
        binlog_records_written: u64 = "binlog-records-written",
        /// Maximum size of a binlog file, in bytes (`-s`).
        binlog_max_size: u64 = "binlog-max-size",
        /// Whether the server is in drain mode (SIGUSR1) and refuses new jobs.
        draining: bool = "draining",
        /// A random id of this server process, in hex.
        id: String = "id",
        /// The host name (`uname -n`).
        hostname: String = "hostname",
        /// The OS version (`uname -v`).
        os: String = "os",
        /// The machine architecture (`uname -m`).
        platform: String = "platform",
    }
}

/// Parses the YAML body of the `OK` reply to `list-tubes` or
/// `list-tubes-watched`: `---` then one `- name` line per tube.
pub fn parse_list(yaml: &[u8]) -> Result<Vec<String>, StatsError> {
    body_lines(yaml)?
        .map(|(n, line)| match line.strip_prefix(b"- ").map(unquote) {
            Some(item) if !item.is_empty() => Ok(String::from_utf8_lossy(item).into_owned()),
            _ => Err(StatsError::Malformed { line: n }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bodies copied byte for byte from beanstalkd 1.12 (the `OK <n>\r\n` line
    // and the trailing CRLF removed).
    const JOB_READY: &[u8] = b"---\nid: 1\ntube: foo.bar\nstate: ready\npri: 0\nage: 0\ndelay: 0\nttr: 5\ntime-left: 0\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n";
    const JOB_DELAYED: &[u8] = b"---\nid: 2\ntube: foo.bar\nstate: delayed\npri: 5\nage: 0\ndelay: 100\nttr: 5\ntime-left: 99\nfile: 0\nreserves: 0\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n";
    const JOB_RESERVED: &[u8] = b"---\nid: 1\ntube: foo.bar\nstate: reserved\npri: 0\nage: 1\ndelay: 0\nttr: 5\ntime-left: 4\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n";
    const JOB_BURIED: &[u8] = b"---\nid: 1\ntube: foo.bar\nstate: buried\npri: 3\nage: 1\ndelay: 0\nttr: 5\ntime-left: 0\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 1\nkicks: 0\n";
    const TUBE_DEFAULT: &[u8] = b"---\nname: default\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\ncurrent-jobs-reserved: 0\ncurrent-jobs-delayed: 0\ncurrent-jobs-buried: 0\ntotal-jobs: 0\ncurrent-using: 1\ncurrent-watching: 1\ncurrent-waiting: 0\ncmd-delete: 0\ncmd-pause-tube: 0\npause: 0\npause-time-left: 0\n";
    const TUBE_PAUSED: &[u8] = b"---\nname: foo.bar\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\ncurrent-jobs-reserved: 0\ncurrent-jobs-delayed: 1\ncurrent-jobs-buried: 1\ntotal-jobs: 2\ncurrent-using: 1\ncurrent-watching: 1\ncurrent-waiting: 0\ncmd-delete: 0\ncmd-pause-tube: 1\npause: 60\npause-time-left: 59\n";
    const SERVER: &[u8] = b"---\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\ncurrent-jobs-reserved: 0\ncurrent-jobs-delayed: 0\ncurrent-jobs-buried: 0\ncmd-put: 0\ncmd-peek: 0\ncmd-peek-ready: 0\ncmd-peek-delayed: 0\ncmd-peek-buried: 0\ncmd-reserve: 0\ncmd-reserve-with-timeout: 0\ncmd-delete: 0\ncmd-release: 0\ncmd-use: 0\ncmd-watch: 0\ncmd-ignore: 0\ncmd-bury: 0\ncmd-kick: 0\ncmd-touch: 0\ncmd-stats: 1\ncmd-stats-job: 0\ncmd-stats-tube: 0\ncmd-list-tubes: 0\ncmd-list-tube-used: 0\ncmd-list-tubes-watched: 0\ncmd-pause-tube: 0\njob-timeouts: 0\ntotal-jobs: 0\nmax-job-size: 65535\ncurrent-tubes: 1\ncurrent-connections: 1\ncurrent-producers: 0\ncurrent-workers: 0\ncurrent-waiting: 0\ntotal-connections: 1\npid: 2639\nversion: \"1.12\"\nrusage-utime: 0.000000\nrusage-stime: 0.002948\nuptime: 0\nbinlog-oldest-index: 0\nbinlog-current-index: 0\nbinlog-records-migrated: 0\nbinlog-records-written: 0\nbinlog-max-size: 10485760\ndraining: false\nid: c38e7e4603374385\nhostname: vm\nos: #1 SMP PREEMPT_DYNAMIC @0\nplatform: x86_64\n";
    const LIST: &[u8] = b"---\n- default\n- foo.bar\n";

    #[test]
    fn parses_job_stats_in_every_state() {
        let ready = JobStats::parse(JOB_READY).unwrap();
        assert_eq!(
            ready,
            JobStats {
                id: 1,
                tube: "foo.bar".into(),
                state: JobState::Ready,
                pri: 0,
                age: 0,
                delay: 0,
                ttr: 5,
                time_left: 0,
                file: 0,
                reserves: 0,
                timeouts: 0,
                releases: 0,
                buries: 0,
                kicks: 0,
            }
        );
        let delayed = JobStats::parse(JOB_DELAYED).unwrap();
        assert_eq!(delayed.state, JobState::Delayed);
        assert_eq!(
            (delayed.pri, delayed.delay, delayed.time_left),
            (5, 100, 99)
        );
        let reserved = JobStats::parse(JOB_RESERVED).unwrap();
        assert_eq!(reserved.state, JobState::Reserved);
        assert_eq!((reserved.reserves, reserved.time_left), (1, 4));
        let buried = JobStats::parse(JOB_BURIED).unwrap();
        assert_eq!(buried.state, JobState::Buried);
        assert_eq!((buried.pri, buried.buries), (3, 1));
    }

    #[test]
    fn parses_tube_stats() {
        let t = TubeStats::parse(TUBE_DEFAULT).unwrap();
        assert_eq!(t.name, "default");
        assert_eq!((t.current_using, t.current_watching), (1, 1));
        let p = TubeStats::parse(TUBE_PAUSED).unwrap();
        assert_eq!(
            p,
            TubeStats {
                name: "foo.bar".into(),
                current_jobs_urgent: 0,
                current_jobs_ready: 0,
                current_jobs_reserved: 0,
                current_jobs_delayed: 1,
                current_jobs_buried: 1,
                total_jobs: 2,
                current_using: 1,
                current_waiting: 0,
                current_watching: 1,
                pause: 60,
                cmd_delete: 0,
                cmd_pause_tube: 1,
                pause_time_left: 59,
            }
        );
    }

    #[test]
    fn parses_server_stats() {
        let s = ServerStats::parse(SERVER).unwrap();
        assert_eq!(s.cmd_stats, 1);
        assert_eq!(s.max_job_size, 65535);
        assert_eq!(s.pid, 2639);
        assert_eq!(s.version, "1.12");
        assert_eq!(s.rusage_utime, 0.0);
        assert_eq!(s.rusage_stime, 0.002948);
        assert_eq!(s.binlog_max_size, 10_485_760);
        assert!(!s.draining);
        assert_eq!(s.id, "c38e7e4603374385");
        assert_eq!(s.hostname, "vm");
        assert_eq!(s.os, "#1 SMP PREEMPT_DYNAMIC @0");
        assert_eq!(s.platform, "x86_64");
    }

    #[test]
    fn parses_lists() {
        assert_eq!(parse_list(LIST).unwrap(), ["default", "foo.bar"]);
        assert_eq!(parse_list(b"---\n").unwrap(), Vec::<String>::new());
        assert_eq!(parse_list(b"---\n- \"a b\"\n").unwrap(), ["a b"]);
        assert_eq!(
            parse_list(b"---\nx\n"),
            Err(StatsError::Malformed { line: 2 })
        );
        assert_eq!(
            parse_list(b"---\n-\n"),
            Err(StatsError::Malformed { line: 2 })
        );
        assert_eq!(parse_list(b"- a\n"), Err(StatsError::MissingHeader));
    }

    #[test]
    fn accepts_quoted_values_from_later_servers() {
        let yaml = String::from_utf8(JOB_READY.to_vec())
            .unwrap()
            .replace("tube: foo.bar", "tube: \"foo.bar\"");
        assert_eq!(JobStats::parse(yaml.as_bytes()).unwrap().tube, "foo.bar");
        let yaml = String::from_utf8(SERVER.to_vec())
            .unwrap()
            .replace("os: #1 SMP PREEMPT_DYNAMIC @0", "os: \"#1 SMP: x\"");
        assert_eq!(ServerStats::parse(yaml.as_bytes()).unwrap().os, "#1 SMP: x");
    }

    #[test]
    fn ignores_unknown_keys_and_crlf() {
        let mut yaml = JOB_BURIED.to_vec();
        yaml.extend_from_slice(b"future-counter: 12\nnested: {a: 1}\n");
        assert!(JobStats::parse(&yaml).is_ok());
        let crlf = String::from_utf8(JOB_BURIED.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        assert_eq!(
            JobStats::parse(crlf.as_bytes()),
            JobStats::parse(JOB_BURIED)
        );
    }

    #[test]
    fn negative_time_left() {
        let yaml = String::from_utf8(JOB_RESERVED.to_vec())
            .unwrap()
            .replace("time-left: 4", "time-left: -2");
        assert_eq!(JobStats::parse(yaml.as_bytes()).unwrap().time_left, -2);
        let yaml = String::from_utf8(TUBE_PAUSED.to_vec()).unwrap().replace(
            "pause-time-left: 59",
            "pause-time-left: -9223372036854775808",
        );
        assert_eq!(
            TubeStats::parse(yaml.as_bytes()).unwrap().pause_time_left,
            i64::MIN
        );
    }

    #[test]
    fn typed_errors_name_the_key() {
        assert_eq!(JobStats::parse(b""), Err(StatsError::MissingHeader));
        assert_eq!(JobStats::parse(b"id: 1\n"), Err(StatsError::MissingHeader));
        assert_eq!(
            JobStats::parse(b"---\nid: 1\n"),
            Err(StatsError::MissingKey { key: "tube" })
        );
        let without_kicks = &JOB_READY[..JOB_READY.len() - b"kicks: 0\n".len()];
        assert_eq!(
            JobStats::parse(without_kicks),
            Err(StatsError::MissingKey { key: "kicks" })
        );
        let bad = |from: &str, to: &str| {
            let yaml = String::from_utf8(JOB_READY.to_vec())
                .unwrap()
                .replace(from, to);
            JobStats::parse(yaml.as_bytes())
        };
        assert_eq!(
            bad("state: ready", "state: invalid"),
            Err(StatsError::InvalidValue {
                key: "state",
                value: "invalid".into()
            })
        );
        assert!(matches!(
            bad("pri: 0", "pri: 4294967296"),
            Err(StatsError::InvalidValue { key: "pri", .. })
        ));
        assert!(matches!(
            bad("pri: 0", "pri: +1"),
            Err(StatsError::InvalidValue { key: "pri", .. })
        ));
        assert!(matches!(
            bad("pri: 0", "pri: -1"),
            Err(StatsError::InvalidValue { key: "pri", .. })
        ));
        assert!(matches!(
            bad("age: 0", "age:"),
            Err(StatsError::InvalidValue { key: "age", .. })
        ));
        assert!(matches!(
            bad("time-left: 0", "time-left: --1"),
            Err(StatsError::InvalidValue {
                key: "time-left",
                ..
            })
        ));
        assert!(matches!(
            bad("time-left: 0", "time-left: -9223372036854775809"),
            Err(StatsError::InvalidValue {
                key: "time-left",
                ..
            })
        ));
        assert_eq!(
            bad("kicks: 0", "kicks 0"),
            Err(StatsError::Malformed { line: 15 })
        );
        let server = |from: &str, to: &str| {
            let yaml = String::from_utf8(SERVER.to_vec())
                .unwrap()
                .replace(from, to);
            ServerStats::parse(yaml.as_bytes())
        };
        assert!(matches!(
            server("draining: false", "draining: no"),
            Err(StatsError::InvalidValue {
                key: "draining",
                ..
            })
        ));
        assert!(matches!(
            server("rusage-utime: 0.000000", "rusage-utime: NaN"),
            Err(StatsError::InvalidValue {
                key: "rusage-utime",
                ..
            })
        ));
    }

    #[test]
    fn error_values_are_bounded() {
        let mut yaml = b"---\nid: ".to_vec();
        yaml.extend(std::iter::repeat_n(b'9', 10_000));
        match JobStats::parse(&yaml) {
            Err(StatsError::InvalidValue { key: "id", value }) => assert_eq!(value.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_duplicate_wins() {
        let mut yaml = b"---\nid: 9\n".to_vec();
        yaml.extend_from_slice(&JOB_READY[4..]);
        assert_eq!(JobStats::parse(&yaml).unwrap().id, 9);
    }

    #[test]
    fn job_state_words() {
        for s in [
            JobState::Ready,
            JobState::Delayed,
            JobState::Reserved,
            JobState::Buried,
        ] {
            assert_eq!(JobState::from_stat(s.as_str().as_bytes()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
    }
}
