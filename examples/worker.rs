//! A worker: runs every job linked into this binary until SIGINT/SIGTERM.
//!
//! ```sh
//! BSJOBS_URL=beanstalk://127.0.0.1:11300 cargo run -p bsjobs-examples --example worker
//! ```

// Linking the jobs crate is all the registration there is: without this
// line (or `use bsjobs_examples as _;`) Cargo would not link it and `run`
// would find no job.
bsjobs::link!(bsjobs_examples);

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    bsjobs_examples::init_logging("info", true);
    bsjobs::run().await
}
