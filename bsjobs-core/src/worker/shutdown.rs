use tokio::sync::watch;

/// A shutdown signal that any number of tasks can wait for.
///
/// [`Worker::run`](super::Worker::run) triggers its own on SIGINT or SIGTERM;
/// hand it one with [`Worker::shutdown`](super::Worker::shutdown) to stop it
/// from code (tests, embedding in a larger service).
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Shutdown {
            tx: std::sync::Arc::new(watch::channel(false).0),
        }
    }

    /// Fires the signal; every waiter wakes.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Waits until the signal fires (at once if it has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Fires this signal on SIGINT or SIGTERM (from a background task).
    pub fn on_signals(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    tracing::error!("cannot install SIGINT/SIGTERM handlers");
                    return;
                };
                tokio::select! {
                    _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = me.wait() => return,
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            me.trigger();
        });
    }
}
