//! A node of a two-`chatd` cluster (one MySQL/MariaDB database, one Redis)
//! fails while the other goes on: killed (SIGKILL), stopped (SIGINT), or
//! paused past its lease (SIGSTOP ... SIGCONT). What the users of both
//! nodes see is what docs/cluster.md promises.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test --workspace --test cluster_failures
//! ```

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chat_testkit::{eventually, trial};
use chatcore::protocol::ErrorCode;
use support::{
    Cluster, ClusterOptions, Ending, User, WAIT, assert_consecutive, login, new_user,
    next_deliveries, next_message, next_texts, read_until_ended, resume, sees_online,
};

fn main() -> ExitCode {
    let tests = [
        trial!(a_killed_nodes_users_show_offline_and_resume_on_the_other_node),
        trial!(sigint_stops_one_node_and_leaves_the_other_nodes_users_untouched),
        trial!(a_node_paused_past_its_lease_ends_its_sessions_and_delivers_nothing_to_them),
    ];
    let on_a_redis_cluster = [trial!(
        on_a_redis_cluster_a_killed_nodes_users_show_offline_and_resume_on_the_other_node
    )];
    chat_testkit::harness::run(
        tests
            .map(|test| test.needs(Cluster::NEEDS).multi_thread(2))
            .into_iter()
            .chain(
                on_a_redis_cluster
                    .map(|test| test.needs(Cluster::NEEDS_ON_REDIS_CLUSTER).multi_thread(2)),
            ),
    )
}

/// Sends `texts` from `sender` to `to`, each acknowledged.
async fn send_all(sender: &User, to: &User, texts: &[String]) {
    for text in texts {
        sender
            .client
            .send_to(to.id, text)
            .await
            .unwrap_or_else(|e| panic!("{} sends {text:?}: {e}", sender.name));
    }
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix} {i}")).collect()
}

/// Receives one message and acknowledges it (and everything before it).
async fn receive_and_ack(user: &mut User, text: &str) {
    let m = next_message(user).await;
    assert_eq!(m.msg, text);
    let seq = m.seq.expect("seq");
    let cursor = user.client.ack_confirmed(seq).await.expect("ack");
    assert_eq!(cursor, seq);
}

/// Waits until `user` is told that `friend` went offline; being told that
/// anybody else did fails the test.
async fn next_presence_of(user: &mut User, friend: chatcore::model::UserId) -> bool {
    loop {
        match user.client.next_event().await {
            Some(chatcore::client::Event::Presence {
                user: who,
                online: false,
            }) => {
                assert_eq!(who, friend, "only {friend} goes offline");
                return false;
            }
            Some(_) => continue,
            None => panic!("the connection closed"),
        }
    }
}

async fn a_killed_nodes_users_show_offline_and_resume_on_the_other_node() {
    killed_node(ClusterOptions::default()).await;
}

async fn on_a_redis_cluster_a_killed_nodes_users_show_offline_and_resume_on_the_other_node() {
    killed_node(ClusterOptions {
        redis_cluster: true,
        ..ClusterOptions::default()
    })
    .await;
}

