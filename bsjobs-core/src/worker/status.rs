//! What a running worker knows about each of its servers.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The state of one server as a worker's reserve loops see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// `host:port`.
    pub addr: String,
    /// Whether the last thing that happened with this server was useful
    /// work (a reserve answered), rather than a failure.
    pub up: bool,
    /// The last failure, if any (kept after the server came back).
    pub last_error: Option<String>,
    /// When `up` last changed.
    pub since: SystemTime,
}

/// A live view of a worker's servers, from [`Worker::status`](super::Worker::status):
/// each server's reserve loops report into it, independently of the others
/// (one dead or slow server never holds up the loops of the others).
#[derive(Debug, Clone)]
pub struct WorkerStatus {
    servers: Arc<Mutex<Vec<ServerState>>>,
}

impl WorkerStatus {
    pub(super) fn new(addrs: &[String]) -> Self {
        let now = SystemTime::now();
        WorkerStatus {
            servers: Arc::new(Mutex::new(
                addrs
                    .iter()
                    .map(|a| ServerState {
                        addr: a.clone(),
                        up: false,
                        last_error: None,
                        since: now,
                    })
                    .collect(),
            )),
        }
    }

    /// Every server of the worker's URL, in its order.
    pub fn servers(&self) -> Vec<ServerState> {
        self.servers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn up(&self, server: usize) {
        self.set(server, true, None);
    }

    pub(super) fn down(&self, server: usize, error: &crate::Error) {
        self.set(server, false, Some(error.to_string()));
    }

    fn set(&self, server: usize, up: bool, error: Option<String>) {
        let mut all = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = all.get_mut(server) {
            if s.up != up {
                s.up = up;
                s.since = SystemTime::now();
            }
            if error.is_some() {
                s.last_error = error;
            }
        }
    }
}
