//! Generated requests through a connection on in-memory backends, in both
//! dialects: nothing panics and the connection keeps serving, every frame
//! is one JSON line, a native session gets a reply echoing its `rid` for
//! every request but `PONG` and a `DELIVERED` without `rid`, and a request
//! never acts for another user.

use std::sync::Arc;

use chatcore::connection::{ConnectionConfig, serve};
use chatcore::limit::RateLimit;
use chatcore::model::{GroupId, MessageId, Seq, Target, UserId};
use chatcore::node::{self, Backends};
use chatcore::protocol::{
    AddFriend, AddGroup, AnonymousRequest, Chat, ClientFrame, CreateGroup, DeliveryAck, ErrorCode,
    History, Identity, LeaveGroup, ListMembers, Login, Register, RemoveFriend, Request,
    SessionRequest, SyncRequest, msgid,
};
use chatcore::service::{ChatService, HashParams, Passwords, ServiceConfig};
use chatcore::store::MemoryStore;
use proptest::prelude::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Ids near the existing ones (1 and 2) and anywhere in `i64`.
fn id() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -1i64..5, 1 => any::<i64>(), 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        Just(String::new()),
        Just(" padded ".to_owned()),
        "\\PC{60,80}"
    ]
}

fn maybe<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        id().prop_map(|i| Target::User(UserId(i))),
        id().prop_map(|i| Target::Group(GroupId(i))),
    ]
}

fn proto() -> impl Strategy<Value = Option<u32>> {
    maybe(prop_oneof![Just(2u32), any::<u32>()])
}

fn anonymous(request: AnonymousRequest) -> Request {
    Request::Anonymous(request)
}

fn session(request: SessionRequest) -> Request {
    Request::Session(request)
}

/// Any request, with fields that sometimes name real users, groups and
/// passwords and sometimes anything.
fn request() -> impl Strategy<Value = Request> {
    use AnonymousRequest as A;
    use SessionRequest as S;
    let uid = || id().prop_map(UserId);
    let gid = || id().prop_map(GroupId);
    prop_oneof![
        (uid(), prop_oneof![Just("a".to_owned()), text()], proto()).prop_map(
            |(id, password, proto)| anonymous(A::Login(Login {
                id,
                password,
                proto
            }))
        ),
        (text(), text(), proto()).prop_map(|(name, password, proto)| anonymous(A::Register(
            Register {
                name,
                password,
                proto
            }
        ))),
        (maybe(uid()), target(), text(), maybe(text())).prop_map(|(id, target, msg, cmid)| {
            session(S::Chat(Chat {
                id,
                target,
                msg,
                cmid,
            }))
        }),
        (maybe(uid()), uid())
            .prop_map(|(id, friendid)| session(S::AddFriend(AddFriend { id, friendid }))),
        (maybe(uid()), uid())
            .prop_map(|(id, friendid)| session(S::RemoveFriend(RemoveFriend { id, friendid }))),
        (maybe(uid()), text(), text()).prop_map(|(id, groupname, groupdesc)| {
            session(S::CreateGroup(CreateGroup {
                id,
                groupname,
                groupdesc,
            }))
        }),
        (maybe(uid()), gid())
            .prop_map(|(id, groupid)| session(S::AddGroup(AddGroup { id, groupid }))),
        (maybe(uid()), gid())
            .prop_map(|(id, groupid)| session(S::LeaveGroup(LeaveGroup { id, groupid }))),
        maybe(uid()).prop_map(|id| session(S::Logout(Identity { id }))),
        id().prop_map(|seq| session(S::DeliveryAck(DeliveryAck { seq: Seq(seq) }))),
        (id(), maybe(any::<u32>())).prop_map(|(after, limit)| session(S::Sync(SyncRequest {
            after: Seq(after),
            limit
        }))),
        (target(), maybe(id()), maybe(any::<u32>())).prop_map(|(target, before, limit)| {
            session(S::History(History {
                target,
                before: before.map(MessageId),
                limit,
            }))
        }),
        Just(session(S::ListFriends)),
        Just(session(S::ListGroups)),
        gid().prop_map(|groupid| session(S::ListMembers(ListMembers { groupid }))),
        Just(Request::Ping),
        Just(Request::Pong),
    ]
}