/// A node of a cluster started with `options` is killed (SIGKILL).
async fn killed_node(options: ClusterOptions) {
    // The default lease (9 s): the documented bound is "offline within the
    // TTL", which this test holds to 10 s from the kill.
    let mut cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let mut alice = new_user(&a, "alice").await;
    let dave = new_user(&a, "dave").await;
    let mut watcher = new_user(&b, "watcher").await;
    let sender = new_user(&b, "sender").await;
    for friend in [&alice, &dave] {
        watcher.client.add_friend(friend.id).await.expect("friend");
        assert!(sees_online(&watcher, friend.id).await);
    }
    // Dave and the watcher share a group with the sender (alice does not:
    // her messages are counted below).
    let group = sender
        .client
        .create_group("crash", "")
        .await
        .expect("group");
    for member in [&dave, &watcher] {
        member.client.join_group(group).await.expect("join");
    }
    send_all(&sender, &alice, &["before the crash".to_owned()]).await;
    receive_and_ack(&mut alice, "before the crash").await;

    cluster.node(0).signal("KILL");
    let killed = Instant::now();
    let status = cluster.node_mut(0).wait_exit(WAIT).await;
    assert_eq!(status.signal(), Some(9), "{status}");
    let (got, ending) = read_until_ended(&mut alice, WAIT).await;
    assert_eq!((got, ending), (vec![], Ending::Closed));

    // Dave comes back on the other node at once with the resume token the
    // dead node gave him (no password), without waiting for the dead node's
    // lease to run out. No node was given a --resume-key: they agreed on
    // one in Redis.
    let mut dave2 = resume(&b, &dave).await;
    let relogin_after = killed.elapsed();

    // Messages for alice while she is away (before and after she shows
    // offline) are kept for her.
    let away = texts("while away", 6);
    send_all(&sender, &alice, &away[..3]).await;
    send_all(&sender, &dave2, &["for dave".to_owned()]).await;
    assert_eq!(next_texts(&mut dave2, 1).await, ["for dave"]);
    // A group message reaches the members now on the live node (one event
    // for that node, presence having moved dave there).
    sender
        .client
        .send_group(group, "group after the crash")
        .await
        .expect("group send");
    assert_eq!(next_texts(&mut dave2, 1).await, ["group after the crash"]);

    let deadline = Duration::from_secs(10);
    eventually(
        "alice, whose node was killed, shows offline to her friends (10 s from the kill)",
        deadline.saturating_sub(killed.elapsed()),
        || async { !sees_online(&watcher, alice.id).await },
    )
    .await;
    let offline_after = killed.elapsed();
    // And the watcher is told so, within a second of the lease running
    // out, without a word about dave, who never went offline.
    let told = tokio::time::timeout_at(
        (killed + Duration::from_secs(11)).into(),
        next_presence_of(&mut watcher, alice.id),
    )
    .await
    .expect("alice's friend is told she went offline within 11 s of the kill");
    assert!(!told, "alice is shown offline");
    let pushed_after = killed.elapsed();
    send_all(&sender, &alice, &away[3..]).await;
    assert!(
        sees_online(&watcher, dave.id).await,
        "dave, logged in again on the live node, shows online"
    );

    // Alice logs in on the live node and gets everything sent meanwhile,
    // in order, then live messages.
    let mut alice2 = login(&b, alice.id, "alice").await;
    assert_eq!(next_texts(&mut alice2, away.len()).await, away);
    send_all(&sender, &alice2, &["welcome back".to_owned()]).await;
    assert_eq!(next_texts(&mut alice2, 1).await, ["welcome back"]);
    eprintln!(
        "after SIGKILL: logged in again on the other node {relogin_after:?} after the kill, \
         shown offline to friends {offline_after:?} after it, pushed {pushed_after:?} after it"
    );
}

async fn sigint_stops_one_node_and_leaves_the_other_nodes_users_untouched() {
    let mut cluster = Cluster::start(ClusterOptions::default()).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let mut on_a = new_user(&a, "on-a").await;
    let mut on_b = new_user(&b, "on-b").await;
    let mut watcher = new_user(&b, "watcher").await;
    watcher.client.add_friend(on_a.id).await.expect("friend");
    watcher.client.add_friend(on_b.id).await.expect("friend");
    let group = watcher
        .client
        .create_group("both nodes", "")
        .await
        .expect("group");
    on_a.client.join_group(group).await.expect("join");
    on_b.client.join_group(group).await.expect("join");
    assert!(sees_online(&watcher, on_a.id).await);
    assert!(sees_online(&watcher, on_b.id).await);

    cluster.node(0).signal("INT");
    let (got, ending) = read_until_ended(&mut on_a, WAIT).await;
    assert_eq!(
        (got, ending),
        (vec![], Ending::Kicked(ErrorCode::ShuttingDown.errno())),
        "the stopped node's user hears goodbye"
    );
    let status = cluster.node_mut(0).wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "the stopped node exits 0: {status}");

    // The stopped node released its users at once; the other node's users
    // stay online and keep their connections.
    eventually("on-a shows offline", WAIT, || async {
        !sees_online(&watcher, on_a.id).await
    })
    .await;
    assert!(sees_online(&watcher, on_b.id).await, "on-b is still online");
    on_b.client
        .send_to(watcher.id, "still here")
        .await
        .expect("on-b sends");
    assert_eq!(next_texts(&mut watcher, 1).await, ["still here"]);
    watcher
        .client
        .send_to(on_b.id, "me too")
        .await
        .expect("watcher sends");
    assert_eq!(next_texts(&mut on_b, 1).await, ["me too"]);
    watcher
        .client
        .send_group(group, "group goes on")
        .await
        .expect("group send");
    assert_eq!(next_texts(&mut on_b, 1).await, ["group goes on"]);

    // The stopped node's user continues on the live node with what the
    // group said meanwhile.
    let mut on_a2 = login(&b, on_a.id, "on-a").await;
    assert_eq!(next_texts(&mut on_a2, 1).await, ["group goes on"]);
}

