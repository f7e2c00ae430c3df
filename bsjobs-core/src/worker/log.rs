//! One worker-wide limit on "server unavailable" log lines.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lets at most one line through per second for the whole worker, however
/// many tubes and connections report the same outage.
#[derive(Debug, Clone, Default)]
pub(super) struct Limiter {
    last: Arc<Mutex<Option<Instant>>>,
}

impl Limiter {
    /// Whether a line may be logged now; if so, the next one waits a second.
    pub(super) fn allow(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Whether lines were let through since the last [`Limiter::reset`]
    /// (so that recovery is worth a line), and forgets them.
    pub(super) fn reset(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::Limiter;

    #[test]
    fn one_line_per_second_across_clones() {
        let a = Limiter::default();
        let b = a.clone();
        assert!(a.allow());
        assert!(!b.allow());
        assert!(!a.allow());
        assert!(b.reset());
        assert!(b.allow());
    }
}
