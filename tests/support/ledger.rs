//! A ledger file shared by the fault tests and the `fault-worker` processes.
//!
//! Every process appends whole lines with one `O_APPEND` write each, so lines
//! of concurrent processes never interleave and the order of lines in the file
//! is the order in which they were written:
//!
//! ```text
//! 1764170000123.456 start soak 17 4242   handler of "soak" started on key 17 in pid 4242
//! 1764170000135.002 done soak 17 4242    ... and returned
//! 1764170000200.000 fault kill-begin 4242  the test is about to SIGKILL pid 4242
//! 1764170000201.500 fault kill-end 4242    ... and it is dead
//! 1764170000300.000 fault server-kill      the test is about to SIGKILL beanstalkd
//! 1764170000350.000 fault server-restart   ... and it is back
//! 1764170000400.000 fault enqueue-retry 17 key 17 may have been enqueued twice
//! ```
//! The first word is the wall-clock time in milliseconds (for people reading
//! a kept ledger; the figures rely on line order only).
//!
//! [`Tally`] turns a ledger and the list of enqueued keys into figures: lost,
//! duplicated (and whether a fault explains each duplicate), unexpected.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// An append-only ledger file.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Ledger> {
        let path = path.as_ref().to_owned();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Ledger { path, file })
    }

    /// Where the ledger is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the time, `line` and a newline in a single write.
    pub fn append(&self, line: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let buf = format!(
            "{}.{:03} {line}\n",
            now.as_millis(),
            now.subsec_micros() % 1000
        )
        .into_bytes();
        // One write(2) on an O_APPEND file: atomic with respect to the
        // appends of other processes for lines this short.
        (&self.file)
            .write_all(&buf)
            .unwrap_or_else(|e| panic!("append to ledger {}: {e}", self.path.display()));
    }

    /// Records that a handler of `job` started on `key` in this process.
    pub fn start(&self, job: &str, key: impl std::fmt::Display) {
        self.append(&format!("start {job} {key} {}", std::process::id()));
    }

    /// Records that a handler of `job` finished `key` in this process.
    pub fn done(&self, job: &str, key: impl std::fmt::Display) {
        self.append(&format!("done {job} {key} {}", std::process::id()));
    }

    /// Records a fault the test injects (`kill-begin <pid>`, `server-kill`, …).
    pub fn fault(&self, what: &str) {
        self.append(&format!("fault {what}"));
    }

    /// Reads every entry of this ledger.
    pub fn read(&self) -> Vec<Entry> {
        read(&self.path)
    }
}

/// One ledger line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A handler started.
    Start {
        /// Job name.
        job: String,
        /// The job's key (a number, a tag).
        key: String,
        /// Process that ran it.
        pid: u32,
    },
    /// A handler returned.
    Done {
        /// Job name.
        job: String,
        /// The job's key.
        key: String,
        /// Process that ran it.
        pid: u32,
    },
    /// A fault the test injected: the words after `fault`.
    Fault(Vec<String>),
    /// A line that parses as none of the above (should not happen).
    Garbled(String),
}

impl Entry {
    fn parse(line: &str) -> Entry {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        // The leading timestamp, when there is one.
        if words
            .first()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            words.remove(0);
        }
        let run = |w: &[&str]| -> Option<(String, String, u32)> {
            match w {
                [job, key, pid] => Some((job.to_string(), key.to_string(), pid.parse().ok()?)),
                _ => None,
            }
        };
        match words.split_first() {
            Some((&"start", rest)) => match run(rest) {
                Some((job, key, pid)) => Entry::Start { job, key, pid },
                None => Entry::Garbled(line.to_owned()),
            },
            Some((&"done", rest)) => match run(rest) {
                Some((job, key, pid)) => Entry::Done { job, key, pid },
                None => Entry::Garbled(line.to_owned()),
            },
            Some((&"fault", rest)) if !rest.is_empty() => {
                Entry::Fault(rest.iter().map(|s| s.to_string()).collect())
            }
            _ => Entry::Garbled(line.to_owned()),
        }
    }

    /// Whether this is a `done` of `job`.
    pub fn is_done_of(&self, name: &str) -> bool {
        matches!(self, Entry::Done { job, .. } if job == name)
    }

    /// Whether this is a `start` of `job`.
    pub fn is_start_of(&self, name: &str) -> bool {
        matches!(self, Entry::Start { job, .. } if job == name)
    }
}

