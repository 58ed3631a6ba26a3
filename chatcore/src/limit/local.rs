//! `LocalCounters`: the counts of one node, in its memory, bounded.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::counters::{Backoff, CounterKey, Counters, CountersError};

/// Counts in this process: each node counts for itself, and a restart
/// forgets. The map is bounded: stale keys are swept at most once a
/// minute, and when it is full the key touched longest ago goes first.
#[derive(Debug)]
pub struct LocalCounters {
    max_entries: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct Entry {
    count: u32,
    /// When the count is forgotten (unless a lock lasts longer).
    count_until: Instant,
    locked_until: Option<Instant>,
    touched: Instant,
}

impl Entry {
    fn stale(&self, now: Instant) -> bool {
        self.count_until <= now && self.locked_until.is_none_or(|until| until <= now)
    }
}

#[derive(Debug)]
struct State {
    entries: HashMap<CounterKey, Entry>,
    pruned_at: Instant,
}

/// Stale keys are swept at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl Default for LocalCounters {
    /// At most 100,000 keys.
    fn default() -> Self {
        LocalCounters::new(100_000)
    }
}

impl LocalCounters {
    /// Counters that remember at most `max_entries` keys.
    pub fn new(max_entries: usize) -> LocalCounters {
        LocalCounters {
            max_entries: max_entries.max(1),
            state: Mutex::new(State {
                entries: HashMap::new(),
                pruned_at: Instant::now(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the
        // counts are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Counters::locked`] at `now`.
    pub(crate) fn locked_at(&self, keys: &[CounterKey], now: Instant) -> Option<Duration> {
        let state = self.state();
        keys.iter()
            .filter_map(|key| state.entries.get(key)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// [`Counters::failed`] at `now`.
    pub(crate) fn failed_at(&self, key: &CounterKey, rule: &Backoff, now: Instant) -> u32 {
        let mut state = self.state();
        let entry = self.entry(&mut state, key, now);
        entry.count = entry.count.saturating_add(1);
        entry.touched = now;
        let lock = rule.delay(entry.count);
        if let Some(lock) = lock {
            entry.locked_until = Some(now + lock);
        }
        entry.count_until = now + rule.keep(lock);
        entry.count
    }

    /// [`Counters::clear`].
    pub(crate) fn clear_key(&self, key: &CounterKey) {
        self.state().entries.remove(key);
    }

    /// [`Counters::take`] at `now`.
    pub(crate) fn take_at(
        &self,
        key: &CounterKey,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Option<Duration> {
        let mut state = self.state();
        let entry = self.entry(&mut state, key, now);
        if entry.count == 0 {
            entry.count_until = now + window;
        }
        entry.count = entry.count.saturating_add(1);
        entry.touched = now;
        (entry.count > limit).then(|| entry.count_until.saturating_duration_since(now))
    }

    /// The live entry of `key`, a fresh one when it had none or its count
    /// was forgotten; sweeps and makes room first.
    fn entry<'a>(&self, state: &'a mut State, key: &CounterKey, now: Instant) -> &'a mut Entry {
        if now.saturating_duration_since(state.pruned_at) >= PRUNE_EVERY {
            state.entries.retain(|_, e| !e.stale(now));
            state.pruned_at = now;
        }
        if !state.entries.contains_key(key) {
            self.make_room(state, now);
        }
        let entry = state.entries.entry(key.clone()).or_insert(Entry {
            count: 0,
            count_until: now,
            locked_until: None,
            touched: now,
        });
        if entry.count_until <= now {
            entry.count = 0;
        }
        entry
    }

    fn make_room(&self, state: &mut State, now: Instant) {
        if state.entries.len() < self.max_entries {
            return;
        }
        state.entries.retain(|_, e| !e.stale(now));
        state.pruned_at = now;
        while state.entries.len() >= self.max_entries {
            // Only a flood of distinct keys gets here, and each of those
            // failures cost a password hash, so a scan is cheap beside it.
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => state.entries.remove(&key),
                None => break,
            };
        }
    }
}

#[async_trait]
impl Counters for LocalCounters {
    async fn locked(&self, keys: &[CounterKey]) -> Result<Option<Duration>, CountersError> {
        Ok(self.locked_at(keys, Instant::now()))
    }

    async fn failed(&self, key: &CounterKey, rule: &Backoff) -> Result<u32, CountersError> {
        Ok(self.failed_at(key, rule, Instant::now()))
    }

    async fn clear(&self, key: &CounterKey) -> Result<(), CountersError> {
        self.clear_key(key);
        Ok(())
    }

    async fn take(
        &self,
        key: &CounterKey,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, CountersError> {
        Ok(self.take_at(key, limit, window, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    impl LocalCounters {
        fn len(&self) -> usize {
            self.state().entries.len()
        }
    }

    fn rule(threshold: u32) -> Backoff {
        Backoff {
            threshold,
            first_delay: SECOND,
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(15 * 60),
        }
    }

    fn key(name: &str) -> CounterKey {
        CounterKey::new(name)
    }

    #[test]
    fn locks_after_the_threshold_for_the_first_delay() {
        let counters = LocalCounters::default();
        let t = Instant::now();
        for _ in 0..2 {
            counters.failed_at(&key("a"), &rule(3), t);
            assert_eq!(counters.locked_at(&[key("a")], t), None);
        }
        counters.failed_at(&key("a"), &rule(3), t);
        assert_eq!(counters.locked_at(&[key("a")], t), Some(SECOND));
        assert_eq!(counters.locked_at(&[key("b")], t), None, "keys apart");
        assert_eq!(counters.locked_at(&[key("a")], t + SECOND), None);
    }

    #[test]
    fn each_further_failure_doubles_the_lock_up_to_the_cap() {
        let counters = LocalCounters::default();
        let rule = Backoff {
            max_delay: Duration::from_secs(10),
            ..rule(1)
        };
        let mut t = Instant::now();
        for expected in [1, 2, 4, 8, 10, 10] {
            counters.failed_at(&key("a"), &rule, t);
            let wait = counters.locked_at(&[key("a")], t).expect("locked");
            assert_eq!(wait, Duration::from_secs(expected));
            t += wait;
            assert_eq!(counters.locked_at(&[key("a")], t), None);
        }
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_spell() {
        let counters = LocalCounters::default();
        let t = Instant::now();
        counters.failed_at(&key("a"), &rule(2), t);
        let later = t + rule(2).forget_after;
        assert_eq!(counters.failed_at(&key("a"), &rule(2), later), 1);
        assert_eq!(counters.locked_at(&[key("a")], later), None);
    }

    #[test]
    fn memory_is_bounded_and_the_newest_keys_are_kept() {
        let counters = LocalCounters::new(100);
        let t = Instant::now();
        for id in 0..1000u64 {
            let at = t + Duration::from_millis(id);
            counters.failed_at(&key(&id.to_string()), &rule(5), at);
        }
        assert!(counters.len() <= 100, "{} entries", counters.len());
        let at = t + SECOND * 2;
        for _ in 0..4 {
            counters.failed_at(&key("999"), &rule(5), at);
        }
        assert!(counters.locked_at(&[key("999")], at).is_some());
    }

    #[test]
    fn stale_keys_are_swept() {
        let counters = LocalCounters::default();
        let t = Instant::now();
        for id in 0..50 {
            counters.failed_at(&key(&id.to_string()), &rule(5), t);
        }
        let later = t + rule(5).forget_after + PRUNE_EVERY;
        counters.failed_at(&key("new"), &rule(5), later);
        assert_eq!(counters.len(), 1);
    }

    #[test]
    fn a_window_allows_its_limit_then_says_how_long_to_wait() {
        let counters = LocalCounters::default();
        let minute = Duration::from_secs(60);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(counters.take_at(&key("r"), 3, minute, t), None);
        }
        let wait = counters.take_at(&key("r"), 3, minute, t + SECOND * 10);
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(counters.take_at(&key("r"), 3, minute, t + minute), None);
    }
}
