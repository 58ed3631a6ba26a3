//! The `Presence` contract (the `# Behavior` of the trait), checked against
//! every implementation: the in-process presence always, Redis when
//! `CHAT_TEST_REDIS_URL` is set, a Redis Cluster when
//! `CHAT_TEST_REDIS_CLUSTER` is set. Redis-only behaviour (recovering from a
//! Redis that forgot everything, losing the lease) is in `presence_redis.rs`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_testkit::{Deployment, Test};
use chatcore::model::UserId;
use chatcore::presence::{
    LocalPresence, Lost, Presence, PresenceError, RedisPresence, RedisPresenceConfig, SessionId,
};
use chatcore::redis_target::RedisTarget;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A lease long enough never to run out during a check by accident.
const LEASE: Duration = Duration::from_secs(9);
/// The lease of a node whose death a check waits out.
const SHORT_LEASE: Duration = Duration::from_millis(900);

/// One presence, shared by every node a check starts on it.
enum Backend {
    Local(LocalPresence),
    /// Every check is a cluster of its own: its keys start with `prefix`.
    Redis {
        target: RedisTarget,
        prefix: String,
    },
}

/// One node's handle on the presence.
struct Node {
    presence: Arc<dyn Presence>,
    /// Stops the node's lease renewal, as if its process had died.
    stop: CancellationToken,
    /// Kept open: a renewal loop whose reports nobody takes would stop.
    _lost: Option<mpsc::Receiver<Lost>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn random() -> u64 {
    getrandom::u64().expect("random")
}

/// A user id no other check (or test run) uses.
fn fresh_user() -> UserId {
    UserId((random() >> 2) as i64 + 1_000_000)
}

impl Backend {
    fn local() -> Backend {
        Backend::Local(LocalPresence::new())
    }

    fn redis(target: RedisTarget) -> Backend {
        Backend::Redis {
            target,
            prefix: format!("presence-test-{:016x}", random()),
        }
    }

    /// Whether a node that stops renewing loses its lease (an in-process
    /// presence has nothing to renew: its leases never run out).
    fn leases_expire(&self) -> bool {
        matches!(self, Backend::Redis { .. })
    }

    async fn node(&self) -> Node {
        self.node_with_lease(LEASE).await
    }

