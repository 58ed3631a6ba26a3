//! What the session tells the user, as values: replies, failures, incoming
//! messages, connection notices. [`crate::render`] turns them into text.

use std::fmt;

use chatcore::client::{ChatMessage, Contact, ConversationEntry, Group, LoginInfo, Sent};
use chatcore::model::{GroupId, MessageId, Seq, UserId};

/// A user or a group as shown to the user: its id and, when known, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Label {
    User(UserId, Option<String>),
    Group(GroupId, Option<String>),
}

impl fmt::Display for Label {
    /// `[2]bob` for a user (the seed's style), `[#3]rust` for a group.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, id, name) = match self {
            Label::User(id, name) => ("", id.0, name),
            Label::Group(id, name) => ("#", id.0, name),
        };
        write!(f, "[{prefix}{id}]{}", name.as_deref().unwrap_or(""))
    }
}

/// One thing to show, in the order the session produced them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// A login: the user, friends, groups (the seed's summary).
    LoggedIn(LoginInfo),
    /// A message received; `group` names its group, when it is a group's.
    Message {
        message: ChatMessage,
        group: Option<String>,
    },
    /// A command's result.
    Reply(Reply),
    /// A command that failed, in words.
    Failed(String),
    /// Something about the connection or the session.
    Notice(Notice),
    /// Text from the front end (menu, help), printed as is.
    Text(String),
}

/// The result of a command that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Not connected: the message waits and goes out after reconnecting.
    Queued {
        to: Label,
    },
    /// The server stored the message.
    Sent {
        to: Label,
        text: String,
        sent: Sent,
    },
    FriendAdded(Label),
    FriendRemoved(Label),
    GroupCreated(Label),
    GroupJoined(Label),
    GroupLeft(Label),
    Friends(Vec<Contact>),
    Groups(Vec<Group>),
    Members {
        group: Label,
        users: Vec<Contact>,
    },
    /// A conversation, oldest first; `more` when older messages exist.
    History {
        me: UserId,
        with: Label,
        messages: Vec<ChatMessage>,
        more: bool,
    },
    /// A conversation's read position after `/read`.
    Read {
        with: Label,
        mid: MessageId,
    },
    /// The conversations, newest first; `more` when older ones exist.
    Chats {
        conversations: Vec<ConversationEntry>,
        more: bool,
    },
    /// Users found by `/find`.
    Users(Vec<Contact>),
    /// The open conversation changed.
    Focus(Option<Label>),
    Status(Status),
    LoggedOut,
}

/// What `/status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) user: Label,
    pub(crate) addr: String,
    /// `None` when connected, otherwise the reconnect attempts so far.
    pub(crate) offline_attempts: Option<u32>,
    /// Messages waiting for the server's ack.
    pub(crate) pending: usize,
    /// The highest inbox position received.
    pub(crate) seen: Seq,
    pub(crate) focus: Option<Label>,
}

/// News about the connection or the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The connection broke; the session reconnects on its own.
    Disconnected { reason: String },
    /// Logged in again after a break.
    Reconnected { attempts: u32 },
    /// The session is over and will not reconnect.
    Ended { reason: String },
    /// An error from the server that answers no command.
    ServerError { errno: u32, errmsg: String },
    /// Messages that never reached the server.
    Unsent(usize),
    /// A friend came online or went offline.
    Presence { who: Label, online: bool },
}
