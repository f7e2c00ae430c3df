use tokio::sync::watch;

/// A shutdown signal that any number of tasks can wait for.
///
/// [`Worker::run`](super::Worker::run) triggers its own on SIGINT or SIGTERM;
/// hand it one with [`Worker::shutdown`](super::Worker::shutdown) to stop it
/// from code (tests, embedding in a larger service).
///
/// It has two levels, like a shell's Ctrl-C: [`trigger`](Shutdown::trigger)
/// asks for a graceful stop (no new jobs; running ones get the grace
/// period), and [`force`](Shutdown::force) — a second SIGINT/SIGTERM — ends
/// the grace period at once: unfinished jobs are released and the worker
/// exits.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// 0: running, 1: stopping, 2: forced.
    tx: std::sync::Arc<watch::Sender<u8>>,
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
            tx: std::sync::Arc::new(watch::channel(0).0),
        }
    }

    /// Fires the signal; every waiter wakes.
    pub fn trigger(&self) {
        self.tx.send_if_modified(|v| {
            let was = *v;
            *v = was.max(1);
            was == 0
        });
    }

    /// Fires the signal and ends the grace period at once.
    pub fn force(&self) {
        self.tx.send_replace(2);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow() >= 1
    }

    /// Whether the grace period was cut short.
    pub fn is_forced(&self) -> bool {
        *self.tx.borrow() >= 2
    }

    /// Waits until the signal fires (at once if it has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v >= 1).await;
    }

    /// Waits until the grace period is cut short (at once if it was).
    pub async fn wait_forced(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v >= 2).await;
    }

    /// Fires this signal on SIGINT or SIGTERM (from a background task); a
    /// second one forces it.
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
                    _ = int.recv() => tracing::info!("SIGINT: shutting down; send it again to stop at once"),
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down; send it again to stop at once"),
                    _ = me.wait() => {}
                }
                me.trigger();
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = me.wait_forced() => return,
                }
                tracing::warn!("second signal: releasing unfinished jobs and stopping now");
                me.force();
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
                me.trigger();
                let _ = tokio::signal::ctrl_c().await;
                me.force();
            }
        });
    }
}
