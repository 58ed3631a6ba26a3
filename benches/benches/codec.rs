//! The wire edge in both directions, without sockets: request frames
//! through `FrameCodec` and `ClientFrame::decode` (`decode/...`, `framing/...`),
//! and server frames through `ServerFrame::encode` / `encode_legacy_login` in the
//! native and legacy dialects (`encode/...`). Each kind comes small,
//! typical and, where its size can grow, near the 64 KiB frame limit.
//!
//! ```text
//! cargo bench --workspace --bench codec -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Method and figures: `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use chatcore::codec::{DEFAULT_MAX_FRAME, FrameCodec};
use chatcore::model::{
    GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Role, Seq, Target, UserId, UserInfo,
};
use chatcore::protocol::{
    ChatAck, ClientFrame, Dialect, ErrorCode, ErrorReply, FriendEntry, GroupEntry, LoginOk,
    MemberEntry, MessagePage, ServerFrame, encode_legacy_login,
};
use chatcore::service::ResumeConfig;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use tokio_util::codec::Decoder;

/// A body of the length most chat lines have (the one `store_send` uses).
const TYPICAL_BODY: &str = "a chat message of a typical length, some forty to eighty bytes";
/// 13:45:07 UTC on 15 October 2026, a fixed server time.
const SENT_AT_MS: i64 = 1_792_072_707_000;

/// A body of `bytes` bytes: mostly ASCII with some multi-byte text, as
/// chats in the seed's language mix them; no character needs escaping.
fn body(bytes: usize) -> String {
    const PIECE: &str = "the quick brown fox jumps over the lazy dog 敏捷的狐狸 ";
    let mut text = String::with_capacity(bytes + PIECE.len());
    while text.len() < bytes {
        text.push_str(PIECE);
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

/// A one-to-one chat request whose frame is `DEFAULT_MAX_FRAME` minus a
/// little, as large as a client may send.
fn largest_chat_request() -> String {
    let head = r#"{"msgid":5,"toid":2,"rid":7,"msg":""#;
    let tail = r#""}"#;
    // 16 bytes of slack: the limit counts the frame, not its terminator.
    let room = DEFAULT_MAX_FRAME - head.len() - tail.len() - 16;
    format!("{head}{}{tail}", body(room))
}

/// Request frames as clients put them on the wire (with `\n`): the
/// native client's shapes, and the seed client's for chat (`id`, `name`,
/// `time` included).
fn requests() -> Vec<(&'static str, String)> {
    vec![
        (
            "login",
            r#"{"msgid":1,"id":1042,"password":"correct horse battery staple","proto":2,"rid":1}"#
                .to_owned(),
        ),
        (
            "register",
            r#"{"msgid":3,"name":"alice","password":"correct horse battery staple","proto":2,"rid":1}"#
                .to_owned(),
        ),
        ("one_chat_small", r#"{"msgid":5,"toid":2,"msg":"hi","rid":7}"#.to_owned()),
        (
            "one_chat_typical_seed",
            format!(
                r#"{{"msgid":5,"id":1042,"name":"alice","toid":2077,"msg":"{TYPICAL_BODY}","time":"2026-10-15 13:45:07"}}"#
            ),
        ),
        ("one_chat_64k", largest_chat_request()),
        (
            "group_chat_typical",
            format!(r#"{{"msgid":9,"groupid":12,"msg":"{TYPICAL_BODY}","rid":8}}"#),
        ),
        ("delivered", r#"{"msgid":14,"seq":123456}"#.to_owned()),
        (
            "sync",
            r#"{"msgid":15,"after":1000,"limit":200,"rid":9}"#.to_owned(),
        ),
        (
            "history",
            r#"{"msgid":17,"toid":2077,"before":5000,"limit":50,"rid":10}"#.to_owned(),
        ),
        (
            "add_friend",
            r#"{"msgid":6,"id":1042,"friendid":2077,"rid":11}"#.to_owned(),
        ),
        (
            "create_group",
            r#"{"msgid":7,"id":1042,"groupname":"rustaceans","groupdesc":"people who write Rust","rid":12}"#
                .to_owned(),
        ),
        ("ping", r#"{"msgid":27,"rid":13}"#.to_owned()),
    ]
}

fn wire(frame: &str) -> Vec<u8> {
    let mut bytes = frame.as_bytes().to_vec();
    bytes.push(b'\n');
    bytes
}

/// One read holding one whole frame, framed and parsed, as the
/// connection driver does it (the copy into the read buffer included).
fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, frame) in requests() {
        let bytes = wire(&frame);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        // The benchmark must measure the success path.
        buf.extend_from_slice(&bytes);
        let decoded = codec.decode(&mut buf).expect("frames").expect("a frame");
        ClientFrame::decode(&decoded).expect("a valid request");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.extend_from_slice(black_box(&bytes));
                let frame = codec.decode(&mut buf).expect("frames").expect("a frame");
                black_box(ClientFrame::decode(&frame).expect("a valid request"))
            });
        });
    }
    group.finish();
}

