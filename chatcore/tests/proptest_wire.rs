//! The wire is defined once, both ways: every client frame decodes to what
//! was encoded, and so does every server frame in the native dialect (the
//! one our own clients read). The fields a dialect does not carry are left
//! at what decoding gives them (a message's client id is its sender's
//! business and is not pushed to recipients).

use std::sync::Arc;

use chatcore::model::{
    ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Role, Seq,
    Target, UserId, UserInfo,
};
use chatcore::protocol::{
    Ack, AddFriend, AddGroup, AnonymousRequest, ChangePassword, Chat, ChatAck, ClientFrame,
    Conversations, CreateGroup, DeliveryAck, Dialect, ErrorCode, ErrorReply, FindUser, FriendEntry,
    GroupEntry, History, Identity, LeaveGroup, ListMembers, Login, LoginOk, MemberEntry,
    MessagePage, ReadMark, Register, RemoveFriend, Request, Resume, ResumeToken, ServerFrame,
    SessionRequest, SyncRequest,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,16}",
        "\\PC{0,40}",
        Just("line\nbreak \"quoted\" \\ ☃".to_owned())
    ]
}

fn maybe<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop::option::of(s)
}

fn uid() -> impl Strategy<Value = UserId> {
    any::<i64>().prop_map(UserId)
}

fn gid() -> impl Strategy<Value = GroupId> {
    any::<i64>().prop_map(GroupId)
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![uid().prop_map(Target::User), gid().prop_map(Target::Group)]
}

fn session_request() -> impl Strategy<Value = SessionRequest> {
    use SessionRequest as S;
    prop_oneof![
        (text(), text()).prop_map(|(old, new)| S::ChangePassword(ChangePassword { old, new })),
        (maybe(uid()), target(), text(), maybe(text())).prop_map(|(id, target, msg, cmid)| {
            S::Chat(Chat {
                id,
                target,
                msg,
                cmid,
            })
        }),
        (maybe(uid()), uid()).prop_map(|(id, friendid)| S::AddFriend(AddFriend { id, friendid })),
        (maybe(uid()), text(), text()).prop_map(|(id, groupname, groupdesc)| {
            S::CreateGroup(CreateGroup {
                id,
                groupname,
                groupdesc,
            })
        }),
        (maybe(uid()), gid()).prop_map(|(id, groupid)| S::AddGroup(AddGroup { id, groupid })),
        maybe(uid()).prop_map(|id| S::Logout(Identity { id })),
        any::<i64>().prop_map(|seq| S::DeliveryAck(DeliveryAck { seq: Seq(seq) })),
        (any::<i64>(), maybe(any::<u32>())).prop_map(|(after, limit)| S::Sync(SyncRequest {
            after: Seq(after),
            limit
        })),
        (target(), maybe(any::<i64>()), maybe(any::<u32>())).prop_map(|(target, before, limit)| {
            S::History(History {
                target,
                before: before.map(MessageId),
                limit,
            })
        }),
        Just(S::ListFriends),
        Just(S::ListGroups),
        gid().prop_map(|groupid| S::ListMembers(ListMembers { groupid })),
        (maybe(uid()), uid())
            .prop_map(|(id, friendid)| S::RemoveFriend(RemoveFriend { id, friendid })),
        (maybe(uid()), gid()).prop_map(|(id, groupid)| S::LeaveGroup(LeaveGroup { id, groupid })),
        // `mid` is never negative on the wire (a negative one is refused).
        (target(), 0..=i64::MAX).prop_map(|(target, mid)| S::Read(ReadMark {
            target,
            mid: MessageId(mid)
        })),
        (maybe(any::<i64>()), maybe(any::<u32>())).prop_map(|(before, limit)| {
            S::Conversations(Conversations {
                before: before.map(MessageId),
                limit,
            })
        }),
        (text(), any::<bool>(), maybe(any::<u32>())).prop_map(|(name, prefix, limit)| S::FindUser(
            FindUser {
                name,
                prefix,
                limit
            }
        )),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    use AnonymousRequest as A;
    prop_oneof![
        (uid(), text(), maybe(any::<u32>())).prop_map(|(id, password, proto)| {
            Request::Anonymous(A::Login(Login {
                id,
                password,
                proto,
            }))
        }),
        (text(), text(), maybe(any::<u32>())).prop_map(|(name, password, proto)| {
            Request::Anonymous(A::Register(Register {
                name,
                password,
                proto,
            }))
        }),
        text().prop_map(|token| Request::Anonymous(A::Resume(Resume { token }))),
        session_request().prop_map(Request::Session),
        Just(Request::Ping),
        Just(Request::Pong),
    ]
}

fn user() -> impl Strategy<Value = UserInfo> {
    (uid(), text()).prop_map(|(id, name)| UserInfo { id, name })
}

fn message() -> impl Strategy<Value = Message> {
    (any::<i64>(), user(), target(), text(), any::<i64>()).prop_map(
        |(id, sender, target, body, sent_at_ms)| Message {
            id: MessageId(id),
            sender,
            target,
            body,
            client_msg_id: None,
            sent_at_ms,
        },
    )
}

fn entry() -> impl Strategy<Value = InboxEntry> {
    (any::<i64>(), message()).prop_map(|(seq, message)| InboxEntry {
        seq: Seq(seq),
        message,
    })
}

fn conversation() -> impl Strategy<Value = ConversationSummary> {
    (target(), text(), message(), any::<u64>(), any::<i64>()).prop_map(
        |(with, name, last, unread, read)| ConversationSummary {
            with,
            name,
            last,
            unread,
            read: MessageId(read),
        },
    )
}

fn friend() -> impl Strategy<Value = FriendEntry> {
    (user(), any::<bool>()).prop_map(|(user, online)| FriendEntry { user, online })
}

fn member() -> impl Strategy<Value = MemberEntry> {
    (user(), any::<bool>(), any::<bool>()).prop_map(|(user, creator, online)| MemberEntry {
        member: Member {
            user,
            role: if creator { Role::Creator } else { Role::Normal },
        },
        online,
    })
}

fn group() -> impl Strategy<Value = GroupEntry> {
    (gid(), text(), text(), prop::collection::vec(member(), 0..4)).prop_map(
        |(id, name, desc, users)| GroupEntry {
            group: GroupInfo { id, name, desc },
            users,
        },
    )
}

fn code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(ErrorCode::ALL.to_vec())
}

