//! The conversation list end to end over TCP: `READ` (33), `CONVERSATIONS`
//! (34 → 35) and `FIND_USER` (36 → 37), through the typed client, and what
//! a legacy connection gets for them.

mod common;

use chatcore::client::{ClientError, ConversationEntry};
use chatcore::model::{GroupId, MessageId, Target, UserId};
use chatcore::protocol::ErrorCode;
use common::{TestServer, next_message};
use serde_json::json;

fn errno(e: ClientError) -> u32 {
    e.errno()
        .unwrap_or_else(|| panic!("expected a server error, got {e}"))
}

/// (with, unread, read) of each listed conversation, in list order.
fn shape(list: &[ConversationEntry]) -> Vec<(Target, u64, MessageId)> {
    list.iter().map(|c| (c.with, c.unread, c.read)).collect()
}

#[tokio::test]
async fn unread_counts_follow_new_messages_and_read_positions() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let (mut bob, bob_id) = server.user("bob").await;
    let (carol, carol_id) = server.user("carol").await;

    alice.send_to(bob_id, "one").await.expect("sent");
    let second = alice.send_to(bob_id, "two").await.expect("sent");
    carol.send_to(bob_id, "from carol").await.expect("sent");
    for _ in 0..3 {
        next_message(&mut bob).await;
    }
    let (listed, more) = bob.conversations(None, 20).await.expect("conversations");
    assert!(!more);
    assert_eq!(
        shape(&listed),
        [
            (Target::User(carol_id), 1, MessageId(0)),
            (Target::User(alice_id), 2, MessageId(0)),
        ]
    );
    assert_eq!(listed[1].name, "alice");
    assert_eq!(listed[1].last.msg, "two");
    assert_eq!(listed[1].last.mid, second.mid);

    // Bob replies: his own message is never unread, for him.
    bob.send_to(alice_id, "hi alice").await.expect("sent");
    assert_eq!(
        bob.read(Target::User(alice_id), second.mid)
            .await
            .expect("read"),
        second.mid
    );
    let (listed, _) = bob.conversations(None, 20).await.expect("conversations");
    assert_eq!(
        shape(&listed),
        [
            (Target::User(alice_id), 0, second.mid),
            (Target::User(carol_id), 1, MessageId(0)),
        ]
    );
    // Alice has not read bob's reply.
    let (hers, _) = alice.conversations(None, 20).await.expect("conversations");
    assert_eq!(shape(&hers), [(Target::User(bob_id), 1, MessageId(0))]);
    server.stop().await;
}

#[tokio::test]
async fn read_only_moves_forward() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (_bob, bob_id) = server.user("bob").await;
    let to_bob = Target::User(bob_id);

    assert_eq!(
        alice.read(to_bob, MessageId(10)).await.expect("read"),
        MessageId(10)
    );
    assert_eq!(
        alice.read(to_bob, MessageId(4)).await.expect("read"),
        MessageId(10)
    );
    assert_eq!(
        alice.read(to_bob, MessageId(12)).await.expect("read"),
        MessageId(12)
    );
    server.stop().await;
}

#[tokio::test]
async fn groups_and_one_to_one_conversations_are_listed_together() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;

    let group = alice.create_group("crew", "").await.expect("create");
    bob.join_group(group).await.expect("join");
    alice.create_group("silent", "").await.expect("create");
    let direct = bob.send_to(alice_id, "direct").await.expect("sent");
    let in_group = bob.send_group(group, "to the crew").await.expect("sent");
    alice.send_group(group, "mine").await.expect("sent");

    let (listed, _) = alice.conversations(None, 20).await.expect("conversations");
    assert_eq!(
        shape(&listed),
        [
            (Target::Group(group), 1, MessageId(0)),
            (Target::User(bob_id), 1, MessageId(0)),
        ],
        "the silent group is not a conversation yet"
    );
    assert_eq!(listed[0].name, "crew");
    assert_eq!(listed[0].last.msg, "mine");
    assert_eq!(listed[1].last.mid, direct.mid);

    alice
        .read(Target::Group(group), in_group.mid)
        .await
        .expect("read");
    let (listed, _) = alice.conversations(None, 20).await.expect("conversations");
    assert_eq!(listed[0].unread, 0);
    assert_eq!(listed[0].read, in_group.mid);
    server.stop().await;
}

#[tokio::test]
async fn conversations_page_by_before_with_more() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let mut peers = Vec::new();
    for n in 0..5 {
        let (peer, peer_id) = server.user(&format!("peer{n}")).await;
        peer.send_to(alice_id, "hello").await.expect("sent");
        peers.push(peer_id);
    }
    peers.reverse();

    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let (page, more) = alice.conversations(before, 2).await.expect("page");
        pages += 1;
        seen.extend(page.iter().map(|c| c.with));
        before = page.last().map(|c| c.last.mid);
        if !more {
            break;
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<Target> = peers.into_iter().map(Target::User).collect();
    assert_eq!(seen, expected);
    server.stop().await;
}

