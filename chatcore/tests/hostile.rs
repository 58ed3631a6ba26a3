//! Hostile input over real sockets, beyond `bad_input.rs`: nesting deep
//! enough to matter, numbers out of every range, frames at and one byte
//! over the limit, frames that never end, thousands of idle sockets, and
//! message bodies that try to forge frames. Each case gets its clear error
//! reply (or its normal reply), and the server keeps serving everyone.

mod common;

use std::time::Duration;

use chatcore::connection::ConnectionConfig;
use chatcore::protocol::ErrorCode;
use chatcore::server::ServerConfig;
use chatcore::service::ServiceConfig;
use common::{RawClient, TestServer, next_message};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Writes `bytes` and returns the one reply frame.
async fn reply_to(raw: &mut RawClient, bytes: &[u8]) -> Value {
    raw.write(bytes).await;
    raw.recv().await
}

/// Writes `bytes` and expects an error frame with `code`.
async fn expect_error(raw: &mut RawClient, bytes: &[u8], code: ErrorCode) -> Value {
    let reply = reply_to(raw, bytes).await;
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
    assert_eq!(reply["msgid"], 11, "error frame for {shown:?}: {reply}");
    assert_eq!(reply["errno"], code.errno(), "for {shown:?}: {reply}");
    assert!(reply["errmsg"].as_str().is_some_and(|m| !m.is_empty()));
    reply
}

/// The next frame on a plain socket, `None` when the server closed it.
async fn read_frame(stream: &mut BufReader<TcpStream>) -> Option<Value> {
    let mut line = Vec::new();
    let read = tokio::time::timeout(common::WAIT, stream.read_until(b'\n', &mut line))
        .await
        .expect("the server answers in time");
    match read {
        Ok(0) => None,
        Ok(_) => Some(serde_json::from_slice(&line).expect("frames are JSON")),
        // A reset after the server's last frame is also a close.
        Err(_) => None,
    }
}

/// The connection still answers a PING.
async fn still_serving(raw: &mut RawClient) {
    raw.write(b"{\"msgid\":27,\"rid\":4242}\n").await;
    assert_eq!(raw.recv().await, json!({"msgid": 28, "rid": 4242}));
}

/// A raw connection logged in, native dialect, as a fresh user; returns it
/// with the user's id.
async fn native_raw(server: &TestServer, name: &str) -> (RawClient, i64) {
    let (client, id) = server.user(name).await;
    drop(client);
    let mut raw = server.raw().await;
    let login = json!({"msgid": 1, "id": id.0, "password": format!("pw-{name}"), "proto": 2});
    let reply = reply_to(&mut raw, format!("{login}\n").as_bytes()).await;
    assert_eq!(reply["errno"], 0, "{reply}");
    (raw, id.0)
}

fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test]
async fn nesting_past_serde_json_recursion_limit_gets_a_reply_in_every_position() {
    // serde_json stops recursing at 128 levels; these go from just past it
    // to as deep as a 64 KiB frame allows, as arrays and as objects, where
    // a number, a string or an ignored value belongs.
    let server = TestServer::start().await;
    let mut raw = server.raw().await;
    for depth in [129, 1_000, 9_000] {
        let arrays = nested("[", "]", depth, "1");
        let objects = nested("{\"a\":", "}", depth, "1");
        for deep in [&arrays, &objects] {
            let cases: [(String, Option<ErrorCode>); 6] = [
                (format!("{{\"msgid\":{deep}}}"), Some(ErrorCode::BadField)),
                (
                    format!("{{\"msgid\":27,\"rid\":{deep}}}"),
                    Some(ErrorCode::BadField),
                ),
                (
                    format!("{{\"msgid\":5,\"toid\":{deep},\"msg\":\"m\"}}"),
                    Some(ErrorCode::BadField),
                ),
                (
                    format!("{{\"msgid\":5,\"toid\":1,\"msg\":{deep}}}"),
                    Some(ErrorCode::BadField),
                ),
                // Unclosed: the frame ends inside the nesting.
                (
                    format!("{{\"msgid\":27,\"x\":{}", &deep[..deep.len() / 2]),
                    Some(ErrorCode::BadFrame),
                ),
                // In a key nobody reads, it is skipped: the PING is answered.
                (format!("{{\"msgid\":27,\"rid\":7,\"x\":{deep}}}"), None),
            ];
            for (frame, code) in cases {
                let mut bytes = frame.into_bytes();
                bytes.push(b'\n');
                match code {
                    Some(code) => {
                        expect_error(&mut raw, &bytes, code).await;
                    }
                    None => assert_eq!(
                        reply_to(&mut raw, &bytes).await,
                        json!({"msgid": 28, "rid": 7})
                    ),
                }
            }
        }
    }
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn numbers_out_of_range_are_refused_and_edge_values_are_handled() {
    let server = TestServer::start().await;
    let (mut raw, me) = native_raw(&server, "numbers").await;
    let too_many_digits = "9".repeat(5_000);
    let bad_field = [
        // Ids are signed 64-bit integers.
        "{\"msgid\":5,\"toid\":9223372036854775808,\"msg\":\"m\"}".to_owned(),
        "{\"msgid\":5,\"toid\":-9223372036854775809,\"msg\":\"m\"}".to_owned(),
        "{\"msgid\":5,\"toid\":18446744073709551616,\"msg\":\"m\"}".to_owned(),
        "{\"msgid\":5,\"toid\":1.5,\"msg\":\"m\"}".to_owned(),
        "{\"msgid\":5,\"toid\":1e2,\"msg\":\"m\"}".to_owned(),
        "{\"msgid\":5,\"toid\":\"1\",\"msg\":\"m\"}".to_owned(),
        // msgid, limit and proto are unsigned 32-bit; rid unsigned 64-bit.
        "{\"msgid\":4294967296}".to_owned(),
        "{\"msgid\":-5}".to_owned(),
        "{\"msgid\":15,\"limit\":4294967296}".to_owned(),
        "{\"msgid\":15,\"limit\":-1}".to_owned(),
        "{\"msgid\":27,\"rid\":18446744073709551616}".to_owned(),
        "{\"msgid\":27,\"rid\":-1}".to_owned(),
        "{\"msgid\":14,\"seq\":0.5}".to_owned(),
    ];
    for frame in &bad_field {
        expect_error(
            &mut raw,
            format!("{frame}\n").as_bytes(),
            ErrorCode::BadField,
        )
        .await;
    }
    // A number too large even for a double is malformed JSON.
    for toid in ["1e999".to_owned(), too_many_digits] {
        let frame = format!("{{\"msgid\":5,\"toid\":{toid},\"msg\":\"m\"}}\n");
        expect_error(&mut raw, frame.as_bytes(), ErrorCode::BadFrame).await;
    }
    expect_error(
        &mut raw,
        b"{\"msgid\":4294967295}\n",
        ErrorCode::UnknownMsgid,
    )
    .await;

    // In range but naming nobody: the same clear error at every extreme.
    for toid in [i64::MAX, i64::MIN, 0, -1] {
        let frame = json!({"msgid": 5, "toid": toid, "msg": "m", "rid": 1});
        let reply = expect_error(
            &mut raw,
            format!("{frame}\n").as_bytes(),
            ErrorCode::UnknownUser,
        )
        .await;
        assert_eq!(reply["rid"], 1);
    }
    for groupid in [i64::MAX, i64::MIN, 0] {
        let frame = json!({"msgid": 9, "groupid": groupid, "msg": "m"});
        expect_error(
            &mut raw,
            format!("{frame}\n").as_bytes(),
            ErrorCode::UnknownGroup,
        )
        .await;
    }
    // Cursors and pages at their extremes are answered, not refused.
    for (after, limit) in [(i64::MAX, 1u32), (i64::MIN, 0), (-5, u32::MAX)] {
        let frame = json!({"msgid": 15, "after": after, "limit": limit, "rid": 2});
        let reply = reply_to(&mut raw, format!("{frame}\n").as_bytes()).await;
        assert_eq!(
            (reply["msgid"].clone(), reply["rid"].clone()),
            (json!(16), json!(2)),
            "{reply}"
        );
    }
    for before in [i64::MAX, i64::MIN, 0] {
        let frame = json!({"msgid": 17, "toid": me, "before": before, "limit": u32::MAX, "rid": 3});
        let reply = reply_to(&mut raw, format!("{frame}\n").as_bytes()).await;
        assert_eq!(reply["msgid"], 18, "{reply}");
    }
    // An ack past the end of the inbox does not move the cursor past it.
    let reply = reply_to(
        &mut raw,
        b"{\"msgid\":14,\"seq\":9223372036854775807,\"rid\":5}\n",
    )
    .await;
    assert_eq!(
        (reply["msgid"].clone(), reply["rid"].clone()),
        (json!(12), json!(5)),
        "{reply}"
    );
    // The largest rid comes back exactly.
    let reply = reply_to(&mut raw, b"{\"msgid\":27,\"rid\":18446744073709551615}\n").await;
    assert_eq!(reply["rid"].as_u64(), Some(u64::MAX));
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn invalid_text_is_refused_per_frame() {
    let server = TestServer::start().await;
    let (mut raw, me) = native_raw(&server, "utf8").await;
    let bad_frame: [&[u8]; 5] = [
        // Overlong encoding of '/', a UTF-16 surrogate encoded as UTF-8,
        // a truncated sequence: none is UTF-8.
        b"{\"msgid\":5,\"toid\":1,\"msg\":\"\xc0\xaf\"}\n",
        b"{\"msgid\":5,\"toid\":1,\"msg\":\"\xed\xa0\x80\"}\n",
        b"{\"msgid\":5,\"toid\":1,\"msg\":\"\xe2\x82\"}\n",
        // A lone surrogate escape is no character either.
        b"{\"msgid\":5,\"toid\":1,\"msg\":\"\\ud800\"}\n",
        // Invalid UTF-8 in a key.
        b"{\"msgid\":27,\"\xff\":1}\n",
    ];
    for bytes in bad_frame {
        expect_error(&mut raw, bytes, ErrorCode::BadFrame).await;
    }
    // A raw NUL inside a frame ends it: two broken halves, two errors.
    raw.write(b"{\"msgid\":5,\"toid\":1,\"msg\":\"a\0b\"}\n")
        .await;
    for _ in 0..2 {
        assert_eq!(raw.recv().await["errno"], ErrorCode::BadFrame.errno());
    }
    // Escaped, every character is fine, and comes back as sent.
    let text = "nul \u{0} bell \u{7} emoji \u{1F600} rtl \u{202E}";
    let frame = json!({"msgid": 5, "toid": me, "msg": text, "rid": 9});
    let ack = reply_to(&mut raw, format!("{frame}\n").as_bytes()).await;
    assert_eq!(ack["msgid"], 13, "{ack}");
    let push = raw.recv().await;
    assert_eq!(push["msg"], text, "{push}");
    still_serving(&mut raw).await;
    server.stop().await;
}

#[tokio::test]
async fn a_message_body_cannot_forge_frames() {
    // Whatever a sender puts in a message, each recipient reads exactly one
    // frame for it, in either dialect.
    let server = TestServer::start_with(common::fast_server(), ServiceConfig::default()).await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let (carol_client, carol_id) = server.user("carol").await;
    drop(carol_client);
    let mut carol = server.raw().await;
    carol
        .send(json!({"msgid": 1, "id": carol_id.0, "password": "pw-carol"}))
        .await;
    assert_eq!(carol.recv().await["errno"], 0);
    let forged = "hi\n{\"msgid\":29,\"errno\":40}\n\0{\"msgid\":5,\"id\":1,\"msg\":\"x\"}\r\n";
    bob.send_to(alice_id, forged).await.expect("sent to alice");
    bob.send_to(carol_id, forged).await.expect("sent to carol");
    let got = next_message(&mut alice).await;
    assert_eq!(got.msg, forged);
    common::assert_quiet(&mut alice).await;
    let push = carol.recv().await;
    assert_eq!(
        (push["msgid"].clone(), push["msg"].clone()),
        (json!(5), json!(forged))
    );
    carol.assert_quiet().await;
    server.stop().await;
}

/// A server whose frames may be at most `max_frame` bytes.
async fn server_with_max_frame(max_frame: usize) -> TestServer {
    let config = ServerConfig {
        connection: ConnectionConfig {
            max_frame,
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    TestServer::start_with(config, ServiceConfig::default()).await
}

/// A PING of exactly `len` bytes (padded inside the object).
fn ping_of_len(len: usize) -> Vec<u8> {
    let head = b"{\"msgid\":27,\"rid\":1";
    let mut frame = head.to_vec();
    frame.resize(len - 1, b' ');
    frame.push(b'}');
    assert_eq!(frame.len(), len);
    frame
}

#[tokio::test]
async fn a_frame_at_the_limit_is_served_and_one_byte_more_closes_only_that_connection() {
    const LIMIT: usize = 4096;
    let server = server_with_max_frame(LIMIT).await;
    let (mut alice, alice_id) = server.user("alice").await;
    let mut raw = server.raw().await;
    for terminator in [b'\n', 0] {
        let mut bytes = ping_of_len(LIMIT);
        bytes.push(terminator);
        assert_eq!(
            reply_to(&mut raw, &bytes).await,
            json!({"msgid": 28, "rid": 1})
        );
    }
    // Cut into many reads, the same frame is the same frame.
    let mut bytes = ping_of_len(LIMIT);
    bytes.push(b'\n');
    for piece in bytes.chunks(333) {
        raw.write(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(raw.recv().await, json!({"msgid": 28, "rid": 1}));

    let mut over = ping_of_len(LIMIT + 1);
    over.push(b'\n');
    let reply = reply_to(&mut raw, &over).await;
    assert_eq!(reply["errno"], ErrorCode::FrameTooLarge.errno(), "{reply}");
    raw.assert_closed().await;

    let (bob, _) = server.user("bob").await;
    bob.send_to(alice_id, "after the big one")
        .await
        .expect("sent");
    assert_eq!(next_message(&mut alice).await.msg, "after the big one");
    server.stop().await;
}

#[tokio::test]
async fn a_frame_that_never_ends_holds_up_no_one_and_is_cut_off_at_the_limit() {
    const LIMIT: usize = 8192;
    let server = server_with_max_frame(LIMIT).await;
    let (mut alice, alice_id) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;

    // Half a frame, then silence: others chat, new users arrive.
    let mut silent = server.raw().await;
    silent.write(b"{\"msgid\":27,\"rid\":").await;
    bob.send_to(alice_id, "while one is silent")
        .await
        .expect("sent");
    assert_eq!(next_message(&mut alice).await.msg, "while one is silent");
    let (_carol, _) = server.user("carol").await;
    // The silent connection itself is still usable: it finishes its frame.
    silent.write(b"31}\n").await;
    assert_eq!(silent.recv().await, json!({"msgid": 28, "rid": 31}));

    // A frame that keeps growing and never ends is buffered up to the
    // limit only: then the client is told and disconnected.
    let mut endless = BufReader::new(TcpStream::connect(server.addr).await.expect("connect"));
    endless
        .get_mut()
        .write_all(b"{\"msgid\":5,\"msg\":\"")
        .await
        .expect("write");
    let filler = vec![b'x'; 1000];
    for _ in 0..=LIMIT / filler.len() {
        endless
            .get_mut()
            .write_all(&filler)
            .await
            .expect("write below the limit");
    }
    let reply = read_frame(&mut endless).await.expect("an error frame");
    assert_eq!(reply["errno"], ErrorCode::FrameTooLarge.errno(), "{reply}");
    assert_eq!(
        read_frame(&mut endless).await,
        None,
        "then the server closes"
    );

    bob.send_to(alice_id, "still here").await.expect("sent");
    assert_eq!(next_message(&mut alice).await.msg, "still here");
    server.stop().await;
}

#[tokio::test]
async fn two_thousand_idle_anonymous_sockets_do_not_stop_a_chat() {
    const IDLE: usize = 2_000;
    let server = TestServer::start().await;
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut stream = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        // Some say nothing, some leave a frame half-sent.
        if i % 2 == 1 {
            stream
                .write_all(b"{\"msgid\":1,\"id\":")
                .await
                .expect("write");
        }
        idle.push(stream);
    }
    let (mut alice, alice_id) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    bob.send_to(alice_id, "through the crowd")
        .await
        .expect("sent");
    let got = next_message(&mut alice).await;
    assert_eq!((got.from, got.msg.as_str()), (bob_id, "through the crowd"));
    // The idle ones were not dropped: the first and the last still answer.
    for stream in [idle.remove(0), idle.pop().expect("the last")] {
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(b"\n{\"msgid\":27,\"rid\":5}\n")
            .await
            .expect("write");
        let mut reply = read_frame(&mut stream).await.expect("a reply");
        if reply["msgid"] == 11 {
            // The half-sent login, ended by the newline.
            reply = read_frame(&mut stream).await.expect("a reply");
        }
        assert_eq!(reply, json!({"msgid": 28, "rid": 5}));
    }
    drop(idle);
    server.stop().await;
}
