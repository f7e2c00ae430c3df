//! One beanstalkd connection owned by one task: buffers, pipelining, timeouts.

use crate::proto::{decode, Command, Response};
use crate::Error;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ClientConfig;

/// A single connection to beanstalkd.
///
/// Commands are queued with [`Connection::queue`] and sent together with
/// [`Connection::flush`]; replies are read in order with
/// [`Connection::recv`]. Queuing several commands before one flush is
/// pipelining: one write, one round trip. A job reserved on a connection can
/// only be deleted, released, buried or touched on that same connection.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    io_timeout: Duration,
    max_body: usize,
}

impl Connection {
    /// Connects to `addr` (`host:port`) with `TCP_NODELAY` and the timeouts of `cfg`.
    pub async fn connect(addr: &str, cfg: &ClientConfig) -> Result<Self, Error> {
        let stream = match tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    addr: addr.to_owned(),
                    source,
                })
            }
            Err(_) => {
                return Err(Error::Connect {
                    addr: addr.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {:?}", cfg.connect_timeout),
                    ),
                })
            }
        };
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            rbuf: Vec::with_capacity(BUF_CAPACITY),
            rpos: 0,
            wbuf: Vec::with_capacity(BUF_CAPACITY),
            io_timeout: cfg.io_timeout,
            // Job bodies are capped by the job size limit, but stats and tube
            // lists grow with the server; refuse only absurd replies.
            max_body: cfg
                .max_job_size
                .saturating_add(1024)
                .max(crate::proto::MAX_BODY),
        })
    }

    /// Encodes `cmd` into the write buffer; nothing is sent until [`flush`](Self::flush).
    pub fn queue(&mut self, cmd: &Command<'_>) {
        cmd.encode(&mut self.wbuf);
    }

    /// Appends already-encoded commands to the write buffer.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet flushed.
    pub fn queued(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes every queued command in one go.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let io = self.io_timeout;
        let res = tokio::time::timeout(io, self.stream.write_all(&self.wbuf)).await;
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_CAPACITY {
            // A huge batch went out: do not keep its buffer for the
            // connection's lifetime.
            self.wbuf = Vec::with_capacity(BUF_CAPACITY);
        }
        match res {
            Ok(r) => r.map_err(Error::Io),
            Err(_) => Err(timed_out(io)),
        }
    }

    /// Reads the next reply, waiting at most the I/O timeout.
    pub async fn recv(&mut self) -> Result<Response, Error> {
        self.recv_within(Some(self.io_timeout)).await
    }

    /// Reads the next reply, waiting at most `limit` (`None`: forever, as a
    /// blocking `reserve` needs).
    pub async fn recv_within(&mut self, limit: Option<Duration>) -> Result<Response, Error> {
        loop {
            if let Some((resp, used)) = decode(&self.rbuf[self.rpos..], self.max_body)? {
                self.rpos += used;
                if self.rpos == self.rbuf.len() {
                    self.rbuf.clear();
                    self.rpos = 0;
                    if self.rbuf.capacity() > KEEP_CAPACITY {
                        // An oversize reply (a big stats body, a hostile
                        // peer) grew the buffer: give the memory back.
                        self.rbuf = Vec::with_capacity(BUF_CAPACITY);
                    }
                }
                return Ok(resp);
            }
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            self.rbuf.reserve(BUF_CAPACITY);
            let read = self.stream.read_buf(&mut self.rbuf);
            let n = match limit {
                Some(l) => tokio::time::timeout(l, read)
                    .await
                    .map_err(|_| timed_out(l))??,
                None => read.await?,
            };
            if n == 0 {
                return Err(Error::Closed);
            }
        }
    }

    /// True when a complete reply is already buffered.
    pub fn has_buffered_reply(&self) -> bool {
        matches!(decode(&self.rbuf[self.rpos..], self.max_body), Ok(Some(_)))
    }

    /// Sends one command and reads its reply.
    pub async fn request(&mut self, cmd: &Command<'_>) -> Result<Response, Error> {
        self.queue(cmd);
        self.flush().await?;
        self.recv().await
    }

    /// True when the server has closed this connection (or reset it, or sent
    /// bytes nobody asked for) while it was idle, so that a command written
    /// now would be lost. Asks the kernel without blocking and without
    /// consuming anything; call it only when no reply is outstanding.
    ///
    /// This is how a restart of beanstalkd is noticed *before* a request is
    /// written to a connection that died while idle, rather than after.
    pub fn peer_closed(&self) -> bool {
        if self.rpos < self.rbuf.len() {
            // Unread bytes with no request outstanding: out of step.
            return true;
        }
        peer_closed(&self.stream)
    }

    /// Bytes of buffer memory this connection holds (read plus write).
    pub fn buffer_capacity(&self) -> usize {
        self.rbuf.capacity() + self.wbuf.capacity()
    }

    /// The underlying stream, for splitting or inspection.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// Initial size of each buffer.
const BUF_CAPACITY: usize = 16 * 1024;
/// A buffer that grew beyond this for one big reply or batch is replaced by
/// a fresh one of [`BUF_CAPACITY`] once it is empty again.
const KEEP_CAPACITY: usize = 1024 * 1024;

#[cfg(unix)]
fn peer_closed(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local buffer on a socket we own;
    // MSG_DONTWAIT makes it return at once.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        // End of stream: the server closed its side.
        0 => true,
        // Data nobody asked for: the stream is out of step.
        n if n > 0 => true,
        _ => !matches!(
            std::io::Error::last_os_error().kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}

#[cfg(not(unix))]
fn peer_closed(_stream: &TcpStream) -> bool {
    false
}

pub(crate) fn timed_out(after: Duration) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("beanstalkd did not answer within {after:?}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply of several megabytes must not leave a connection holding
    /// megabytes of buffer for the rest of its life.
    #[tokio::test]
    async fn buffers_shrink_after_an_oversize_reply() {
        const BIG: usize = 8 << 20;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            // Answer the first command with a huge body, the second with a
            // small one.
            let _ = s.read(&mut buf).await.unwrap();
            let mut reply = format!("FOUND 1 {BIG}\r\n").into_bytes();
            reply.resize(reply.len() + BIG, b'x');
            reply.extend_from_slice(b"\r\n");
            s.write_all(&reply).await.unwrap();
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"FOUND 2 1\r\ny\r\n").await.unwrap();
            s
        });
        let mut c = Connection::connect(&addr, &ClientConfig::default())
            .await
            .unwrap();
        let before = c.buffer_capacity();
        match c.request(&Command::Peek(1)).await.unwrap() {
            Response::Found { body, .. } => assert_eq!(body.len(), BIG),
            r => panic!("{r:?}"),
        }
        assert!(
            c.buffer_capacity() <= before,
            "{} bytes of buffer kept after the big reply (started with {before})",
            c.buffer_capacity()
        );
        match c.request(&Command::Peek(2)).await.unwrap() {
            Response::Found { body, .. } => assert_eq!(body, b"y"),
            r => panic!("{r:?}"),
        }
        drop(server.await.unwrap());
    }
}
