//! The [`Counters`] trait: where the guards keep their counts and locks,
//! in this process ([`LocalCounters`](super::LocalCounters)) or in Redis
//! (`RedisCounters`), so that every node of a cluster sees the same ones.
//! Which keys are counted and how long a lock lasts is the guards' policy
//! (`login.rs`, `register.rs`); a backend only stores.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// What one count is about, as the guards name it (for example the
/// failed logins of one user from one address). Backends store it as
/// given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey(String);

impl CounterKey {
    /// A key named `name`; names of different counts must differ.
    pub fn new(name: impl Into<String>) -> CounterKey {
        CounterKey(name.into())
    }

    /// The key's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How failures of one key turn into a lock: after `threshold` failures
/// the key is locked for `first_delay`, and each further failure doubles
/// that, up to `max_delay`. A key with no failure for `forget_after` (and
/// no lock left) starts again from zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// Failures that lock the key; at least 1.
    pub threshold: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub forget_after: Duration,
}

/// Backends count time in whole milliseconds, and a lock or a count of
/// zero length would be no lock at all.
const SHORTEST: Duration = Duration::from_millis(1);

impl Backoff {
    /// How long the key is locked after its `failures`th failure; `None`
    /// below the threshold.
    pub fn delay(&self, failures: u32) -> Option<Duration> {
        let threshold = self.threshold.max(1);
        let doublings = failures.checked_sub(threshold)?;
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        Some(
            self.first_delay
                .saturating_mul(factor)
                .min(self.max_delay)
                .max(SHORTEST),
        )
    }

    /// The locks from the threshold on, up to the first that reaches
    /// `max_delay` (which every later failure gets too): what a backend
    /// that cannot call [`Backoff::delay`] indexes by `failures -
    /// threshold`, capped at the last.
    pub fn schedule(&self) -> Vec<Duration> {
        let threshold = self.threshold.max(1);
        let mut delays = Vec::new();
        for failures in threshold..=threshold.saturating_add(32) {
            let Some(delay) = self.delay(failures) else {
                break;
            };
            delays.push(delay);
            if delay >= self.max_delay.max(SHORTEST) {
                break;
            }
        }
        delays
    }

    /// How long a key's count is kept after a failure that locked it for
    /// `lock` (or did not lock it).
    pub fn keep(&self, lock: Option<Duration>) -> Duration {
        self.forget_after
            .max(lock.unwrap_or_default())
            .max(SHORTEST)
    }
}

/// A backend that cannot be reached; the guards let requests through then
/// (logging a warning), since a password check still costs an attacker a
/// hash.
#[derive(Debug, thiserror::Error)]
pub enum CountersError {
    #[error("counters unavailable: {0}")]
    Unavailable(String),
}

/// Counts and locks shared by the nodes that use one backend.
///
/// # Behavior
///
/// Every backend must meet these, checked by `tests/counters_conformance.rs`:
///
/// - Counts are exact under concurrency: `n` concurrent `failed` calls on
///   one key, from any number of nodes, return `1..=n` once each.
/// - Time is the backend's own (Redis: its TTLs), so nodes' clocks do not
///   matter.
#[async_trait]
pub trait Counters: fmt::Debug + Send + Sync {
    /// The longest lock left on any of `keys`; `None` when none is locked.
    async fn locked(&self, keys: &[CounterKey]) -> Result<Option<Duration>, CountersError>;

    /// Counts a failure of `key` and returns its count: its failures since
    /// it was last cleared or forgotten, this one included. When the count
    /// reaches `rule.threshold`, locks the key for `rule.delay(count)`.
    async fn failed(&self, key: &CounterKey, rule: &Backoff) -> Result<u32, CountersError>;

    /// Forgets the failures and the lock of `key`.
    async fn clear(&self, key: &CounterKey) -> Result<(), CountersError>;

    /// Takes one of `limit` attempts `key` has per `window`: `None` when
    /// it is allowed, `Some(wait)` when the window's attempts are used up,
    /// `wait` being the time left in the window. The window starts at the
    /// first attempt after the previous one ended.
    async fn take(
        &self,
        key: &CounterKey,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, CountersError>;
}

/// Counters whose backend cannot be reached, for the guards' tests.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Unreachable;

#[cfg(test)]
#[async_trait]
impl Counters for Unreachable {
    async fn locked(&self, _: &[CounterKey]) -> Result<Option<Duration>, CountersError> {
        Err(CountersError::Unavailable("down".into()))
    }

    async fn failed(&self, _: &CounterKey, _: &Backoff) -> Result<u32, CountersError> {
        Err(CountersError::Unavailable("down".into()))
    }

    async fn clear(&self, _: &CounterKey) -> Result<(), CountersError> {
        Err(CountersError::Unavailable("down".into()))
    }

    async fn take(
        &self,
        _: &CounterKey,
        _: u32,
        _: Duration,
    ) -> Result<Option<Duration>, CountersError> {
        Err(CountersError::Unavailable("down".into()))
    }
}
