//! Server→client frames and their encoding in each dialect.
//!
//! The legacy dialect reproduces the seed's shapes: lists as arrays of
//! JSON-encoded strings, no success acks, failures of login and register as
//! the seed's own replies, and a login reply kept under the seed client's
//! 1024-byte read.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, Local, TimeZone, Timelike, Utc};
use serde::Serialize;

use super::{Dialect, ErrorCode, msgid};
use crate::model::{
    GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Seq, Target, UserId, UserInfo,
};

/// The seed client reads each reply with one 1024-byte `recv` and needs
/// room for a terminating NUL, so a legacy frame (with its `\n`) must stay
/// below this many bytes to be read whole.
pub const LEGACY_READ_LIMIT: usize = 1024;

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// `LOGIN_ACK` (2) on success.
    LoginOk(Box<LoginOk>),
    /// `REG_ACK` (4) on success.
    RegisterOk { rid: Option<u64>, id: UserId },
    /// A stored message delivered to a recipient (5 or 9); `seq` is its
    /// position in the recipient's inbox.
    Push { seq: Seq, message: Arc<Message> },
    /// `ERROR` (11); in legacy, the seed's failed 2 or 4 for login/register.
    Error(ErrorReply),
    /// `ACK` (12); native only.
    Ack(Ack),
    /// `CHAT_ACK` (13); native only.
    ChatAck(ChatAck),
    /// `SYNC_ACK` (16).
    Sync(MessagePage),
    /// `HISTORY_ACK` (18): messages newest first, without `seq`.
    History {
        rid: Option<u64>,
        messages: Vec<Message>,
        more: bool,
    },
    /// `FRIENDS_ACK` (20).
    Friends {
        rid: Option<u64>,
        friends: Vec<FriendEntry>,
    },
    /// `GROUPS_ACK` (22).
    Groups {
        rid: Option<u64>,
        groups: Vec<GroupEntry>,
    },
    /// `MEMBERS_ACK` (24).
    Members {
        rid: Option<u64>,
        groupid: GroupId,
        users: Vec<MemberEntry>,
    },
    /// `PING` (27), sent to idle native connections.
    Ping,
    /// `PONG` (28).
    Pong { rid: Option<u64> },
    /// `KICKED` (29): the session ends; legacy gets a chat line from
    /// `system` instead.
    Kicked { code: ErrorCode },
}

/// The body of a successful login.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginOk {
    pub rid: Option<u64>,
    pub user: UserInfo,
    pub friends: Vec<FriendEntry>,
    pub groups: Vec<GroupEntry>,
    /// The acked cursor: the backlog that follows starts after it.
    pub cursor: Seq,
    /// The first page of inbox entries after `cursor`, sent with or right
    /// after the reply (see [`encode_login`]).
    pub backlog: Vec<InboxEntry>,
    /// A token to log in again without the password (native only).
    pub resume: Option<ResumeToken>,
}

/// A friend with its presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FriendEntry {
    pub user: UserInfo,
    pub online: bool,
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub group: GroupInfo,
    pub users: Vec<MemberEntry>,
}

/// A group member with presence and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    pub member: Member,
    pub online: bool,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub rid: Option<u64>,
    /// The `msgid` of the refused request, when known.
    pub req: Option<u32>,
    pub code: ErrorCode,
    /// Readable detail; the code's default message when empty.
    pub detail: String,
}

impl ErrorReply {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode, req: Option<u32>, rid: Option<u64>) -> ErrorReply {
        ErrorReply {
            rid,
            req,
            code,
            detail: String::new(),
        }
    }

    fn errmsg(&self) -> &str {
        if self.detail.is_empty() {
            self.code.message()
        } else {
            &self.detail
        }
    }
}

/// A resume token as the client receives it (see `service::resume`).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ResumeToken {
    pub token: String,
    /// Unix seconds after which the token is refused.
    pub expires: i64,
}

