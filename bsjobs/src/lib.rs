//! bsjobs: typed background jobs for Rust on top of beanstalkd.
#![warn(missing_docs, unreachable_pub)]

pub use bsjobs_core::client::{Client, ClientConfig};
pub use bsjobs_core::job::{Enqueue, JobHandle, JobOptions};
pub use bsjobs_core::proto::JobId;
pub use bsjobs_core::testing;
pub use bsjobs_core::worker::{Shutdown, Worker};
pub use bsjobs_core::{run, Error};
pub use bsjobs_macros::job;

/// Lower-level access: the sans-IO protocol and raw connections.
pub mod proto {
    pub use bsjobs_core::client::Connection;
    pub use bsjobs_core::proto::*;
}

#[doc(hidden)]
pub mod __private {
    pub use bsjobs_core::job::{
        Enqueue, Handler, HandlerFuture, IntoOutcome, JobDescriptor, JobHandle, JobOptions,
    };
    pub use bsjobs_core::Error;
    pub use inventory;
    pub use serde;
    pub use serde_json;

    /// Runs a plain (non-async) job function on tokio's blocking pool.
    pub fn blocking<F>(f: F) -> HandlerFuture
    where
        F: FnOnce() -> Result<(), String> + Send + 'static,
    {
        Box::pin(async move {
            match tokio::task::spawn_blocking(f).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => {
                    Err(format!("panicked: {}", panic_message(e.into_panic())))
                }
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
        bsjobs_core::worker::panic_message(&*p)
    }
}
