//! How a guard says that its counters cannot be reached. During an outage
//! every login or registration would say it again, a flood that buries the
//! log; so a warning goes out at most every [`WARN_EVERY`], saying how many
//! went unsaid since the last.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two warnings of one guard.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// Decides which of a guard's failures to reach its counters get logged.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    unsaid: u64,
}

impl OutageLog {
    /// `Some(unsaid)` when this failure is to be logged, `unsaid` being
    /// the failures not logged since the last that was; `None` when it is
    /// one of those.
    pub(crate) fn due(&self) -> Option<u64> {
        self.due_at(Instant::now())
    }

    fn due_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_EVERY)
        {
            state.unsaid += 1;
            return None;
        }
        state.last = Some(now);
        Some(std::mem::take(&mut state.unsaid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_a_period_counting_the_rest() {
        let log = OutageLog::default();
        let start = Instant::now();
        assert_eq!(log.due_at(start), Some(0), "the first failure is logged");
        assert_eq!(log.due_at(start + Duration::from_secs(1)), None);
        assert_eq!(log.due_at(start + Duration::from_secs(9)), None);
        assert_eq!(
            log.due_at(start + WARN_EVERY),
            Some(2),
            "the next period's first says how many went unsaid"
        );
        assert_eq!(log.due_at(start + WARN_EVERY), None);
        assert_eq!(log.due_at(start + WARN_EVERY * 3), Some(1));
    }
}
