//! `chatd --web-addr`: the web client's files, and WebSockets at `/ws`
//! that run the same connection and service as TCP, with the transport's
//! own rules (close codes, the Origin check, shared connection slots).
//!
//! ```text
//! cargo test --workspace --test web
//! ```
//! Needs nothing but `chatd` (SQLite, in-process bus).

mod support;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chat_testkit::trial;
use serde_json::{Value, json};
use support::http;
use support::ws::{self, Ws};
use support::{Chatd, new_user, next_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn main() -> ExitCode {
    let tests = [
        trial!(the_page_is_served_with_its_modules_and_a_strict_policy),
        trial!(a_websocket_speaks_native_and_chats_with_tcp_users),
        trial!(hostile_websocket_input_gets_the_documented_answers),
        trial!(invalid_utf8_closes_with_1007),
        trial!(pages_of_other_sites_are_refused),
        trial!(websockets_and_tcp_share_the_connection_limit),
        trial!(many_idle_websockets_leave_the_node_serving),
    ];
    chat_testkit::harness::run(tests.map(|test| test.multi_thread(2)))
}

async fn start(dir: &Path, extra: &[&str]) -> Chatd {
    let mut args = vec![
        "--database-url".to_owned(),
        format!("sqlite://{}?mode=rwc", dir.join("chat.db").display()),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut chatd = Chatd::spawn("chatd", dir, &args);
    chatd.wait_listening().await;
    chatd
}

/// Registers and logs in over `ws`, without `proto`; returns the user id.
async fn ws_user(ws: &mut Ws, name: &str) -> u64 {
    let reg = ws
        .call(
            json!({"msgid": 3, "name": name, "password": "pw-123456"}),
            1,
        )
        .await;
    assert_eq!(reg["msgid"], 4, "{reg}");
    let id = reg["id"].as_u64().expect("an id");
    let login = ws
        .call(json!({"msgid": 1, "id": id, "password": "pw-123456"}), 2)
        .await;
    assert_eq!(login["msgid"], 2, "{login}");
    login_is_native(&login);
    id
}

/// A native login reply: a resume token, and friends as objects.
fn login_is_native(login: &Value) {
    assert!(
        login["resume"]["token"].is_string(),
        "native login reply: {login}"
    );
    assert!(
        login["friends"]
            .as_array()
            .is_none_or(|f| f.iter().all(Value::is_object)),
        "{login}"
    );
}

async fn the_page_is_served_with_its_modules_and_a_strict_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &[]).await;
    let page = http::get(&chatd.web, "/")
        .await
        .expect("the web listener answers");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<script type=\"module\""),
        "{}",
        page.body
    );
    let missing = http::get(&chatd.web, "/no/such/file.js")
        .await
        .expect("answers");
    assert_eq!(missing.status, 404);
    // The headers: read them raw.
    let mut stream = TcpStream::connect(&chatd.web).await.expect("connect");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        chatd.web
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.expect("read");
    let head = raw
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

async fn a_websocket_speaks_native_and_chats_with_tcp_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &[]).await;
    let mut bob = new_user(&chatd.addr, "bob").await;
    let mut ws = ws::connect(&chatd.web).await;
    let alice = ws_user(&mut ws, "alice").await;

    // A send is acked with CHAT_ACK (native), and bob gets it.
    let ack = ws
        .call(
            json!({"msgid": 5, "toid": bob.id.0, "msg": "hi bob 👋", "cmid": "c1"}),
            3,
        )
        .await;
    assert_eq!(ack["msgid"], 13, "{ack}");
    let mid = ack["mid"].as_u64().expect("mid");
    let got = next_message(&mut bob).await;
    assert_eq!((got.from.0 as u64, got.msg.as_str()), (alice, "hi bob 👋"));
    assert_eq!(got.mid.0 as u64, mid);

    // The same cmid again stores nothing new.
    let again = ws
        .call(
            json!({"msgid": 5, "toid": bob.id.0, "msg": "hi bob 👋", "cmid": "c1"}),
            4,
        )
        .await;
    assert_eq!(
        (again["mid"].as_u64(), again["dup"].as_bool()),
        (Some(mid), Some(true))
    );

    // Bob answers over TCP; the browser gets a native push with seq.
    bob.client
        .send_to(chatcore::model::UserId(alice as i64), "hello over tcp")
        .await
        .expect("bob sends");
    let push = ws.frame_with(5).await;
    assert_eq!(push["msg"], "hello over tcp");
    assert_eq!(push["seq"], 1, "{push}");
    let acked = ws.call(json!({"msgid": 14, "seq": 1}), 5).await;
    assert_eq!(
        (acked["msgid"].as_u64(), acked["seq"].as_u64()),
        (Some(12), Some(1))
    );

    // Presence: bob leaving shows alice (his friend) that he went offline.
    let added = ws.call(json!({"msgid": 6, "friendid": bob.id.0}), 6).await;
    assert_eq!(added["msgid"], 12, "{added}");
    let presence = ws.frame_with(32).await;
    assert_eq!(
        presence,
        json!({"msgid": 32, "id": bob.id.0, "state": "online"})
    );
    bob.client.logout().await.expect("bob logs out");
    let presence = ws.frame_with(32).await;
    assert_eq!(
        presence,
        json!({"msgid": 32, "id": bob.id.0, "state": "offline"})
    );
    let bob_again = support::login(&chatd.addr, bob.id, "bob").await;
    let presence = ws.frame_with(32).await;
    assert_eq!(
        presence,
        json!({"msgid": 32, "id": bob.id.0, "state": "online"})
    );
    drop(bob_again);
}