async fn a_node_paused_past_its_lease_ends_its_sessions_and_delivers_nothing_to_them() {
    const TTL_SECS: u64 = 2;
    const PAUSE: Duration = Duration::from_secs(4);
    let options = ClusterOptions {
        lease_ttl_secs: Some(TTL_SECS),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(options).await;
    let (a, b) = (cluster.node(0).addr.clone(), cluster.node(1).addr.clone());
    let mut alice = new_user(&a, "alice").await;
    let mut carol = new_user(&a, "carol").await;
    let sender = new_user(&b, "sender").await;
    let watcher = new_user(&b, "watcher").await;
    watcher.client.add_friend(alice.id).await.expect("friend");
    watcher.client.add_friend(carol.id).await.expect("friend");
    send_all(&sender, &alice, &["before the pause".to_owned()]).await;
    receive_and_ack(&mut alice, "before the pause").await;

    cluster.node(0).signal("STOP");
    let paused = Instant::now();
    // While node a sleeps, alice logs in on b (the kick for her session on
    // a waits in a's socket) and gets her messages there.
    let mut alice2 = login(&b, alice.id, "alice (on b)").await;
    assert_eq!(
        cluster.session_node(alice.id).await.as_deref(),
        Some(cluster.node(1).node_id.as_str())
    );
    let during = texts("during the pause", 3);
    send_all(&sender, &alice2, &during).await;
    let mut received = next_deliveries(&mut alice2, during.len()).await;
    // Carol stays on the paused node: her message waits in her inbox.
    send_all(&sender, &carol, &["for carol during the pause".to_owned()]).await;
    // Node a's lease runs out in Redis while it sleeps: carol goes offline.
    eventually(
        "carol, on the paused node, shows offline once its lease expired",
        PAUSE.saturating_sub(paused.elapsed()),
        || async { !sees_online(&watcher, carol.id).await },
    )
    .await;
    tokio::time::sleep(PAUSE.saturating_sub(paused.elapsed())).await;
    cluster.node(0).signal("CONT");

    // Node a wakes up without a lease: it ends its sessions and writes
    // nothing to them, least of all alice's messages, which are b's now.
    let (to_old_alice, ending) = read_until_ended(&mut alice, WAIT).await;
    assert!(
        to_old_alice.is_empty(),
        "node a delivered to alice's session it no longer owns: {to_old_alice:?}"
    );
    assert!(
        matches!(ending, Ending::Kicked(30 | 40) | Ending::Closed),
        "alice's old session ends with KICKED 30/40 or a close, got {ending:?}"
    );
    let (to_carol, ending) = read_until_ended(&mut carol, WAIT).await;
    assert!(to_carol.is_empty(), "carol got {to_carol:?}");
    assert!(
        matches!(ending, Ending::Kicked(30) | Ending::Closed),
        "carol's session ends with KICKED 30 or a close, got {ending:?}"
    );

    // Alice goes on receiving on b, each message exactly once.
    let after = texts("after the pause", 3);
    send_all(&sender, &alice2, &after).await;
    send_all(&sender, &alice2, &["last".to_owned()]).await;
    received.extend(next_deliveries(&mut alice2, after.len() + 1).await);
    assert_consecutive("alice on b", &received);
    let expected: Vec<String> = during
        .iter()
        .chain(&after)
        .cloned()
        .chain(["last".to_owned()])
        .collect();
    let got: Vec<String> = received.into_iter().map(|(_, text)| text).collect();
    assert_eq!(got, expected, "alice on b, exactly once and in order");
    assert_eq!(
        cluster.session_node(alice.id).await.as_deref(),
        Some(cluster.node(1).node_id.as_str()),
        "alice's session is still the one on b"
    );
    assert!(
        sees_online(&watcher, alice.id).await,
        "alice is online (on b)"
    );
    assert!(!sees_online(&watcher, carol.id).await, "carol is offline");

    // Node a starts over under a new lease: carol can log in there again.
    let relogin_deadline = Instant::now() + WAIT;
    let mut carol2 = loop {
        let (client, local_port) = support::connect(&a).await;
        match client.login(carol.id, support::PASSWORD).await {
            Ok(info) => {
                assert_eq!(info.id, carol.id);
                break User::logged_in(client, local_port, "carol (again on a)", info);
            }
            Err(e) if e.errno() == Some(ErrorCode::Unavailable.errno()) => {
                assert!(
                    Instant::now() < relogin_deadline,
                    "node a refuses logins {WAIT:?} after SIGCONT: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("carol's login on node a: {e}"),
        }
    };
    send_all(&sender, &carol2, &["welcome back, carol".to_owned()]).await;
    assert_eq!(
        next_texts(&mut carol2, 2).await,
        ["for carol during the pause", "welcome back, carol"],
        "carol's new session on node a gets her inbox"
    );
}
