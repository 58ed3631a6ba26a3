//! Two nodes in one process on a Redis Cluster of the test's own (three
//! masters, three replicas), under traffic, while the cluster fails: a
//! master is killed (its replica takes over), a slot moves to another
//! master, a node's subscription is cut. Every time, nothing acked is
//! lost, live delivery resumes, and presence stays right.

mod common;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::redis_cluster::{ClusterNode, PrivateRedisCluster};
use chat_testkit::{Service, eventually, trial};
use chatcore::bus::RedisBus;
use chatcore::client::{Client, Event};
use chatcore::limit::LocalCounters;
use chatcore::model::UserId;
use chatcore::node::{self, Backends};
use chatcore::presence::{RedisPresence, RedisPresenceConfig};
use chatcore::protocol::ErrorCode;
use chatcore::redis_target::RedisTarget;
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn main() -> ExitCode {
    // RUST_LOG=chatcore=debug,redis=info shows the nodes' view of a failure.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();
    let tests = [
        trial!(a_master_killed_under_traffic_loses_nothing_and_its_replica_serves),
        trial!(a_slot_moved_under_traffic_loses_nothing_and_delivery_follows_it),
        trial!(a_cut_subscription_is_restored_and_what_it_missed_refilled),
        trial!(a_moved_node_channel_keeps_group_messages_coming),
    ];
    chat_testkit::harness::run(
        tests.map(|test| test.needs(&[Service::RedisCluster]).multi_thread(2)),
    )
}

/// How long delivery may take to recover from a failure (a failover takes
/// the node timeout, 2 s, plus an election).
const RECOVER: Duration = Duration::from_secs(30);
/// Messages sent during a failure.
const MESSAGES: usize = 60;

struct Node {
    addr: std::net::SocketAddr,
    /// Its name: presence records it, the bus reaches the node by it.
    id: String,
    stop: CancellationToken,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn unique() -> String {
    format!("{:016x}", getrandom::u64().expect("random"))
}

async fn start_node(target: &RedisTarget, prefix: &str, store: Arc<dyn Store>) -> Node {
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    // The bus reaches the node by the name its presence records.
    let node_id = format!("node-{}", unique());
    let (bus, bus_events) =
        RedisBus::connect_to(target, prefix, &node_id, 1024, &tasks, stop.clone())
            .await
            .expect("bus");
    let (presence, lost) = RedisPresence::start(
        RedisPresenceConfig {
            target: target.clone(),
            prefix: prefix.to_owned(),
            node_id: node_id.clone(),
            // Longer than a failover: the lease outlives it.
            lease_ttl: Duration::from_secs(12),
        },
        &tasks,
        stop.clone(),
    )
    .await
    .expect("presence");
    let backends = Backends {
        store,
        presence: Arc::new(presence),
        bus: Arc::new(bus),
        bus_events,
        lost_sessions: Some(lost),
        counters: Arc::new(LocalCounters::default()),
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
    tokio::spawn(server::run(
        listener,
        service,
        ServerConfig::default(),
        stop.clone(),
    ));
    Node {
        addr,
        id: node_id,
        stop,
    }
}

/// A cluster of its own, two nodes on it sharing one SQLite store, and
/// the prefix of their keys.
struct Setup {
    redis: Arc<PrivateRedisCluster>,
    a: Node,
    b: Node,
    prefix: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let redis = Arc::new(
        tokio::task::spawn_blocking(PrivateRedisCluster::start)
            .await
            .expect("the cluster starts"),
    );
    let target = RedisTarget::Cluster(redis.urls());
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(SqlStoreOptions::new(db))
            .await
            .expect("store"),
    );
    let prefix = format!("faults-{}", unique());
    let a = start_node(&target, &prefix, Arc::clone(&store)).await;
    let b = start_node(&target, &prefix, store).await;
    Setup {
        redis,
        a,
        b,
        prefix,
        _dir: dir,
    }
}

async fn user_on(node: &Node, name: &str) -> (Client, UserId) {
    let client = Client::connect(node.addr).await.expect("connect");
    let id = client.register(name, "pw").await.expect("register");
    client.login(id, "pw").await.expect("login");
    (client, id)
}

/// The slot of `user`'s bus channel and presence record (both are tagged
/// with the user), and the port of the master serving it.
fn users_master(redis: &PrivateRedisCluster, prefix: &str, user: UserId) -> (u16, u16) {
    let slot = redis.slot_of(&format!("{prefix}:user:{{{user}}}"));
    assert_eq!(
        slot,
        redis.slot_of(&format!("{prefix}:session:{{{user}}}")),
        "a user's channel and session record share a slot"
    );
    let master = redis.master_of(slot).expect("the slot has a master");
    (slot, master.port)
}

/// A live master of the cluster other than the one on `port`.
fn another_master(redis: &PrivateRedisCluster, port: u16) -> ClusterNode {
    redis
        .nodes()
        .into_iter()
        .find(|n| n.master && !n.failed && n.port != port)
        .expect("another master")
}

/// Sends `MESSAGES` messages from `sender` to `to`, one every 20 ms; after
/// the first ten, `failure` runs on a blocking thread while the rest is
/// sent. Returns the texts acked.
async fn send_while(
    sender: &Client,
    to: UserId,
    failure: impl FnOnce() + Send + 'static,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut failure = Some(failure);
    let mut failing = None;
    for i in 0..MESSAGES {
        let text = format!("m{i}");
        match sender.send_to(to, &text).await {
            Ok(_) => acked.push(text),
            Err(e) => eprintln!("{text} not acked: {e}"),
        }
        if i == 10 {
            failing = failure.take().map(tokio::task::spawn_blocking);
            continue;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(failing) = failing {
        failing.await.expect("the failure ran");
    }
    acked
}

/// Runs `probe` on a blocking thread (the cluster is driven by
/// `redis-cli`).
async fn blocking<T: Send + 'static>(probe: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(probe).await.expect("ran")
}

/// Reads `client`'s deliveries (dropping repeats by seq, as a native
/// client does) until every text of `expected` came; panics after
/// [`RECOVER`]. Returns them in seq order.
async fn receive_all(client: &mut Client, expected: &[String]) -> Vec<String> {
    let mut by_seq: BTreeMap<i64, String> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + RECOVER;
    while !expected.iter().all(|t| by_seq.values().any(|v| v == t)) {
        let event = tokio::time::timeout_at(deadline, client.next_event())
            .await
            .unwrap_or_else(|_| {
                let missing: Vec<&String> = expected
                    .iter()
                    .filter(|t| !by_seq.values().any(|v| v == *t))
                    .collect();
                panic!("acked messages never arrived: {missing:?}")
            });
        match event {
            Some(Event::Message(m)) => {
                let seq = m.seq.expect("a delivery carries its seq").0;
                by_seq.insert(seq, m.msg);
            }
            Some(_) => {}
            None => panic!("the connection closed"),
        }
    }
    let seqs: Vec<i64> = by_seq.keys().copied().collect();
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "inbox seqs without gaps: {seqs:?}");
    }
    by_seq.into_values().collect()
}

