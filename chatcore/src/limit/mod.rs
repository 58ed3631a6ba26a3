//! Abuse limits that need state of their own: the request rate of one
//! connection (a token bucket, [`RateLimit`]) and failed logins per user
//! and per address (a guard, [`LoginGuardConfig`]). Both are in-process:
//! each node counts for itself.

mod bucket;
mod login;

pub use bucket::RateLimit;
pub(crate) use bucket::TokenBucket;
pub use login::LoginGuardConfig;
pub(crate) use login::{LoginGuard, LoginKeys};