async fn hostile_websocket_input_gets_the_documented_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &["--max-frame", "1024"]).await;

    // Not JSON: errno 10, and the connection stays open.
    let mut ws = ws::connect(&chatd.web).await;
    ws.send_message(Message::text("hello?")).await;
    let error = ws.frame().await;
    assert_eq!(
        (error["msgid"].as_u64(), error["errno"].as_u64()),
        (Some(11), Some(10)),
        "{error}"
    );
    ws.send_message(Message::text("[1,2,3]")).await;
    assert_eq!(ws.frame().await["errno"], 10);
    // Before login: errno 14, still open.
    let refused = ws.call(json!({"msgid": 19}), 7).await;
    assert_eq!(refused["errno"], 14, "{refused}");
    let pong = ws.call(json!({"msgid": 27}), 8).await;
    assert_eq!(pong["msgid"], 28, "{pong}");

    // Over --max-frame: errno 13, then close 1009.
    ws.send_message(Message::text(format!(
        "{{\"msgid\":5,\"msg\":\"{}\"}}",
        "x".repeat(2000)
    )))
    .await;
    let error = ws.frame().await;
    assert_eq!(error["errno"], 13, "{error}");
    assert_eq!(ws.close_code().await, Some(1009));

    // A binary message: close 1003.
    let mut ws = ws::connect(&chatd.web).await;
    ws.send_message(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(ws.close_code().await, Some(1003));

    // The node still serves a well-behaved client.
    let mut ws = ws::connect(&chatd.web).await;
    ws_user(&mut ws, "carol").await;
}

/// A text message that is not UTF-8 cannot be sent with a WebSocket
/// library (they check); it is framed by hand here.
async fn invalid_utf8_closes_with_1007() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &[]).await;
    let mut stream = TcpStream::connect(&chatd.web).await.expect("connect");
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        chatd.web
    );
    stream
        .write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("response");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // FIN + text, masked, 2 bytes, a zero mask, then bytes that are not UTF-8.
    stream
        .write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .await
        .expect("frame");
    let mut frame = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut frame))
        .await
        .expect("a close frame in time")
        .expect("a close frame");
    assert_eq!(frame[0], 0x88, "a close frame: {frame:?}");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1007);
}

async fn pages_of_other_sites_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(
        dir.path(),
        &["--web-allowed-origin", "https://chat.example.org"],
    )
    .await;
    let web = chatd.web.as_str();
    let evil = ws::try_connect(web, Some("https://evil.example")).await;
    assert_eq!(evil.err().map(|s| s.as_u16()), Some(403));
    let other_port = ws::try_connect(web, Some("http://127.0.0.1:1")).await;
    assert_eq!(other_port.err().map(|s| s.as_u16()), Some(403));
    for origin in [
        None,
        Some(format!("http://{web}")),
        Some("https://chat.example.org".to_owned()),
    ] {
        let ws = ws::try_connect(web, origin.as_deref()).await;
        assert!(ws.is_ok(), "origin {origin:?} is allowed");
    }
}

async fn websockets_and_tcp_share_the_connection_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &["--max-connections", "1"]).await;
    // A TCP connection that is served (its PING answered) holds the slot;
    // until the node has seen its start-up probes go, it may be refused.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let tcp = loop {
        let tcp = TcpStream::connect(&chatd.addr).await.expect("connect");
        let mut tcp = tokio::io::BufReader::new(tcp);
        tcp.get_mut()
            .write_all(b"{\"msgid\":27,\"rid\":1}\n")
            .await
            .expect("ping");
        let mut line = String::new();
        let _ = tokio::io::AsyncBufReadExt::read_line(&mut tcp, &mut line).await;
        if line.contains("\"msgid\":28") {
            break tcp;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never served: {line}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let mut ws = ws::connect(&chatd.web).await;
    let full = ws.frame().await;
    assert_eq!(full["errno"], 33, "{full}");
    assert_eq!(ws.close_code().await, Some(1013));

    // The slot freed, a WebSocket gets it, and TCP is refused meanwhile.
    drop(tcp);
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let mut ws = loop {
        let mut ws = ws::connect(&chatd.web).await;
        ws.send(json!({"msgid": 27, "rid": 1})).await;
        // A pong, or errno 33 while the node still counts the TCP one.
        if ws.frame().await["msgid"] == 28 {
            break ws;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut refused = TcpStream::connect(&chatd.addr).await.expect("connect");
    let mut answer = String::new();
    let _ = refused.read_to_string(&mut answer).await;
    assert!(answer.contains("\"errno\":33"), "{answer}");
    let pong = ws.call(json!({"msgid": 27}), 2).await;
    assert_eq!(pong["msgid"], 28);
}

async fn many_idle_websockets_leave_the_node_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatd = start(dir.path(), &[]).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(ws::connect(&chatd.web).await);
    }
    let mut bob = new_user(&chatd.addr, "bob").await;
    let mut ws = ws::connect(&chatd.web).await;
    ws_user(&mut ws, "alice").await;
    let ack = ws
        .call(
            json!({"msgid": 5, "toid": bob.id.0, "msg": "still here"}),
            3,
        )
        .await;
    assert_eq!(ack["msgid"], 13, "{ack}");
    assert_eq!(next_message(&mut bob).await.msg, "still here");
    // The idle ones are still connected.
    let mut last = idle.pop().expect("an idle socket");
    assert_eq!(last.call(json!({"msgid": 27}), 1).await["msgid"], 28);
}