/// A message sent now reaches `receiver` live (nothing but the bus tells
/// its node: a dead subscription would leave it waiting).
async fn live_delivery_works(sender: &Client, receiver: &mut Client, to: UserId, text: &str) {
    sender.send_to(to, text).await.expect("sent");
    let got = receive_all(receiver, &[text.to_owned()]).await;
    assert_eq!(got.last().map(String::as_str), Some(text));
}

/// Presence is right after the failure: `watcher` sees `user` online, and
/// a login elsewhere still kicks `user`'s session (the claim and the kick
/// reach the user's slot on its new master).
async fn presence_is_right(setup: &Setup, watcher: &Client, user: UserId, session: &mut Client) {
    eventually("the watcher sees the user online", RECOVER, || async {
        watcher
            .friends()
            .await
            .is_ok_and(|friends| friends.iter().any(|f| f.id == user && f.online()))
    })
    .await;
    let replacement = Client::connect(setup.a.addr).await.expect("connect");
    replacement.login(user, "pw").await.expect("login again");
    let kicked = tokio::time::timeout(RECOVER, async {
        loop {
            match session.next_event().await {
                Some(Event::Kicked { errno, .. }) => return errno,
                Some(_) => continue,
                None => panic!("closed without a kick"),
            }
        }
    })
    .await
    .expect("the old session is kicked");
    assert_eq!(kicked, ErrorCode::Kicked.errno());
}

async fn a_master_killed_under_traffic_loses_nothing_and_its_replica_serves() {
    let setup = setup().await;
    let (alice, _) = user_on(&setup.a, "alice").await;
    let (mut bob, bob_id) = user_on(&setup.b, "bob").await;
    let (watcher, _) = user_on(&setup.a, "watcher").await;
    watcher.add_friend(bob_id).await.expect("befriend bob");
    let (_, master) = users_master(&setup.redis, &setup.prefix, bob_id);

    let redis = Arc::clone(&setup.redis);
    let acked = send_while(&alice, bob_id, move || redis.kill(master)).await;
    assert_eq!(acked.len(), MESSAGES, "the store acks whatever Redis does");
    let redis = Arc::clone(&setup.redis);
    blocking(move || redis.wait_healthy()).await;
    let got = receive_all(&mut bob, &acked).await;
    assert!(acked.iter().all(|t| got.contains(t)));
    live_delivery_works(&alice, &mut bob, bob_id, "after the failover").await;
    let (_, new_master) = users_master(&setup.redis, &setup.prefix, bob_id);
    assert_ne!(new_master, master, "the replica took over");
    presence_is_right(&setup, &watcher, bob_id, &mut bob).await;
}

