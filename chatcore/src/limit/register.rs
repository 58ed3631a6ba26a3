//! The registration rate's policy: registrations per minute from one
//! address (IPv6: one /64), counted in a [`Counters`] backend.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::counters::{CounterKey, Counters};
use super::login::address_key;

/// The window the registration rate is counted over.
pub const REGISTER_WINDOW: Duration = Duration::from_secs(60);

/// Refuses registrations from an address past `per_minute` of them.
#[derive(Debug)]
pub(crate) struct RegisterRate {
    per_minute: u32,
    counters: Arc<dyn Counters>,
}

impl RegisterRate {
    /// `per_minute == 0` turns the rate off.
    pub(crate) fn new(per_minute: u32, counters: Arc<dyn Counters>) -> RegisterRate {
        RegisterRate {
            per_minute,
            counters,
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
                tracing::warn!(error = %e, "registration rate unavailable: letting it through");
                Ok(())
            }
        }
    }
}