// A token is a credential: it never reaches a log through `Debug`.
impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeToken")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Success of a request that has no reply of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub rid: Option<u64>,
    pub req: u32,
    /// The new group, for `CREATE_GROUP`.
    pub groupid: Option<GroupId>,
    /// The acked cursor, for `DELIVERED`.
    pub seq: Option<Seq>,
    /// The new resume token, for `CHANGE_PASSWORD` (the old ones are revoked).
    pub resume: Option<ResumeToken>,
}

/// A chat message is stored: it will reach its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatAck {
    pub rid: Option<u64>,
    pub req: u32,
    pub mid: MessageId,
    pub cmid: Option<String>,
    pub sent_at_ms: i64,
    /// True when this was a resend of a message already stored.
    pub duplicate: bool,
}

/// A page of inbox entries.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub rid: Option<u64>,
    pub entries: Vec<InboxEntry>,
    /// More entries follow after the last one.
    pub more: bool,
}

/// Formats server time as the seed does (`YYYY-MM-DD HH:MM:SS`, local).
pub fn format_time(ms: i64) -> String {
    let Some(utc) = DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    let t = utc.naive_utc() + local_offset(ms.div_euclid(60_000), &utc);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The local UTC offset at `utc`, remembered per thread for the minute
/// `minute` (UTC). Every frame with a time needs it, and asking the system
/// zone each time (an environment read and a file check in chrono) cost
/// more than encoding the rest of the frame; zone transitions fall on whole
/// minutes, so a minute's offset holds for all of it.
fn local_offset(minute: i64, utc: &DateTime<Utc>) -> FixedOffset {
    thread_local! {
        static CACHED: Cell<Option<(i64, FixedOffset)>> = const { Cell::new(None) };
    }
    CACHED.with(|cached| match cached.get() {
        Some((m, offset)) if m == minute => offset,
        _ => {
            let offset = Local.offset_from_utc_datetime(&utc.naive_utc());
            cached.set(Some((minute, offset)));
            offset
        }
    })
}

#[derive(Serialize)]
struct ChatView<'a> {
    msgid: u32,
    id: UserId,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    toid: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    msg: &'a str,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mid: Option<MessageId>,
}

impl<'a> ChatView<'a> {
    fn new(message: &'a Message, seq: Option<Seq>, dialect: Dialect) -> ChatView<'a> {
        let (msgid, toid, groupid) = match message.target {
            Target::User(to) => (msgid::ONE_CHAT, Some(to), None),
            Target::Group(g) => (msgid::GROUP_CHAT, None, Some(g)),
        };
        let native = dialect == Dialect::Native;
        ChatView {
            msgid,
            id: message.sender.id,
            name: &message.sender.name,
            toid,
            groupid,
            msg: &message.body,
            time: format_time(message.sent_at_ms),
            seq: seq.filter(|_| native),
            mid: Some(message.id).filter(|_| native),
        }
    }
}

#[derive(Serialize)]
struct FriendView<'a> {
    id: UserId,
    name: &'a str,
    state: &'static str,
}

impl<'a> From<&'a FriendEntry> for FriendView<'a> {
    fn from(f: &'a FriendEntry) -> Self {
        FriendView {
            id: f.user.id,
            name: &f.user.name,
            state: state(f.online),
        }
    }
}

#[derive(Serialize)]
struct MemberView<'a> {
    id: UserId,
    name: &'a str,
    state: &'static str,
    role: &'static str,
}

impl<'a> From<&'a MemberEntry> for MemberView<'a> {
    fn from(m: &'a MemberEntry) -> Self {
        MemberView {
            id: m.member.user.id,
            name: &m.member.user.name,
            state: state(m.online),
            role: m.member.role.as_str(),
        }
    }
}

/// A group; `users` is either nested objects (native) or JSON strings
/// (legacy).
#[derive(Serialize)]
struct GroupView<'a, U> {
    id: GroupId,
    groupname: &'a str,
    groupdesc: &'a str,
    users: Vec<U>,
}

