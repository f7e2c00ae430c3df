//! A producer: enqueues immediate, delayed, scheduled, repeating, unique and failing
//! jobs (see `enqueue_examples` in `src/lib.rs` for the calls themselves).
//!
//! ```sh
//! BSJOBS_URL=beanstalk://127.0.0.1:11300 cargo run -p bsjobs-examples --example producer
//! ```

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    bsjobs_examples::enqueue_examples().await?;
    Ok(())
}
