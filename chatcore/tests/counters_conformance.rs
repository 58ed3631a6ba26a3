//! The `Counters` contract, checked against every implementation: the
//! in-process counters always, Redis when `CHAT_TEST_REDIS_URL` is set, a
//! Redis Cluster when `CHAT_TEST_REDIS_CLUSTER` is set. Each check sees
//! one backend through two handles, as two nodes hold it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::{Deployment, Test};
use chatcore::limit::{Backoff, CounterKey, Counters, LocalCounters, RedisCounters};
use chatcore::redis_target::RedisTarget;

fn main() -> ExitCode {
    chat_testkit::harness::run(conformance())
}

/// Two nodes' handles on one backend.
struct Pair {
    a: Arc<dyn Counters>,
    b: Arc<dyn Counters>,
}

fn local_pair() -> Pair {
    // Nodes in one process that share counters share the one instance.
    let counters: Arc<dyn Counters> = Arc::new(LocalCounters::default());
    Pair {
        a: Arc::clone(&counters),
        b: counters,
    }
}

async fn target_pair(target: RedisTarget) -> Pair {
    // Every test is a cluster of its own.
    let prefix = format!("test-{:016x}", getrandom::u64().expect("random"));
    let a = RedisCounters::connect(&target, &prefix)
        .await
        .expect("redis counters");
    let b = RedisCounters::connect(&target, &prefix)
        .await
        .expect("redis counters");
    Pair {
        a: Arc::new(a),
        b: Arc::new(b),
    }
}

fn key(name: &str) -> CounterKey {
    CounterKey::new(format!("login:ua:42:{name}"))
}

fn rule(threshold: u32, first_ms: u64, max_ms: u64, forget_ms: u64) -> Backoff {
    Backoff {
        threshold,
        first_delay: Duration::from_millis(first_ms),
        max_delay: Duration::from_millis(max_ms),
        forget_after: Duration::from_millis(forget_ms),
    }
}

/// Asserts that `lock` is a lock with at most `full` left and no more than
/// `slack` gone (the time the check itself took).
fn assert_about(lock: Option<Duration>, full: Duration, what: &str) {
    let slack = Duration::from_millis(500);
    let lock = lock.unwrap_or_else(|| panic!("{what}: expected a lock of about {full:?}"));
    assert!(
        lock <= full && lock + slack > full,
        "{what}: {lock:?} left of {full:?}"
    );
}

/// Two nodes' counters on `deployment`.
async fn fixture(deployment: Deployment) -> Pair {
    match deployment {
        Deployment::Local => local_pair(),
        Deployment::Redis(url) => target_pair(RedisTarget::Single(url)).await,
        Deployment::Cluster(nodes) => target_pair(RedisTarget::Cluster(nodes)).await,
    }
}

fn conformance() -> Vec<Test> {
    chat_testkit::on_each_deployment!(fixture;
        a_key_locks_at_its_threshold_on_every_node,
        each_further_failure_doubles_the_lock_up_to_the_cap,
        a_lock_ends_and_a_quiet_key_is_forgotten,
        clear_forgets_the_count_and_the_lock,
        concurrent_failures_from_two_nodes_are_counted_exactly,
        locked_reports_the_longest_lock_of_keys_in_any_slot,
        a_window_allows_its_limit_from_any_node_then_says_how_long_to_wait,
        concurrent_attempts_in_a_window_are_counted_exactly,
    )
}

async fn a_key_locks_at_its_threshold_on_every_node(pair: Pair) {
    let rule = rule(3, 2_000, 60_000, 60_000);
    assert_eq!(pair.a.failed(&key("x"), &rule).await.expect("failed"), 1);
    assert_eq!(pair.b.failed(&key("x"), &rule).await.expect("failed"), 2);
    for node in [&pair.a, &pair.b] {
        assert_eq!(node.locked(&[key("x")]).await.expect("locked"), None);
    }
    assert_eq!(pair.a.failed(&key("x"), &rule).await.expect("failed"), 3);
    for node in [&pair.a, &pair.b] {
        let lock = node.locked(&[key("x")]).await.expect("locked");
        assert_about(lock, Duration::from_secs(2), "the first lock");
    }
    let other = pair.b.locked(&[key("y")]).await.expect("locked");
    assert_eq!(other, None, "other keys are not locked");
}

