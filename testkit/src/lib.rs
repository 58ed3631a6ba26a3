//! Test scaffolding shared by every crate's tests (`publish = false`).
//!
//! # Layout
//!
//! - [`services`]: the services a test may need, named by `CHAT_TEST_*`
//!   variables, and the one rule for a test whose service is not named:
//!   it is ignored, with the reason, unless `CHAT_TEST_REQUIRE_SERVICES`
//!   is set, when it fails.
//! - [`harness`]: a `main` for suites built with `harness = false`, so that
//!   `cargo test` counts those tests as ignored, with the reason.
//! - [`mysql`]: throwaway databases on the MySQL/MariaDB server.
//! - [`redis`]: the shared Redis, and `redis-server`s of a test's own.
//! - [`redis_cluster`]: the shared Redis Cluster, and clusters of a test's
//!   own (to kill a master or move a slot).
//! - [`proxy`]: a TCP proxy that cuts or freezes connections, or loses
//!   chosen lines.
//! - [`nginx`]: nginx run from a deployment configuration, on free ports.
//! - [`browser`]: headless Chromium over WebDriver, with screenshots of a
//!   failed test's windows.
//! - [`tls`]: a throwaway CA and a server certificate it signed.
//! - free ports, unique names and polling, here at the root.
//!
//! It knows nothing of `chatcore`: chatcore's own tests use it, and a
//! dependency on chatcore would give them a second copy of its types.

pub mod browser;
pub mod harness;
pub mod mysql;
pub mod nginx;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
pub mod services;
pub mod tls;

use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use harness::{Deployment, Test, test};
pub use services::Service;

/// A port of 127.0.0.1 nothing listens on right now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A name no other test (in this run or a concurrent one) uses: `kind`
/// followed by ASCII digits, letters and `_`, short enough for a database
/// name when `kind` is short.
pub fn unique_name(kind: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{kind}_{}_{}_{nanos:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `probe` every 50 ms until it holds; panics after `within`.
/// Returns how long it took.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if probe().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
