//! The native dialect's server frames, both ways: the server encodes them,
//! our clients decode them. One view struct per shape, serialised from
//! borrowed values and deserialised into owned ones.

use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::reply::DecodeError;
use super::time::format_time;
use super::{
    Ack, ChatAck, ErrorCode, ErrorReply, FriendEntry, GroupEntry, LoginOk, MemberEntry,
    MessagePage, NATIVE_PROTO, ResumeToken, ServerFrame, msgid, push_json,
};
use crate::model::{
    ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Role, Seq,
    Target, UserId, UserInfo,
};

/// A chat message: a push, or an element of a sync or history page.
#[derive(Serialize, Deserialize)]
pub(super) struct ChatView<'a> {
    pub(super) msgid: u32,
    pub(super) id: UserId,
    pub(super) name: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) toid: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) groupid: Option<GroupId>,
    pub(super) msg: Cow<'a, str>,
    /// The seed's local time string; `ts` is the same instant for programs.
    pub(super) time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mid: Option<MessageId>,
}

impl<'a> ChatView<'a> {
    /// The seed's fields only (legacy).
    pub(super) fn seed(message: &'a Message) -> ChatView<'a> {
        let (msgid, toid, groupid) = match message.target {
            Target::User(to) => (msgid::ONE_CHAT, Some(to), None),
            Target::Group(g) => (msgid::GROUP_CHAT, None, Some(g)),
        };
        ChatView {
            msgid,
            id: message.sender.id,
            name: Cow::Borrowed(&message.sender.name),
            toid,
            groupid,
            msg: Cow::Borrowed(&message.body),
            time: format_time(message.sent_at_ms),
            ts: None,
            seq: None,
            mid: None,
        }
    }

    fn native(message: &'a Message, seq: Option<Seq>) -> ChatView<'a> {
        ChatView {
            ts: Some(message.sent_at_ms),
            seq,
            mid: Some(message.id),
            ..ChatView::seed(message)
        }
    }

    fn into_message(self) -> Result<(Option<Seq>, Message), DecodeError> {
        let target = match (self.msgid, self.toid, self.groupid) {
            (msgid::ONE_CHAT, Some(to), _) => Target::User(to),
            (msgid::GROUP_CHAT, _, Some(group)) => Target::Group(group),
            _ => return Err(DecodeError("a chat message without its target".into())),
        };
        let message = Message {
            id: self.mid.ok_or_else(|| missing("mid"))?,
            sender: UserInfo {
                id: self.id,
                name: self.name.into_owned(),
            },
            target,
            body: self.msg.into_owned(),
            client_msg_id: None,
            sent_at_ms: self.ts.ok_or_else(|| missing("ts"))?,
        };
        Ok((self.seq, message))
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct FriendView<'a> {
    id: UserId,
    name: Cow<'a, str>,
    state: Cow<'a, str>,
}

impl<'a> From<&'a FriendEntry> for FriendView<'a> {
    fn from(f: &'a FriendEntry) -> Self {
        FriendView {
            id: f.user.id,
            name: Cow::Borrowed(&f.user.name),
            state: Cow::Borrowed(state(f.online)),
        }
    }
}

/// `PRESENCE` (32).
#[derive(Serialize, Deserialize)]
struct PresenceView<'a> {
    msgid: u32,
    id: UserId,
    state: Cow<'a, str>,
}

impl FriendView<'_> {
    fn into_entry(self) -> FriendEntry {
        FriendEntry {
            user: UserInfo {
                id: self.id,
                name: self.name.into_owned(),
            },
            online: self.state == "online",
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(super) struct MemberView<'a> {
    id: UserId,
    name: Cow<'a, str>,
    state: Cow<'a, str>,
    role: Cow<'a, str>,
}

impl<'a> From<&'a MemberEntry> for MemberView<'a> {
    fn from(m: &'a MemberEntry) -> Self {
        MemberView {
            id: m.member.user.id,
            name: Cow::Borrowed(&m.member.user.name),
            state: Cow::Borrowed(state(m.online)),
            role: Cow::Borrowed(m.member.role.as_str()),
        }
    }
}

impl MemberView<'_> {
    fn into_entry(self) -> MemberEntry {
        MemberEntry {
            member: Member {
                user: UserInfo {
                    id: self.id,
                    name: self.name.into_owned(),
                },
                role: Role::from_stored(&self.role),
            },
            online: self.state == "online",
        }
    }
}