async fn a_slot_moved_under_traffic_loses_nothing_and_delivery_follows_it() {
    let setup = setup().await;
    let (alice, _) = user_on(&setup.a, "alice").await;
    let (mut bob, bob_id) = user_on(&setup.b, "bob").await;
    let (watcher, _) = user_on(&setup.a, "watcher").await;
    watcher.add_friend(bob_id).await.expect("befriend bob");
    let (slot, master) = users_master(&setup.redis, &setup.prefix, bob_id);
    let other = another_master(&setup.redis, master);

    let redis = Arc::clone(&setup.redis);
    let acked = send_while(&alice, bob_id, move || redis.move_slot(slot, other.port)).await;
    assert_eq!(
        setup.redis.master_of(slot).map(|m| m.port),
        Some(other.port),
        "the slot moved"
    );
    receive_all(&mut bob, &acked).await;
    live_delivery_works(&alice, &mut bob, bob_id, "after the move").await;
    presence_is_right(&setup, &watcher, bob_id, &mut bob).await;
}

async fn a_cut_subscription_is_restored_and_what_it_missed_refilled() {
    let setup = setup().await;
    let (alice, _) = user_on(&setup.a, "alice").await;
    let (mut bob, bob_id) = user_on(&setup.b, "bob").await;
    let (watcher, _) = user_on(&setup.a, "watcher").await;
    watcher.add_friend(bob_id).await.expect("befriend bob");
    let (_, master) = users_master(&setup.redis, &setup.prefix, bob_id);

    let redis = Arc::clone(&setup.redis);
    let acked = send_while(&alice, bob_id, move || {
        // Every client connection of the master holding bob's channel
        // goes: the subscriber's, and the publishers' too.
        redis.cli(master, &["CLIENT", "KILL", "TYPE", "pubsub"]);
        redis.cli(master, &["CLIENT", "KILL", "TYPE", "normal"]);
    })
    .await;
    receive_all(&mut bob, &acked).await;
    live_delivery_works(&alice, &mut bob, bob_id, "after the cut").await;
    presence_is_right(&setup, &watcher, bob_id, &mut bob).await;
}

async fn a_moved_node_channel_keeps_group_messages_coming() {
    let setup = setup().await;
    let (alice, _) = user_on(&setup.a, "alice").await;
    let (mut bob, _) = user_on(&setup.b, "bob").await;
    let (carol, _) = user_on(&setup.b, "carol").await;
    let group = alice.create_group("moved", "").await.expect("group");
    for member in [&bob, &carol] {
        member.join_group(group).await.expect("join");
    }
    // Bob and carol are both on node b: each group message is one event on
    // b's own channel, whose slot moves under traffic.
    let slot = setup
        .redis
        .slot_of(&format!("{}:node:{{{}}}", setup.prefix, setup.b.id));
    let master = setup.redis.master_of(slot).expect("the slot has a master");
    let other = another_master(&setup.redis, master.port);

    let mut acked = Vec::new();
    let mut moving = None;
    for i in 0..MESSAGES {
        let text = format!("g{i}");
        match alice.send_group(group, &text).await {
            Ok(_) => acked.push(text),
            Err(e) => eprintln!("{text} not acked: {e}"),
        }
        if i == 10 {
            let redis = Arc::clone(&setup.redis);
            moving = Some(tokio::task::spawn_blocking(move || {
                redis.move_slot(slot, other.port)
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    moving.expect("started").await.expect("the slot moved");
    assert_eq!(
        setup.redis.master_of(slot).map(|m| m.port),
        Some(other.port),
        "the node's channel moved"
    );
    assert_eq!(acked.len(), MESSAGES, "the store acks whatever Redis does");
    receive_all(&mut bob, &acked).await;
    // And live: nothing but b's own channel tells it of a group message.
    alice
        .send_group(group, "after the move")
        .await
        .expect("sent");
    let got = receive_all(&mut bob, &["after the move".to_owned()]).await;
    assert_eq!(got.last().map(String::as_str), Some("after the move"));
}