/// How the connection under test starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    Anonymous,
    Legacy,
    Native,
}

/// The `rid` of the PING that closes each step; generated requests never
/// use it.
const MARK: u64 = u64::MAX;

/// A client's end of a connection served by the node under test.
struct Wire {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Wire {
    fn connect(service: &ChatService, shutdown: &CancellationToken) -> Wire {
        let (client, server) = tokio::io::duplex(1 << 20);
        let config = ConnectionConfig {
            rate_limit: RateLimit::OFF,
            ..ConnectionConfig::default()
        };
        tokio::spawn(serve(
            server,
            None,
            service.clone(),
            config,
            shutdown.clone(),
        ));
        let (reader, writer) = tokio::io::split(client);
        Wire {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Sends `frame` then a marking PING, and returns every frame up to the
    /// mark's PONG, each checked to be one JSON object on one line.
    async fn step(&mut self, frame: &ClientFrame) -> Result<Vec<Value>, TestCaseError> {
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        ClientFrame {
            rid: Some(MARK),
            request: Request::Ping,
        }
        .encode(&mut bytes);
        self.writer
            .write_all(&bytes)
            .await
            .expect("the connection is open");
        let mut frames = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).await.expect("read");
            prop_assert!(n > 0, "the connection closed after {:?}", frame);
            prop_assert!(line.ends_with('\n'));
            let value: Value = serde_json::from_str(&line).expect("a frame is JSON");
            prop_assert!(value.is_object(), "{}", value);
            if value["msgid"] == msgid::PONG && value["rid"] == MARK {
                return Ok(frames);
            }
            frames.push(value);
        }
    }
}

/// A node with two friends, alice (1, password "a") and bob (2), and bob's
/// group (1), plus a connection in state `start` (logged in as alice).
async fn world(start: Start) -> World {
    let shutdown = CancellationToken::new();
    let passwords = Passwords::new(HashParams::insecure_fast(), 1).expect("hash params");
    // The node's tasks end with `shutdown`; nothing needs to wait for them.
    let service = node::start(
        Backends::local(Arc::new(MemoryStore::new())),
        passwords,
        ServiceConfig::default(),
        &TaskTracker::new(),
        shutdown.clone(),
    );
    let mut setup = Wire::connect(&service, &shutdown);
    for json in [
        r#"{"msgid":3,"name":"alice","password":"a","proto":2}"#,
        r#"{"msgid":3,"name":"bob","password":"b","proto":2}"#,
        r#"{"msgid":1,"id":2,"password":"b","proto":2}"#,
        r#"{"msgid":7,"groupname":"g","groupdesc":"d","rid":1}"#,
        r#"{"msgid":6,"friendid":1,"rid":2}"#,
        r#"{"msgid":10,"rid":3}"#,
    ] {
        let frame = ClientFrame::decode(json.as_bytes()).expect("a valid setup frame");
        let replies = setup.step(&frame).await.expect("setup");
        assert!(
            replies.iter().all(|r| r["msgid"] != msgid::ERROR),
            "setup {json}: {replies:?}"
        );
    }
    let mut wire = Wire::connect(&service, &shutdown);
    let login = match start {
        Start::Anonymous => None,
        Start::Legacy => Some(r#"{"msgid":1,"id":1,"password":"a"}"#),
        Start::Native => Some(r#"{"msgid":1,"id":1,"password":"a","proto":2}"#),
    };
    let mut me = Me::default();
    if let Some(json) = login {
        let frame = ClientFrame::decode(json.as_bytes()).expect("a valid login");
        let replies = wire.step(&frame).await.expect("login");
        assert!(replies.iter().any(|r| me.learn(r)), "{replies:?}");
    }
    World {
        service,
        wire,
        me,
        shutdown,
    }
}

/// Who the connection under test is, as its frames tell.
#[derive(Debug, Default)]
struct Me {
    user: Option<i64>,
    native: bool,
}

impl Me {
    /// Follows logins; true for a successful one.
    fn learn(&mut self, frame: &Value) -> bool {
        if frame["msgid"] == msgid::LOGIN_ACK && frame["errno"] == 0 {
            self.user = frame["id"].as_i64();
            // Only the native login reply names its protocol.
            self.native = frame.get("proto").is_some();
            return true;
        }
        false
    }
}

struct World {
    service: ChatService,
    wire: Wire,
    me: Me,
    shutdown: CancellationToken,
}

/// Whether the protocol promises a native client a reply to `frame`.
fn expects_native_reply(frame: &ClientFrame) -> bool {
    match frame.request {
        Request::Pong => false,
        Request::Session(SessionRequest::DeliveryAck(_)) => frame.rid.is_some(),
        _ => true,
    }
}

async fn run(start: Start, requests: Vec<(Option<u64>, Request)>) -> Result<(), TestCaseError> {
    use SessionRequest as S;
    let World {
        service: _service,
        mut wire,
        mut me,
        shutdown,
    } = world(start).await;
    for (rid, request) in requests {
        let rid = rid.filter(|&rid| rid != MARK);
        let frame = ClientFrame { rid, request };
        let before = me.user;
        let native_session = me.native && before.is_some();
        let spoofed = match &frame.request {
            Request::Session(
                S::Chat(Chat { id, .. })
                | S::AddFriend(AddFriend { id, .. })
                | S::RemoveFriend(RemoveFriend { id, .. })
                | S::CreateGroup(CreateGroup { id, .. })
                | S::AddGroup(AddGroup { id, .. })
                | S::LeaveGroup(LeaveGroup { id, .. })
                | S::Logout(Identity { id }),
            ) => matches!((id, before), (Some(claimed), Some(me)) if claimed.0 != me),
            _ => false,
        };
        let frames = wire.step(&frame).await?;
        for reply in &frames {
            me.learn(reply);
        }
        // A logout that was not refused ended the session (the legacy
        // dialect does not acknowledge it).
        let refused = frames.iter().any(|f| f["msgid"] == msgid::ERROR);
        if matches!(frame.request, Request::Session(S::Logout(_))) && !refused {
            me = Me::default();
        }
        // Deliveries carry no `rid`; replies echo the request's.
        let replies: Vec<&Value> = frames
            .iter()
            .filter(|f| f.get("rid").is_some() || f.get("seq").is_none())
            .collect();
        if native_session && expects_native_reply(&frame) {
            prop_assert!(!replies.is_empty(), "no reply to {:?}", frame);
            for reply in &replies {
                prop_assert_eq!(reply.get("rid").and_then(Value::as_u64), rid, "{}", reply);
            }
        }
        if spoofed {
            let refused = replies.iter().any(|r| {
                r["msgid"] == msgid::ERROR && r["errno"] == ErrorCode::IdentityMismatch.errno()
            });
            prop_assert!(refused, "{:?} acted for another user: {:?}", frame, replies);
            prop_assert_eq!(me.user, before);
        }
    }
    shutdown.cancel();
    Ok(())
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        Just(Start::Anonymous),
        Just(Start::Legacy),
        Just(Start::Native)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn dispatch_of_arbitrary_requests_never_panics_and_answers_native_clients(
        start in start(),
        requests in prop::collection::vec((maybe(any::<u64>()), request()), 1..24),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run(start, requests))?;
    }
}

/// Found by the property above: the in-memory store computed `before - 1`
/// and overflowed (a panic in debug builds) on the smallest message id.
#[tokio::test]
async fn history_before_the_smallest_message_id_is_an_empty_page() {
    let World {
        mut wire, shutdown, ..
    } = world(Start::Native).await;
    for target in [r#""toid":2"#, r#""groupid":1"#] {
        let json = format!(r#"{{"msgid":17,{target},"before":-9223372036854775808,"rid":8}}"#);
        let frame = ClientFrame::decode(json.as_bytes()).expect("valid");
        let replies = wire.step(&frame).await.expect("served");
        match replies.as_slice() {
            [reply] if reply["msgid"] == msgid::HISTORY_ACK => {
                assert_eq!(reply["rid"], 8, "{json}");
                assert_eq!(reply["msgs"].as_array().map(Vec::len), Some(0), "{json}");
                assert_eq!(reply["more"], false, "{json}");
            }
            // Alice is not in bob's group.
            [reply] if reply["msgid"] == msgid::ERROR => {
                assert_eq!(reply["errno"], ErrorCode::NotMember.errno(), "{json}")
            }
            other => panic!("{json}: {other:?}"),
        }
    }
    shutdown.cancel();
}