    async fn node_with_lease(&self, lease_ttl: Duration) -> Node {
        match self {
            Backend::Local(presence) => Node {
                presence: Arc::new(presence.join()),
                stop: CancellationToken::new(),
                _lost: None,
            },
            Backend::Redis { target, prefix } => {
                let stop = CancellationToken::new();
                let (presence, lost) = RedisPresence::start(
                    RedisPresenceConfig {
                        target: target.clone(),
                        prefix: prefix.clone(),
                        node_id: format!("node-{:016x}", random()),
                        lease_ttl,
                    },
                    &TaskTracker::new(),
                    stop.clone(),
                )
                .await
                .expect("presence starts");
                Node {
                    presence: Arc::new(presence),
                    stop,
                    _lost: Some(lost),
                }
            }
        }
    }
}

async fn online(node: &Node, users: &[UserId]) -> Vec<bool> {
    node.presence.online(users).await.expect("online")
}

async fn claim(node: &Node, user: UserId, session: SessionId) -> Option<SessionId> {
    node.presence.claim(user, session).await.expect("claim")
}

async fn release(node: &Node, user: UserId, session: SessionId) {
    node.presence.release(user, session).await.expect("release");
}

async fn claim_returns_the_session_it_replaced(backend: Backend) {
    let node = backend.node().await;
    let user = fresh_user();
    let sessions = [
        SessionId::generate(),
        SessionId::generate(),
        SessionId(u64::MAX),
    ];
    assert_eq!(claim(&node, user, sessions[0]).await, None, "nobody before");
    assert_eq!(claim(&node, user, sessions[1]).await, Some(sessions[0]));
    assert_eq!(claim(&node, user, sessions[2]).await, Some(sessions[1]));
    assert_eq!(online(&node, &[user]).await, [true]);
}

async fn a_claim_replaces_a_session_another_node_recorded(backend: Backend) {
    let (a, b) = (backend.node().await, backend.node().await);
    let user = fresh_user();
    let (first, second) = (SessionId::generate(), SessionId::generate());
    assert_eq!(claim(&a, user, first).await, None);
    assert_eq!(online(&b, &[user]).await, [true], "every node sees it");
    assert_eq!(claim(&b, user, second).await, Some(first));
    assert_eq!(online(&a, &[user]).await, [true]);
}

async fn of_racing_claims_one_stays_and_every_other_is_named_once(backend: Backend) {
    let nodes = [
        Arc::new(backend.node().await),
        Arc::new(backend.node().await),
    ];
    let user = fresh_user();
    let sessions: Vec<SessionId> = (0..20).map(|_| SessionId::generate()).collect();
    let mut claims = Vec::new();
    for (i, &session) in sessions.iter().enumerate() {
        let node = Arc::clone(&nodes[i % 2]);
        claims.push(tokio::spawn(async move {
            node.presence.claim(user, session).await.expect("claim")
        }));
    }
    let mut replaced = Vec::new();
    for claim in claims {
        replaced.extend(claim.await.expect("claim task"));
    }
    // 20 claims: 19 distinct replaced sessions, all of them claimed here;
    // the one nobody replaced is current.
    assert_eq!(replaced.len(), 19, "one claim found nobody before it");
    replaced.sort_by_key(|s| s.0);
    replaced.dedup();
    assert_eq!(replaced.len(), 19, "no session is named twice");
    assert!(replaced.iter().all(|s| sessions.contains(s)));
    let (i, &current) = sessions
        .iter()
        .enumerate()
        .find(|(_, s)| !replaced.contains(s))
        .expect("one session was not replaced");
    // Releasing every replaced session leaves the current one; releasing
    // the current one ends it.
    for (j, &session) in sessions.iter().enumerate() {
        if j != i {
            release(&nodes[j % 2], user, session).await;
        }
    }
    assert_eq!(online(&nodes[0], &[user]).await, [true]);
    release(&nodes[i % 2], user, current).await;
    assert_eq!(online(&nodes[0], &[user]).await, [false]);
}

async fn releasing_a_replaced_session_leaves_the_newer_one(backend: Backend) {
    let (a, b) = (backend.node().await, backend.node().await);
    let user = fresh_user();
    let (old, new) = (SessionId::generate(), SessionId::generate());
    claim(&a, user, old).await;
    assert_eq!(claim(&b, user, new).await, Some(old));
    release(&a, user, old).await;
    assert_eq!(online(&a, &[user]).await, [true], "the newer one stays");
    release(&b, user, new).await;
    assert_eq!(online(&a, &[user]).await, [false], "the current one goes");
    // The user's next claim finds nobody.
    assert_eq!(claim(&a, user, SessionId::generate()).await, None);
}

async fn releasing_an_unrecorded_session_changes_nothing(backend: Backend) {
    let node = backend.node().await;
    let (nobody, user) = (fresh_user(), fresh_user());
    release(&node, nobody, SessionId::generate()).await;
    assert_eq!(online(&node, &[nobody]).await, [false]);
    let session = SessionId::generate();
    claim(&node, user, session).await;
    release(&node, user, SessionId::generate()).await;
    assert_eq!(online(&node, &[user]).await, [true]);
    assert_eq!(
        claim(&node, user, SessionId::generate()).await,
        Some(session)
    );
}

async fn online_answers_each_user_in_order(backend: Backend) {
    let (a, b) = (backend.node().await, backend.node().await);
    let (on_a, on_b, off_1, off_2) = (fresh_user(), fresh_user(), fresh_user(), fresh_user());
    claim(&a, on_a, SessionId::generate()).await;
    claim(&b, on_b, SessionId::generate()).await;
    let asked = [off_1, on_a, off_2, on_b, on_a, off_1];
    let expected = [false, true, false, true, true, false];
    assert_eq!(online(&a, &asked).await, expected);
    assert_eq!(online(&b, &asked).await, expected);
    assert_eq!(online(&a, &[]).await, Vec::<bool>::new());
}

async fn a_node_holds_its_lease_from_start(backend: Backend) {
    let node = backend.node().await;
    assert!(node.presence.lease().is_valid());
}

async fn a_dead_nodes_users_go_offline_within_one_lease(backend: Backend) {
    if !backend.leases_expire() {
        eprintln!("skipping: this implementation's leases never run out");
        return;
    }
    let dying = backend.node_with_lease(SHORT_LEASE).await;
    let other = backend.node().await;
    let user = fresh_user();
    claim(&dying, user, SessionId::generate()).await;
    assert_eq!(online(&other, &[user]).await, [true]);

    // The node stops renewing, as if killed: nobody releases its session,
    // and still its user shows offline within one lease TTL.
    dying.stop.cancel();
    let started = Instant::now();
    while online(&other, &[user]).await != [false] {
        assert!(
            started.elapsed() < SHORT_LEASE * 5,
            "still online long after the lease ran out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !dying.presence.lease().is_valid(),
        "the node knows its lease is gone"
    );
    assert!(
        matches!(
            dying
                .presence
                .claim(fresh_user(), SessionId::generate())
                .await,
            Err(PresenceError::Unavailable(_))
        ),
        "a node without its lease cannot claim"
    );
}

async fn release_node_takes_only_this_nodes_users_offline(backend: Backend) {
    let (a, b) = (backend.node().await, backend.node().await);
    let (on_a, on_b, moved) = (fresh_user(), fresh_user(), fresh_user());
    claim(&a, on_a, SessionId::generate()).await;
    claim(&b, on_b, SessionId::generate()).await;
    // `moved` logged in on a, then on b.
    claim(&a, moved, SessionId::generate()).await;
    claim(&b, moved, SessionId::generate()).await;

    // A graceful shutdown: the node stops, then releases what it held.
    a.stop.cancel();
    a.presence.release_node().await.expect("release node");
    assert_eq!(
        online(&b, &[on_a, on_b, moved]).await,
        [false, true, true],
        "only a's own sessions go, at once"
    );
    assert!(!a.presence.lease().is_valid(), "a's lease went with them");
}

async fn a_node_without_its_lease_cannot_claim(backend: Backend) {
    let node = backend.node().await;
    node.stop.cancel();
    node.presence.release_node().await.expect("release node");
    let user = fresh_user();
    assert!(matches!(
        node.presence.claim(user, SessionId::generate()).await,
        Err(PresenceError::Unavailable(_))
    ));
    let other = backend.node().await;
    assert_eq!(online(&other, &[user]).await, [false], "nothing recorded");
}

async fn session_of_names_the_current_session_and_its_node_while_online(backend: Backend) {
    let (a, b) = (backend.node().await, backend.node().await);
    let user = fresh_user();
    let session_of = |node: &Node| {
        let presence = Arc::clone(&node.presence);
        async move { presence.session_of(user).await.expect("session_of") }
    };
    assert_eq!(session_of(&b).await, None, "nobody online yet");

    let first = SessionId::generate();
    claim(&a, user, first).await;
    let on_a = session_of(&b).await.expect("online on a");
    assert_eq!(on_a.session, first);
    assert!(!on_a.node.is_empty());

    let second = SessionId::generate();
    claim(&b, user, second).await;
    let on_b = session_of(&a).await.expect("online on b");
    assert_eq!(on_b.session, second);
    assert_ne!(on_b.node, on_a.node, "each node has its own name");

    release(&b, user, second).await;
    assert_eq!(session_of(&a).await, None, "offline again");
    assert_eq!(online(&a, &[user]).await, [false]);
}

fn main() -> ExitCode {
    chat_testkit::harness::run(conformance())
}

/// Presence on `deployment`.
async fn fixture(deployment: Deployment) -> Backend {
    match deployment {
        Deployment::Local => Backend::local(),
        Deployment::Redis(url) => Backend::redis(RedisTarget::Single(url)),
        Deployment::Cluster(nodes) => Backend::redis(RedisTarget::Cluster(nodes)),
    }
}

fn conformance() -> Vec<Test> {
    chat_testkit::on_each_deployment!(fixture;
        claim_returns_the_session_it_replaced,
        a_claim_replaces_a_session_another_node_recorded,
        of_racing_claims_one_stays_and_every_other_is_named_once,
        releasing_a_replaced_session_leaves_the_newer_one,
        releasing_an_unrecorded_session_changes_nothing,
        online_answers_each_user_in_order,
        a_node_holds_its_lease_from_start,
        a_dead_nodes_users_go_offline_within_one_lease,
        release_node_takes_only_this_nodes_users_offline,
        a_node_without_its_lease_cannot_claim,
        session_of_names_the_current_session_and_its_node_while_online,
    )
    .into_iter()
    .map(|check| check.multi_thread(2))
    .collect()
}