/// The codec alone: the share of framing in `decode/...`, and a largest
/// frame arriving over several reads (each read scans only new bytes).
fn bench_framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    for (name, frame) in requests()
        .into_iter()
        .filter(|(name, _)| name.starts_with("one_chat"))
    {
        let bytes = wire(&frame);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::with_capacity(8 * 1024);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.extend_from_slice(black_box(&bytes));
                black_box(codec.decode(&mut buf).expect("frames").expect("a frame"))
            });
        });
    }
    let bytes = wire(&largest_chat_request());
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("one_chat_64k_in_16k_reads", |b| {
        b.iter(|| {
            let mut frame = None;
            for read in bytes.chunks(16 * 1024) {
                buf.extend_from_slice(black_box(read));
                frame = codec.decode(&mut buf).expect("frames");
            }
            black_box(frame.expect("the last read completes the frame"))
        });
    });
    group.finish();
}

fn user(i: i64) -> UserInfo {
    UserInfo {
        id: UserId(1000 + i),
        name: format!("user{:04}", 1000 + i),
    }
}

fn message(id: i64, target: Target, body: &str) -> Message {
    Message {
        id: MessageId(id),
        sender: user(id % 7),
        target,
        body: body.to_owned(),
        client_msg_id: None,
        sent_at_ms: SENT_AT_MS + id * 1000,
    }
}

fn entries(count: usize, body: &str) -> Vec<InboxEntry> {
    (0..count as i64)
        .map(|i| InboxEntry {
            seq: Seq(500 + i),
            message: message(90_000 + i, Target::User(user(0).id), body),
        })
        .collect()
}

/// A login reply for a user with `friends` friends (every other one
/// online), `groups` groups of `members` members each, and `backlog`
/// typical unread messages.
fn login_reply(
    friends: usize,
    groups: usize,
    members: usize,
    backlog: usize,
) -> (LoginOk, Vec<InboxEntry>) {
    let reply = LoginOk {
        rid: Some(1),
        user: user(0),
        friends: (1..=friends as i64)
            .map(|i| FriendEntry {
                user: user(i),
                online: i % 2 == 0,
            })
            .collect(),
        groups: (1..=groups as i64)
            .map(|g| GroupEntry {
                group: GroupInfo {
                    id: GroupId(g),
                    name: format!("group {g}"),
                    desc: "a group of people who talk about things".to_owned(),
                },
                users: (0..members as i64)
                    .map(|m| MemberEntry {
                        member: Member {
                            user: user(g * 100 + m),
                            role: if m == 0 { Role::Creator } else { Role::Normal },
                        },
                        online: m % 3 == 0,
                    })
                    .collect(),
            })
            .collect(),
        cursor: Seq(499),
        // Native replies carry a resume token; legacy ones leave it out.
        resume: Some(ResumeConfig::default().issue(user(0).id, 0, 1_764_454_935)),
    };
    (reply, entries(backlog, TYPICAL_BODY))
}

