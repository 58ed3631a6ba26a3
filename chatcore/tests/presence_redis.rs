//! `RedisPresence` against a real Redis: one session per user across
//! nodes, leases that expire with their node, and recovery from a Redis
//! that forgot everything.

use std::process::ExitCode;
use std::time::Duration;

use chat_testkit::redis::{PrivateRedis, shared_url};
use chat_testkit::{Service, trial};
use chatcore::model::UserId;
use chatcore::presence::{
    LocalPresence, Lost, Presence, RedisPresence, RedisPresenceConfig, SessionId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let on_redis = [
        trial!(redis_presence_keeps_one_session_per_user_across_nodes),
        trial!(of_racing_logins_exactly_one_stays_and_each_loser_is_named_once),
        trial!(a_dead_nodes_users_go_offline_when_its_lease_expires),
        trial!(a_node_re_registers_its_sessions_after_redis_forgets_them),
        trial!(stopping_a_node_releases_only_its_own_users),
    ]
    .map(|test| test.needs(&[Service::Redis]));
    chat_testkit::harness::run(
        [trial!(local_presence_keeps_one_session_per_user)]
            .into_iter()
            .chain(on_redis),
    )
}

fn fresh_user() -> UserId {
    UserId((uuid::Uuid::new_v4().as_u64_pair().0 >> 2) as i64 + 1_000_000)
}

async fn node(
    url: &str,
    ttl: Duration,
) -> (RedisPresence, mpsc::Receiver<Lost>, CancellationToken) {
    let stop = CancellationToken::new();
    let (presence, lost) = RedisPresence::start(
        RedisPresenceConfig {
            url: url.to_owned(),
            prefix: "chat-test".to_owned(),
            node_id: format!("test-{}", uuid::Uuid::new_v4().simple()),
            lease_ttl: ttl,
        },
        stop.clone(),
    )
    .await
    .expect("presence starts");
    (presence, lost, stop)
}

/// The claim/release/online contract, for any implementation.
async fn one_session_per_user(a: &dyn Presence, b: &dyn Presence) {
    let user = fresh_user();
    let (s1, s2) = (SessionId(1), SessionId(2));
    assert_eq!(a.online(&[user]).await.expect("online"), [false]);
    assert_eq!(a.claim(user, s1).await.expect("claim"), None);
    assert_eq!(b.online(&[user]).await.expect("online"), [true]);
    // A login on the other node replaces the first session and names it.
    assert_eq!(b.claim(user, s2).await.expect("claim"), Some(s1));
    // Releasing the replaced session does not touch the new one.
    a.release(user, s1).await.expect("release");
    assert_eq!(a.online(&[user]).await.expect("online"), [true]);
    b.release(user, s2).await.expect("release");
    assert_eq!(
        a.online(&[user, fresh_user()]).await.expect("online"),
        [false, false]
    );
}

async fn local_presence_keeps_one_session_per_user() {
    let presence = LocalPresence::new();
    one_session_per_user(&presence, &presence).await;
}

async fn redis_presence_keeps_one_session_per_user_across_nodes() {
    let url = shared_url();
    let (a, _, _stop_a) = node(&url, Duration::from_secs(9)).await;
    let (b, _, _stop_b) = node(&url, Duration::from_secs(9)).await;
    one_session_per_user(&a, &b).await;
}

async fn of_racing_logins_exactly_one_stays_and_each_loser_is_named_once() {
    let url = shared_url();
    let (a, _, _stop_a) = node(&url, Duration::from_secs(9)).await;
    let (b, _, _stop_b) = node(&url, Duration::from_secs(9)).await;
    let user = fresh_user();
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let presence = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            presence.claim(user, SessionId(i + 1)).await.expect("claim")
        }));
    }
    let mut replaced = Vec::new();
    for task in tasks {
        replaced.extend(task.await.expect("task"));
    }
    // 20 claims: 19 replaced sessions, all distinct; the survivor is the
    // one nobody replaced.
    replaced.sort_by_key(|s| s.0);
    replaced.dedup();
    assert_eq!(replaced.len(), 19);
}

async fn a_dead_nodes_users_go_offline_when_its_lease_expires() {
    let url = shared_url();
    let (dying, _, stop) = node(&url, Duration::from_millis(900)).await;
    let (other, _, _stop_other) = node(&url, Duration::from_secs(9)).await;
    let user = fresh_user();
    dying.claim(user, SessionId(7)).await.expect("claim");
    assert_eq!(other.online(&[user]).await.expect("online"), [true]);
    // The node stops renewing (as if killed): within one TTL its user is
    // offline, although its session record is still there.
    stop.cancel();
    let mut offline = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if other.online(&[user]).await.expect("online") == [false] {
            offline = true;
            break;
        }
    }
    assert!(offline, "offline within the lease TTL");
    assert!(
        !dying.lease().is_valid(),
        "the dead node knows its lease is gone"
    );
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

async fn stopping_a_node_releases_only_its_own_users() {
    let url = shared_url();
    let (a, _, _stop_a) = node(&url, Duration::from_secs(9)).await;
    let (b, _, _stop_b) = node(&url, Duration::from_secs(9)).await;
    let (on_a, on_b) = (fresh_user(), fresh_user());
    a.claim(on_a, SessionId(1)).await.expect("claim");
    b.claim(on_b, SessionId(2)).await.expect("claim");
    a.release_node().await.expect("release node");
    assert_eq!(
        b.online(&[on_a, on_b]).await.expect("online"),
        [false, true]
    );
}
