//! End to end over TCP in the legacy dialect: bytes exactly as the seed's
//! console client sends them (JSON + NUL, no `proto`), replies checked
//! against the shapes the seed client parses.

mod common;

use chatcore::protocol::LEGACY_READ_LIMIT;
use chatcore::service::ServiceConfig;
use common::{RawClient, TestServer, fast_server, inner};
use serde_json::json;

async fn register(raw: &mut RawClient, name: &str) -> i64 {
    raw.send(json!({"msgid": 3, "name": name, "password": "123456"}))
        .await;
    let reply = raw.recv().await;
    assert_eq!(reply["msgid"], 4);
    assert_eq!(reply["errno"], 0);
    reply["id"].as_i64().expect("id")
}

async fn login(raw: &mut RawClient, id: i64) -> serde_json::Value {
    raw.send(json!({"msgid": 1, "id": id, "password": "123456"}))
        .await;
    let reply = raw.recv().await;
    assert_eq!(reply["msgid"], 2, "{reply}");
    assert_eq!(reply["errno"], 0, "{reply}");
    reply
}

#[tokio::test]
async fn the_seed_clients_whole_session_works() {
    let server = TestServer::start_with(fast_server(), ServiceConfig::default()).await;
    let mut alice = server.raw().await;
    let mut bob = server.raw().await;
    let alice_id = register(&mut alice, "alice").await;
    let bob_id = register(&mut bob, "bob").await;

    let reply = login(&mut alice, alice_id).await;
    assert_eq!(reply["name"], "alice");
    assert!(reply.get("friends").is_none(), "keys only when non-empty");
    assert!(reply.get("offlinemsg").is_none());

    // Chat to offline bob, befriend him, create a group: no replies, as in
    // the seed.
    alice
        .send(
            json!({"msgid": 5, "id": alice_id, "name": "alice", "toid": bob_id,
                     "msg": "while you were out", "time": "2024-01-01 12:00:00"}),
        )
        .await;
    alice
        .send(json!({"msgid": 6, "id": alice_id, "friendid": bob_id}))
        .await;
    alice
        .send(json!({"msgid": 7, "id": alice_id, "groupname": "g1", "groupdesc": "desc"}))
        .await;
    alice.assert_quiet().await;

    let reply = login(&mut bob, bob_id).await;
    let friends = reply["friends"].as_array().expect("friends");
    assert_eq!(
        inner(&friends[0]),
        json!({"id": alice_id, "name": "alice", "state": "online"})
    );
    let offline = reply["offlinemsg"].as_array().expect("offlinemsg");
    let message = inner(&offline[0]);
    assert_eq!(message["msgid"], 5);
    assert_eq!(message["id"], alice_id);
    assert_eq!(message["name"], "alice");
    assert_eq!(message["toid"], bob_id);
    assert_eq!(message["msg"], "while you were out");
    assert_ne!(
        message["time"], "2024-01-01 12:00:00",
        "the server sets the time"
    );
    assert!(
        message.get("seq").is_none(),
        "no native keys in legacy frames"
    );

    // Live one-to-one chat, both ways.
    bob.send(json!({"msgid": 5, "id": bob_id, "name": "bob", "toid": alice_id, "msg": "back!", "time": "t"}))
        .await;
    let got = alice.recv().await;
    assert_eq!(
        (got["msgid"].clone(), got["msg"].clone()),
        (json!(5), json!("back!"))
    );

    // Join the group and group chat; not echoed to the sender.
    bob.send(json!({"msgid": 8, "id": bob_id, "groupid": 1}))
        .await;
    bob.assert_quiet().await;
    alice
        .send(json!({"msgid": 9, "id": alice_id, "name": "alice", "groupid": 1, "msg": "hi group", "time": "t"}))
        .await;
    let got = bob.recv().await;
    assert_eq!(got["msgid"], 9);
    assert_eq!(got["groupid"], 1);
    assert_eq!(got["msg"], "hi group");
    alice.assert_quiet().await;

    // Log out (no reply) and in again on the same connection: the group
    // shows both members with their roles, two levels of JSON strings deep.
    alice.send(json!({"msgid": 10, "id": alice_id})).await;
    alice.assert_quiet().await;
    let reply = login(&mut alice, alice_id).await;
    let group = inner(&reply["groups"][0]);
    assert_eq!(group["groupname"], "g1");
    assert_eq!(group["groupdesc"], "desc");
    let users: Vec<_> = group["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(inner)
        .collect();
    assert_eq!(users[0]["role"], "creator");
    assert_eq!(users[1]["role"], "normal");
    assert_eq!(users[1]["state"], "online");
    server.stop().await;
}

#[tokio::test]
async fn failed_login_and_register_get_the_seeds_replies() {
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    let id = register(&mut raw, "alice").await;
    raw.send(json!({"msgid": 1, "id": id, "password": "wrong"}))
        .await;
    assert_eq!(
        raw.recv().await,
        json!({"msgid": 2, "errno": 1, "errmsg": "User non-existent or password is wrong."})
    );
    raw.send(json!({"msgid": 3, "name": "alice", "password": "x"}))
        .await;
    let reply = raw.recv().await;
    assert_eq!(
        (reply["msgid"].clone(), reply["errno"].clone()),
        (json!(4), json!(1))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_big_backlog_fits_the_seed_clients_1024_byte_read_and_loses_nothing() {
    let server = TestServer::start_with(fast_server(), ServiceConfig::default()).await;
    let mut alice = server.raw().await;
    let mut bob = server.raw().await;
    let alice_id = register(&mut alice, "alice").await;
    let bob_id = register(&mut bob, "bob").await;
    login(&mut alice, alice_id).await;
    let text = "x".repeat(150);
    for i in 0..30 {
        alice
            .send(
                json!({"msgid": 5, "id": alice_id, "toid": bob_id, "msg": format!("{i:02}{text}")}),
            )
            .await;
    }
    // The seed stores nothing until it answers; wait for the last one to
    // be stored by asking for an (errored) unknown msgid afterwards.
    alice.send(json!({"msgid": 99})).await;
    assert_eq!(alice.recv().await["errno"], 11);

    bob.send(json!({"msgid": 1, "id": bob_id, "password": "123456"}))
        .await;
    let bytes = bob.recv_bytes().await.expect("login reply");
    assert!(
        bytes.len() + 1 < LEGACY_READ_LIMIT,
        "login reply is {} bytes",
        bytes.len()
    );
    let reply: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    let carried = reply["offlinemsg"].as_array().expect("some offline").len();
    assert!((1..30).contains(&carried));
    let mut seen: Vec<String> = reply["offlinemsg"]
        .as_array()
        .expect("offline")
        .iter()
        .map(|m| inner(m)["msg"].as_str().expect("msg").to_owned())
        .collect();
    while seen.len() < 30 {
        let bytes = bob.recv_bytes().await.expect("a backlog frame");
        assert!(bytes.len() + 1 < LEGACY_READ_LIMIT);
        let frame: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(frame["msgid"], 5);
        seen.push(frame["msg"].as_str().expect("msg").to_owned());
    }
    let expected: Vec<String> = (0..30).map(|i| format!("{i:02}{text}")).collect();
    assert_eq!(seen, expected);
    bob.assert_quiet().await;

    // Delivered to a legacy socket counts as received: nothing again at
    // the next login.
    bob.send(json!({"msgid": 10, "id": bob_id})).await;
    let reply = login(&mut bob, bob_id).await;
    assert!(reply.get("offlinemsg").is_none(), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn coalesced_and_split_requests_are_each_handled() {
    let server = TestServer::start_with(fast_server(), ServiceConfig::default()).await;
    let mut alice = server.raw().await;
    let mut bob = server.raw().await;
    let alice_id = register(&mut alice, "alice").await;
    let bob_id = register(&mut bob, "bob").await;
    login(&mut alice, alice_id).await;
    login(&mut bob, bob_id).await;

    let one = json!({"msgid": 5, "id": alice_id, "toid": bob_id, "msg": "one"}).to_string();
    let two = json!({"msgid": 5, "id": alice_id, "toid": bob_id, "msg": "two"}).to_string();
    let three = json!({"msgid": 5, "id": alice_id, "toid": bob_id, "msg": "three"}).to_string();
    // Two requests in one write (the seed dropped the second) ...
    alice.write(format!("{one}\0{two}\0").as_bytes()).await;
    // ... and one request across three writes (the seed crashed).
    let (a, rest) = three.split_at(5);
    let (b, c) = rest.split_at(10);
    alice.write(a.as_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    alice.write(b.as_bytes()).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    alice.write(format!("{c}\n").as_bytes()).await;
    for text in ["one", "two", "three"] {
        assert_eq!(bob.recv().await["msg"], text);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_legacy_session_replaced_by_a_new_login_hears_it_from_system() {
    let server = TestServer::start_with(fast_server(), ServiceConfig::default()).await;
    let mut first = server.raw().await;
    let id = register(&mut first, "alice").await;
    login(&mut first, id).await;
    let mut second = server.raw().await;
    login(&mut second, id).await;
    let notice = first.recv().await;
    assert_eq!(notice["msgid"], 5);
    assert_eq!(notice["id"], 0);
    assert_eq!(notice["name"], "system");
    first.assert_closed().await;
    server.stop().await;
}

/// Reads like the seed client: one `recv` into a 1024-byte buffer, which
/// must hold exactly one whole JSON document.
async fn seed_recv(stream: &mut tokio::net::TcpStream) -> serde_json::Value {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; LEGACY_READ_LIMIT];
    let n = tokio::time::timeout(common::WAIT, stream.read(&mut buf))
        .await
        .expect("a reply in time")
        .expect("read");
    assert!(n > 0 && n < LEGACY_READ_LIMIT, "read {n} bytes");
    serde_json::from_slice(&buf[..n]).unwrap_or_else(|e| {
        panic!(
            "one read is one JSON document ({e}): {:?}",
            String::from_utf8_lossy(&buf[..n])
        )
    })
}

#[tokio::test]
async fn each_single_read_of_the_seed_client_gets_one_whole_frame() {
    use tokio::io::AsyncWriteExt;
    let mut server_config = fast_server();
    server_config.connection.legacy_pace = std::time::Duration::from_millis(50);
    let server = TestServer::start_with(server_config, ServiceConfig::default()).await;
    let (alice, _) = server.user("alice").await;
    let mut seed = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    seed.write_all(b"{\"msgid\":3,\"name\":\"bob\",\"password\":\"123456\"}\0")
        .await
        .expect("write");
    let reply = seed_recv(&mut seed).await;
    let bob_id = reply["id"].as_i64().expect("id");
    for i in 0..6 {
        alice
            .send_to(
                chatcore::model::UserId(bob_id),
                &format!("offline {i} {}", "y".repeat(200)),
            )
            .await
            .expect("sent");
    }
    seed.write_all(format!("{{\"msgid\":1,\"id\":{bob_id},\"password\":\"123456\"}}\0").as_bytes())
        .await
        .expect("write");
    let login = seed_recv(&mut seed).await;
    let mut received = login["offlinemsg"].as_array().expect("offline").len();
    assert!(received < 6, "the backlog does not fit one read");
    while received < 6 {
        let frame = seed_recv(&mut seed).await;
        assert_eq!(frame["msgid"], 5);
        received += 1;
    }
    server.stop().await;
}
