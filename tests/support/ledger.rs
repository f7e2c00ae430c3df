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
use std::time::Duration;

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

    /// Reads every line of this ledger with its time.
    pub fn read_lines(&self) -> Vec<Line> {
        read_lines(&self.path)
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
        Entry::parse_timed(line).1
    }

    /// Parses a line and its leading timestamp (milliseconds), if any.
    fn parse_timed(line: &str) -> (Option<f64>, Entry) {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let mut at = None;
        // The leading timestamp, when there is one.
        if words
            .first()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            at = words.remove(0).parse::<f64>().ok();
        }
        (at, Entry::parse_words(line, &words))
    }

    fn parse_words(line: &str, words: &[&str]) -> Entry {
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

/// One ledger line with its wall-clock time.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Milliseconds since the epoch, when the line has a timestamp.
    pub at_ms: Option<f64>,
    /// What the line says.
    pub entry: Entry,
}

/// Reads the ledger at `path` with the time of each line.
pub fn read_lines(path: &Path) -> Vec<Line> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("read ledger {}: {e}", path.display()),
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (at_ms, entry) = Entry::parse_timed(l);
            Line { at_ms, entry }
        })
        .collect()
}

/// What a fault was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A worker process SIGKILLed: only jobs it had started can run again.
    Kill(u32),
    /// beanstalkd killed and restarted: any job in flight can run again.
    Server,
}

/// A fault and the re-runs it excused.
#[derive(Debug, Clone)]
pub struct FaultReruns {
    /// Which fault.
    pub kind: FaultKind,
    /// Re-started runs (of the tallied job) this fault excused.
    pub reruns: usize,
    /// Index of the line written just before the fault.
    begin: usize,
    /// Index of the line written once the fault is over.
    end: usize,
    /// Time of the `begin` line.
    begin_ms: Option<f64>,
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
    /// Duplicated keys with a re-start no fault explains.
    pub unexplained_duplicates: Vec<u64>,
    /// Keys that started more than once (a run cut short, then run again).
    pub reruns: usize,
    /// Re-started keys with a re-start no fault explains.
    pub unexplained_reruns: Vec<u64>,
    /// Re-starts excused by an `enqueue-retry` of their key (one per line).
    pub enqueue_excused: usize,
    /// Each fault with the re-starts it excused, in ledger order.
    pub per_fault: Vec<FaultReruns>,
    /// `start`/`done` lines for keys never enqueued, or not numbers.
    pub unexpected: Vec<String>,
    /// Lines that could not be parsed.
    pub garbled: usize,
    /// Fault lines (`kill-begin`, `server-kill`, …) in the ledger.
    pub faults: usize,
}

/// A `start` or `done`: (line index, pid, time).
type Mark = (usize, u32, Option<f64>);

impl Tally {
    /// [`Tally::compute_timed`] for lines without times: a run only counts
    /// as cut short by a fault if its `done` came after the fault began.
    pub fn compute(job: &str, enqueued: &[u64], entries: &[Entry]) -> Tally {
        let lines: Vec<Line> = entries
            .iter()
            .map(|e| Line {
                at_ms: None,
                entry: e.clone(),
            })
            .collect();
        Tally::compute_timed(job, enqueued, &lines, Duration::ZERO)
    }