fn state(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

/// Serialises a value that is made only of strings, numbers and derived
/// structs; that cannot fail, so a failure is a bug worth a loud log.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising a server frame failed");
        String::from("{}")
    })
}

fn legacy_strings<'a, T: 'a, V: Serialize + From<&'a T>>(items: &'a [T]) -> Vec<String> {
    items.iter().map(|i| to_json(&V::from(i))).collect()
}

fn group_view_native(g: &GroupEntry) -> GroupView<'_, MemberView<'_>> {
    GroupView {
        id: g.group.id,
        groupname: &g.group.name,
        groupdesc: &g.group.desc,
        users: g.users.iter().map(MemberView::from).collect(),
    }
}

fn group_view_legacy(g: &GroupEntry) -> GroupView<'_, String> {
    GroupView {
        id: g.group.id,
        groupname: &g.group.name,
        groupdesc: &g.group.desc,
        users: legacy_strings::<MemberEntry, MemberView<'_>>(&g.users),
    }
}

#[derive(Serialize)]
struct NativeLogin<'a> {
    msgid: u32,
    errno: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    id: UserId,
    name: &'a str,
    proto: u32,
    cursor: Seq,
    friends: Vec<FriendView<'a>>,
    groups: Vec<GroupView<'a, MemberView<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<ResumeView<'a>>,
}

/// `"resume": {"token": "...", "expires": <Unix seconds>}`.
#[derive(Serialize)]
struct ResumeView<'a> {
    token: &'a str,
    expires: i64,
}

impl<'a> From<&'a ResumeToken> for ResumeView<'a> {
    fn from(t: &'a ResumeToken) -> Self {
        ResumeView {
            token: &t.token,
            expires: t.expires,
        }
    }
}

#[derive(Serialize)]
struct LegacyLogin<'a> {
    msgid: u32,
    errno: u32,
    id: UserId,
    name: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    friends: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offlinemsg: Vec<String>,
}

/// Encodes a successful login reply (with its `\n`) into `out` and returns
/// how many entries of `backlog` it carries.
///
/// Native replies carry none: the backlog follows as pushes. Legacy replies
/// carry, as `offlinemsg`, as many leading entries as keep the frame under
/// [`LEGACY_READ_LIMIT`]; the caller sends the rest as separate frames.
pub fn encode_login(
    login: &LoginOk,
    backlog: &[InboxEntry],
    dialect: Dialect,
    out: &mut Vec<u8>,
) -> usize {
    match dialect {
        Dialect::Native => {
            let view = NativeLogin {
                msgid: msgid::LOGIN_ACK,
                errno: 0,
                rid: login.rid,
                id: login.user.id,
                name: &login.user.name,
                proto: super::NATIVE_PROTO,
                cursor: login.cursor,
                friends: login.friends.iter().map(FriendView::from).collect(),
                groups: login.groups.iter().map(group_view_native).collect(),
                resume: login.resume.as_ref().map(ResumeView::from),
            };
            push_json(out, &view);
            0
        }
        Dialect::Legacy => {
            let mut view = LegacyLogin {
                msgid: msgid::LOGIN_ACK,
                errno: 0,
                id: login.user.id,
                name: &login.user.name,
                friends: legacy_strings::<FriendEntry, FriendView<'_>>(&login.friends),
                groups: login
                    .groups
                    .iter()
                    .map(|g| to_json(&group_view_legacy(g)))
                    .collect(),
                offlinemsg: Vec::new(),
            };
            let mut encoded = to_json(&view);
            for entry in backlog {
                view.offlinemsg
                    .push(to_json(&ChatView::new(&entry.message, None, dialect)));
                let candidate = to_json(&view);
                if candidate.len() + 1 >= LEGACY_READ_LIMIT {
                    view.offlinemsg.pop();
                    break;
                }
                encoded = candidate;
            }
            out.extend_from_slice(encoded.as_bytes());
            out.push(b'\n');
            view.offlinemsg.len()
        }
    }
}

