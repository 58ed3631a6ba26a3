//! Two `chatd` processes as a cluster (one MySQL/MariaDB database, one
//! Redis, nginx in front): users on different nodes chat one to one and in
//! groups, directly and through nginx, and a login on the other node kicks
//! the first session.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   CHAT_TEST_NGINX=/usr/sbin/nginx cargo test --workspace --test cluster_chat
//! ```

mod support;

use std::process::ExitCode;

use chat_testkit::{eventually, trial};
use chatcore::client::Event;
use chatcore::protocol::ErrorCode;
use support::{Cluster, ClusterOptions, User, WAIT, new_user, next_message, next_texts};

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(users_on_two_chatd_processes_chat_one_to_one_and_in_groups)
            .needs(Cluster::NEEDS)
            .multi_thread(2),
        trial!(users_through_nginx_land_on_different_nodes_and_chat)
            .needs(Cluster::NEEDS_WITH_NGINX)
            .multi_thread(2),
        trial!(a_login_on_the_other_node_kicks_the_first_session)
            .needs(Cluster::NEEDS)
            .multi_thread(2),
        trial!(behind_nginx_limits_see_each_clients_own_address)
            .needs(Cluster::NEEDS_WITH_NGINX)
            .multi_thread(2),
        trial!(on_a_redis_cluster_users_on_two_nodes_chat_one_to_one_and_in_groups)
            .needs(Cluster::NEEDS_ON_REDIS_CLUSTER)
            .multi_thread(2),
        trial!(on_a_redis_cluster_a_login_on_the_other_node_kicks_the_first_session)
            .needs(Cluster::NEEDS_ON_REDIS_CLUSTER)
            .multi_thread(2),
    ])
}

/// A TCP connection to `addr` from the loopback address `source`.
async fn connect_from(source: [u8; 4], addr: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    socket
        .connect(addr.parse().expect("an address"))
        .await
        .expect("connect")
}

/// A failed native login over a fresh TCP connection through nginx from
/// `source`: its errno (1 wrong password, 18 held back).
async fn failed_tcp_login(source: [u8; 4], lb: &str, user: u64) -> u64 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stream = connect_from(source, lb).await;
    let mut stream = tokio::io::BufReader::new(stream);
    let login =
        serde_json::json!({"msgid": 1, "id": user, "password": "wrong", "proto": 2, "rid": 1});
    stream
        .get_mut()
        .write_all(format!("{login}\n").as_bytes())
        .await
        .expect("send");
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("an answer");
    let reply: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    reply["errno"].as_u64().expect("an errno")
}

/// The same over a WebSocket through nginx's http proxy.
async fn failed_ws_login(source: [u8; 4], web_lb: &str, user: u64) -> u64 {
    let stream = connect_from(source, web_lb).await;
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (socket, _) = tokio_tungstenite::client_async(format!("ws://{web_lb}/ws"), stream)
        .await
        .expect("upgrade through nginx");
    let mut ws = support::ws::Ws { socket };
    let reply = ws
        .call(
            serde_json::json!({"msgid": 1, "id": user, "password": "wrong"}),
            1,
        )
        .await;
    reply["errno"].as_u64().expect("an errno")
}