/// A group; `users` is either nested objects (native) or JSON strings
/// (legacy).
#[derive(Serialize, Deserialize)]
pub(super) struct GroupView<'a, U> {
    pub(super) id: GroupId,
    pub(super) groupname: Cow<'a, str>,
    pub(super) groupdesc: Cow<'a, str>,
    pub(super) users: Vec<U>,
}

impl<'a, U> GroupView<'a, U> {
    /// The group's own fields, with `users` made by `user`.
    pub(super) fn of(g: &'a GroupEntry, user: impl Fn(&'a MemberEntry) -> U) -> Self {
        GroupView {
            id: g.group.id,
            groupname: Cow::Borrowed(&g.group.name),
            groupdesc: Cow::Borrowed(&g.group.desc),
            users: g.users.iter().map(user).collect(),
        }
    }
}

impl GroupView<'_, MemberView<'_>> {
    fn into_entry(self) -> GroupEntry {
        GroupEntry {
            group: GroupInfo {
                id: self.id,
                name: self.groupname.into_owned(),
                desc: self.groupdesc.into_owned(),
            },
            users: self.users.into_iter().map(MemberView::into_entry).collect(),
        }
    }
}

pub(super) fn state(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

#[derive(Serialize, Deserialize)]
struct LoginView<'a> {
    msgid: u32,
    errno: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    id: UserId,
    name: Cow<'a, str>,
    proto: u32,
    cursor: Seq,
    friends: Vec<FriendView<'a>>,
    groups: Vec<GroupView<'a, MemberView<'a>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<Cow<'a, ResumeToken>>,
}

#[derive(Serialize, Deserialize)]
struct RegisterView {
    msgid: u32,
    errno: u32,
    id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
}

/// `ERROR` and `KICKED`.
#[derive(Serialize, Deserialize)]
pub(super) struct ErrorView<'a> {
    pub(super) msgid: u32,
    pub(super) errno: u32,
    pub(super) errmsg: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) req: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rid: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct AckView<'a> {
    msgid: u32,
    req: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<Cow<'a, ResumeToken>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mid: Option<MessageId>,
}

#[derive(Serialize, Deserialize)]
struct ChatAckView<'a> {
    msgid: u32,
    req: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    mid: MessageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmid: Option<Cow<'a, str>>,
    time: String,
    ts: i64,
    dup: bool,
}

#[derive(Serialize, Deserialize)]
struct PageView<'a> {
    msgid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    msgs: Vec<ChatView<'a>>,
    more: bool,
}

/// The lists: `FRIENDS_ACK`, `GROUPS_ACK`, `MEMBERS_ACK`; `T` is the
/// element's shape in the dialect.
#[derive(Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub(super) struct ListView<T> {
    pub(super) msgid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rid: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) groupid: Option<GroupId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) friends: Option<Vec<T>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) groups: Option<Vec<T>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) users: Option<Vec<T>>,
}

impl<T> ListView<T> {
    pub(super) fn new(msgid: u32, rid: Option<u64>) -> ListView<T> {
        ListView {
            msgid,
            rid,
            groupid: None,
            friends: None,
            groups: None,
            users: None,
        }
    }
}

/// One conversation of `CONVERSATIONS_ACK`: the other user (`toid`) or
/// the group (`groupid`), its name, newest message and read state.
#[derive(Serialize, Deserialize)]
struct ConversationView<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    toid: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    name: Cow<'a, str>,
    last: ChatView<'a>,
    unread: u64,
    read: MessageId,
}

impl<'a> From<&'a ConversationSummary> for ConversationView<'a> {
    fn from(c: &'a ConversationSummary) -> Self {
        let (toid, groupid) = match c.with {
            Target::User(user) => (Some(user), None),
            Target::Group(group) => (None, Some(group)),
        };
        ConversationView {
            toid,
            groupid,
            name: Cow::Borrowed(&c.name),
            last: ChatView::native(&c.last, None),
            unread: c.unread,
            read: c.read,
        }
    }
}