async fn each_further_failure_doubles_the_lock_up_to_the_cap(pair: Pair) {
    let rule = rule(1, 1_000, 4_000, 60_000);
    for (n, expected) in [1_000, 2_000, 4_000, 4_000, 4_000].into_iter().enumerate() {
        let node = if n % 2 == 0 { &pair.a } else { &pair.b };
        node.failed(&key("x"), &rule).await.expect("failed");
        let lock = pair.a.locked(&[key("x")]).await.expect("locked");
        assert_about(lock, Duration::from_millis(expected), "failure {n}");
    }
}

async fn a_lock_ends_and_a_quiet_key_is_forgotten(pair: Pair) {
    let rule = rule(2, 200, 200, 600);
    pair.a.failed(&key("x"), &rule).await.expect("failed");
    pair.b.failed(&key("x"), &rule).await.expect("failed");
    assert!(pair.a.locked(&[key("x")]).await.expect("locked").is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pair.b.locked(&[key("x")]).await.expect("locked"),
        None,
        "the lock ended"
    );
    // Still within `forget_after`: the count goes on, and locks again.
    assert_eq!(pair.a.failed(&key("x"), &rule).await.expect("failed"), 3);
    assert!(pair.b.locked(&[key("x")]).await.expect("locked").is_some());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        pair.b.failed(&key("x"), &rule).await.expect("failed"),
        1,
        "a quiet key starts again from zero"
    );
    assert_eq!(pair.a.locked(&[key("x")]).await.expect("locked"), None);
}

async fn clear_forgets_the_count_and_the_lock(pair: Pair) {
    let rule = rule(2, 10_000, 10_000, 60_000);
    pair.a.failed(&key("x"), &rule).await.expect("failed");
    pair.a.failed(&key("x"), &rule).await.expect("failed");
    pair.a.failed(&key("y"), &rule).await.expect("failed");
    assert!(pair.b.locked(&[key("x")]).await.expect("locked").is_some());
    pair.b.clear(&key("x")).await.expect("clear");
    assert_eq!(pair.a.locked(&[key("x")]).await.expect("locked"), None);
    assert_eq!(pair.a.failed(&key("x"), &rule).await.expect("failed"), 1);
    assert_eq!(
        pair.a.failed(&key("y"), &rule).await.expect("failed"),
        2,
        "other keys keep their counts"
    );
}

async fn concurrent_failures_from_two_nodes_are_counted_exactly(pair: Pair) {
    let rule = &rule(40, 10_000, 10_000, 60_000);
    let failures = (0..40).map(|n| {
        let node = if n % 2 == 0 { &pair.a } else { &pair.b };
        async move { node.failed(&key("x"), rule).await.expect("failed") }
    });
    let mut counts = futures::future::join_all(failures).await;
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<u32>>());
    assert!(pair.a.locked(&[key("x")]).await.expect("locked").is_some());
}

async fn locked_reports_the_longest_lock_of_keys_in_any_slot(pair: Pair) {
    pair.a
        .failed(&key("short"), &rule(1, 1_000, 1_000, 60_000))
        .await
        .expect("failed");
    pair.a
        .failed(&key("long"), &rule(1, 5_000, 5_000, 60_000))
        .await
        .expect("failed");
    let keys = [key("short"), key("none"), key("long"), key("other")];
    let lock = pair.b.locked(&keys).await.expect("locked");
    assert_about(lock, Duration::from_secs(5), "the longest lock");
    assert_eq!(pair.b.locked(&[]).await.expect("no keys"), None);
}

async fn a_window_allows_its_limit_from_any_node_then_says_how_long_to_wait(pair: Pair) {
    let window = Duration::from_millis(1_000);
    for node in [&pair.a, &pair.b, &pair.a] {
        let wait = node.take(&key("r"), 3, window).await.expect("take");
        assert_eq!(wait, None, "within the limit");
    }
    let wait = pair.b.take(&key("r"), 3, window).await.expect("take");
    assert_about(wait, window, "over the limit");
    let other = pair.a.take(&key("s"), 3, window).await.expect("take");
    assert_eq!(other, None, "other keys have windows of their own");
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    let wait = pair.a.take(&key("r"), 3, window).await.expect("take");
    assert_eq!(wait, None, "a new window");
}

async fn concurrent_attempts_in_a_window_are_counted_exactly(pair: Pair) {
    let window = Duration::from_secs(30);
    let attempts = (0..30).map(|n| {
        let node = if n % 2 == 0 { &pair.a } else { &pair.b };
        async move { node.take(&key("r"), 10, window).await.expect("take") }
    });
    let results = futures::future::join_all(attempts).await;
    let allowed = results.iter().filter(|wait| wait.is_none()).count();
    assert_eq!(allowed, 10, "{results:?}");
}
