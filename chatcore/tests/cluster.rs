//! Two nodes in one process on the real cluster backends: Redis bus,
//! presence and guard counters (from `CHAT_TEST_REDIS_URL`), one shared SQL
//! store. Users on different nodes chat, befriend, and replace each
//! other's sessions; a password guesser gets no more tries from two nodes
//! than from one.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::{Service, trial};
use chatcore::bus::RedisBus;
use chatcore::client::{Client, Event};
use chatcore::limit::{LoginGuardConfig, RedisCounters};
use chatcore::node::{self, Backends};
use chatcore::presence::{RedisPresence, RedisPresenceConfig};
use chatcore::protocol::ErrorCode;
use chatcore::redis_target::RedisTarget;
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions, Store};
use common::{WAIT, next_message};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    let tests = [
        trial!(users_on_different_nodes_chat_one_to_one_and_in_groups),
        trial!(a_login_on_another_node_kicks_the_first_session),
        trial!(stopping_one_node_leaves_the_other_nodes_users_online),
        trial!(a_nodes_background_tasks_all_end_after_shutdown),
        trial!(two_nodes_give_a_password_guesser_no_more_tries_than_one),
    ];
    chat_testkit::harness::run(tests.map(|test| test.needs(&[Service::Redis])))
}

struct Node {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// The node's background tasks: bus subscriber, lease renewal, hub.
    tasks: TaskTracker,
}

/// A random name part, unique enough for keys, users and groups.
fn unique() -> String {
    format!("{:016x}", getrandom::u64().expect("random"))
}

