//! The wire protocol: message ids, error numbers, dialects, and the typed
//! frames in both directions. `docs/protocol.md` is the prose version.
//!
//! The wire is defined here once, in both directions: [`ClientFrame`]
//! decodes what clients send (and encodes it, for our own clients);
//! [`ServerFrame`] encodes what the server sends in either [`Dialect`]
//! (and decodes the native one, for our own clients). Every layer above
//! sees only the typed values; no other module names a wire field.
//!
//! - `request.rs`: client frames, parsed in two steps (`msgid`, then body);
//! - `reply.rs`: server frames as typed values;
//! - `native.rs`: the native shapes of server frames, both ways;
//! - `legacy.rs`: the seed's shapes, server side only;
//! - `time.rs`: the seed's time format; `errno.rs`: the error catalogue.

mod errno;
mod legacy;
mod native;
mod reply;
mod request;
mod time;

use serde::Serialize;

pub(crate) use errno::is_documented_error;
pub use errno::{ErrorCode, GENERAL_ERRORS, REQUEST_ERRORS};
pub use legacy::{LEGACY_READ_LIMIT, encode_legacy_login};
pub use reply::{
    Ack, ChatAck, DecodeError, ErrorReply, FriendEntry, GroupEntry, LoginOk, MemberEntry,
    MessagePage, ResumeToken, ServerFrame,
};
pub use request::{
    AddFriend, AddGroup, AnonymousRequest, ChangePassword, Chat, ClientFrame, Conversations,
    CreateGroup, DeliveryAck, FindUser, History, Identity, LeaveGroup, ListMembers, Login,
    ParseError, ReadMark, Register, RemoveFriend, Request, Resume, SessionRequest, SyncRequest,
};
pub use time::format_time;

/// The protocol version a native client puts in `proto` at login/register.
pub const NATIVE_PROTO: u32 = 2;

/// Message ids (`msgid`): the seed's 1..=10 and our extensions from 11.
pub mod msgid {
    pub const LOGIN: u32 = 1;
    pub const LOGIN_ACK: u32 = 2;
    pub const REG: u32 = 3;
    pub const REG_ACK: u32 = 4;
    pub const ONE_CHAT: u32 = 5;
    pub const ADD_FRIEND: u32 = 6;
    pub const CREATE_GROUP: u32 = 7;
    pub const ADD_GROUP: u32 = 8;
    pub const GROUP_CHAT: u32 = 9;
    pub const LOGINOUT: u32 = 10;
    /// S→C: a request was refused (`errno`, `errmsg`, `req`).
    pub const ERROR: u32 = 11;
    /// S→C: a request without a reply of its own succeeded (native only).
    pub const ACK: u32 = 12;
    /// S→C: a chat message was stored (native only).
    pub const CHAT_ACK: u32 = 13;
    /// C→S: cumulative acknowledgement of the inbox up to `seq`.
    pub const DELIVERED: u32 = 14;
    /// C→S: read the inbox after a `seq`.
    pub const SYNC: u32 = 15;
    pub const SYNC_ACK: u32 = 16;
    /// C→S: read one conversation's history, newest first.
    pub const HISTORY: u32 = 17;
    pub const HISTORY_ACK: u32 = 18;
    pub const LIST_FRIENDS: u32 = 19;
    pub const FRIENDS_ACK: u32 = 20;
    pub const LIST_GROUPS: u32 = 21;
    pub const GROUPS_ACK: u32 = 22;
    pub const LIST_MEMBERS: u32 = 23;
    pub const MEMBERS_ACK: u32 = 24;
    pub const REMOVE_FRIEND: u32 = 25;
    pub const LEAVE_GROUP: u32 = 26;
    /// Either direction: are you there?
    pub const PING: u32 = 27;
    /// Either direction: the answer to PING.
    pub const PONG: u32 = 28;
    /// S→C: this session ends (another login, shutdown, timeout); then close.
    pub const KICKED: u32 = 29;
    /// C→S: log in with a resume token instead of a password (native).
    pub const RESUME: u32 = 30;
    /// C→S: change the password; revokes every resume token (native).
    pub const CHANGE_PASSWORD: u32 = 31;
    /// S→C: a friend's session started or ended (native).
    pub const PRESENCE: u32 = 32;
    /// C→S: set the read position of one conversation (native).
    pub const READ: u32 = 33;
    /// C→S: the caller's conversations, newest first (native).
    pub const CONVERSATIONS: u32 = 34;
    pub const CONVERSATIONS_ACK: u32 = 35;
    /// C→S: users by exact name or name prefix (native).
    pub const FIND_USER: u32 = 36;
    pub const USERS_ACK: u32 = 37;
}

/// The two dialects a connection can speak, chosen at login or register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    /// The seed's client: exact seed shapes, no success acks, no `seq`.
    #[default]
    Legacy,
    /// Our clients: nested objects, a reply for every request, acks, sync.
    Native,
}

impl Dialect {
    /// The dialect asked for by the optional `proto` field.
    pub(crate) fn from_proto(proto: Option<u32>) -> Dialect {
        match proto {
            Some(v) if v >= NATIVE_PROTO => Dialect::Native,
            _ => Dialect::Legacy,
        }
    }
}

/// Serialises a value that is made only of strings, numbers and derived
/// structs; that cannot fail, so a failure is a bug worth a loud log.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "serialising a frame failed");
        String::from("{}")
    })
}

/// Appends `value` as one frame: its JSON and a `\n`.
fn push_json<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, value) {
        tracing::error!(error = %e, "serialising a frame failed");
        out.truncate(start);
        out.extend_from_slice(b"{}");
    }
    out.push(b'\n');
}
