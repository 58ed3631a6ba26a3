//! Failed logins per user and per peer address, with a backoff that makes
//! guessing passwords slow and cheap to refuse.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::UserId;

/// When failed logins start to be refused, and for how long.
#[derive(Debug, Clone)]
pub struct LoginGuardConfig {
    /// Failures for one user id before its logins are refused; 0 is off.
    pub max_failures_per_user: u32,
    /// Failures from one address before its logins are refused; 0 is off.
    /// Behind a proxy every client shares the proxy's address, so turn it
    /// off there.
    pub max_failures_per_address: u32,
    /// The first refusal period; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest refusal period.
    pub max_delay: Duration,
    /// A key with no failure for this long (and not refused now) starts
    /// again from zero.
    pub forget_after: Duration,
    /// Most keys remembered; past it stale keys are dropped first, then the
    /// ones whose last failure is oldest.
    pub max_entries: usize,
}

impl Default for LoginGuardConfig {
    fn default() -> Self {
        LoginGuardConfig {
            max_failures_per_user: 5,
            max_failures_per_address: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

/// Who is trying to log in: the user id claimed (when the request names
/// one) and the peer's address (when the transport has one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoginKeys {
    pub(crate) user: Option<UserId>,
    pub(crate) address: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    User(UserId),
    Address(IpAddr),
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    refused_until: Option<Instant>,
}

impl Entry {
    fn stale(&self, now: Instant, forget_after: Duration) -> bool {
        self.refused_until.is_none_or(|until| until <= now)
            && now.saturating_duration_since(self.last_failure) >= forget_after
    }
}

#[derive(Debug)]
struct State {
    entries: HashMap<Key, Entry>,
    pruned_at: Instant,
}

/// Counts failed logins and refuses further ones for a while; shared by
/// every connection of one node (nodes do not share counts).
#[derive(Debug)]
pub(crate) struct LoginGuard {
    config: LoginGuardConfig,
    state: Mutex<State>,
}

/// Stale keys are swept at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// IPv6 clients usually own a whole /64, so the address is counted per
/// /64; an IPv4 address mapped into IPv6 is counted as the IPv4 one.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl LoginGuard {
    pub(crate) fn new(config: LoginGuardConfig) -> LoginGuard {
        LoginGuard {
            config,
            state: Mutex::new(State {
                entries: HashMap::new(),
                pruned_at: Instant::now(),
            }),
        }
    }

    /// The keys this guard counts for `keys`, with their thresholds.
    fn keys(&self, keys: LoginKeys) -> impl Iterator<Item = (Key, u32)> {
        let user = keys
            .user
            .filter(|_| self.config.max_failures_per_user > 0)
            .map(|user| (Key::User(user), self.config.max_failures_per_user));
        let address = keys
            .address
            .filter(|_| self.config.max_failures_per_address > 0)
            .map(|address| {
                (
                    Key::Address(address_key(address)),
                    self.config.max_failures_per_address,
                )
            });
        user.into_iter().chain(address)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the
        // counts are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` when a login for `keys` must be refused now, `wait`
    /// being how long until the refusal ends.
    pub(crate) fn check(&self, keys: LoginKeys, now: Instant) -> Result<(), Duration> {
        let state = self.state();
        let wait = self
            .keys(keys)
            .filter_map(|(key, _)| state.entries.get(&key)?.refused_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Counts a failed login for `keys`.
    pub(crate) fn failed(&self, keys: LoginKeys, now: Instant) {
        let mut state = self.state();
        let forget_after = self.config.forget_after;
        if now.saturating_duration_since(state.pruned_at) >= PRUNE_EVERY {
            state.entries.retain(|_, e| !e.stale(now, forget_after));
            state.pruned_at = now;
        }
        for (key, max_failures) in self.keys(keys) {
            if !state.entries.contains_key(&key) {
                self.make_room(&mut state, now);
            }
            let entry = state.entries.entry(key).or_insert(Entry {
                failures: 0,
                last_failure: now,
                refused_until: None,
            });
            if entry.stale(now, forget_after) {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last_failure = now;
            if entry.failures >= max_failures {
                let doublings = entry.failures - max_failures;
                entry.refused_until = Some(now + self.delay(doublings));
            }
        }
    }

    /// Forgets the failures of `user` after a successful login. The
    /// address keeps its count: one good account must not reset the
    /// guesses made on others from the same place.
    pub(crate) fn succeeded(&self, user: UserId) {
        self.state().entries.remove(&Key::User(user));
    }

    fn delay(&self, doublings: u32) -> Duration {
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        self.config
            .first_delay
            .saturating_mul(factor)
            .min(self.config.max_delay)
    }

    fn make_room(&self, state: &mut State, now: Instant) {
        let max = self.config.max_entries.max(1);
        if state.entries.len() < max {
            return;
        }
        let forget_after = self.config.forget_after;
        state.entries.retain(|_, e| !e.stale(now, forget_after));
        state.pruned_at = now;
        while state.entries.len() >= max {
            // Only a flood of distinct keys gets here, and each of those
            // failures cost a password hash, so a scan is cheap beside it.
            let oldest = state
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => state.entries.remove(&key),
                None => break,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    impl LoginGuard {
        /// How many keys are remembered.
        fn len(&self) -> usize {
            self.state().entries.len()
        }

        fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    fn guard(per_user: u32, per_address: u32) -> LoginGuard {
        LoginGuard::new(LoginGuardConfig {
            max_failures_per_user: per_user,
            max_failures_per_address: per_address,
            ..LoginGuardConfig::default()
        })
    }

    fn user(id: i64) -> LoginKeys {
        LoginKeys {
            user: Some(UserId(id)),
            address: None,
        }
    }

    fn from(ip: [u8; 4], id: i64) -> LoginKeys {
        LoginKeys {
            user: Some(UserId(id)),
            address: Some(IpAddr::V4(Ipv4Addr::from(ip))),
        }
    }

    #[test]
    fn refuses_after_the_allowed_failures_for_the_first_delay() {
        let guard = guard(3, 0);
        let t = Instant::now();
        for _ in 0..2 {
            guard.failed(user(1), t);
            assert_eq!(guard.check(user(1), t), Ok(()));
        }
        guard.failed(user(1), t);
        assert_eq!(guard.check(user(1), t), Err(SECOND));
        assert_eq!(
            guard.check(user(2), t),
            Ok(()),
            "other users are not refused"
        );
        assert_eq!(guard.check(user(1), t + SECOND), Ok(()));
    }

    #[test]
    fn each_further_failure_doubles_the_delay_up_to_the_cap() {
        let guard = LoginGuard::new(LoginGuardConfig {
            max_failures_per_user: 1,
            max_delay: Duration::from_secs(10),
            ..LoginGuardConfig::default()
        });
        let mut t = Instant::now();
        for expected in [1, 2, 4, 8, 10, 10] {
            guard.failed(user(1), t);
            let wait = guard.check(user(1), t).expect_err("refused");
            assert_eq!(wait, Duration::from_secs(expected));
            t += wait;
            assert_eq!(guard.check(user(1), t), Ok(()));
        }
    }

    #[test]
    fn a_success_clears_the_user_but_not_the_address() {
        let guard = guard(2, 3);
        let t = Instant::now();
        guard.failed(from([10, 0, 0, 1], 1), t);
        guard.failed(from([10, 0, 0, 1], 1), t);
        assert!(guard.check(from([10, 0, 0, 9], 1), t).is_err());
        guard.succeeded(UserId(1));
        assert_eq!(guard.check(user(1), t), Ok(()));
        // The address has two failures; one more (for any user) blocks it.
        guard.failed(from([10, 0, 0, 1], 7), t);
        assert!(guard.check(from([10, 0, 0, 1], 8), t).is_err());
        assert_eq!(guard.check(from([10, 0, 0, 2], 8), t), Ok(()));
    }

    #[test]
    fn many_users_from_one_address_block_the_address() {
        let guard = guard(5, 3);
        let t = Instant::now();
        for id in 1..=3 {
            guard.failed(from([192, 0, 2, 1], id), t);
        }
        assert!(guard.check(from([192, 0, 2, 1], 99), t).is_err());
        assert_eq!(guard.check(from([192, 0, 2, 2], 99), t), Ok(()));
    }

    #[test]
    fn zero_turns_a_key_kind_off() {
        let guard = guard(0, 0);
        let t = Instant::now();
        for _ in 0..100 {
            guard.failed(from([10, 0, 0, 1], 1), t);
        }
        assert_eq!(guard.check(from([10, 0, 0, 1], 1), t), Ok(()));
        assert!(guard.is_empty());
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_spell() {
        let guard = guard(2, 0);
        let t = Instant::now();
        guard.failed(user(1), t);
        let later = t + LoginGuardConfig::default().forget_after;
        guard.failed(user(1), later);
        assert_eq!(
            guard.check(user(1), later),
            Ok(()),
            "the old failure is gone"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let guard = LoginGuard::new(LoginGuardConfig {
            max_entries: 100,
            ..LoginGuardConfig::default()
        });
        let t = Instant::now();
        for id in 0..1000 {
            guard.failed(user(id), t + Duration::from_millis(id as u64));
        }
        assert!(guard.len() <= 100, "{} entries", guard.len());
        // The newest keys are the ones kept.
        guard.failed(user(999), t + SECOND * 2);
        guard.failed(user(999), t + SECOND * 2);
        guard.failed(user(999), t + SECOND * 2);
        guard.failed(user(999), t + SECOND * 2);
        assert!(guard.check(user(999), t + SECOND * 2).is_err());
    }

    #[test]
    fn stale_keys_are_swept() {
        let guard = guard(5, 0);
        let t = Instant::now();
        for id in 0..50 {
            guard.failed(user(id), t);
        }
        let later = t + LoginGuardConfig::default().forget_after + PRUNE_EVERY;
        guard.failed(user(1000), later);
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let guard = guard(0, 2);
        let t = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        let keys = |address| LoginKeys {
            user: None,
            address: Some(address),
        };
        guard.failed(keys(a), t);
        guard.failed(keys(b), t);
        assert!(guard.check(keys(a), t).is_err());
        assert_eq!(guard.check(keys(other), t), Ok(()));

        let v4: IpAddr = "198.51.100.7".parse().expect("an address");
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("an address");
        guard.failed(keys(v4), t);
        guard.failed(keys(mapped), t);
        assert!(guard.check(keys(v4), t).is_err());
    }
}