#[tokio::test]
async fn read_is_refused_for_bad_targets() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let group = bob.create_group("bobs", "").await.expect("create");

    let unknown_user = alice.read(Target::User(UserId(999)), MessageId(1)).await;
    assert_eq!(
        errno(unknown_user.expect_err("no such user")),
        ErrorCode::UnknownUser.errno()
    );
    let unknown_group = alice.read(Target::Group(GroupId(999)), MessageId(1)).await;
    assert_eq!(
        errno(unknown_group.expect_err("no such group")),
        ErrorCode::UnknownGroup.errno()
    );
    let outsider = alice.read(Target::Group(group), MessageId(1)).await;
    assert_eq!(
        errno(outsider.expect_err("not a member")),
        ErrorCode::NotMember.errno()
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_errno_12_and_bad_names_21() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.send(json!({"msgid":3,"name":"alice","password":"pw","proto":2,"rid":1}))
        .await;
    let id = raw.recv().await["id"].clone();
    raw.send(json!({"msgid":1,"id":id,"password":"pw","proto":2,"rid":2}))
        .await;
    assert_eq!(raw.recv().await["msgid"], 2);

    for (rid, bad) in [
        (3, json!({"msgid":33,"toid":1,"groupid":1,"mid":1,"rid":3})),
        (4, json!({"msgid":33,"mid":1,"rid":4})),
        (5, json!({"msgid":33,"toid":1,"mid":-1,"rid":5})),
        (6, json!({"msgid":36,"rid":6})),
    ] {
        raw.send(bad).await;
        let reply = raw.recv().await;
        assert_eq!(
            (
                reply["msgid"].clone(),
                reply["errno"].clone(),
                reply["rid"].clone()
            ),
            (json!(11), json!(12), json!(rid)),
            "{reply}"
        );
    }
    let long = "x".repeat(65);
    for (rid, name) in [(7, ""), (8, long.as_str())] {
        raw.send(json!({"msgid":36,"name":name,"rid":rid})).await;
        let reply = raw.recv().await;
        assert_eq!(
            (reply["errno"].clone(), reply["req"].clone()),
            (json!(21), json!(36)),
            "{reply}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn find_user_matches_exactly_or_by_prefix_with_presence() {
    let server = TestServer::start().await;
    let (alice, _) = server.user("alice").await;
    let (_bob, bob_id) = server.user("bob").await;
    let bobby_id = server
        .client()
        .await
        .register("bobby", "pw")
        .await
        .expect("register");

    let exact = alice.find_users("bob", false, 10).await.expect("find");
    assert_eq!(
        exact
            .iter()
            .map(|u| (u.id, u.state.as_str()))
            .collect::<Vec<_>>(),
        [(bob_id, "online")]
    );
    let prefixed = alice.find_users("bo", true, 10).await.expect("find");
    assert_eq!(
        prefixed
            .iter()
            .map(|u| (u.id, u.online()))
            .collect::<Vec<_>>(),
        [(bob_id, true), (bobby_id, false)]
    );
    assert!(
        alice
            .find_users("bo", false, 10)
            .await
            .expect("find")
            .is_empty()
    );
    let one = alice.find_users("bo", true, 1).await.expect("find");
    assert_eq!(one.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_legacy_connection_gets_no_success_replies_for_native_only_requests() {
    let server = TestServer::start().await;
    let (_alice, alice_id) = server.user("alice").await;
    let mut raw = server.raw().await;
    raw.send(json!({"msgid":3,"name":"seed","password":"pw"}))
        .await;
    let id = raw.recv().await["id"].clone();
    raw.send(json!({"msgid":1,"id":id,"password":"pw"})).await;
    assert_eq!(raw.recv().await["msgid"], 2);

    raw.send(json!({"msgid":33,"toid":alice_id.0,"mid":1,"rid":1}))
        .await;
    raw.send(json!({"msgid":34,"rid":2})).await;
    raw.send(json!({"msgid":36,"name":"alice","rid":3})).await;
    raw.assert_quiet().await;
    // Errors still come, as for every refused request.
    raw.send(json!({"msgid":33,"toid":999,"mid":1,"rid":4}))
        .await;
    let reply = raw.recv().await;
    assert_eq!(
        (reply["msgid"].clone(), reply["errno"].clone()),
        (json!(11), json!(22))
    );
    server.stop().await;
}
