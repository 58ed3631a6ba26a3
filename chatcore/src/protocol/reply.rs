//! Server→client frames as typed values. How each dialect shapes them is
//! in [`native`](super::native) (both ways) and [`legacy`](super::legacy)
//! (the seed's shapes, server side only).

use std::fmt;
use std::sync::Arc;

use super::{Dialect, ErrorCode, legacy, native};
use crate::model::{
    ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Seq, UserId,
    UserInfo,
};

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// `LOGIN_ACK` (2) on success. The backlog after `cursor` follows as
    /// pushes (legacy: partly inside the reply, see
    /// [`encode_legacy_login`](super::encode_legacy_login)).
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
    /// `CONVERSATIONS_ACK` (35), native only: the caller's conversations,
    /// newest first; `more` when older ones follow.
    Conversations {
        rid: Option<u64>,
        conversations: Vec<ConversationSummary>,
        more: bool,
    },
    /// `USERS_ACK` (37), native only: users found by name, with presence.
    Users {
        rid: Option<u64>,
        users: Vec<FriendEntry>,
    },
    /// `PING` (27), sent to idle native connections.
    Ping,
    /// `PONG` (28).
    Pong { rid: Option<u64> },
    /// `KICKED` (29): the session ends; legacy gets a chat line from
    /// `system` instead.
    Kicked { code: ErrorCode },
    /// `PRESENCE` (32): a friend came online or went offline; native only.
    Presence { user: UserId, online: bool },
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
    /// A token to log in again without the password (native only).
    pub resume: Option<ResumeToken>,
}

/// A user with its presence: a friend in `FRIENDS_ACK`, a user found in
/// `USERS_ACK`.
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
    /// Readable detail, sent as `errmsg`.
    pub detail: String,
}

impl ErrorReply {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode, req: Option<u32>, rid: Option<u64>) -> ErrorReply {
        ErrorReply::with_detail(code, req, rid, code.message())
    }

    /// An error with a message of its own.
    pub fn with_detail(
        code: ErrorCode,
        req: Option<u32>,
        rid: Option<u64>,
        detail: impl Into<String>,
    ) -> ErrorReply {
        ErrorReply {
            rid,
            req,
            code,
            detail: detail.into(),
        }
    }
}

/// A resume token as the client receives it (see `service::resume`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The read position after the update, for `READ`.
    pub mid: Option<MessageId>,
}

impl Ack {
    /// The plain success of request `req`.
    pub fn of(req: u32, rid: Option<u64>) -> Ack {
        Ack {
            rid,
            req,
            groupid: None,
            seq: None,
            resume: None,
            mid: None,
        }
    }
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

impl ServerFrame {
    /// Appends this frame (with its `\n`) to `out` as `dialect` shapes it.
    /// Returns false, writing nothing, for a frame that dialect never gets
    /// (success acks and heartbeats in legacy).
    pub fn encode(&self, dialect: Dialect, out: &mut Vec<u8>) -> bool {
        match dialect {
            Dialect::Native => {
                native::encode(self, out);
                true
            }
            Dialect::Legacy => legacy::encode(self, out),
        }
    }

    /// Reads one native frame (without its terminator), as a client does.
    pub fn decode(frame: &[u8]) -> Result<ServerFrame, DecodeError> {
        native::decode(frame)
    }

    /// The request id this frame answers, if any.
    pub fn rid(&self) -> Option<u64> {
        match self {
            ServerFrame::LoginOk(login) => login.rid,
            ServerFrame::RegisterOk { rid, .. }
            | ServerFrame::History { rid, .. }
            | ServerFrame::Friends { rid, .. }
            | ServerFrame::Groups { rid, .. }
            | ServerFrame::Members { rid, .. }
            | ServerFrame::Conversations { rid, .. }
            | ServerFrame::Users { rid, .. }
            | ServerFrame::Pong { rid } => *rid,
            ServerFrame::Error(e) => e.rid,
            ServerFrame::Ack(ack) => ack.rid,
            ServerFrame::ChatAck(ack) => ack.rid,
            ServerFrame::Sync(page) => page.rid,
            ServerFrame::Push { .. }
            | ServerFrame::Ping
            | ServerFrame::Kicked { .. }
            | ServerFrame::Presence { .. } => None,
        }
    }
}

/// A server frame a client could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable server frame: {0}")]
pub struct DecodeError(pub(super) String);