/// Reads the ledger at `path`; a missing file is an empty ledger.
pub fn read(path: &Path) -> Vec<Entry> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read ledger {}: {e}", path.display()),
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(Entry::parse)
        .collect()
}

/// A window of the ledger in which a fault may have made a job run again.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Index of the line written just before the fault.
    begin: usize,
    /// Index of the line written once the fault is over.
    end: usize,
    /// `Some(pid)`: only jobs started by this process are affected.
    pid: Option<u32>,
}

/// The figures of one run of numbered jobs.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Keys enqueued.
    pub enqueued: usize,
    /// Enqueued keys with at least one `done`.
    pub completed: usize,
    /// Enqueued keys with no `done`.
    pub missing: Vec<u64>,
    /// Keys with more than one `done`.
    pub duplicated: Vec<u64>,
    /// Duplicated keys that no fault explains.
    pub unexplained_duplicates: Vec<u64>,
    /// Keys that started more than once (a run cut short, then run again).
    pub reruns: usize,
    /// Re-started keys that no fault explains.
    pub unexplained_reruns: Vec<u64>,
    /// `start`/`done` lines for keys never enqueued, or not numbers.
    pub unexpected: Vec<String>,
    /// Lines that could not be parsed.
    pub garbled: usize,
    /// Fault lines (`kill-begin`, `server-kill`, …) in the ledger.
    pub faults: usize,
}

