//! What an import did: rows imported, rows skipped and why. Kept in the
//! checkpoint, so that the closing report of a resumed import covers the
//! runs before it too.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a seed row was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Skip {
    UserNoName,
    UserNoPassword,
    UserInvalidText,
    UserNameRefused,
    FriendDuplicate,
    FriendMirror,
    FriendSelf,
    FriendDangling,
    GroupInvalidText,
    GroupNameRefused,
    MemberDuplicate,
    MemberDangling,
    MessageInvalidText,
    MessageNotJson,
    MessageCutOff,
    MessageNotChat,
    MessageTooLong,
    MessageUnknownRecipient,
    MessageUnknownSender,
    MessageUnknownGroup,
}

impl Skip {
    fn what(self) -> &'static str {
        match self {
            Skip::UserNoName => "users without a name",
            Skip::UserNoPassword => {
                "users without a password (NULL, or text that did not survive the seed's GBK)"
            }
            Skip::UserInvalidText => {
                "users whose name is not valid text once the seed's GBK is undone"
            }
            Skip::UserNameRefused => {
                "users whose name chatd refuses (empty, too long, surrounding blanks, control characters)"
            }
            Skip::FriendDuplicate => "friend rows repeating an earlier row",
            Skip::FriendMirror => {
                "friend rows giving the other direction of a friendship already imported (chatd stores both)"
            }
            Skip::FriendSelf => "friend rows of a user with itself",
            Skip::FriendDangling => "friend rows naming a user that was not imported",
            Skip::GroupInvalidText => {
                "groups whose name or description is not valid text once the seed's GBK is undone"
            }
            Skip::GroupNameRefused => {
                "groups whose name chatd refuses, or whose description is too long"
            }
            Skip::MemberDuplicate => {
                "group member rows repeating an earlier row (a creator row wins)"
            }
            Skip::MemberDangling => {
                "group member rows naming a group or user that was not imported"
            }
            Skip::MessageInvalidText => {
                "offline messages that are not valid text once the seed's GBK is undone"
            }
            Skip::MessageNotJson => "offline messages that are not JSON",
            Skip::MessageCutOff => {
                "offline messages cut off at the column's length by the seed (not JSON at that length)"
            }
            Skip::MessageNotChat => {
                "offline messages that are JSON but not a chat message (no sender id or text)"
            }
            Skip::MessageTooLong => "offline messages longer than --max-message",
            Skip::MessageUnknownRecipient => "offline messages for a user that was not imported",
            Skip::MessageUnknownSender => "offline messages from a user that was not imported",
            Skip::MessageUnknownGroup => "offline group messages of a group that was not imported",
        }
    }
}

/// Skipped rows of one kind, with the first few to look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Tally {
    pub(crate) rows: u64,
    /// Which rows: ids, or row numbers of tables without a key; never a
    /// password or a message's text.
    pub(crate) examples: Vec<String>,
}

/// Examples kept per reason.
const EXAMPLES: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) users: u64,
    pub(crate) friendships: u64,
    pub(crate) groups: u64,
    pub(crate) members: u64,
    pub(crate) messages: u64,
    pub(crate) inbox_entries: u64,
    /// Messages whose `time` could not be read: they carry the time the
    /// import started.
    pub(crate) untimed_messages: u64,
    pub(crate) skipped: BTreeMap<Skip, Tally>,
}

impl Report {
    /// Counts `rows` skipped seed rows of one kind, `which` naming them.
    pub(crate) fn skip(&mut self, why: Skip, rows: u64, which: impl FnOnce() -> String) {
        let tally = self.skipped.entry(why).or_default();
        tally.rows += rows;
        if tally.examples.len() < EXAMPLES {
            tally.examples.push(which());
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  users:        {}", self.users)?;
        writeln!(
            f,
            "  friendships:  {} (each stored both ways)",
            self.friendships
        )?;
        writeln!(f, "  groups:       {}", self.groups)?;
        writeln!(f, "  memberships:  {}", self.members)?;
        writeln!(
            f,
            "  messages:     {} ({} inbox entries, unread)",
            self.messages, self.inbox_entries
        )?;
        if self.untimed_messages > 0 {
            writeln!(
                f,
                "  {} messages had no readable time and carry the import's start time",
                self.untimed_messages
            )?;
        }
        if self.skipped.is_empty() {
            return writeln!(f, "skipped: nothing");
        }
        writeln!(f, "skipped:")?;
        for (why, tally) in &self.skipped {
            writeln!(
                f,
                "  {:>6}  {} (e.g. {})",
                tally.rows,
                why.what(),
                tally.examples.join(", ")
            )?;
        }
        Ok(())
    }
}