impl ConversationView<'_> {
    fn into_summary(self) -> Result<ConversationSummary, DecodeError> {
        let with = match (self.toid, self.groupid) {
            (Some(user), None) => Target::User(user),
            (None, Some(group)) => Target::Group(group),
            _ => {
                return Err(DecodeError(
                    "a conversation needs exactly one of `toid` and `groupid`".into(),
                ));
            }
        };
        Ok(ConversationSummary {
            with,
            name: self.name.into_owned(),
            last: self.last.into_message()?.1,
            unread: self.unread,
            read: self.read,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct ConversationsView<'a> {
    msgid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    conversations: Vec<ConversationView<'a>>,
    more: bool,
}

/// `PING` and `PONG`.
#[derive(Serialize, Deserialize)]
pub(super) struct Bare {
    pub(super) msgid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rid: Option<u64>,
}

/// Appends `frame` in the native dialect, with its `\n`.
pub(super) fn encode(frame: &ServerFrame, out: &mut Vec<u8>) {
    match frame {
        ServerFrame::LoginOk(login) => push_json(
            out,
            &LoginView {
                msgid: msgid::LOGIN_ACK,
                errno: 0,
                rid: login.rid,
                id: login.user.id,
                name: Cow::Borrowed(&login.user.name),
                proto: NATIVE_PROTO,
                cursor: login.cursor,
                friends: login.friends.iter().map(FriendView::from).collect(),
                groups: login
                    .groups
                    .iter()
                    .map(|g| GroupView::of(g, MemberView::from))
                    .collect(),
                resume: login.resume.as_ref().map(Cow::Borrowed),
            },
        ),
        ServerFrame::RegisterOk { rid, id } => push_json(
            out,
            &RegisterView {
                msgid: msgid::REG_ACK,
                errno: 0,
                id: *id,
                rid: *rid,
            },
        ),
        ServerFrame::Push { seq, message } => {
            push_json(out, &ChatView::native(message, Some(*seq)));
        }
        ServerFrame::Error(e) => push_json(
            out,
            &ErrorView {
                msgid: msgid::ERROR,
                errno: e.code.errno(),
                errmsg: Cow::Borrowed(&e.detail),
                req: e.req,
                rid: e.rid,
            },
        ),
        ServerFrame::Ack(ack) => push_json(
            out,
            &AckView {
                msgid: msgid::ACK,
                req: ack.req,
                rid: ack.rid,
                groupid: ack.groupid,
                seq: ack.seq,
                resume: ack.resume.as_ref().map(Cow::Borrowed),
                mid: ack.mid,
            },
        ),
        ServerFrame::ChatAck(ack) => push_json(
            out,
            &ChatAckView {
                msgid: msgid::CHAT_ACK,
                req: ack.req,
                rid: ack.rid,
                mid: ack.mid,
                cmid: ack.cmid.as_deref().map(Cow::Borrowed),
                time: format_time(ack.sent_at_ms),
                ts: ack.sent_at_ms,
                dup: ack.duplicate,
            },
        ),
        ServerFrame::Sync(page) => push_json(
            out,
            &PageView {
                msgid: msgid::SYNC_ACK,
                rid: page.rid,
                msgs: page
                    .entries
                    .iter()
                    .map(|e| ChatView::native(&e.message, Some(e.seq)))
                    .collect(),
                more: page.more,
            },
        ),
        ServerFrame::History {
            rid,
            messages,
            more,
        } => push_json(
            out,
            &PageView {
                msgid: msgid::HISTORY_ACK,
                rid: *rid,
                msgs: messages.iter().map(|m| ChatView::native(m, None)).collect(),
                more: *more,
            },
        ),
        ServerFrame::Friends { rid, friends } => {
            let mut view = ListView::new(msgid::FRIENDS_ACK, *rid);
            view.friends = Some(friends.iter().map(FriendView::from).collect());
            push_json(out, &view);
        }
        ServerFrame::Groups { rid, groups } => {
            let mut view = ListView::new(msgid::GROUPS_ACK, *rid);
            view.groups = Some(
                groups
                    .iter()
                    .map(|g| GroupView::of(g, MemberView::from))
                    .collect(),
            );
            push_json(out, &view);
        }
        ServerFrame::Members {
            rid,
            groupid,
            users,
        } => {
            let mut view = ListView::new(msgid::MEMBERS_ACK, *rid);
            view.groupid = Some(*groupid);
            view.users = Some(users.iter().map(MemberView::from).collect());
            push_json(out, &view);
        }
        ServerFrame::Conversations {
            rid,
            conversations,
            more,
        } => push_json(
            out,
            &ConversationsView {
                msgid: msgid::CONVERSATIONS_ACK,
                rid: *rid,
                conversations: conversations.iter().map(ConversationView::from).collect(),
                more: *more,
            },
        ),
        ServerFrame::Users { rid, users } => {
            let mut view = ListView::new(msgid::USERS_ACK, *rid);
            view.users = Some(users.iter().map(FriendView::from).collect());
            push_json(out, &view);
        }
        ServerFrame::Ping => push_json(
            out,
            &Bare {
                msgid: msgid::PING,
                rid: None,
            },
        ),
        ServerFrame::Pong { rid } => push_json(
            out,
            &Bare {
                msgid: msgid::PONG,
                rid: *rid,
            },
        ),
        ServerFrame::Presence { user, online } => push_json(
            out,
            &PresenceView {
                msgid: msgid::PRESENCE,
                id: *user,
                state: Cow::Borrowed(state(*online)),
            },
        ),
        ServerFrame::Kicked { code } => push_json(
            out,
            &ErrorView {
                msgid: msgid::KICKED,
                errno: code.errno(),
                errmsg: Cow::Borrowed(code.message()),
                req: None,
                rid: None,
            },
        ),
    }
}

fn missing(field: &str) -> DecodeError {
    DecodeError(format!("missing `{field}`"))
}

fn view<T: DeserializeOwned>(frame: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(frame).map_err(|e| DecodeError(e.to_string()))
}

fn code(errno: u32) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_errno(errno).ok_or_else(|| DecodeError(format!("unknown errno {errno}")))
}

#[derive(Deserialize)]
struct Head {
    msgid: u32,
    #[serde(default)]
    errno: u32,
}

/// Reads one native server frame.
pub(super) fn decode(frame: &[u8]) -> Result<ServerFrame, DecodeError> {
    let head: Head = view(frame)?;
    Ok(match head.msgid {
        msgid::LOGIN_ACK | msgid::REG_ACK if head.errno != 0 => {
            // A server answering a legacy login; ours never does to a
            // native client, but say what it meant.
            let e: ErrorView<'_> = view(frame)?;
            ServerFrame::Error(ErrorReply::with_detail(
                code(e.errno)?,
                Some(head.msgid - 1),
                e.rid,
                e.errmsg,
            ))
        }
        msgid::LOGIN_ACK => {
            let v: LoginView<'_> = view(frame)?;
            ServerFrame::LoginOk(Box::new(LoginOk {
                rid: v.rid,
                user: UserInfo {
                    id: v.id,
                    name: v.name.into_owned(),
                },
                friends: v.friends.into_iter().map(FriendView::into_entry).collect(),
                groups: v.groups.into_iter().map(GroupView::into_entry).collect(),
                cursor: v.cursor,
                resume: v.resume.map(Cow::into_owned),
            }))
        }
        msgid::REG_ACK => {
            let v: RegisterView = view(frame)?;
            ServerFrame::RegisterOk {
                rid: v.rid,
                id: v.id,
            }
        }
        msgid::ONE_CHAT | msgid::GROUP_CHAT => {
            let (seq, message) = view::<ChatView<'_>>(frame)?.into_message()?;
            ServerFrame::Push {
                seq: seq.ok_or_else(|| missing("seq"))?,
                message: Arc::new(message),
            }
        }
        msgid::ERROR => {
            let e: ErrorView<'_> = view(frame)?;
            ServerFrame::Error(ErrorReply::with_detail(
                code(e.errno)?,
                e.req,
                e.rid,
                e.errmsg,
            ))
        }
        msgid::PRESENCE => {
            let v: PresenceView<'_> = view(frame)?;
            ServerFrame::Presence {
                user: v.id,
                online: v.state == "online",
            }
        }
        msgid::KICKED => ServerFrame::Kicked {
            code: code(view::<ErrorView<'_>>(frame)?.errno)?,
        },
        msgid::ACK => {
            let v: AckView<'_> = view(frame)?;
            ServerFrame::Ack(Ack {
                rid: v.rid,
                req: v.req,
                groupid: v.groupid,
                seq: v.seq,
                resume: v.resume.map(Cow::into_owned),
                mid: v.mid,
            })
        }
        msgid::CHAT_ACK => {
            let v: ChatAckView<'_> = view(frame)?;
            ServerFrame::ChatAck(ChatAck {
                rid: v.rid,
                req: v.req,
                mid: v.mid,
                cmid: v.cmid.map(Cow::into_owned),
                sent_at_ms: v.ts,
                duplicate: v.dup,
            })
        }
        msgid::SYNC_ACK => {
            let v: PageView<'_> = view(frame)?;
            let entries = v
                .msgs
                .into_iter()
                .map(|m| {
                    let (seq, message) = m.into_message()?;
                    let seq = seq.ok_or_else(|| missing("seq"))?;
                    Ok(InboxEntry { seq, message })
                })
                .collect::<Result<_, DecodeError>>()?;
            ServerFrame::Sync(MessagePage {
                rid: v.rid,
                entries,
                more: v.more,
            })
        }
        msgid::HISTORY_ACK => {
            let v: PageView<'_> = view(frame)?;
            let messages = v
                .msgs
                .into_iter()
                .map(|m| Ok(m.into_message()?.1))
                .collect::<Result<_, DecodeError>>()?;
            ServerFrame::History {
                rid: v.rid,
                messages,
                more: v.more,
            }
        }
        msgid::FRIENDS_ACK => {
            let v: ListView<FriendView<'_>> = view(frame)?;
            ServerFrame::Friends {
                rid: v.rid,
                friends: v
                    .friends
                    .ok_or_else(|| missing("friends"))?
                    .into_iter()
                    .map(FriendView::into_entry)
                    .collect(),
            }
        }
        msgid::GROUPS_ACK => {
            let v: ListView<GroupView<'_, MemberView<'_>>> = view(frame)?;
            ServerFrame::Groups {
                rid: v.rid,
                groups: v
                    .groups
                    .ok_or_else(|| missing("groups"))?
                    .into_iter()
                    .map(GroupView::into_entry)
                    .collect(),
            }
        }
        msgid::MEMBERS_ACK => {
            let v: ListView<MemberView<'_>> = view(frame)?;
            ServerFrame::Members {
                rid: v.rid,
                groupid: v.groupid.ok_or_else(|| missing("groupid"))?,
                users: v
                    .users
                    .ok_or_else(|| missing("users"))?
                    .into_iter()
                    .map(MemberView::into_entry)
                    .collect(),
            }
        }
        msgid::CONVERSATIONS_ACK => {
            let v: ConversationsView<'_> = view(frame)?;
            ServerFrame::Conversations {
                rid: v.rid,
                conversations: v
                    .conversations
                    .into_iter()
                    .map(ConversationView::into_summary)
                    .collect::<Result<_, DecodeError>>()?,
                more: v.more,
            }
        }
        msgid::USERS_ACK => {
            let v: ListView<FriendView<'_>> = view(frame)?;
            ServerFrame::Users {
                rid: v.rid,
                users: v
                    .users
                    .ok_or_else(|| missing("users"))?
                    .into_iter()
                    .map(FriendView::into_entry)
                    .collect(),
            }
        }
        msgid::PING => ServerFrame::Ping,
        msgid::PONG => ServerFrame::Pong {
            rid: view::<Bare>(frame)?.rid,
        },
        other => return Err(DecodeError(format!("unknown msgid {other}"))),
    })
}
