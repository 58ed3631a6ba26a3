//! Abuse limits that need state of their own: the request rate of one
//! connection ([`TokenBucket`]) and failed logins per user and per address
//! ([`LoginGuard`]). Both are in-process: each node counts for itself.

mod bucket;
mod login;

pub use bucket::{RateLimit, TokenBucket};
pub use login::{LoginGuard, LoginGuardConfig, LoginKeys};
