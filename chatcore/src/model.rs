//! Domain types shared by every layer: identifiers as newtypes and the
//! records the store keeps. Nothing here knows about bytes, sockets or SQL.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A registered user; assigned by the store at registration.
    UserId
);
id_type!(
    /// A group; assigned by the store when the group is created.
    GroupId
);
id_type!(
    /// A stored chat message, unique across the whole cluster.
    MessageId
);
id_type!(
    /// Position in one user's inbox: 1, 2, 3, ... with no gap.
    Seq
);

impl Seq {
    /// The cursor of a user who has received nothing yet.
    pub const ZERO: Seq = Seq(0);

    /// The next position in the same inbox.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

/// A user as others see them (never carries the password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
}

/// A user with the credential the store keeps for login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub name: String,
    /// A PHC string (`$argon2id$...`); never the password itself.
    pub password_hash: String,
    /// Generation of the user's resume tokens: a token is valid only while
    /// it matches (see [`Store::revoke_tokens`](crate::store::Store::revoke_tokens)).
    pub token_epoch: u64,
    /// When an administrator banned the user (milliseconds since the Unix
    /// epoch): a banned user may neither log in nor resume. `None` while
    /// not banned.
    pub banned_at_ms: Option<i64>,
}

/// A member's role in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Creator,
    Normal,
}

impl Role {
    /// The seed's spelling, also used as the stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Creator => "creator",
            Role::Normal => "normal",
        }
    }

    /// Parses the stored spelling; anything unknown is an ordinary member.
    pub fn from_stored(s: &str) -> Role {
        if s == "creator" {
            Role::Creator
        } else {
            Role::Normal
        }
    }
}

/// A group with its description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: GroupId,
    pub name: String,
    pub desc: String,
}

/// One member of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub user: UserInfo,
    pub role: Role,
}

/// Where a chat message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// One-to-one: the recipient.
    User(UserId),
    /// Group chat: every member but the sender.
    Group(GroupId),
}

/// A chat message to be stored (the sender comes from the session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub sender: UserId,
    pub target: Target,
    pub body: String,
    /// Client-chosen id that makes a resend idempotent (per sender).
    pub client_msg_id: Option<String>,
    /// Server time, milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
}

/// A stored chat message as it is delivered and listed in history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub sender: UserInfo,
    pub target: Target,
    pub body: String,
    pub client_msg_id: Option<String>,
    pub sent_at_ms: i64,
}

/// One inbox entry: message `message` is the `seq`-th thing `user` receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    pub seq: Seq,
    pub message: Message,
}

/// A recipient's new inbox position, produced by a successful send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub user: UserId,
    pub seq: Seq,
}

/// What the store answers to a send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReceipt {
    /// The stored message (the first one, for an idempotent resend).
    pub message: Message,
    /// One entry per recipient; empty for a resend already stored.
    pub deliveries: Vec<Delivery>,
    /// True when this call found the message already stored.
    pub duplicate: bool,
}

/// A conversation whose history can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// The one-to-one conversation between two users (order irrelevant).
    Direct(UserId, UserId),
    Group(GroupId),
}

impl Conversation {
    /// The same conversation with a direct pair in ascending order, so that
    /// both sides of a one-to-one conversation compare equal.
    pub fn normalized(self) -> Conversation {
        match self {
            Conversation::Direct(a, b) if b < a => Conversation::Direct(b, a),
            other => other,
        }
    }

    /// A stable key for the conversation, the same whichever side asks.
    pub fn key(self) -> String {
        match self.normalized() {
            Conversation::Direct(lo, hi) => format!("u:{lo}:{hi}"),
            Conversation::Group(g) => format!("g:{g}"),
        }
    }

    /// The conversation a message belongs to.
    pub fn of(sender: UserId, target: Target) -> Conversation {
        match target {
            Target::User(to) => Conversation::Direct(sender, to),
            Target::Group(g) => Conversation::Group(g),
        }
    }
}

/// One conversation of a user as its conversation list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// Seen from the user: the other user of a one-to-one conversation
    /// (the user itself for notes to self), or the group.
    pub with: Target,
    /// That user's or group's name.
    pub name: String,
    /// The newest message.
    pub last: Message,
    /// Messages with an id above `read` that the user did not send.
    pub unread: u64,
    /// The user's read position; `MessageId(0)` when never set.
    pub read: MessageId,
}
