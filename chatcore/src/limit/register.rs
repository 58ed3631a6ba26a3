//! The registration rate's policy: registrations per minute from one
//! address (IPv6: one /64), counted in a [`Counters`] backend.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::counters::{CounterKey, Counters};
use super::login::address_key;
use super::outage::OutageLog;

/// The window the registration rate is counted over.
pub const REGISTER_WINDOW: Duration = Duration::from_secs(60);

/// Refuses registrations from an address past `per_minute` of them.
#[derive(Debug)]
pub(crate) struct RegisterRate {
    per_minute: u32,
    counters: Arc<dyn Counters>,
    outage: OutageLog,
}

impl RegisterRate {
    /// `per_minute == 0` turns the rate off.
    pub(crate) fn new(per_minute: u32, counters: Arc<dyn Counters>) -> RegisterRate {
        RegisterRate {
            per_minute,
            counters,
            outage: OutageLog::default(),
        }
    }

    /// Takes one registration from `address`: `Err(wait)` when its
    /// minute's registrations are used up. A caller without an address,
    /// and every caller while the counters cannot be reached, may register.
    pub(crate) async fn take(&self, address: Option<IpAddr>) -> Result<(), Duration> {
        let Some(address) = address.filter(|_| self.per_minute > 0) else {
            return Ok(());
        };
        let key = CounterKey::new(format!("register:a:{}", address_key(address)));
        match self
            .counters
            .take(&key, self.per_minute, REGISTER_WINDOW)
            .await
        {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => Err(wait),
            Err(e) => {
                if let Some(unsaid) = self.outage.due() {
                    tracing::warn!(error = %e, unsaid, "registration rate unavailable: letting registrations through");
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::limit::LocalCounters;
    use crate::limit::counters::Unreachable;

    const A: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));

    #[tokio::test(start_paused = true)]
    async fn an_address_gets_its_rate_per_minute_and_callers_without_one_are_free() {
        let rate = RegisterRate::new(2, Arc::new(LocalCounters::default()));
        assert_eq!(rate.take(A).await, Ok(()));
        assert_eq!(rate.take(A).await, Ok(()));
        assert_eq!(rate.take(A).await, Err(REGISTER_WINDOW));
        assert_eq!(rate.take(B).await, Ok(()), "another address");
        for _ in 0..5 {
            assert_eq!(rate.take(None).await, Ok(()), "no address");
        }
        tokio::time::advance(REGISTER_WINDOW).await;
        assert_eq!(rate.take(A).await, Ok(()), "the next minute");
    }

    #[tokio::test]
    async fn zero_is_off_and_unreachable_counters_let_registrations_through() {
        let off = RegisterRate::new(0, Arc::new(LocalCounters::default()));
        let down = RegisterRate::new(1, Arc::new(Unreachable));
        for _ in 0..3 {
            assert_eq!(off.take(A).await, Ok(()));
            assert_eq!(down.take(A).await, Ok(()));
        }
    }
}
