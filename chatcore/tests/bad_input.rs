//! Hostile and broken input: each bad frame gets a clear error reply, the
//! connection (except for oversized frames) and the server stay up, and
//! nothing else changes.

mod common;

use chatcore::codec::DEFAULT_MAX_FRAME;
use chatcore::protocol::ErrorCode;
use common::{RawClient, TestServer, next_message};
use serde_json::json;

/// Sends `bytes` and expects one error frame with `code`.
async fn expect_error(raw: &mut RawClient, bytes: &[u8], code: ErrorCode) -> serde_json::Value {
    raw.write(bytes).await;
    let reply = raw.recv().await;
    assert_eq!(
        reply["msgid"],
        11,
        "error frame for {:?}: {reply}",
        String::from_utf8_lossy(bytes)
    );
    assert_eq!(reply["errno"], code.errno(), "{reply}");
    assert!(reply["errmsg"].as_str().is_some_and(|m| !m.is_empty()));
    reply
}

/// The connection still answers.
async fn still_serving(raw: &mut RawClient) {
    raw.send(json!({"msgid": 27, "rid": 1})).await;
    assert_eq!(raw.recv().await, json!({"msgid": 28, "rid": 1}));
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (b"garbage\n".to_vec(), ErrorCode::BadFrame),
        (b"{\"msgid\":1,\n".to_vec(), ErrorCode::BadFrame),
        (b"[1,2,3]\n".to_vec(), ErrorCode::BadFrame),
        (b"\xff\xfe\xfd{\n".to_vec(), ErrorCode::BadFrame),
        (b"{\"msgid\":\"1\"}\n".to_vec(), ErrorCode::BadField),
        (b"{\"id\":1}\n".to_vec(), ErrorCode::BadField),
        (b"{\"msgid\":123456}\n".to_vec(), ErrorCode::UnknownMsgid),
        (b"{\"msgid\":1e400}\n".to_vec(), ErrorCode::BadFrame),
        (b"{\"msgid\":-1}\n".to_vec(), ErrorCode::BadField),
        (
            b"{\"msgid\":6,\"friendid\":\"1\"}\n".to_vec(),
            ErrorCode::BadField,
        ),
        (
            b"{\"msgid\":6,\"friendid\":99999999999999999999999}\n".to_vec(),
            ErrorCode::BadField,
        ),
        (b"{\"msgid\":5,\"toid\":1}\n".to_vec(), ErrorCode::BadField),
        (
            b"{\"msgid\":5,\"toid\":1,\"msg\":\"\xc3\x28\"}\n".to_vec(),
            ErrorCode::BadFrame,
        ),
        // Deep nesting where a string belongs: a type error, no recursion.
        (
            format!(
                "{{\"msgid\":5,\"toid\":1,\"msg\":{}{}}}\n",
                "[".repeat(30_000),
                "]".repeat(30_000)
            )
            .into_bytes(),
            ErrorCode::BadField,
        ),
        // Deep nesting in an ignored key is skipped without overflowing the
        // stack; the request itself is valid (and needs a login).
        (
            format!(
                "{{\"msgid\":5,\"toid\":1,\"msg\":\"m\",\"x\":{}{}}}\n",
                "[".repeat(30_000),
                "]".repeat(30_000)
            )
            .into_bytes(),
            ErrorCode::NotLoggedIn,
        ),
    ];
    for (bytes, code) in cases {
        expect_error(&mut raw, &bytes, code).await;
    }
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn a_malformed_login_from_the_seed_client_gets_the_seeds_failure_reply() {
    // The seed client waits for a LOGIN_ACK after each login; an ERROR
    // frame would leave it hanging.
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    raw.write(b"{\"msgid\":1,\"id\":\"1\",\"password\":\"x\"}\0")
        .await;
    let reply = raw.recv().await;
    assert_eq!(
        (reply["msgid"].clone(), reply["errno"].clone()),
        (json!(2), json!(1))
    );
    assert!(
        reply["errmsg"]
            .as_str()
            .expect("errmsg")
            .contains("invalid type")
    );
    // A native client gets the precise error.
    raw.write(b"{\"msgid\":1,\"id\":\"1\",\"password\":\"x\",\"proto\":2}\n")
        .await;
    let reply = raw.recv().await;
    assert_eq!(reply["msgid"], 11, "{reply}");
    assert_eq!(reply["errno"], ErrorCode::BadField.errno(), "{reply}");
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn every_request_but_register_login_and_ping_needs_a_login() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let requests = [
        json!({"msgid": 5, "id": 1, "toid": 2, "msg": "x"}),
        json!({"msgid": 6, "id": 1, "friendid": 2}),
        json!({"msgid": 7, "id": 1, "groupname": "g"}),
        json!({"msgid": 8, "id": 1, "groupid": 1}),
        json!({"msgid": 9, "id": 1, "groupid": 1, "msg": "x"}),
        json!({"msgid": 10, "id": 1}),
        json!({"msgid": 14, "seq": 1}),
        json!({"msgid": 15}),
        json!({"msgid": 17, "toid": 1}),
        json!({"msgid": 19}),
        json!({"msgid": 21}),
        json!({"msgid": 23, "groupid": 1}),
        json!({"msgid": 25, "friendid": 1}),
        json!({"msgid": 26, "groupid": 1}),
    ];
    for request in requests {
        let mut bytes = request.to_string().into_bytes();
        bytes.push(0);
        let reply = expect_error(&mut raw, &bytes, ErrorCode::NotLoggedIn).await;
        assert_eq!(reply["req"], request["msgid"]);
    }
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn a_spoofed_id_is_refused_and_stores_nothing() {
    let server = TestServer::start().await;
    let (mallory, mallory_id) = server.user("mallory").await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    drop(mallory);
    let mut raw = server.raw().await;
    raw.send(json!({"msgid": 1, "id": mallory_id, "password": "pw-mallory"}))
        .await;
    assert_eq!(raw.recv().await["errno"], 0);
    for request in [
        json!({"msgid": 5, "id": bob_id, "toid": alice_id, "msg": "I am bob"}),
        json!({"msgid": 6, "id": bob_id, "friendid": alice_id}),
        json!({"msgid": 7, "id": bob_id, "groupname": "bobs"}),
        json!({"msgid": 10, "id": bob_id}),
    ] {
        let mut bytes = request.to_string().into_bytes();
        bytes.push(b'\n');
        expect_error(&mut raw, &bytes, ErrorCode::IdentityMismatch).await;
    }
    // Nothing reached alice, bob has no friend, bob is still logged in.
    assert!(
        alice
            .sync(chatcore::model::Seq::ZERO, 10)
            .await
            .expect("sync")
            .0
            .is_empty()
    );
    assert!(bob.friends().await.expect("friends").is_empty());
    assert!(bob.groups().await.expect("groups").is_empty());
    bob.send_to(alice_id, "really bob")
        .await
        .expect("bob still logged in");
    assert_eq!(next_message(&mut alice).await.from, bob_id);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_closes_only_its_connection() {
    let server = TestServer::start().await;
    let (mut alice, alice_id) = server.user("alice").await;
    let mut raw = server.raw().await;
    let mut huge = b"{\"msgid\":5,\"msg\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', DEFAULT_MAX_FRAME + 10));
    huge.extend_from_slice(b"\"}\n");
    raw.write(&huge).await;
    let reply = raw.recv().await;
    assert_eq!(reply["errno"], ErrorCode::FrameTooLarge.errno());
    raw.assert_closed().await;

    // Other connections and new ones are served.
    let (bob, _) = server.user("bob").await;
    bob.send_to(alice_id, "still here").await.expect("sent");
    assert_eq!(next_message(&mut alice).await.msg, "still here");
    server.stop().await;
}

#[tokio::test]
async fn out_of_range_values_are_refused() {
    let server = TestServer::start().await;
    let (alice, alice_id) = server.user("alice").await;
    let too_long = "x".repeat(61 * 1024);
    for (text, what) in [
        ("", "empty message"),
        (too_long.as_str(), "message too long"),
    ] {
        let e = alice.send_to(alice_id, text).await.expect_err(what);
        assert_eq!(e.errno(), Some(ErrorCode::InvalidValue.errno()), "{what}");
    }
    let e = alice
        .send_to(chatcore::model::UserId(12345), "hi")
        .await
        .expect_err("unknown");
    assert_eq!(e.errno(), Some(ErrorCode::UnknownUser.errno()));
    let e = alice.add_friend(alice_id).await.expect_err("self");
    assert_eq!(e.errno(), Some(ErrorCode::InvalidValue.errno()));
    let e = alice
        .create_group(&"g".repeat(65), "")
        .await
        .expect_err("long name");
    assert_eq!(e.errno(), Some(ErrorCode::InvalidValue.errno()));
    let e = alice
        .join_group(chatcore::model::GroupId(77))
        .await
        .expect_err("no group");
    assert_eq!(e.errno(), Some(ErrorCode::UnknownGroup.errno()));
    server.stop().await;
}

#[tokio::test]
async fn a_half_sent_frame_followed_by_a_close_changes_nothing() {
    let server = TestServer::start().await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (_bob, bob_id) = server.user("bob").await;
    {
        let mut raw = server.raw().await;
        raw.send(json!({"msgid": 1, "id": bob_id, "password": "pw-bob"}))
            .await;
        raw.recv().await;
        raw.write(format!("{{\"msgid\":5,\"toid\":{alice_id},\"msg\":\"half").as_bytes())
            .await;
    }
    common::assert_quiet(&mut alice).await;
    server.stop().await;
}