fn push_json<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    out.extend_from_slice(to_json(value).as_bytes());
    out.push(b'\n');
}

#[derive(Serialize)]
struct ErrorView<'a> {
    msgid: u32,
    errno: u32,
    errmsg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    req: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
}

#[derive(Serialize)]
struct AckView<'a> {
    msgid: u32,
    req: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume: Option<ResumeView<'a>>,
}

#[derive(Serialize)]
struct ChatAckView<'a> {
    msgid: u32,
    req: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    mid: MessageId,
    #[serde(skip_serializing_if = "Option::is_none")]
    cmid: Option<&'a str>,
    time: String,
    dup: bool,
}

#[derive(Serialize)]
struct PageView<'a> {
    msgid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    msgs: Vec<ChatView<'a>>,
    more: bool,
}

#[derive(Serialize)]
struct ListView<T> {
    msgid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groupid: Option<GroupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    friends: Option<Vec<T>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<T>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    users: Option<Vec<T>>,
}

impl<T> ListView<T> {
    fn new(msgid: u32, rid: Option<u64>) -> ListView<T> {
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

#[derive(Serialize)]
struct Bare {
    msgid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<u64>,
}

impl ServerFrame {
    /// Appends this frame (with its `\n`) to `out` as `dialect` shapes it.
    /// Returns false, writing nothing, for a frame that dialect never gets
    /// (success acks and heartbeats in legacy).
    pub fn encode(&self, dialect: Dialect, out: &mut Vec<u8>) -> bool {
        let legacy = dialect == Dialect::Legacy;
        match self {
            ServerFrame::LoginOk(login) => {
                // The backlog is the connection's to send (it must know how
                // much of it the reply carried): see `encode_login`.
                encode_login(login, &[], dialect, out);
            }
            ServerFrame::RegisterOk { rid, id } => {
                #[derive(Serialize)]
                struct View {
                    msgid: u32,
                    errno: u32,
                    id: UserId,
                    #[serde(skip_serializing_if = "Option::is_none")]
                    rid: Option<u64>,
                }
                push_json(
                    out,
                    &View {
                        msgid: msgid::REG_ACK,
                        errno: 0,
                        id: *id,
                        rid: *rid,
                    },
                );
            }
            ServerFrame::Push { seq, message } => {
                push_json(out, &ChatView::new(message, Some(*seq), dialect));
            }
            ServerFrame::Error(e) => {
                // The seed client waits for a 2 or a 4 after login and
                // register, and reads errno 1 as failure.
                let (msgid, errno) = match e.req {
                    Some(msgid::LOGIN) if legacy => (msgid::LOGIN_ACK, 1),
                    Some(msgid::REG) if legacy => (msgid::REG_ACK, 1),
                    _ => (msgid::ERROR, e.code.errno()),
                };
                push_json(
                    out,
                    &ErrorView {
                        msgid,
                        errno,
                        errmsg: e.errmsg(),
                        req: e.req.filter(|_| msgid == msgid::ERROR),
                        rid: e.rid,
                    },
                );
            }
            ServerFrame::Ack(ack) => {
                if legacy {
                    return false;
                }
                push_json(
                    out,
                    &AckView {
                        msgid: msgid::ACK,
                        req: ack.req,
                        rid: ack.rid,
                        groupid: ack.groupid,
                        seq: ack.seq,
                        resume: ack.resume.as_ref().map(ResumeView::from),
                    },
                );
            }
            ServerFrame::ChatAck(ack) => {
                if legacy {
                    return false;
                }
                push_json(
                    out,
                    &ChatAckView {
                        msgid: msgid::CHAT_ACK,
                        req: ack.req,
                        rid: ack.rid,
                        mid: ack.mid,
                        cmid: ack.cmid.as_deref(),
                        time: format_time(ack.sent_at_ms),
                        dup: ack.duplicate,
                    },
                );
            }
            ServerFrame::Sync(page) => push_json(
                out,
                &PageView {
                    msgid: msgid::SYNC_ACK,
                    rid: page.rid,
                    msgs: page
                        .entries
                        .iter()
                        .map(|e| ChatView::new(&e.message, Some(e.seq), Dialect::Native))
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
                    msgs: messages
                        .iter()
                        .map(|m| ChatView::new(m, None, Dialect::Native))
                        .collect(),
                    more: *more,
                },
            ),
            ServerFrame::Friends { rid, friends } => {
                if legacy {
                    let mut view = ListView::new(msgid::FRIENDS_ACK, *rid);
                    view.friends = Some(legacy_strings::<FriendEntry, FriendView<'_>>(friends));
                    push_json(out, &view);
                } else {
                    let mut view = ListView::new(msgid::FRIENDS_ACK, *rid);
                    view.friends = Some(friends.iter().map(FriendView::from).collect());
                    push_json(out, &view);
                }
            }
            ServerFrame::Groups { rid, groups } => {
                if legacy {
                    let mut view = ListView::new(msgid::GROUPS_ACK, *rid);
                    view.groups = Some(
                        groups
                            .iter()
                            .map(|g| to_json(&group_view_legacy(g)))
                            .collect(),
                    );
                    push_json(out, &view);
                } else {
                    let mut view = ListView::new(msgid::GROUPS_ACK, *rid);
                    view.groups = Some(groups.iter().map(group_view_native).collect());
                    push_json(out, &view);
                }
            }
            ServerFrame::Members {
                rid,
                groupid,
                users,
            } => {
                if legacy {
                    let mut view = ListView::new(msgid::MEMBERS_ACK, *rid);
                    view.groupid = Some(*groupid);
                    view.users = Some(legacy_strings::<MemberEntry, MemberView<'_>>(users));
                    push_json(out, &view);
                } else {
                    let mut view = ListView::new(msgid::MEMBERS_ACK, *rid);
                    view.groupid = Some(*groupid);
                    view.users = Some(users.iter().map(MemberView::from).collect());
                    push_json(out, &view);
                }
            }
            ServerFrame::Ping => {
                if legacy {
                    return false;
                }
                push_json(
                    out,
                    &Bare {
                        msgid: msgid::PING,
                        rid: None,
                    },
                );
            }
            ServerFrame::Pong { rid } => push_json(
                out,
                &Bare {
                    msgid: msgid::PONG,
                    rid: *rid,
                },
            ),
            ServerFrame::Kicked { code } => {
                if legacy {
                    // The seed client shows only chat frames; a line from a
                    // system sender tells its user why the connection ends.
                    #[derive(Serialize)]
                    struct Notice<'a> {
                        msgid: u32,
                        id: i64,
                        name: &'a str,
                        msg: &'a str,
                        time: String,
                    }
                    push_json(
                        out,
                        &Notice {
                            msgid: msgid::ONE_CHAT,
                            id: 0,
                            name: "system",
                            msg: code.message(),
                            time: format_time(chrono::Utc::now().timestamp_millis()),
                        },
                    );
                } else {
                    push_json(
                        out,
                        &ErrorView {
                            msgid: msgid::KICKED,
                            errno: code.errno(),
                            errmsg: code.message(),
                            req: None,
                            rid: None,
                        },
                    );
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Local, TimeZone};

    use super::format_time;

    #[test]
    fn time_is_formatted_in_the_local_zone_like_chrono_does() {
        // Spread over years, seasons (both sides of any DST change) and
        // minute boundaries, each twice so the second hits the cache.
        let samples = [
            0,
            1_700_000_000_123,
            1_711_846_799_999,
            1_711_846_800_000,
            1_730_000_000_000,
        ];
        for ms in samples.into_iter().chain(samples) {
            let expected = Local
                .timestamp_millis_opt(ms)
                .single()
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            assert_eq!(format_time(ms), expected, "at {ms} ms");
        }
    }

    #[test]
    fn out_of_range_times_format_as_empty() {
        assert_eq!(format_time(i64::MAX), "");
    }
}
