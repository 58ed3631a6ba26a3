//! Dispatch of generated requests on in-memory backends, in both dialects:
//! nothing panics, every reply encodes to one JSON line, a native client
//! gets a reply echoing its `rid` for every request but `PONG` and a
//! `DELIVERED` without `rid`, and a request never acts for another user.

use std::sync::Arc;

use chatcore::model::{GroupId, MessageId, Seq, Target, UserId};
use chatcore::node::{self, Backends};
use chatcore::protocol::{
    AddFriend, AddGroup, Chat, CreateGroup, DeliveryAck, Dialect, ErrorCode, History, Identity,
    LeaveGroup, ListMembers, Login, Register, RemoveFriend, Request, RequestFrame, ServerFrame,
    SyncRequest,
};
use chatcore::service::{ChatService, ConnState, HashParams, Passwords, ServiceConfig};
use chatcore::store::MemoryStore;
use proptest::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc;
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

/// Any request, with fields that sometimes name real users, groups and
/// passwords and sometimes anything.
fn request() -> impl Strategy<Value = Request> {
    let uid = || id().prop_map(UserId);
    let gid = || id().prop_map(GroupId);
    prop_oneof![
        (uid(), prop_oneof![Just("a".to_owned()), text()], proto()).prop_map(
            |(id, password, proto)| Request::Login(Login {
                id,
                password,
                proto
            })
        ),
        (text(), text(), proto()).prop_map(|(name, password, proto)| Request::Register(Register {
            name,
            password,
            proto
        })),
        (maybe(uid()), target(), text(), maybe(text())).prop_map(|(id, target, msg, cmid)| {
            Request::Chat(Chat {
                id,
                target,
                msg,
                cmid,
            })
        }),
        (maybe(uid()), uid())
            .prop_map(|(id, friendid)| Request::AddFriend(AddFriend { id, friendid })),
        (maybe(uid()), uid())
            .prop_map(|(id, friendid)| Request::RemoveFriend(RemoveFriend { id, friendid })),
        (maybe(uid()), text(), text()).prop_map(|(id, groupname, groupdesc)| {
            Request::CreateGroup(CreateGroup {
                id,
                groupname,
                groupdesc,
            })
        }),
        (maybe(uid()), gid()).prop_map(|(id, groupid)| Request::AddGroup(AddGroup { id, groupid })),
        (maybe(uid()), gid())
            .prop_map(|(id, groupid)| Request::LeaveGroup(LeaveGroup { id, groupid })),
        maybe(uid()).prop_map(|id| Request::Logout(Identity { id })),
        id().prop_map(|seq| Request::DeliveryAck(DeliveryAck { seq: Seq(seq) })),
        (id(), maybe(any::<u32>())).prop_map(|(after, limit)| Request::Sync(SyncRequest {
            after: Seq(after),
            limit
        })),
        (target(), maybe(id()), maybe(any::<u32>())).prop_map(|(target, before, limit)| {
            Request::History(History {
                target,
                before: before.map(MessageId),
                limit,
            })
        }),
        Just(Request::ListFriends),
        Just(Request::ListGroups),
        gid().prop_map(|groupid| Request::ListMembers(ListMembers { groupid })),
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

fn frame(json: &str) -> RequestFrame {
    Request::parse(json.as_bytes()).expect("a valid setup frame")
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
    let (tx, _rx) = mpsc::channel(64);
    let mut setup = ConnState::new(tx, None);
    for json in [
        r#"{"msgid":3,"name":"alice","password":"a","proto":2}"#,
        r#"{"msgid":3,"name":"bob","password":"b","proto":2}"#,
        r#"{"msgid":1,"id":2,"password":"b","proto":2}"#,
        r#"{"msgid":7,"groupname":"g","groupdesc":"d","rid":1}"#,
        r#"{"msgid":6,"friendid":1,"rid":2}"#,
        r#"{"msgid":10,"rid":3}"#,
    ] {
        let reply = service.handle(&mut setup, frame(json)).await;
        assert!(
            !matches!(reply, Some(ServerFrame::Error(_))),
            "setup {json}: {reply:?}"
        );
    }
    // Deliveries to the connection under test queue up unread: they are
    // not this test's concern.
    let (tx, deliveries) = mpsc::channel(1024);
    let mut conn = ConnState::new(tx, None);
    let login = match start {
        Start::Anonymous => None,
        Start::Legacy => Some(r#"{"msgid":1,"id":1,"password":"a"}"#),
        Start::Native => Some(r#"{"msgid":1,"id":1,"password":"a","proto":2}"#),
    };
    if let Some(json) = login {
        let reply = service.handle(&mut conn, frame(json)).await;
        assert!(matches!(reply, Some(ServerFrame::LoginOk(_))), "{reply:?}");
    }
    World {
        service,
        conn,
        _deliveries: deliveries,
        shutdown,
    }
}

struct World {
    service: ChatService,
    conn: ConnState,
    _deliveries: mpsc::Receiver<chatcore::hub::SessionEvent>,
    shutdown: CancellationToken,
}

/// Whether the protocol promises a native client a reply to `frame`.
fn expects_native_reply(frame: &RequestFrame) -> bool {
    match frame.request {
        Request::Pong => false,
        Request::DeliveryAck(_) => frame.rid.is_some(),
        _ => true,
    }
}

async fn run(start: Start, requests: Vec<(Option<u64>, Request)>) -> Result<(), TestCaseError> {
    let World {
        service,
        mut conn,
        _deliveries,
        shutdown,
    } = world(start).await;
    for (rid, request) in requests {
        let session_before = conn.session().map(|s| s.user.id);
        let frame = RequestFrame { rid, request };
        let spoofed = match &frame.request {
            Request::Chat(Chat { id, .. })
            | Request::AddFriend(AddFriend { id, .. })
            | Request::RemoveFriend(RemoveFriend { id, .. })
            | Request::CreateGroup(CreateGroup { id, .. })
            | Request::AddGroup(AddGroup { id, .. })
            | Request::LeaveGroup(LeaveGroup { id, .. })
            | Request::Logout(Identity { id }) => {
                matches!((id, session_before), (Some(claimed), Some(me)) if *claimed != me)
            }
            _ => false,
        };
        let expects = expects_native_reply(&frame);
        let reply = service.handle(&mut conn, frame.clone()).await;
        let dialect = conn.dialect();
        if dialect == Dialect::Native && expects {
            prop_assert!(reply.is_some(), "no reply to {:?}", frame);
        }
        if spoofed {
            match &reply {
                Some(ServerFrame::Error(e)) => prop_assert_eq!(e.code, ErrorCode::IdentityMismatch),
                other => prop_assert!(false, "{:?} acted for another user: {:?}", frame, other),
            }
            prop_assert_eq!(conn.session().map(|s| s.user.id), session_before);
        }
        let Some(reply) = reply else { continue };
        let mut out = Vec::new();
        reply.encode(dialect, &mut out);
        if out.is_empty() {
            prop_assert_eq!(
                dialect,
                Dialect::Legacy,
                "native drops nothing: {:?}",
                reply
            );
            continue;
        }
        prop_assert_eq!(out.iter().position(|&b| b == b'\n'), Some(out.len() - 1));
        let value: Value = serde_json::from_slice(&out).expect("a reply is JSON");
        if dialect == Dialect::Native {
            prop_assert_eq!(value.get("rid").and_then(Value::as_u64), rid, "{}", value);
        }
    }
    service.end_session(&mut conn).await;
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
        service,
        mut conn,
        _deliveries,
        shutdown,
    } = world(Start::Native).await;
    for target in [r#""toid":2"#, r#""groupid":1"#] {
        let json = format!(r#"{{"msgid":17,{target},"before":-9223372036854775808,"rid":8}}"#);
        match service.handle(&mut conn, frame(&json)).await {
            Some(ServerFrame::History {
                rid,
                messages,
                more,
            }) => {
                assert_eq!((rid, messages.len(), more), (Some(8), 0, false), "{json}");
            }
            // Alice is not in bob's group.
            Some(ServerFrame::Error(e)) => assert_eq!(e.code, ErrorCode::NotMember, "{json}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    shutdown.cancel();
}
