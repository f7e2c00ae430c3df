//! The Quick start demo: a worker and a producer against a real beanstalkd.
//!
//! Uses `BSJOBS_URL` if set; otherwise starts a private beanstalkd on a free
//! loopback port (the `beanstalkd` binary must be installed).

use bsjobs::testing::Beanstalkd;
use bsjobs::{Client, Shutdown, Worker};
use bsjobs_examples::{elapsed, enqueue_examples};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    bsjobs_examples::init_logging("warn,bsjobs_core=warn", false);
    elapsed();
    let (_server, url) = match std::env::var("BSJOBS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let s = Beanstalkd::start();
            let url = s.url();
            (Some(s), url)
        }
    };
    println!("beanstalkd at {url}\n");
    let client = Client::new(&url)?;
    Client::set_global(client.clone());

    // The worker: normally its own process running `bsjobs::run()`.
    let shutdown = Shutdown::new();
    let worker = tokio::spawn(Worker::from_url(&url)?.shutdown(shutdown.clone()).run());

    // The producer: examples/producer.rs.
    println!(
        "[{:5.2}s] enqueue: email now, email in 2 s, resize at now+3 s, heartbeat x3, a unique sync twice, failing report",
        elapsed()
    );
    let report = enqueue_examples().await?;

    tokio::time::sleep(Duration::from_secs(5)).await;

    // What an operator does with a buried job.
    if let Some((id, body)) = client.peek_buried(0, "report").await? {
        // Each retry is a new job: its envelope carries the attempt and
        // the id of the job it replaced.
        println!(
            "\n[{:5.2}s] buried: job {id} (enqueued as {}), body {}",
            elapsed(),
            report.id,
            String::from_utf8_lossy(&body)
        );
        println!("[{:5.2}s] kicking it: it runs again", elapsed());
        client.kick_job(0, id).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    } else {
        println!("no buried job found (unexpected)");
    }

    shutdown.trigger();
    worker.await.expect("worker task")?;
    println!("\n[{:5.2}s] worker stopped; demo done", elapsed());
    Ok(())
}
