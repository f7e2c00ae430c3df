//! A lane: one connection driven by one task, the requests of many callers
//! pipelined on it.

use super::{ClientConfig, Connection};
use crate::proto::Response;
use crate::Error;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::{mpsc, oneshot};

type Reply = Result<Vec<Response>, Error>;

/// What a caller hands to a lane: encoded commands and where the replies go.
struct Request {
    /// Tube the commands need `use`d first, if any.
    tube: Option<String>,
    bytes: Vec<u8>,
    replies: usize,
    tx: oneshot::Sender<Reply>,
}

/// Caller side of a lane. The task is started on first use, in the caller's
/// runtime, and started again if that runtime has gone away.
pub(super) struct Lane {
    addr: String,
    config: ClientConfig,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
}

/// Requests queued per lane before callers wait for room.
const QUEUE: usize = 4096;
/// Replies outstanding on the wire before the lane stops writing more.
const MAX_IN_FLIGHT: usize = 8192;
/// Bytes gathered into one write at most.
const MAX_WRITE: usize = 256 * 1024;

impl Lane {
    pub(super) fn new(addr: String, config: ClientConfig) -> Self {
        Lane {
            addr,
            config,
            tx: Mutex::new(None),
        }
    }

    fn sender(&self) -> mpsc::Sender<Request> {
        let mut guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(QUEUE);
                let task = LaneTask {
                    addr: self.addr.clone(),
                    config: self.config.clone(),
                    rx,
                    conn: None,
                    pending: VecDeque::new(),
                    using: None,
                };
                tokio::spawn(task.run());
                *guard = Some(tx.clone());
                tx
            }
        }
    }

    /// Sends `bytes` (holding `replies` commands) and waits for the replies,
    /// for at most the connect timeout plus the I/O timeout.
    pub(super) async fn call(
        &self,
        tube: Option<String>,
        bytes: Vec<u8>,
        replies: usize,
    ) -> Result<Vec<Response>, Error> {
        let (tx, rx) = oneshot::channel();
        let req = Request {
            tube,
            bytes,
            replies,
            tx,
        };
        let deadline = self.config.connect_timeout + self.config.io_timeout;
        let sender = self.sender();
        let fut = async {
            sender.send(req).await.map_err(|_| Error::Closed)?;
            rx.await.map_err(|_| Error::Closed)?
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(super::timed_out(deadline)),
        }
    }
}

/// Who waits for the next reply on the wire.
enum Waiter {
    /// The reply to a `use` the lane inserted itself.
    Use,
    /// A caller, collecting `left` more replies into `got`.
    Caller {
        got: Vec<Response>,
        left: usize,
        tx: oneshot::Sender<Reply>,
    },
}

struct LaneTask {
    addr: String,
    config: ClientConfig,
    rx: mpsc::Receiver<Request>,
    conn: Option<Connection>,
    pending: VecDeque<Waiter>,
    /// The tube the connection currently `use`s.
    using: Option<String>,
}

impl LaneTask {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            if self.conn.is_none() {
                match Connection::connect(&self.addr, &self.config).await {
                    Ok(c) => {
                        self.conn = Some(c);
                        self.using = None;
                    }
                    Err(e) => {
                        let _ = first.tx.send(Err(e));
                        // Fail what is queued now too: each caller would
                        // otherwise wait for its own connect attempt.
                        while let Ok(r) = self.rx.try_recv() {
                            let _ = r.tx.send(Err(Error::Connect {
                                addr: self.addr.clone(),
                                source: std::io::Error::new(
                                    std::io::ErrorKind::ConnectionRefused,
                                    "connection attempt failed just before",
                                ),
                            }));
                        }
                        continue;
                    }
                }
            }
            if let Err(e) = self.serve(first).await {
                self.fail_all(&e);
                self.conn = None;
            }
        }
    }

    /// Writes `first` and everything queued behind it, then reads replies
    /// while writing newer requests, until nothing is outstanding.
    async fn serve(&mut self, first: Request) -> Result<(), Error> {
        let mut next = Some(first);
        loop {
            // Gather a batch: the request in hand plus whatever is queued.
            while let Some(req) = next.take() {
                self.encode(req);
                if self.conn_ref().queued() >= MAX_WRITE || self.pending.len() >= MAX_IN_FLIGHT {
                    break;
                }
                next = self.rx.try_recv().ok();
            }
            self.conn_mut().flush().await?;
            // Read replies; new requests arriving meanwhile go out in the
            // next batch as soon as the replies of this one are in.
            loop {
                if self.pending.is_empty() {
                    return Ok(());
                }
                let resp = self.conn_mut().recv().await?;
                self.deliver(resp);
                if !self.conn_ref().has_buffered_reply() {
                    if let Ok(req) = self.rx.try_recv() {
                        next = Some(req);
                        break;
                    }
                }
            }
        }
    }

    fn conn_ref(&self) -> &Connection {
        self.conn.as_ref().expect("connected")
    }

    fn conn_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("connected")
    }

    fn encode(&mut self, req: Request) {
        if let Some(tube) = req.tube {
            if self.using.as_deref() != Some(tube.as_str()) {
                self.conn_mut().queue(&crate::proto::Command::Use(&tube));
                self.pending.push_back(Waiter::Use);
                self.using = Some(tube);
            }
        }
        let conn = self.conn.as_mut().expect("connected");
        conn.queue_raw(&req.bytes);
        self.pending.push_back(Waiter::Caller {
            got: Vec::with_capacity(req.replies),
            left: req.replies,
            tx: req.tx,
        });
    }

    fn deliver(&mut self, resp: Response) {
        match self.pending.front_mut() {
            Some(Waiter::Use) => {
                self.pending.pop_front();
            }
            Some(Waiter::Caller { got, left, .. }) => {
                got.push(resp);
                *left -= 1;
                if *left == 0 {
                    if let Some(Waiter::Caller { got, tx, .. }) = self.pending.pop_front() {
                        let _ = tx.send(Ok(got));
                    }
                }
            }
            None => {}
        }
    }

    fn fail_all(&mut self, e: &Error) {
        let msg = e.to_string();
        for w in self.pending.drain(..) {
            if let Waiter::Caller { tx, .. } = w {
                let _ = tx.send(Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    format!("connection lost before the reply ({msg}); the command may or may not have taken effect"),
                ))));
            }
        }
        self.using = None;
    }
}