/// A node of the cluster whose Redis keys and channels start with `prefix`.
async fn start_node(url: &str, prefix: &str, store: Arc<dyn Store>, lease_ttl: Duration) -> Node {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    // The bus reaches the node by the name its presence records.
    let node_id = format!("it-{}", unique());
    let (bus, bus_events) = RedisBus::connect(url, prefix, &node_id, 1024, &tasks, stop.clone())
        .await
        .expect("bus");
    let (presence, lost) = RedisPresence::start(
        RedisPresenceConfig {
            target: RedisTarget::Single(url.to_owned()),
            prefix: prefix.to_owned(),
            node_id,
            lease_ttl,
        },
        &tasks,
        stop.clone(),
    )
    .await
    .expect("presence");
    let counters = RedisCounters::connect(&RedisTarget::Single(url.to_owned()), prefix)
        .await
        .expect("counters");
    let backends = Backends {
        store,
        presence: Arc::new(presence),
        bus: Arc::new(bus),
        bus_events,
        lost_sessions: Some(lost),
        counters: Arc::new(counters),
    };
    let passwords = Passwords::new(HashParams::insecure_fast(), 2).expect("params");
    let service = node::start(
        backends,
        passwords,
        ServiceConfig::default(),
        &tasks,
        stop.clone(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(server::run(
        listener,
        service,
        ServerConfig::default(),
        stop.clone(),
    ));
    Node {
        addr,
        stop,
        task,
        tasks,
    }
}

impl Node {
    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

async fn two_nodes() -> (Node, Node, tempfile::TempDir) {
    let url = chat_testkit::redis::shared_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(SqlStoreOptions::new(db))
            .await
            .expect("store"),
    );
    // Every test is a cluster of its own (its store numbers users from 1).
    let prefix = format!("test-{}", unique());
    let a = start_node(&url, &prefix, Arc::clone(&store), Duration::from_secs(9)).await;
    let b = start_node(&url, &prefix, store, Duration::from_secs(9)).await;
    (a, b, dir)
}

/// Registers a uniquely named user on `node` and logs it in there.
async fn user_on(node: &Node, name: &str) -> (Client, chatcore::model::UserId) {
    let client = Client::connect(node.addr).await.expect("connect");
    let name = format!("{name}-{}", unique());
    let id = client.register(&name, "pw").await.expect("register");
    client.login(id, "pw").await.expect("login");
    (client, id)
}

async fn users_on_different_nodes_chat_one_to_one_and_in_groups() {
    let (a, b, _dir) = two_nodes().await;
    let (mut alice, alice_id) = user_on(&a, "alice").await;
    let (mut bob, bob_id) = user_on(&b, "bob").await;
    let (mut carol, _) = user_on(&b, "carol").await;

    alice.send_to(bob_id, "across nodes").await.expect("sent");
    let m = next_message(&mut bob).await;
    assert_eq!((m.from, m.msg.as_str()), (alice_id, "across nodes"));
    bob.send_to(alice_id, "and back").await.expect("sent");
    assert_eq!(next_message(&mut alice).await.msg, "and back");

    let group = alice
        .create_group(&format!("g-{}", unique()), "")
        .await
        .expect("group");
    bob.join_group(group).await.expect("join");
    carol.join_group(group).await.expect("join");
    alice.send_group(group, "hello both").await.expect("sent");
    assert_eq!(next_message(&mut bob).await.msg, "hello both");
    assert_eq!(next_message(&mut carol).await.msg, "hello both");

    // Friends see each other's presence across nodes.
    alice.add_friend(bob_id).await.expect("friend");
    assert!(alice.friends().await.expect("friends")[0].online());
    drop(bob);
    let mut offline = false;
    for _ in 0..50 {
        if !alice.friends().await.expect("friends")[0].online() {
            offline = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(offline, "bob shows offline once his connection is gone");
    a.stop().await;
    b.stop().await;
}

async fn a_login_on_another_node_kicks_the_first_session() {
    let (a, b, _dir) = two_nodes().await;
    let (mut first, alice_id) = user_on(&a, "alice").await;
    let second = Client::connect(b.addr).await.expect("connect");
    second.login(alice_id, "pw").await.expect("login on b");
    match first.next_event_within(WAIT).await {
        Some(Event::Kicked { errno, .. }) => assert_eq!(errno, ErrorCode::Kicked.errno()),
        other => panic!("expected a kick, got {other:?}"),
    }
    // Messages now reach the session on b.
    let (sender, _) = user_on(&a, "sender").await;
    let mut second = second;
    sender
        .send_to(alice_id, "to the new session")
        .await
        .expect("sent");
    assert_eq!(next_message(&mut second).await.msg, "to the new session");
    a.stop().await;
    b.stop().await;
}

async fn stopping_one_node_leaves_the_other_nodes_users_online() {
    let (a, b, _dir) = two_nodes().await;
    let (_on_a, a_id) = user_on(&a, "on-a").await;
    let (on_b, b_id) = user_on(&b, "on-b").await;
    let (watcher, _) = user_on(&b, "watcher").await;
    watcher.add_friend(a_id).await.expect("friend");
    watcher.add_friend(b_id).await.expect("friend");
    a.stop().await;
    let friends = watcher.friends().await.expect("friends");
    let state: Vec<(chatcore::model::UserId, bool)> =
        friends.iter().map(|f| (f.id, f.online())).collect();
    assert!(state.contains(&(a_id, false)), "{state:?}");
    assert!(state.contains(&(b_id, true)), "{state:?}");
    on_b.ping().await.expect("b's users are still served");
    b.stop().await;
}

async fn a_nodes_background_tasks_all_end_after_shutdown() {
    let (a, b, _dir) = two_nodes().await;
    // A session, so that the subscriber holds a subscription and presence
    // a session of this node when the shutdown comes.
    let (_alice, _) = user_on(&a, "alice").await;
    let tasks = a.tasks.clone();
    assert!(!tasks.is_empty(), "the node runs background tasks");
    a.stop().await;
    tasks.close();
    tokio::time::timeout(WAIT, tasks.wait())
        .await
        .expect("the bus subscriber, lease renewal and hub all end");
    b.stop().await;
}

async fn two_nodes_give_a_password_guesser_no_more_tries_than_one() {
    let (a, b, _dir) = two_nodes().await;
    let (_alice, alice_id) = user_on(&a, "alice").await;
    let allowed = LoginGuardConfig::default().max_failures_per_user_address;
    // The guesser spreads its guesses over both nodes, from one address.
    for attempt in 0..allowed {
        let node = if attempt % 2 == 0 { &a } else { &b };
        let guesser = Client::connect(node.addr).await.expect("connect");
        let e = guesser.login(alice_id, "guess").await.expect_err("wrong");
        assert_eq!(e.errno(), Some(ErrorCode::LoginFailed.errno()));
    }
    // Each node has seen only some of the failures, and both refuse: the
    // count is the cluster's, not the node's.
    for node in [&a, &b] {
        let guesser = Client::connect(node.addr).await.expect("connect");
        let e = guesser
            .login(alice_id, "pw")
            .await
            .expect_err("held back even with the right password");
        assert_eq!(e.errno(), Some(ErrorCode::TooManyAttempts.errno()));
    }
    a.stop().await;
    b.stop().await;
}