impl Tally {
    /// Counts the runs of `job` in `entries` against the `enqueued` keys.
    ///
    /// A second start of a key is *explained* when a fault window lies between
    /// it and the start before it: the earlier start came before the fault was
    /// over, the later one after the fault began, and, for a worker kill, the
    /// earlier start was in the killed process. A duplicate (two `done`s) is
    /// explained when each of its re-starts is.
    pub fn compute(job: &str, enqueued: &[u64], entries: &[Entry]) -> Tally {
        let wanted: BTreeSet<u64> = enqueued.iter().copied().collect();
        let mut t = Tally {
            enqueued: wanted.len(),
            ..Tally::default()
        };
        let mut windows: Vec<Window> = Vec::new();
        let mut open_kills: BTreeMap<u32, usize> = BTreeMap::new();
        let mut open_server: Option<usize> = None;
        let mut retried: BTreeSet<u64> = BTreeSet::new();
        let mut starts: BTreeMap<u64, Vec<(usize, u32)>> = BTreeMap::new();
        let mut dones: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            match e {
                Entry::Fault(w) => {
                    t.faults += 1;
                    let pid = w.get(1).and_then(|p| p.parse::<u32>().ok());
                    match (w[0].as_str(), pid) {
                        ("kill-begin", Some(pid)) => {
                            open_kills.insert(pid, i);
                        }
                        ("kill-end", Some(pid)) => windows.push(Window {
                            begin: open_kills.remove(&pid).unwrap_or(i),
                            end: i,
                            pid: Some(pid),
                        }),
                        ("server-kill", _) => open_server = Some(i),
                        ("server-restart", _) => windows.push(Window {
                            begin: open_server.take().unwrap_or(i),
                            end: i,
                            pid: None,
                        }),
                        ("enqueue-retry", _) => {
                            if let Some(n) = w.get(1).and_then(|n| n.parse().ok()) {
                                retried.insert(n);
                            }
                        }
                        _ => {}
                    }
                }
                Entry::Start { job: j, key, pid } if j == job => match key.parse::<u64>() {
                    Ok(n) if wanted.contains(&n) => starts.entry(n).or_default().push((i, *pid)),
                    _ => t.unexpected.push(format!("start {key} (pid {pid})")),
                },
                Entry::Done { job: j, key, pid } if j == job => match key.parse::<u64>() {
                    Ok(n) if wanted.contains(&n) => *dones.entry(n).or_default() += 1,
                    _ => t.unexpected.push(format!("done {key} (pid {pid})")),
                },
                Entry::Garbled(_) => t.garbled += 1,
                _ => {}
            }
        }
        // Faults still open at the end (a test that failed midway) cover
        // everything after their beginning.
        for (pid, begin) in open_kills {
            windows.push(Window {
                begin,
                end: usize::MAX,
                pid: Some(pid),
            });
        }
        if let Some(begin) = open_server {
            windows.push(Window {
                begin,
                end: usize::MAX,
                pid: None,
            });
        }
        let explained = |prev: (usize, u32), next: (usize, u32)| {
            windows.iter().any(|w| {
                prev.0 < w.end && next.0 > w.begin && w.pid.is_none_or(|pid| pid == prev.1)
            })
        };
        for n in &wanted {
            let d = dones.get(n).copied().unwrap_or(0);
            if d == 0 {
                t.missing.push(*n);
            } else {
                t.completed += 1;
            }
            let s = starts.get(n).map(Vec::as_slice).unwrap_or(&[]);
            let all_explained = retried.contains(n) || s.windows(2).all(|p| explained(p[0], p[1]));
            if s.len() > 1 {
                t.reruns += 1;
                if !all_explained {
                    t.unexplained_reruns.push(*n);
                }
            }
            if d > 1 {
                t.duplicated.push(*n);
                if !all_explained {
                    t.unexplained_duplicates.push(*n);
                }
            }
        }
        t
    }

    /// Duplicates a fault explains.
    pub fn explained_duplicates(&self) -> usize {
        self.duplicated.len() - self.unexplained_duplicates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<Entry> {
        text.lines().map(Entry::parse).collect()
    }

    #[test]
    fn counts_lost_duplicated_and_unexpected() {
        let e = parse(
            "start soak 1 10\ndone soak 1 10\nstart soak 2 10\n\
             fault kill-begin 10\nfault kill-end 10\nstart soak 2 11\ndone soak 2 11\n\
             start soak 3 11\ndone soak 3 11\nstart soak 3 11\ndone soak 3 11\n\
             done soak 99 11\nnonsense\n",
        );
        let t = Tally::compute("soak", &[1, 2, 3, 4], &e);
        assert_eq!(t.enqueued, 4);
        assert_eq!(t.completed, 3);
        assert_eq!(t.missing, [4]);
        assert_eq!(t.duplicated, [3]);
        assert_eq!(t.unexplained_duplicates, [3]);
        assert_eq!(t.reruns, 2);
        assert_eq!(t.unexplained_reruns, [3]);
        assert_eq!(t.unexpected.len(), 1);
        assert_eq!(t.garbled, 1);
    }

    #[test]
    fn a_kill_explains_only_the_killed_process() {
        let e = parse(
            "start soak 1 10\ndone soak 1 10\nstart soak 2 12\ndone soak 2 12\n\
             fault kill-begin 10\nfault kill-end 10\n\
             start soak 1 11\ndone soak 1 11\nstart soak 2 11\ndone soak 2 11\n",
        );
        let t = Tally::compute("soak", &[1, 2], &e);
        assert_eq!(t.duplicated, [1, 2]);
        assert_eq!(t.unexplained_duplicates, [2]);
    }

    #[test]
    fn a_server_restart_explains_runs_started_before_it_ended() {
        let e = parse(
            "start soak 1 10\nfault server-kill\nstart soak 2 10\ndone soak 1 10\n\
             done soak 2 10\nfault server-restart\nstart soak 1 11\ndone soak 1 11\n\
             start soak 2 11\ndone soak 2 11\n",
        );
        let t = Tally::compute("soak", &[1, 2], &e);
        assert_eq!(t.duplicated, [1, 2]);
        assert!(t.unexplained_duplicates.is_empty());
        assert_eq!(t.explained_duplicates(), 2);
    }
}