/// nginx sends chatd the client's address (the PROXY header on TCP,
/// X-Forwarded-For on the web): one client's failed logins hold that
/// client back, not everybody behind the same proxy.
async fn behind_nginx_limits_see_each_clients_own_address() {
    let options = ClusterOptions {
        nginx: true,
        node_args: vec![
            "--login-max-failures-per-address".to_owned(),
            "2".to_owned(),
            "--login-max-failures".to_owned(),
            "0".to_owned(),
        ],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let lb = cluster.lb().to_owned();
    let web_lb = (cluster.nginx.as_ref())
        .and_then(|n| n.web_addr.clone())
        .expect("nginx serves browsers too");
    let victim = new_user(&lb, "victim").await;
    let user = victim.id.0 as u64;

    // The guard counts in Redis, for the whole cluster: two failures,
    // on whichever nodes nginx picks, and the next attempt from that
    // address is held back.
    for _ in 0..2 {
        assert_eq!(failed_tcp_login([127, 0, 0, 3], &lb, user).await, 1);
    }
    assert_eq!(failed_tcp_login([127, 0, 0, 3], &lb, user).await, 18);
    // Another client through the same nginx is not.
    assert_eq!(failed_tcp_login([127, 0, 0, 4], &lb, user).await, 1);

    // Over WebSockets, through nginx's http proxy, the same.
    for _ in 0..2 {
        assert_eq!(failed_ws_login([127, 0, 0, 5], &web_lb, user).await, 1);
    }
    assert_eq!(failed_ws_login([127, 0, 0, 5], &web_lb, user).await, 18);
    assert_eq!(failed_ws_login([127, 0, 0, 6], &web_lb, user).await, 1);
    // And a client connecting to a node directly is not taken for nginx.
    assert_eq!(
        failed_tcp_login([127, 0, 0, 4], &cluster.node(0).addr, user).await,
        1
    );
}

/// `alice` sends to `bob` and back; `group` (already joined by everyone in
/// `members`) carries one message from `alice` to all the others and one
/// from the last member to all the others.
async fn chat_one_to_one_and_in_a_group(alice: &mut User, bob: &mut User, others: &mut [User]) {
    let sent = alice
        .client
        .send_to(bob.id, "hello bob")
        .await
        .expect("alice sends to bob");
    let m = next_message(bob).await;
    assert_eq!(
        (m.from, m.toid, m.msg.as_str(), m.mid),
        (alice.id, Some(bob.id), "hello bob", sent.mid)
    );
    bob.client
        .send_to(alice.id, "hello alice")
        .await
        .expect("bob sends to alice");
    let m = next_message(alice).await;
    assert_eq!((m.from, m.msg.as_str()), (bob.id, "hello alice"));

    // A group with members on both nodes.
    let group = alice
        .client
        .create_group("both nodes", "")
        .await
        .expect("create group");
    bob.client.join_group(group).await.expect("bob joins");
    for other in others.iter() {
        other.client.join_group(group).await.expect("join");
    }
    alice
        .client
        .send_group(group, "hello group")
        .await
        .expect("group send");
    for user in std::iter::once(&mut *bob).chain(others.iter_mut()) {
        let m = next_message(user).await;
        assert_eq!(
            (m.from, m.groupid, m.msg.as_str()),
            (alice.id, Some(group), "hello group"),
            "{} gets the group message",
            user.name
        );
    }
    bob.client
        .send_group(group, "bob to the group")
        .await
        .expect("group send");
    for user in std::iter::once(&mut *alice).chain(others.iter_mut()) {
        let m = next_message(user).await;
        assert_eq!(
            (m.from, m.groupid, m.msg.as_str()),
            (bob.id, Some(group), "bob to the group"),
            "{} gets bob's group message",
            user.name
        );
    }
}

async fn users_on_two_chatd_processes_chat_one_to_one_and_in_groups() {
    chat_across_two_nodes(ClusterOptions::default()).await;
}

async fn on_a_redis_cluster_users_on_two_nodes_chat_one_to_one_and_in_groups() {
    chat_across_two_nodes(ClusterOptions {
        redis_cluster: true,
        ..ClusterOptions::default()
    })
    .await;
}

async fn chat_across_two_nodes(options: ClusterOptions) {
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut alice = new_user(&a.addr, "alice").await;
    let mut bob = new_user(&b.addr, "bob").await;
    let carol = new_user(&b.addr, "carol").await;
    let dave = new_user(&a.addr, "dave").await;
    for (user, node) in [(&alice, a), (&bob, b), (&carol, b), (&dave, a)] {
        assert_eq!(
            cluster.session_node(user.id).await.as_deref(),
            Some(node.node_id.as_str()),
            "{}'s session is recorded on the node it logged in on",
            user.name
        );
    }
    let mut others = [carol, dave];
    chat_one_to_one_and_in_a_group(&mut alice, &mut bob, &mut others).await;
}

async fn users_through_nginx_land_on_different_nodes_and_chat() {
    let options = ClusterOptions {
        nginx: true,
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let lb = cluster.lb().to_owned();
    // Consecutive connections: round robin gives them different nodes.
    let mut alice = new_user(&lb, "alice").await;
    let mut bob = new_user(&lb, "bob").await;
    let alice_node = cluster.session_node(alice.id).await.expect("alice online");
    let bob_node = cluster.session_node(bob.id).await.expect("bob online");
    assert_ne!(
        alice_node, bob_node,
        "nginx sent alice and bob (consecutive connections) to the same node"
    );
    let mut others = [new_user(&lb, "carol").await, new_user(&lb, "dave").await];
    chat_one_to_one_and_in_a_group(&mut alice, &mut bob, &mut others).await;

    // nginx's own account: it proxied each connection to the node where
    // presence recorded the user.
    let nginx = cluster.nginx.as_ref().expect("nginx");
    let users = [alice, bob];
    let expected: Vec<(u16, String, String)> = users
        .iter()
        .zip([&alice_node, &bob_node])
        .map(|(u, node)| {
            (
                u.local_port,
                u.name.clone(),
                cluster.node_by_id(node).addr.clone(),
            )
        })
        .collect();
    drop(users);
    for (port, name, node_addr) in expected {
        let upstream = nginx.wait_upstream_of(port, WAIT).await;
        assert_eq!(upstream, node_addr, "nginx's upstream for {name}");
    }
    drop(others);
}

async fn a_login_on_the_other_node_kicks_the_first_session() {
    kick_across_two_nodes(ClusterOptions::default()).await;
}

async fn on_a_redis_cluster_a_login_on_the_other_node_kicks_the_first_session() {
    kick_across_two_nodes(ClusterOptions {
        redis_cluster: true,
        ..ClusterOptions::default()
    })
    .await;
}

async fn kick_across_two_nodes(options: ClusterOptions) {
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut first = new_user(&a.addr, "alice").await;
    let mut sender = new_user(&a.addr, "sender").await;
    let watcher = new_user(&b.addr, "watcher").await;
    watcher
        .client
        .add_friend(first.id)
        .await
        .expect("befriend alice");

    let mut second = support::login(&b.addr, first.id, "alice (second)").await;
    match support::next_event(&mut first).await {
        Some(Event::Kicked { errno, .. }) => {
            assert_eq!(errno, ErrorCode::Kicked.errno(), "KICKED errno");
        }
        other => panic!("the first session expected KICKED, got {other:?}"),
    }
    assert_eq!(
        first.client.next_event_within(WAIT).await,
        None,
        "the kicked connection closes"
    );
    assert_eq!(
        cluster.session_node(second.id).await.as_deref(),
        Some(b.node_id.as_str())
    );

    // Messages now reach the session on node b, and only there.
    sender
        .client
        .send_to(second.id, "to the new session")
        .await
        .expect("sent");
    assert_eq!(next_texts(&mut second, 1).await, ["to the new session"]);
    // Alice is still online (on b) for her friends, and answers there.
    eventually("watcher sees alice online", WAIT, || async {
        support::sees_online(&watcher, second.id).await
    })
    .await;
    second
        .client
        .send_to(sender.id, "from the new session")
        .await
        .expect("sent");
    assert_eq!(next_texts(&mut sender, 1).await, ["from the new session"]);
}