fn token() -> impl Strategy<Value = ResumeToken> {
    (text(), any::<i64>()).prop_map(|(token, expires)| ResumeToken { token, expires })
}

fn rid() -> impl Strategy<Value = Option<u64>> {
    maybe(any::<u64>())
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (
            rid(),
            user(),
            prop::collection::vec(friend(), 0..4),
            prop::collection::vec(group(), 0..3),
            any::<i64>(),
            maybe(token())
        )
            .prop_map(|(rid, user, friends, groups, cursor, resume)| {
                ServerFrame::LoginOk(Box::new(LoginOk {
                    rid,
                    user,
                    friends,
                    groups,
                    cursor: Seq(cursor),
                    resume,
                }))
            }),
        (rid(), uid()).prop_map(|(rid, id)| ServerFrame::RegisterOk { rid, id }),
        (any::<i64>(), message()).prop_map(|(seq, message)| ServerFrame::Push {
            seq: Seq(seq),
            message: Arc::new(message)
        }),
        (code(), maybe(any::<u32>()), rid(), text()).prop_map(|(code, req, rid, detail)| {
            ServerFrame::Error(ErrorReply::with_detail(code, req, rid, detail))
        }),
        (
            rid(),
            any::<u32>(),
            maybe(gid()),
            maybe(any::<i64>()),
            maybe(token()),
            maybe(any::<i64>())
        )
            .prop_map(
                |(rid, req, groupid, seq, resume, mid)| ServerFrame::Ack(Ack {
                    rid,
                    req,
                    groupid,
                    seq: seq.map(Seq),
                    resume,
                    mid: mid.map(MessageId),
                })
            ),
        (
            rid(),
            any::<u32>(),
            any::<i64>(),
            maybe(text()),
            any::<i64>(),
            any::<bool>()
        )
            .prop_map(|(rid, req, mid, cmid, sent_at_ms, duplicate)| {
                ServerFrame::ChatAck(ChatAck {
                    rid,
                    req,
                    mid: MessageId(mid),
                    cmid,
                    sent_at_ms,
                    duplicate,
                })
            }),
        (rid(), prop::collection::vec(entry(), 0..4), any::<bool>())
            .prop_map(|(rid, entries, more)| ServerFrame::Sync(MessagePage { rid, entries, more })),
        (rid(), prop::collection::vec(message(), 0..4), any::<bool>()).prop_map(
            |(rid, messages, more)| ServerFrame::History {
                rid,
                messages,
                more
            }
        ),
        (rid(), prop::collection::vec(friend(), 0..4))
            .prop_map(|(rid, friends)| ServerFrame::Friends { rid, friends }),
        (rid(), prop::collection::vec(group(), 0..3))
            .prop_map(|(rid, groups)| ServerFrame::Groups { rid, groups }),
        (rid(), gid(), prop::collection::vec(member(), 0..4)).prop_map(|(rid, groupid, users)| {
            ServerFrame::Members {
                rid,
                groupid,
                users,
            }
        }),
        (
            rid(),
            prop::collection::vec(conversation(), 0..4),
            any::<bool>()
        )
            .prop_map(|(rid, conversations, more)| ServerFrame::Conversations {
                rid,
                conversations,
                more
            }),
        (rid(), prop::collection::vec(friend(), 0..4))
            .prop_map(|(rid, users)| ServerFrame::Users { rid, users }),
        Just(ServerFrame::Ping),
        rid().prop_map(|rid| ServerFrame::Pong { rid }),
        code().prop_map(|code| ServerFrame::Kicked { code }),
    ]
}

/// One frame's bytes without its terminator, checking that there is
/// exactly one, at the end.
fn one_line(bytes: &[u8]) -> Result<&[u8], TestCaseError> {
    prop_assert_eq!(
        bytes.iter().position(|&b| b == b'\n'),
        Some(bytes.len() - 1)
    );
    Ok(&bytes[..bytes.len() - 1])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn client_frames_decode_to_what_was_encoded(rid in rid(), request in request()) {
        let frame = ClientFrame { rid, request };
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        let decoded = ClientFrame::decode(one_line(&bytes)?);
        prop_assert_eq!(decoded, Ok(frame));
    }

    #[test]
    fn native_server_frames_decode_to_what_was_encoded(frame in server_frame()) {
        let mut bytes = Vec::new();
        prop_assert!(frame.encode(Dialect::Native, &mut bytes), "native drops nothing");
        let decoded = ServerFrame::decode(one_line(&bytes)?);
        prop_assert_eq!(decoded, Ok(frame));
    }
}
