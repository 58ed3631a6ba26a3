//! `RedisPresence` against a Redis of its own that restarts or goes away:
//! a node re-registers its sessions after Redis forgot them, and ends them
//! all when its lease ran out. The contract every presence meets is in
//! `presence_conformance.rs`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chat_testkit::redis::PrivateRedis;
use chat_testkit::{Service, trial};
use chatcore::model::UserId;
use chatcore::presence::{Lost, Presence, RedisPresence, RedisPresenceConfig, SessionId};
use chatcore::redis_target::RedisTarget;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    chat_testkit::harness::run(
        [
            trial!(a_node_re_registers_its_sessions_after_redis_forgets_them),
            trial!(a_node_cut_off_longer_than_its_lease_ends_all_its_sessions),
        ]
        .map(|test| test.needs(&[Service::Redis])),
    )
}

fn random() -> u64 {
    getrandom::u64().expect("random")
}

fn fresh_user() -> UserId {
    UserId((random() >> 2) as i64 + 1_000_000)
}

async fn node(
    url: &str,
    ttl: Duration,
) -> (RedisPresence, mpsc::Receiver<Lost>, CancellationToken) {
    let stop = CancellationToken::new();
    let (presence, lost) = RedisPresence::start(
        RedisPresenceConfig {
            target: RedisTarget::Single(url.to_owned()),
            prefix: "chat-test".to_owned(),
            node_id: format!("test-{:016x}", random()),
            lease_ttl: ttl,
        },
        &TaskTracker::new(),
        stop.clone(),
    )
    .await
    .expect("presence starts");
    (presence, lost, stop)
}

async fn a_node_re_registers_its_sessions_after_redis_forgets_them() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let (a, mut lost, _stop) = node(&url, Duration::from_millis(1500)).await;
    let kept = fresh_user();
    let taken = fresh_user();
    a.claim(kept, SessionId(1)).await.expect("claim");
    a.claim(taken, SessionId(2)).await.expect("claim");

    redis.restart();
    // Before the node notices, another node logs `taken` in.
    let (b, _, _stop_b) = loop {
        if let Ok(started) =
            tokio::time::timeout(Duration::from_secs(1), node(&url, Duration::from_secs(9))).await
        {
            break started;
        }
    };
    b.claim(taken, SessionId(3)).await.expect("claim");

    // The node records `kept` again and reports `taken` as lost.
    let report = tokio::time::timeout(Duration::from_secs(10), lost.recv())
        .await
        .expect("a report in time")
        .expect("a report");
    assert_eq!(report, Lost::Sessions(vec![(taken, SessionId(2))]));
    assert_eq!(
        b.online(&[kept, taken]).await.expect("online"),
        [true, true]
    );
    assert!(a.lease().is_valid());
}

async fn a_node_cut_off_longer_than_its_lease_ends_all_its_sessions() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let (a, mut lost, _stop) = node(&url, Duration::from_millis(900)).await;
    let user = fresh_user();
    a.claim(user, SessionId(1)).await.expect("claim");

    // Redis goes away for longer than the lease: other nodes may take the
    // node's users meanwhile, so it must end every session it holds.
    redis.kill();
    let report = tokio::time::timeout(Duration::from_secs(10), lost.recv())
        .await
        .expect("a report in time")
        .expect("a report");
    assert_eq!(report, Lost::All);
    assert!(!a.lease().is_valid(), "the lease is gone");
    assert!(
        a.claim(fresh_user(), SessionId(2)).await.is_err(),
        "no claims without a lease"
    );

    // Once Redis is back the node takes a new lease and serves again.
    redis.restart();
    let started = Instant::now();
    while !a.lease().is_valid() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the node never took a new lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(a.claim(user, SessionId(3)).await.expect("claim"), None);
    assert_eq!(a.online(&[user]).await.expect("online"), [true]);
}
