//! Abuse limits that need state of their own: the request rate of one
//! connection (a token bucket, [`RateLimit`], in the connection), and the
//! guards of the cluster: failed logins per user and address and per
//! address ([`LoginGuardConfig`]), and registrations per address. The
//! guards' policy lives here; their counts live behind [`Counters`]: in
//! this process ([`LocalCounters`]) or in Redis (`RedisCounters`), where
//! every node sees the same ones.

mod bucket;
mod counters;
mod local;
mod login;
mod outage;
#[cfg(feature = "redis")]
mod redis;
mod register;

pub use bucket::RateLimit;
pub(crate) use bucket::TokenBucket;
pub use counters::{Backoff, CounterKey, Counters, CountersError};
pub use local::LocalCounters;
pub use login::LoginGuardConfig;
pub(crate) use login::{LoginGuard, LoginKeys};
#[cfg(feature = "redis")]
pub use redis::RedisCounters;
pub use register::REGISTER_WINDOW;
pub(crate) use register::RegisterRate;
