//! Abuse limits that need state of their own: the request rate of one
//! connection (a token bucket, [`RateLimit`]) and failed logins per user
//! and per address (a guard, [`LoginGuardConfig`]), and the [`Counters`]
//! such guards can keep their counts in: in this process
//! ([`LocalCounters`]) or in Redis (`RedisCounters`).

mod bucket;
mod counters;
mod local;
mod login;
#[cfg(feature = "redis")]
mod redis;

pub use bucket::RateLimit;
pub(crate) use bucket::TokenBucket;
pub use counters::{Backoff, CounterKey, Counters, CountersError};
pub use local::LocalCounters;
pub use login::LoginGuardConfig;
pub(crate) use login::{LoginGuard, LoginKeys};
#[cfg(feature = "redis")]
pub use redis::RedisCounters;
