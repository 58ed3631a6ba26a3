//! The failed-login guard's policy: which keys a login attempt counts
//! under, when they lock and for how long. The counts themselves live in
//! a [`Counters`] backend, shared by the cluster's nodes when it is Redis.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use super::counters::{Backoff, CounterKey, Counters};
use super::outage::OutageLog;
use crate::model::UserId;

/// When failed logins start to be refused, and for how long.
#[derive(Debug, Clone)]
pub struct LoginGuardConfig {
    /// Failures for one user id from one address before logins for that
    /// user from that address are refused; 0 is off. A client without an
    /// address (an embedding program's own) counts for the user alone.
    pub max_failures_per_user_address: u32,
    /// Failures from one address, for any users, before its logins are
    /// refused; 0 is off. Behind a proxy that does not pass the client's
    /// address every client shares the proxy's, so turn it off there.
    pub max_failures_per_address: u32,
    /// The first refusal period; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest refusal period.
    pub max_delay: Duration,
    /// A key with no failure for this long (and not refused now) starts
    /// again from zero.
    pub forget_after: Duration,
}

impl Default for LoginGuardConfig {
    fn default() -> Self {
        LoginGuardConfig {
            max_failures_per_user_address: 5,
            max_failures_per_address: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            forget_after: Duration::from_secs(15 * 60),
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

/// IPv6 clients usually own a whole /64, so an address is counted per
/// /64; an IPv4 address mapped into IPv6 is counted as the IPv4 one.
pub(crate) fn address_key(address: IpAddr) -> IpAddr {
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

/// Refuses logins after failures, by (user, address) and by address;
/// never by user alone when the address is known, so that nobody who
/// merely knows a user id can lock that user out.
#[derive(Debug)]
pub(crate) struct LoginGuard {
    config: LoginGuardConfig,
    counters: Arc<dyn Counters>,
    outage: OutageLog,
}

impl LoginGuard {
    pub(crate) fn new(config: LoginGuardConfig, counters: Arc<dyn Counters>) -> LoginGuard {
        LoginGuard {
            config,
            counters,
            outage: OutageLog::default(),
        }
    }

    fn rule(&self, threshold: u32) -> Backoff {
        Backoff {
            threshold,
            first_delay: self.config.first_delay,
            max_delay: self.config.max_delay,
            forget_after: self.config.forget_after,
        }
    }

    /// The key of `user`'s failures from `address` (from nowhere: the
    /// user's alone), counted unless that kind is off.
    fn user_key(&self, keys: LoginKeys) -> Option<CounterKey> {
        let user = keys.user?;
        if self.config.max_failures_per_user_address == 0 {
            return None;
        }
        Some(match keys.address {
            Some(address) => CounterKey::new(format!("login:ua:{user}:{}", address_key(address))),
            None => CounterKey::new(format!("login:u:{user}")),
        })
    }

    fn address_key(&self, keys: LoginKeys) -> Option<CounterKey> {
        let address = keys.address?;
        if self.config.max_failures_per_address == 0 {
            return None;
        }
        Some(CounterKey::new(format!("login:a:{}", address_key(address))))
    }

    /// The keys counted for `keys`, with their thresholds.
    fn counted(&self, keys: LoginKeys) -> Vec<(CounterKey, u32)> {
        let user = self
            .user_key(keys)
            .map(|k| (k, self.config.max_failures_per_user_address));
        let address = self
            .address_key(keys)
            .map(|k| (k, self.config.max_failures_per_address));
        user.into_iter().chain(address).collect()
    }

    /// `Err(wait)` when a login for `keys` must be refused now, `wait`
    /// being how long until the refusal ends. Lets the login through when
    /// the counters cannot be reached.
    pub(crate) async fn check(&self, keys: LoginKeys) -> Result<(), Duration> {
        let counted: Vec<CounterKey> = self.counted(keys).into_iter().map(|(k, _)| k).collect();
        if counted.is_empty() {
            return Ok(());
        }
        match self.counters.locked(&counted).await {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                if let Some(unsaid) = self.outage.due() {
                    tracing::warn!(error = %e, unsaid, "login guard unavailable: letting logins through");
                }
                Ok(())
            }
        }
    }

    /// Counts a failed login for `keys`.
    pub(crate) async fn failed(&self, keys: LoginKeys) {
        let counted = self.counted(keys);
        let failures = counted.iter().map(|(key, threshold)| async move {
            (key, self.counters.failed(key, &self.rule(*threshold)).await)
        });
        for (key, result) in futures::future::join_all(failures).await {
            if let Err(e) = result
                && let Some(unsaid) = self.outage.due()
            {
                tracing::warn!(error = %e, %key, unsaid, "login guard unavailable: failures go uncounted");
            }
        }
    }

    /// Forgets the failures of `keys.user` from `keys.address` after a
    /// successful login. The address keeps its count: one good account
    /// must not reset the guesses made on others from the same place.
    pub(crate) async fn succeeded(&self, keys: LoginKeys) {
        if let Some(key) = self.user_key(keys)
            && let Err(e) = self.counters.clear(&key).await
            && let Some(unsaid) = self.outage.due()
        {
            tracing::warn!(error = %e, %key, unsaid, "login guard unavailable: a success did not clear");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::limit::LocalCounters;

    const SECOND: Duration = Duration::from_secs(1);

    fn guard(per_user_address: u32, per_address: u32) -> LoginGuard {
        LoginGuard::new(
            LoginGuardConfig {
                max_failures_per_user_address: per_user_address,
                max_failures_per_address: per_address,
                ..LoginGuardConfig::default()
            },
            Arc::new(LocalCounters::default()),
        )
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

    #[tokio::test(start_paused = true)]
    async fn refuses_a_user_from_one_address_after_the_allowed_failures() {
        let guard = guard(3, 0);
        for _ in 0..2 {
            guard.failed(from([10, 0, 0, 1], 1)).await;
            assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Ok(()));
        }
        guard.failed(from([10, 0, 0, 1], 1)).await;
        assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Err(SECOND));
        assert_eq!(
            guard.check(from([10, 0, 0, 1], 2)).await,
            Ok(()),
            "other users"
        );
        assert_eq!(
            guard.check(from([10, 0, 0, 2], 1)).await,
            Ok(()),
            "the same user from elsewhere"
        );
        tokio::time::advance(SECOND).await;
        assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_address_the_user_alone_is_counted() {
        let guard = guard(2, 2);
        guard.failed(user(1)).await;
        guard.failed(user(1)).await;
        assert!(guard.check(user(1)).await.is_err());
        assert_eq!(
            guard.check(from([10, 0, 0, 1], 1)).await,
            Ok(()),
            "a client with an address has keys of its own"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_clears_the_user_and_address_but_not_the_address() {
        let guard = guard(2, 3);
        guard.failed(from([10, 0, 0, 1], 1)).await;
        guard.failed(from([10, 0, 0, 1], 1)).await;
        assert!(guard.check(from([10, 0, 0, 1], 1)).await.is_err());
        guard.succeeded(from([10, 0, 0, 1], 1)).await;
        assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Ok(()));
        // The address has two failures; one more (for any user) blocks it.
        guard.failed(from([10, 0, 0, 1], 7)).await;
        assert!(guard.check(from([10, 0, 0, 1], 8)).await.is_err());
        assert_eq!(guard.check(from([10, 0, 0, 2], 8)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn many_users_from_one_address_block_the_address() {
        let guard = guard(5, 3);
        for id in 1..=3 {
            guard.failed(from([192, 0, 2, 1], id)).await;
        }
        assert!(guard.check(from([192, 0, 2, 1], 99)).await.is_err());
        assert_eq!(guard.check(from([192, 0, 2, 2], 99)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_turns_a_key_kind_off() {
        let guard = guard(0, 0);
        for _ in 0..100 {
            guard.failed(from([10, 0, 0, 1], 1)).await;
            guard.failed(user(1)).await;
        }
        assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Ok(()));
        assert_eq!(guard.check(user(1)).await, Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let guard = guard(0, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("an address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("an address");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("an address");
        let keys = |address| LoginKeys {
            user: None,
            address: Some(address),
        };
        guard.failed(keys(a)).await;
        guard.failed(keys(b)).await;
        assert!(guard.check(keys(a)).await.is_err());
        assert_eq!(guard.check(keys(other)).await, Ok(()));

        let v4: IpAddr = "198.51.100.7".parse().expect("an address");
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().expect("an address");
        guard.failed(keys(v4)).await;
        guard.failed(keys(mapped)).await;
        assert!(guard.check(keys(v4)).await.is_err());
    }

    #[tokio::test]
    async fn without_its_counters_the_guard_lets_logins_through() {
        let guard = LoginGuard::new(
            LoginGuardConfig {
                max_failures_per_user_address: 1,
                max_failures_per_address: 1,
                ..LoginGuardConfig::default()
            },
            Arc::new(crate::limit::counters::Unreachable),
        );
        for _ in 0..3 {
            guard.failed(from([10, 0, 0, 1], 1)).await;
        }
        assert_eq!(guard.check(from([10, 0, 0, 1], 1)).await, Ok(()));
        guard.succeeded(from([10, 0, 0, 1], 1)).await;
    }
}
