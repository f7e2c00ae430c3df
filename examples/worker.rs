//! A worker: runs every job linked into this binary until SIGINT/SIGTERM.
//!
//! ```sh
//! BSJOBS_URL=beanstalk://127.0.0.1:11300 cargo run -p bsjobs-examples --example worker
//! ```

// Linking the jobs crate is all the registration there is.
use bsjobs_examples as _;

#[tokio::main]
async fn main() -> Result<(), bsjobs::Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    bsjobs::run().await
}
