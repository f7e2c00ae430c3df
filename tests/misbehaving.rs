//! Workers against servers that misbehave: a server that fails every
//! reserve, one that answers a byte at a time, and one that is down. Small
//! fake servers on 127.0.0.1 play the misbehaving peers.

use bsjobs::ClientConfig;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[bsjobs::job(tube = "m_a")]
async fn m_a() {}
#[bsjobs::job(tube = "m_b")]
async fn m_b() {}
#[bsjobs::job(tube = "m_c")]
async fn m_c() {}
#[bsjobs::job(tube = "m_d")]
async fn m_d() {}

/// What the fake server does when a reserve arrives.
#[derive(Clone, Copy)]
enum OnReserve {
    Close,
    OutOfMemory,
    /// Answers `TIMED_OUT` one byte every 700 ms.
    Trickle,
}

/// A fake beanstalkd: answers the worker's setup, then misbehaves on
/// `reserve`. Returns its address and the number of connections accepted.
async fn fake(on: OnReserve) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            n.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if line.starts_with("watch") || line.starts_with("ignore") {
                        b"WATCHING 1\r\n"
                    } else if let Some(t) = line.strip_prefix("use ") {
                        let _ = w.write_all(format!("USING {t}\r\n").as_bytes()).await;
                        continue;
                    } else if line.starts_with("reserve") {
                        match on {
                            OnReserve::Close => return,
                            OnReserve::OutOfMemory => b"OUT_OF_MEMORY\r\n",
                            OnReserve::Trickle => {
                                for b in b"TIMED_OUT\r\n" {
                                    if w.write_all(&[*b]).await.is_err() {
                                        return;
                                    }
                                    tokio::time::sleep(Duration::from_millis(700)).await;
                                }
                                continue;
                            }
                        }
                    } else {
                        b"UNKNOWN_COMMAND\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Log lines written while `f` runs, on this thread's runtime.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let c = Captured::default();
    let w = c.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    (c, tracing::subscriber::set_default(sub))
}

async fn run_for(url: &str, tubes: &[&str], for_: Duration) {
    let sd = bsjobs::Shutdown::new();
    let worker = bsjobs::Worker::from_url(url)
        .unwrap()
        .tubes(tubes.iter().copied())
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    tokio::time::sleep(for_).await;
    sd.trigger();
    tokio::time::timeout(Duration::from_secs(10), h)
        .await
        .expect("worker stops")
        .unwrap()
        .unwrap();
}

/// A server that accepts every connection and then fails each reserve must
/// not make the worker reconnect in a tight loop, nor flood the log: the
/// backoff only resets after useful work, and the log limit is per worker.
#[tokio::test]
async fn a_server_failing_every_reserve_gets_backoff_not_a_storm() {
    for on in [OnReserve::Close, OnReserve::OutOfMemory] {
        let (addr, accepted) = fake(on).await;
        let (log, _guard) = capture();
        let secs = 3;
        run_for(
            &format!("beanstalk://{addr}"),
            &["m_a", "m_b", "m_c", "m_d"],
            Duration::from_secs(secs),
        )
        .await;
        let conns = accepted.load(Ordering::SeqCst);
        let lines = log.lines("unavailable");
        println!("4 tubes, {secs} s: {conns} connections, {lines} 'unavailable' lines");
        // Backoff 50 ms doubling to 1 s: about 7 attempts per tube in 3 s
        // (the storm was ~2,400 a second).
        assert!(conns <= 4 * 12, "{conns} connections in {secs} s");
        assert!(lines as u64 <= secs + 2, "{lines} log lines in {secs} s");
    }
}

/// Shutdown is bounded even when the server answers a byte at a time: the
/// grace period plus one I/O timeout at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_against_a_trickling_server() {
    let (addr, _) = fake(OnReserve::Trickle).await;
    let config = ClientConfig {
        io_timeout: Duration::from_secs(2),
        ..ClientConfig::from_url(&format!("beanstalk://{addr}")).unwrap()
    };
    let sd = bsjobs::Shutdown::new();
    let worker = bsjobs::Worker::new(config)
        .tubes(["m_a"])
        .grace(Duration::from_secs(1))
        .shutdown(sd.clone());
    let h = tokio::spawn(worker.run());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = Instant::now();
    sd.trigger();
    tokio::time::timeout(Duration::from_secs(15), h)
        .await
        .expect("the worker stops despite the trickle")
        .unwrap()
        .unwrap();
    println!(
        "stopped {:?} after the signal (grace 1 s, I/O timeout 2 s)",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
}

/// Four tubes against a server that is down: one log line a second for the
/// whole worker, not one per tube.
#[tokio::test]
async fn a_down_server_is_logged_once_a_second_per_worker() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (log, _guard) = capture();
    run_for(
        &format!("beanstalk://127.0.0.1:{port}"),
        &["m_a", "m_b", "m_c", "m_d"],
        Duration::from_millis(3500),
    )
    .await;
    let lines = log.lines("unavailable");
    println!("4 tubes, 3.5 s down: {lines} lines");
    assert!((1..=5).contains(&lines), "{lines} lines");
}
