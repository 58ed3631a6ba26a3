//! `Lease`: this node's right to hold sessions, as a deadline. A node
//! whose lease has run out (it was paused, or cut off from the presence
//! backend for too long) must not deliver to its sessions: another node may
//! already serve those users.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A shared, cheaply cloned deadline; `valid` until it passes.
#[derive(Debug, Clone)]
pub struct Lease {
    inner: Arc<State>,
}

#[derive(Debug)]
struct State {
    base: Instant,
    /// Milliseconds after `base` until which the lease holds; `u64::MAX`
    /// for a lease that never ends.
    until_ms: AtomicU64,
}

impl Lease {
    /// A lease that never runs out (a node alone, in-process presence).
    pub fn forever() -> Lease {
        Lease {
            inner: Arc::new(State {
                base: Instant::now(),
                until_ms: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// A lease that has run out until it is first extended.
    pub fn expired() -> Lease {
        Lease {
            inner: Arc::new(State {
                base: Instant::now(),
                until_ms: AtomicU64::new(0),
            }),
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.inner.base).as_millis() as u64
    }

    /// Whether the lease holds now.
    pub fn is_valid(&self) -> bool {
        self.ms(Instant::now()) < self.inner.until_ms.load(Ordering::Acquire)
    }

    /// Holds the lease until `from + ttl`, where `from` is when the renewal
    /// that granted it was sent.
    pub fn extend(&self, from: Instant, ttl: Duration) {
        self.inner
            .until_ms
            .store(self.ms(from + ttl), Ordering::Release);
    }

    /// Ends the lease now.
    pub fn revoke(&self) {
        self.inner.until_ms.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_holds_until_its_deadline() {
        assert!(Lease::forever().is_valid());
        let lease = Lease::expired();
        assert!(!lease.is_valid());
        lease.extend(Instant::now(), Duration::from_secs(60));
        assert!(lease.is_valid());
        lease.extend(
            Instant::now() - Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert!(!lease.is_valid());
        lease.extend(Instant::now(), Duration::from_secs(60));
        lease.revoke();
        assert!(!lease.is_valid());
    }
}
