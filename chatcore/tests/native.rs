//! End to end over TCP in the native dialect, through the typed client.

mod common;

use std::time::Duration;

use chatcore::client::{Client, ClientError, Event};
use chatcore::connection::ConnectionConfig;
use chatcore::limit::RateLimit;
use chatcore::model::{Seq, Target, UserId};
use chatcore::protocol::ErrorCode;
use chatcore::server::ServerConfig;
use chatcore::service::ServiceConfig;
use common::{TestServer, WAIT, assert_quiet, next_message};

fn errno(e: ClientError) -> u32 {
    e.errno()
        .unwrap_or_else(|| panic!("expected a server error, got {e}"))
}

#[tokio::test]
async fn a_message_to_an_online_user_is_acked_then_delivered_with_seq() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let (mut bob, bob_id) = server.user("bob").await;

    let sent = alice.send_to(bob_id, "hello bob").await.expect("sent");
    assert!(!sent.duplicate);
    let got = next_message(&mut bob).await;
    assert_eq!(got.from, alice_id);
    assert_eq!(got.name, "alice");
    assert_eq!(got.msg, "hello bob");
    assert_eq!(got.seq, Some(Seq(1)));
    assert_eq!(got.mid, sent.mid);
    assert_eq!(got.target(), Some(Target::User(bob_id)));
    assert!(!got.time.is_empty(), "the server fills in the time");
    server.stop().await;
}

#[tokio::test]
async fn offline_messages_arrive_in_order_at_the_next_login() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let bob = server.client().await;
    let bob_id = bob.register("bob", "pw").await.expect("register");
    for i in 0..5 {
        alice.send_to(bob_id, &format!("m{i}")).await.expect("sent");
    }
    let mut bob = server.client().await;
    let info = bob.login(bob_id, "pw").await.expect("login");
    assert_eq!(info.cursor, Seq::ZERO);
    for i in 0..5 {
        let m = next_message(&mut bob).await;
        assert_eq!(m.msg, format!("m{i}"));
        assert_eq!(m.seq, Some(Seq(i + 1)));
    }
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn only_unacked_messages_are_sent_again_after_reconnect() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (mut bob, bob_id) = server.user("bob").await;
    for i in 1..=3 {
        alice.send_to(bob_id, &format!("m{i}")).await.expect("sent");
    }
    for _ in 1..=3 {
        next_message(&mut bob).await;
    }
    assert_eq!(bob.ack_confirmed(Seq(2)).await.expect("ack"), Seq(2));
    drop(bob);

    let mut bob = server.client().await;
    let info = bob.login(bob_id, "pw-bob").await.expect("login");
    assert_eq!(info.cursor, Seq(2));
    let again = next_message(&mut bob).await;
    assert_eq!((again.seq, again.msg.as_str()), (Some(Seq(3)), "m3"));
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn a_resend_with_the_same_client_message_id_is_stored_once() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (mut bob, bob_id) = server.user("bob").await;
    let first = alice
        .send(Target::User(bob_id), "once", Some("c-1"))
        .await
        .expect("sent");
    let again = alice
        .send(Target::User(bob_id), "once", Some("c-1"))
        .await
        .expect("resent");
    assert_eq!(again.mid, first.mid);
    assert!(again.duplicate);
    assert_eq!(next_message(&mut bob).await.msg, "once");
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn text_of_any_kind_and_length_arrives_intact() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (mut bob, bob_id) = server.user("bob").await;
    let long = "長".repeat(15_000); // 45,000 bytes
    let texts = [
        "你好，世界 👋🏽",
        "quotes ' \" ` and \\ backslashes \\n and a real\nnewline",
        "{\"msgid\":1}",
        long.as_str(),
    ];
    for text in texts {
        alice.send_to(bob_id, text).await.expect("sent");
        assert_eq!(next_message(&mut bob).await.msg, text);
    }
    server.stop().await;
}

