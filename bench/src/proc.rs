//! Child processes of the bench and readings from `/proc`: the worker and
//! the producers run in children of this binary so that their CPU time and
//! memory can be read without the bench's own.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// A child process of this binary, killed on drop.
pub(crate) struct ChildProc {
    proc: Option<std::process::Child>,
    stdin: Option<std::process::ChildStdin>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub(crate) pid: u32,
}

impl ChildProc {
    /// Must be called from the thread that lives as long as the bench (the
    /// main thread): `PR_SET_PDEATHSIG` follows the spawning thread.
    pub(crate) fn spawn(args: &[String]) -> ChildProc {
        use std::os::unix::process::CommandExt as _;
        let exe = std::env::current_exe().expect("own executable");
        let mut cmd = std::process::Command::new(exe);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut proc = cmd.spawn().expect("spawn bench child");
        let out = proc.stdout.take().expect("child stdout");
        let stdin = proc.stdin.take();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        ChildProc {
            pid: proc.id(),
            proc: Some(proc),
            stdin,
            lines,
        }
    }

    /// The next line starting with `prefix`, within `within`.
    pub(crate) async fn line(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) if l.starts_with(prefix) => return l,
                Ok(Some(l)) => eprintln!("  child: {l}"),
                Ok(None) => panic!("bench child exited before printing {prefix}"),
                Err(_) => panic!("bench child printed no {prefix} within {within:?}"),
            }
        }
    }

    /// Tells the child to stop; returns every line it printed until `BYE`.
    pub(crate) async fn stop(&mut self) -> Vec<String> {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "stop");
        }
        let mut out = Vec::new();
        loop {
            let l = self.line("", Duration::from_secs(60)).await;
            if l == "BYE" {
                break;
            }
            out.push(l);
        }
        if let Some(mut p) = self.proc.take() {
            let _ = p.wait();
        }
        out
    }

    pub(crate) async fn wait_exit(&mut self) {
        if let Some(mut p) = self.proc.take() {
            loop {
                match p.try_wait().expect("wait child") {
                    Some(st) => {
                        assert!(st.success(), "bench child failed: {st}");
                        return;
                    }
                    None => tokio::time::sleep(Duration::from_millis(2)).await,
                }
            }
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if let Ok(None) = p.try_wait() {
                let _ = p.kill();
            }
            let _ = p.wait();
        }
    }
}

/// A directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("bsjobs-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// utime + stime of this process, in seconds.
pub(crate) fn self_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `VmRSS:`-style field of `/proc/<pid>/status`, in kB.
pub(crate) fn proc_status_kb(pid: &str, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in seconds.
pub(crate) fn proc_cpu_s(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// The number after `key=` in a child's line.
pub(crate) fn kv(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in child line {line:?}"))
}

/// The line of series `name` (`NAME n=… p50_ns=…`) among a child's lines.
pub(crate) fn series_line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} line from the child: {lines:?}"))
}

/// The `q` quantile of sorted samples (nearest rank).
pub(crate) fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU seconds: (whole machine busy, this process and its reaped children).
pub(crate) fn cpu_snapshot() -> (f64, f64) {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let busy = stat
        .lines()
        .next()
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal …
            let total: u64 = f.iter().take(8).sum();
            total - f.get(3).copied().unwrap_or(0) - f.get(4).copied().unwrap_or(0)
        })
        .unwrap_or(0) as f64
        / hz;
    let ours = [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| {
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(who, &mut ru) };
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            tv(ru.ru_utime) + tv(ru.ru_stime)
        })
        .sum();
    (busy, ours)
}

/// The three load averages of `/proc/loadavg`.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
