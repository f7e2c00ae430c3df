//! A real beanstalkd for tests: started on a free 127.0.0.1 port, killed on drop.
//!
//! Needs the `beanstalkd` binary on `PATH` (Debian: `apt-get install beanstalkd`)
//! or named by `BSJOBS_BEANSTALKD`.
//!
//! # One server per test
//!
//! Generated `enqueue` calls use the process-wide client unless told
//! otherwise, and the tests of one file run in parallel threads of one
//! process: a test with its own server wraps its body in
//! [`Client::scope`](crate::Client::scope), so that every `enqueue` inside
//! goes to *its* server.
//!
//! ```
//! #[bsjobs::job(tube = "welcome")]
//! async fn welcome(to: String) {
//!     println!("welcome, {to}");
//! }
//!
//! // In a test file: #[tokio::test] async fn signup_queues_a_welcome() { … }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = bsjobs::testing::Beanstalkd::start();
//! let client = bsjobs::Client::new(&server.url()).unwrap();
//! client
//!     .scope(async {
//!         // The application code under test, unchanged: it calls the
//!         // generated `enqueue`, which goes to this test's server.
//!         Welcome::enqueue("ada@example.com".into()).await.unwrap();
//!     })
//!     .await;
//! let stats = client.stats_tube(0, "welcome").await.unwrap();
//! assert_eq!(stats.current_jobs_ready, 1);
//! # }
//! ```
//! Tasks spawned inside the scope do not inherit it: spawn
//! `client.scope(fut)` instead of `fut`. To run the jobs, start a
//! [`Worker`](crate::Worker) for `server.url()` in the same test.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running beanstalkd process owned by the test.
#[derive(Debug)]
pub struct Beanstalkd {
    child: Option<Child>,
    port: u16,
    binlog: Option<PathBuf>,
    max_job_size: Option<usize>,
    extra: Vec<String>,
}

/// Options for [`Beanstalkd::builder`].
#[derive(Debug, Default, Clone)]
pub struct Builder {
    binlog: Option<PathBuf>,
    max_job_size: Option<usize>,
    extra: Vec<String>,
}

impl Builder {
    /// Keeps a binlog in `dir` (`-b`), so jobs survive a [`Beanstalkd::restart`].
    pub fn binlog(mut self, dir: impl AsRef<Path>) -> Self {
        self.binlog = Some(dir.as_ref().to_owned());
        self
    }

    /// Sets the largest job body the server accepts (`-z`).
    pub fn max_job_size(mut self, bytes: usize) -> Self {
        self.max_job_size = Some(bytes);
        self
    }

    /// Passes extra command-line arguments (e.g. `["-f", "0"]`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Starts the server and waits until it accepts connections.
    ///
    /// Panics with a clear message if beanstalkd cannot be started: this is
    /// a test helper.
    pub fn start(self) -> Beanstalkd {
        let mut b = Beanstalkd {
            child: None,
            port: 0,
            binlog: self.binlog,
            max_job_size: self.max_job_size,
            extra: self.extra,
        };
        let mut last = String::new();
        for _ in 0..10 {
            b.port = free_port();
            match b.spawn() {
                Ok(()) => return b,
                Err(e) => last = e,
            }
        }
        panic!("could not start beanstalkd: {last}");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

fn binary() -> String {
    std::env::var("BSJOBS_BEANSTALKD").unwrap_or_else(|_| "beanstalkd".to_owned())
}

impl Beanstalkd {
    /// Starts an in-memory beanstalkd on a free loopback port.
    pub fn start() -> Beanstalkd {
        Builder::default().start()
    }

    /// Options: binlog directory, job size limit, extra arguments.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(binary());
        cmd.args(["-l", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(dir) = &self.binlog {
            std::fs::create_dir_all(dir).map_err(|e| format!("binlog dir: {e}"))?;
            cmd.arg("-b").arg(dir);
        }
        if let Some(z) = self.max_job_size {
            cmd.args(["-z", &z.to_string()]);
        }
        cmd.args(&self.extra);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // Die with the test process even if it is killed before Drop runs.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "{e} (is beanstalkd installed? apt-get install beanstalkd, or set BSJOBS_BEANSTALKD)"
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("beanstalkd exited at start: {status}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("beanstalkd did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `beanstalk://127.0.0.1:<port>`, for `Client::new` or `BSJOBS_URL`.
    pub fn url(&self) -> String {
        format!("beanstalk://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (jobs survive only in a binlog).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and binlog.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("could not restart beanstalkd: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Beanstalkd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Puts `body` into `tube` on the server at `addr` (`host:port`) and buries
/// it at once with priority `pri` (`reserve-job`, `bury`), as a worker does
/// with a job whose retries are spent; returns its id. For tests of
/// operator tools, which need buried jobs to show.
pub async fn put_buried(
    addr: &str,
    tube: &str,
    pri: u32,
    body: &[u8],
) -> Result<crate::proto::JobId, crate::Error> {
    use crate::proto::{Command, Response};
    let mut c =
        crate::client::Connection::connect(addr, &crate::client::ClientConfig::default()).await?;
    c.queue(&Command::Use(tube));
    c.queue(&Command::Put {
        pri,
        delay: 0,
        ttr: 60,
        body,
    });
    c.flush().await?;
    let _using = c.recv().await?;
    let id = match c.recv().await? {
        Response::Inserted(id) => id,
        r => return Err(crate::client::other(r)),
    };
    c.queue(&Command::ReserveJob(id));
    c.queue(&Command::Bury { id, pri });
    c.flush().await?;
    match (c.recv().await?, c.recv().await?) {
        (Response::Reserved { .. }, Response::Buried) => Ok(id),
        (r, _) => Err(crate::client::other(r)),
    }
}