#[tokio::test]
async fn friendship_is_mutual_idempotent_and_shows_presence() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    alice.add_friend(bob_id).await.expect("add");
    alice
        .add_friend(bob_id)
        .await
        .expect("adding twice is fine");
    let friends = bob.friends().await.expect("list");
    assert_eq!(friends.len(), 1);
    assert_eq!((friends[0].id, friends[0].online()), (alice_id, true));

    alice.logout().await.expect("logout");
    let friends = bob.friends().await.expect("list");
    assert!(!friends[0].online(), "alice is offline after logout");

    assert_eq!(
        errno(alice.add_friend(bob_id).await.expect_err("logged out")),
        ErrorCode::NotLoggedIn.errno()
    );
    alice
        .login(alice_id, "pw-alice")
        .await
        .expect("login again");
    let info = bob.friends().await.expect("list");
    assert!(info[0].online());
    assert_eq!(
        errno(
            alice
                .add_friend(chatcore::model::UserId(999))
                .await
                .expect_err("unknown")
        ),
        ErrorCode::UnknownUser.errno()
    );
    alice.remove_friend(bob_id).await.expect("remove");
    assert!(bob.friends().await.expect("list").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn group_chat_reaches_every_other_member_and_only_members_may_send() {
    let server = TestServer::start().await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (mut bob, _) = server.user("bob").await;
    let (mut carol, _) = server.user("carol").await;
    let (dave, _) = server.user("dave").await;

    let group = alice
        .create_group("rustaceans", "we like crabs")
        .await
        .expect("create");
    bob.join_group(group).await.expect("join");
    bob.join_group(group).await.expect("joining twice is fine");
    carol.join_group(group).await.expect("join");

    let members = dave.members(group).await;
    assert_eq!(
        errno(members.expect_err("not a member")),
        ErrorCode::NotMember.errno()
    );
    let members = bob.members(group).await.expect("members");
    let roles: Vec<_> = members
        .iter()
        .map(|m| m.role.clone().unwrap_or_default())
        .collect();
    assert_eq!(roles, ["creator", "normal", "normal"]);

    alice.send_group(group, "hi all").await.expect("sent");
    for member in [&mut bob, &mut carol] {
        let m = next_message(member).await;
        assert_eq!((m.from, m.msg.as_str()), (alice_id, "hi all"));
        assert_eq!(m.target(), Some(Target::Group(group)));
    }
    assert_quiet(&mut alice).await;

    let refused = dave
        .send_group(group, "let me in")
        .await
        .expect_err("not a member");
    assert_eq!(errno(refused), ErrorCode::NotMember.errno());
    let unknown = alice
        .send_group(chatcore::model::GroupId(999), "x")
        .await
        .expect_err("no such group");
    assert_eq!(errno(unknown), ErrorCode::UnknownGroup.errno());
    let taken = bob
        .create_group("rustaceans", "")
        .await
        .expect_err("name taken");
    assert_eq!(errno(taken), ErrorCode::GroupNameTaken.errno());

    carol.leave_group(group).await.expect("leave");
    alice
        .send_group(group, "after carol left")
        .await
        .expect("sent");
    assert_eq!(next_message(&mut bob).await.msg, "after carol left");
    assert_quiet(&mut carol).await;
    let groups = alice.groups().await.expect("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].users.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn history_pages_newest_first_and_sync_reads_the_inbox() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    for i in 0..5 {
        alice.send_to(bob_id, &format!("a{i}")).await.expect("sent");
        bob.send_to(alice_id, &format!("b{i}")).await.expect("sent");
    }
    let (page, more) = bob
        .history(Target::User(alice_id), None, 4)
        .await
        .expect("history");
    let texts: Vec<_> = page.iter().map(|m| m.msg.as_str()).collect();
    assert_eq!(texts, ["b4", "a4", "b3", "a3"]);
    assert!(more);
    let (older, _) = bob
        .history(Target::User(alice_id), Some(page[3].mid), 100)
        .await
        .expect("history");
    assert_eq!(older.len(), 6);

    let (entries, more) = bob.sync(Seq(3), 10).await.expect("sync");
    let seqs: Vec<_> = entries.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [Some(Seq(4)), Some(Seq(5))]);
    assert!(!more);
    server.stop().await;
}

#[tokio::test]
async fn a_new_login_kicks_the_older_session() {
    let server = TestServer::start().await;
    let (mut first, alice_id) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let second = server.client().await;
    second.login(alice_id, "pw-alice").await.expect("login");
    match first.next_event_within(WAIT).await {
        Some(Event::Kicked { errno, .. }) => assert_eq!(errno, ErrorCode::Kicked.errno()),
        other => panic!("expected a kick, got {other:?}"),
    }
    assert!(
        first.next_event_within(WAIT).await.is_none(),
        "closed after the kick"
    );
    let friends_view = bob.add_friend(alice_id).await;
    assert!(friends_view.is_ok());
    assert!(
        bob.friends().await.expect("list")[0].online(),
        "the new session is online"
    );
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let id = client.register("alice", "right").await.expect("register");
    let wrong = client.login(id, "wrong").await.expect_err("wrong password");
    let unknown = client
        .login(chatcore::model::UserId(404), "right")
        .await
        .expect_err("no such user");
    assert_eq!(errno(wrong), ErrorCode::LoginFailed.errno());
    assert_eq!(errno(unknown), ErrorCode::LoginFailed.errno());
    let taken = client.register("alice", "x").await.expect_err("taken");
    assert_eq!(errno(taken), ErrorCode::NameTaken.errno());
    let blank = client.register("  ", "x").await.expect_err("blank");
    assert_eq!(errno(blank), ErrorCode::InvalidValue.errno());
    server.stop().await;
}