fn encode_group_bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    dialect: Dialect,
    encode: impl Fn(&mut Vec<u8>),
) {
    let mut out = Vec::with_capacity(80 * 1024);
    encode(&mut out);
    assert!(
        !out.is_empty(),
        "{name} encodes to something in {dialect:?}"
    );
    group.throughput(Throughput::Bytes(out.len() as u64));
    println!("{name}/{dialect:?}: {} bytes", out.len());
    let id = format!("{name}/{}", dialect_name(dialect));
    group.bench_function(id, |b| {
        b.iter(|| {
            // The connection reuses one buffer the same way.
            out.clear();
            encode(black_box(&mut out));
        });
    });
}

fn dialect_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Native => "native",
        Dialect::Legacy => "legacy",
    }
}

/// Server frames of each kind in both dialects. The login reply is
/// encoded with its backlog as the connection does: legacy carries what
/// fits under the seed client's 1024-byte read as `offlinemsg`, native
/// carries none (its backlog follows as pushes, measured as `push_*`).
fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let logins = [
        ("login_small", login_reply(0, 0, 0, 0)),
        ("login_typical", login_reply(20, 5, 10, 10)),
        // Few friends and a backlog: legacy packs offline messages into the
        // reply until it would pass 1024 bytes.
        ("login_backlog", login_reply(3, 1, 3, 20)),
        ("login_64k", login_reply(150, 20, 40, 200)),
    ];
    let large = Arc::new(message(77, Target::User(user(0).id), &body(60 * 1024 - 64)));
    let pushes = [
        (
            "push_small",
            Arc::new(message(75, Target::User(user(0).id), "hi")),
        ),
        (
            "push_typical",
            Arc::new(message(76, Target::Group(GroupId(12)), TYPICAL_BODY)),
        ),
        // The service's largest body (`max_message_bytes`, 60 KiB).
        ("push_64k", large),
    ];
    let pages = [
        ("sync_small", entries(1, TYPICAL_BODY)),
        ("sync_typical", entries(20, TYPICAL_BODY)),
        // A full page (`sync_page`, 200 entries) near 64 KiB.
        ("sync_64k", entries(200, &body(200))),
    ];
    let ack = ServerFrame::ChatAck(ChatAck {
        rid: Some(7),
        req: 5,
        mid: MessageId(123_456_789),
        cmid: Some("c-0001".to_owned()),
        sent_at_ms: SENT_AT_MS,
        duplicate: false,
    });
    let error = ServerFrame::Error(ErrorReply::with_detail(
        ErrorCode::UnknownUser,
        Some(5),
        Some(7),
        "no such user: 2077",
    ));
    for dialect in [Dialect::Native, Dialect::Legacy] {
        for (name, (login, backlog)) in &logins {
            let frame = ServerFrame::LoginOk(Box::new(login.clone()));
            encode_group_bench(&mut group, name, dialect, |out| match dialect {
                Dialect::Native => {
                    black_box(frame.encode(dialect, out));
                }
                Dialect::Legacy => {
                    black_box(encode_legacy_login(login, backlog, out));
                }
            });
        }
        for (name, message) in &pushes {
            let frame = ServerFrame::Push {
                seq: Seq(501),
                message: Arc::clone(message),
            };
            encode_group_bench(&mut group, name, dialect, |out| {
                black_box(frame.encode(dialect, out));
            });
        }
        for (name, page) in &pages {
            let frame = ServerFrame::Sync(MessagePage {
                rid: Some(9),
                entries: page.clone(),
                more: true,
            });
            encode_group_bench(&mut group, name, dialect, |out| {
                black_box(frame.encode(dialect, out));
            });
        }
        encode_group_bench(&mut group, "error", dialect, |out| {
            black_box(error.encode(dialect, out));
        });
    }
    // The legacy dialect never gets a chat ack: it encodes to nothing.
    assert!(!ack.encode(Dialect::Legacy, &mut Vec::new()));
    encode_group_bench(&mut group, "chat_ack", Dialect::Native, |out| {
        black_box(ack.encode(Dialect::Native, out));
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_decode(&mut c);
    bench_framing(&mut c);
    bench_encode(&mut c);
    c.final_summary();
}