    /// Counts the runs of `job` in `lines` against the `enqueued` keys.
    ///
    /// A second start of a key is *explained* by a fault when the earlier
    /// start came before the fault was over, the later one after it began,
    /// the fault could reach the earlier run (a worker kill: it ran in the
    /// killed process), and the earlier run was not long over: it has no
    /// `done` before the fault began, or its `done` is at most `window`
    /// before it (the delete of a finished job may still be on its way).
    /// A job finished and deleted before a fault must never run again.
    ///
    /// Each `enqueue-retry <key>` line excuses one more start of its key
    /// (the put may have landed twice), not every start of it.
    /// A duplicate (two `done`s) is explained when each of its re-starts is.
    pub fn compute_timed(job: &str, enqueued: &[u64], lines: &[Line], window: Duration) -> Tally {
        let wanted: BTreeSet<u64> = enqueued.iter().copied().collect();
        let mut t = Tally {
            enqueued: wanted.len(),
            ..Tally::default()
        };
        let mut faults: Vec<FaultReruns> = Vec::new();
        let mut open_kills: BTreeMap<u32, (usize, Option<f64>)> = BTreeMap::new();
        let mut open_server: Option<(usize, Option<f64>)> = None;
        let mut credits: BTreeMap<u64, usize> = BTreeMap::new();
        let mut starts: BTreeMap<u64, Vec<Mark>> = BTreeMap::new();
        let mut dones: BTreeMap<u64, Vec<Mark>> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            let at = line.at_ms;
            match &line.entry {
                Entry::Fault(w) => {
                    t.faults += 1;
                    let pid = w.get(1).and_then(|p| p.parse::<u32>().ok());
                    match (w[0].as_str(), pid) {
                        ("kill-begin", Some(pid)) => {
                            open_kills.insert(pid, (i, at));
                        }
                        ("kill-end", Some(pid)) => {
                            let (begin, begin_ms) = open_kills.remove(&pid).unwrap_or((i, at));
                            faults.push(FaultReruns {
                                kind: FaultKind::Kill(pid),
                                reruns: 0,
                                begin,
                                end: i,
                                begin_ms,
                            });
                        }
                        ("server-kill", _) => open_server = Some((i, at)),
                        ("server-restart", _) => {
                            let (begin, begin_ms) = open_server.take().unwrap_or((i, at));
                            faults.push(FaultReruns {
                                kind: FaultKind::Server,
                                reruns: 0,
                                begin,
                                end: i,
                                begin_ms,
                            });
                        }
                        ("enqueue-retry", _) => {
                            if let Some(n) = w.get(1).and_then(|n| n.parse().ok()) {
                                *credits.entry(n).or_default() += 1;
                            }
                        }
                        _ => {}
                    }
                }
                Entry::Start { job: j, key, pid } if j == job => match key.parse::<u64>() {
                    Ok(n) if wanted.contains(&n) => {
                        starts.entry(n).or_default().push((i, *pid, at))
                    }
                    _ => t.unexpected.push(format!("start {key} (pid {pid})")),
                },
                Entry::Done { job: j, key, pid } if j == job => match key.parse::<u64>() {
                    Ok(n) if wanted.contains(&n) => dones.entry(n).or_default().push((i, *pid, at)),
                    _ => t.unexpected.push(format!("done {key} (pid {pid})")),
                },
                Entry::Garbled(_) => t.garbled += 1,
                _ => {}
            }
        }
        // Faults still open at the end (a test that failed midway) cover
        // everything after their beginning.
        for (pid, (begin, begin_ms)) in open_kills {
            faults.push(FaultReruns {
                kind: FaultKind::Kill(pid),
                reruns: 0,
                begin,
                end: usize::MAX,
                begin_ms,
            });
        }
        if let Some((begin, begin_ms)) = open_server {
            faults.push(FaultReruns {
                kind: FaultKind::Server,
                reruns: 0,
                begin,
                end: usize::MAX,
                begin_ms,
            });
        }
        faults.sort_by_key(|f| f.begin);
        let window_ms = window.as_secs_f64() * 1000.0;
        for n in &wanted {
            let done = dones.get(n).map(Vec::as_slice).unwrap_or(&[]);
            if done.is_empty() {
                t.missing.push(*n);
            } else {
                t.completed += 1;
            }
            let s = starts.get(n).map(Vec::as_slice).unwrap_or(&[]);
            let mut all_explained = true;
            let mut credit = credits.get(n).copied().unwrap_or(0);
            for pair in s.windows(2) {
                let (prev, next) = (pair[0], pair[1]);
                // The `done` of the earlier run: the first one after it in
                // the same process.
                let prev_done = done.iter().find(|d| d.0 > prev.0 && d.1 == prev.1);
                let cut_short = |f: &FaultReruns| match prev_done {
                    None => true,
                    Some(d) if d.0 > f.begin => true,
                    Some(d) => match (d.2, f.begin_ms) {
                        (Some(done_ms), Some(fault_ms)) => fault_ms - done_ms <= window_ms,
                        _ => false,
                    },
                };
                let by = faults.iter_mut().find(|f| {
                    prev.0 < f.end
                        && next.0 > f.begin
                        && match f.kind {
                            FaultKind::Kill(pid) => pid == prev.1,
                            FaultKind::Server => true,
                        }
                        && cut_short(f)
                });
                match by {
                    Some(f) => f.reruns += 1,
                    None if credit > 0 => {
                        credit -= 1;
                        t.enqueue_excused += 1;
                    }
                    None => all_explained = false,
                }
            }
            if s.len() > 1 {
                t.reruns += 1;
                if !all_explained {
                    t.unexplained_reruns.push(*n);
                }
            }
            if done.len() > 1 {
                t.duplicated.push(*n);
                if !all_explained {
                    t.unexplained_duplicates.push(*n);
                }
            }
        }
        t.per_fault = faults;
        t
    }

    /// Duplicates a fault explains.
    pub fn explained_duplicates(&self) -> usize {
        self.duplicated.len() - self.unexplained_duplicates.len()
    }

    /// The most re-starts one worker kill excused (0 without kills).
    pub fn max_per_kill(&self) -> usize {
        self.per_fault
            .iter()
            .filter(|f| matches!(f.kind, FaultKind::Kill(_)))
            .map(|f| f.reruns)
            .max()
            .unwrap_or(0)
    }

    /// The most re-starts one server restart excused (0 without restarts).
    pub fn max_per_server_fault(&self) -> usize {
        self.per_fault
            .iter()
            .filter(|f| f.kind == FaultKind::Server)
            .map(|f| f.reruns)
            .max()
            .unwrap_or(0)
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

    fn timed(text: &str) -> Vec<Line> {
        text.lines()
            .map(|l| {
                let (at_ms, entry) = Entry::parse_timed(l);
                Line { at_ms, entry }
            })
            .collect()
    }

    const WINDOW: Duration = Duration::from_millis(500);

    #[test]
    fn a_kill_explains_only_runs_of_the_killed_process_it_cut_short() {
        // Key 1 ran in the killed process and finished 100 ms before the
        // kill (its delete may not have gone out): excused. Key 2 ran in
        // another process. Key 3 ran in the killed process but finished 2 s
        // before the kill: its delete was long due, a rerun is a bug.
        // Key 4 was still running when the kill came.
        let e = timed(
            "1000 start soak 3 10\n1010 done soak 3 10\n\
             2900 start soak 1 10\n2950 start soak 2 12\n2960 start soak 4 10\n\
             2980 done soak 2 12\n2990 done soak 1 10\n\
             3090 fault kill-begin 10\n3095 fault kill-end 10\n\
             3200 start soak 1 11\n3210 done soak 1 11\n3220 start soak 2 11\n3230 done soak 2 11\n\
             3240 start soak 3 11\n3250 done soak 3 11\n3260 start soak 4 11\n3270 done soak 4 11\n",
        );
        let t = Tally::compute_timed("soak", &[1, 2, 3, 4], &e, WINDOW);
        assert_eq!(t.duplicated, [1, 2, 3]);
        assert_eq!(t.unexplained_duplicates, [2, 3]);
        assert_eq!(t.reruns, 4);
        assert_eq!(t.unexplained_reruns, [2, 3]);
        assert_eq!(t.per_fault.len(), 1);
        assert_eq!(t.per_fault[0].kind, FaultKind::Kill(10));
        assert_eq!(t.per_fault[0].reruns, 2, "keys 1 and 4");
        assert_eq!(t.max_per_kill(), 2);
    }

    #[test]
    fn without_times_only_a_run_still_going_at_the_fault_is_excused() {
        let e = parse(
            "start soak 1 10\ndone soak 1 10\nstart soak 2 10\n\
             fault kill-begin 10\nfault kill-end 10\n\
             start soak 1 11\ndone soak 1 11\nstart soak 2 11\ndone soak 2 11\n",
        );
        let t = Tally::compute("soak", &[1, 2], &e);
        assert_eq!(t.duplicated, [1]);
        assert_eq!(t.unexplained_duplicates, [1]);
        assert_eq!(t.unexplained_reruns, [1]);
    }

    #[test]
    fn a_server_restart_explains_runs_in_flight_when_it_died_only() {
        // Keys 1 and 2 were in flight at the server kill; key 3 finished
        // 5 s before it, key 4 300 ms before it (within the window).
        let e = timed(
            "1000 start soak 3 10\n1010 done soak 3 10\n5700 start soak 4 10\n5710 done soak 4 10\n\
             5990 start soak 1 10\n6000 fault server-kill\n6010 start soak 2 10\n6020 done soak 1 10\n\
             6030 done soak 2 10\n6500 fault server-restart\n\
             6600 start soak 1 11\n6610 done soak 1 11\n6620 start soak 2 11\n6630 done soak 2 11\n\
             6640 start soak 3 11\n6650 done soak 3 11\n6660 start soak 4 11\n6670 done soak 4 11\n",
        );
        let t = Tally::compute_timed("soak", &[1, 2, 3, 4], &e, WINDOW);
        assert_eq!(t.duplicated, [1, 2, 3, 4]);
        assert_eq!(t.unexplained_duplicates, [3]);
        assert_eq!(t.explained_duplicates(), 3);
        assert_eq!(t.max_per_server_fault(), 3);
    }

    #[test]
    fn an_enqueue_retry_excuses_one_more_run_not_every_run() {
        let e = timed(
            "1000 fault enqueue-retry 1\n1100 start soak 1 10\n1110 done soak 1 10\n\
             1200 start soak 1 11\n1210 done soak 1 11\n\
             1300 start soak 1 12\n1310 done soak 1 12\n",
        );
        let t = Tally::compute_timed("soak", &[1], &e, WINDOW);
        assert_eq!(t.enqueue_excused, 1);
        assert_eq!(
            t.unexplained_duplicates,
            [1],
            "the third run is not excused"
        );
    }
}