#[tokio::test]
async fn a_backlog_larger_than_one_page_arrives_whole_and_in_order() {
    let service = ServiceConfig {
        sync_page: 50,
        ..ServiceConfig::default()
    };
    let server = TestServer::start_with(ServerConfig::default(), service).await;
    let (alice, _) = server.user("alice").await;
    let bob_setup = server.client().await;
    let bob_id = bob_setup.register("bob", "pw").await.expect("register");
    for i in 0..180 {
        alice.send_to(bob_id, &format!("{i}")).await.expect("sent");
    }
    let mut bob = server.client().await;
    bob.login(bob_id, "pw").await.expect("login");
    // Live messages sent during the sync come after it, in order.
    let sender = tokio::spawn(async move {
        for i in 180..200 {
            alice.send_to(bob_id, &format!("{i}")).await.expect("sent");
        }
    });
    for i in 0..200 {
        let m = next_message(&mut bob).await;
        assert_eq!(m.seq, Some(Seq(i + 1)));
        assert_eq!(m.msg, i.to_string());
    }
    sender.await.expect("sender");
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn a_full_outbox_falls_back_to_the_store_without_loss() {
    let server_config = ServerConfig {
        connection: ConnectionConfig {
            outbox_capacity: 2,
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(server_config, ServiceConfig::default()).await;
    let (mut bob, bob_id) = server.user("bob").await;
    let mut senders = Vec::new();
    for s in 0..4 {
        let (client, _) = server.user(&format!("sender{s}")).await;
        senders.push(tokio::spawn(async move {
            for i in 0..25 {
                client
                    .send_to(bob_id, &format!("{s}:{i}"))
                    .await
                    .expect("sent");
            }
        }));
    }
    let mut next_per_sender = [0; 4];
    for seq in 1..=100 {
        let m = next_message(&mut bob).await;
        assert_eq!(m.seq, Some(Seq(seq)), "seq order without gaps");
        let (s, i) = m.msg.split_once(':').expect("s:i");
        let s: usize = s.parse().expect("sender");
        assert_eq!(i, next_per_sender[s].to_string(), "per-sender order");
        next_per_sender[s] += 1;
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_still_gets_its_deliveries_between_acks() {
    // The burst is far over the request rate limit, which is not on trial.
    let server_config = ServerConfig {
        connection: ConnectionConfig {
            rate_limit: RateLimit::OFF,
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(server_config, ServiceConfig::default()).await;
    let (zed, _) = server.user("zed").await;
    let (_peer, peer_id) = server.user("peer").await;
    let busy_id = server
        .client()
        .await
        .register("busy", "pw-busy")
        .await
        .expect("register");
    let mut busy = server.raw().await;
    busy.send(serde_json::json!({"msgid": 1, "id": busy_id, "password": "pw-busy", "proto": 2}))
        .await;
    assert_eq!(busy.recv().await["msgid"], 2);

    // `busy` writes a long run of requests in one go, so that its next
    // request is always ready to be read; a delivery falls due meanwhile.
    const REQUESTS: usize = 2000;
    let mut burst = Vec::new();
    for rid in 0..REQUESTS {
        let request = serde_json::json!({"msgid": 5, "toid": peer_id, "msg": "x", "rid": rid});
        burst.extend_from_slice(request.to_string().as_bytes());
        burst.push(b'\n');
    }
    busy.write(&burst).await;
    assert_eq!(busy.recv().await["msgid"], 13, "the first ack");
    zed.send_to(busy_id, "for busy").await.expect("sent");

    let (mut acks, mut delivered_after) = (1, None);
    while acks < REQUESTS {
        let frame = busy.recv().await;
        match frame["msgid"].as_u64() {
            Some(13) => acks += 1,
            Some(5) => {
                assert_eq!(frame["msg"], "for busy");
                delivered_after = Some(acks);
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    let delivered_after = delivered_after.expect("the delivery arrived");
    assert!(
        delivered_after < REQUESTS * 3 / 4,
        "the delivery waited behind {delivered_after} of {REQUESTS} requests"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_tells_clients_goodbye_and_ends_their_sessions() {
    let server = TestServer::start().await;
    let (mut alice, _) = server.user("alice").await;
    let service = server.service.clone();
    assert_eq!(service.session_count(), 1);
    server.stop().await;
    match alice.next_event_within(WAIT).await {
        Some(Event::Kicked { errno, .. }) => assert_eq!(errno, ErrorCode::ShuttingDown.errno()),
        other => panic!("expected goodbye, got {other:?}"),
    }
    assert_eq!(service.session_count(), 0, "sessions released");
}

#[tokio::test]
async fn an_idle_native_client_is_pinged_and_a_dead_one_closed() {
    let server_config = ServerConfig {
        connection: ConnectionConfig {
            heartbeat: Duration::from_millis(400),
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(server_config, ServiceConfig::default()).await;
    // The typed client answers PINGs: it stays connected.
    let (alice, _) = server.user("alice").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    alice.ping().await.expect("still connected");

    // A raw native client that never answers is closed.
    let mut raw = server.raw().await;
    raw.send(serde_json::json!({"msgid": 1, "id": 1, "password": "pw-alice", "proto": 2}))
        .await;
    assert_eq!(raw.recv().await["msgid"], 2);
    let mut saw_ping = false;
    while let Some(bytes) = raw.recv_bytes().await {
        let frame: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        saw_ping |= frame["msgid"] == 27;
        if frame["msgid"] == 29 {
            assert_eq!(frame["errno"], ErrorCode::IdleTimeout.errno());
        }
    }
    assert!(saw_ping);
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn many_clients_can_log_in_and_chat_at_once() {
    let server = TestServer::start().await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(server.user(&format!("u{i}")).await);
    }
    let ids: Vec<_> = users.iter().map(|(_, id)| *id).collect();
    let clients: Vec<Client> = users.into_iter().map(|(c, _)| c).collect();
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let next = ids[(i + 1) % ids.len()];
        tasks.push(tokio::spawn(async move {
            client.send_to(next, "ring").await.expect("sent");
            let m = next_message(&mut client).await;
            assert_eq!(m.msg, "ring");
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_refused_login_on_a_native_session_keeps_its_dialect() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let mut raw = server.raw().await;
    raw.send(serde_json::json!({"msgid": 1, "id": alice_id, "password": "pw-alice", "proto": 2}))
        .await;
    assert_eq!(raw.recv().await["msgid"], 2);
    // A second login, without `proto`, on the logged-in connection.
    raw.send(serde_json::json!({"msgid": 1, "id": alice_id, "password": "pw-alice"}))
        .await;
    let refused = raw.recv().await;
    assert_eq!(refused["errno"], ErrorCode::AlreadyLoggedIn.errno());
    raw.send(serde_json::json!({"msgid": 5, "toid": alice_id, "msg": "still native", "rid": 9}))
        .await;
    let ack = raw.recv().await;
    assert_eq!(
        (ack["msgid"].clone(), ack["rid"].clone()),
        (serde_json::json!(13), serde_json::json!(9))
    );
    drop(alice);
    server.stop().await;
}

#[tokio::test]
async fn calls_on_a_closed_connection_fail_at_once() {
    let server = TestServer::start().await;
    let (mut first, alice_id) = server.user("alice").await;
    let second = server.client().await;
    second.login(alice_id, "pw-alice").await.expect("login");
    // The first session is kicked and its connection closed ...
    while first.next_event_within(WAIT).await.is_some() {}
    // ... so a call fails with `Closed`, not after the reply timeout.
    let started = std::time::Instant::now();
    assert!(matches!(first.ping().await, Err(ClientError::Closed)));
    assert!(started.elapsed() < Duration::from_secs(2));
    server.stop().await;
}

/// The next presence event, skipping nothing else.
async fn next_presence(client: &mut Client) -> (UserId, bool) {
    match client.next_event_within(WAIT).await {
        Some(Event::Presence { user, online }) => (user, online),
        other => panic!("expected a presence event, got {other:?}"),
    }
}

#[tokio::test]
async fn friends_hear_of_logins_and_logouts_and_a_kick_shows_no_blip() {
    let server = TestServer::start().await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    bob.add_friend(alice_id).await.expect("befriend");
    // A new friend's presence is shown at once.
    assert_eq!(next_presence(&mut alice).await, (bob_id, true));

    bob.logout().await.expect("logout");
    assert_eq!(next_presence(&mut alice).await, (bob_id, false));
    let bob = server.client().await;
    bob.login(bob_id, "pw-bob").await.expect("login");
    assert_eq!(next_presence(&mut alice).await, (bob_id, true));

    // A newer login replaces bob's session: alice hears "online" again at
    // most, never "offline".
    let newer = server.client().await;
    newer.login(bob_id, "pw-bob").await.expect("login");
    assert_eq!(next_presence(&mut alice).await, (bob_id, true));
    assert_quiet(&mut alice).await;

    // A dropped connection is a session's end too.
    drop(bob);
    drop(newer);
    assert_eq!(next_presence(&mut alice).await, (bob_id, false));
    // Strangers hear nothing.
    let (_carol, _) = server.user("carol").await;
    assert_quiet(&mut alice).await;
    server.stop().await;
}
