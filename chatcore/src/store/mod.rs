//! The `Store` trait: everything the server keeps durably (users, friends,
//! groups, messages and each user's inbox), with its behaviour contract.
//!
//! Implementations: [`MemoryStore`] (in process, for embedding, tests and
//! benchmarks) and [`SqlStore`] (SeaORM on SQLite or MySQL/MariaDB). Both
//! pass the same conformance suite in `chatcore/tests/store_conformance.rs`.
//! [`MeteredStore`] wraps any of them to record call latencies.

mod memory;
mod metered;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
mod sql;

use async_trait::async_trait;

pub use memory::MemoryStore;
pub use metered::MeteredStore;
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub use sql::{
    ImportBatch, ImportClashes, ImportedDelivery, ImportedMessage, ImportedUser, MessageRef,
    SqlStore, SqlStoreOptions,
};

use crate::model::{
    Conversation, ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId,
    NewMessage, SendReceipt, Seq, Target, UserId, UserInfo, UserRecord,
};

/// What can go wrong in a store; each variant says what the caller can do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Registration with a name that another user already has.
    #[error("user name is already taken")]
    NameTaken,
    /// Creating a group with a name that another group already has.
    #[error("group name is already taken")]
    GroupNameTaken,
    /// The request names a user that does not exist.
    #[error("no such user: {0}")]
    UnknownUser(UserId),
    /// The request names a group that does not exist.
    #[error("no such group: {0}")]
    UnknownGroup(GroupId),
    /// A group message from a user who is not a member of the group.
    #[error("user {user} is not a member of group {group}")]
    NotMember { user: UserId, group: GroupId },
    /// A new membership would break one of the [`GroupCaps`]; nothing
    /// changed.
    #[error("{0}")]
    CapReached(CapReached),
    /// The backend cannot serve now (unreachable, timed out, overloaded).
    /// Nothing was changed; retrying later may succeed.
    #[error("store temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or a corrupt database; not the caller's fault.
    #[error("store failure: {0}")]
    Internal(String),
}

/// Bounds on group membership that a store keeps in the same transaction
/// as the change, so that racing requests cannot overshoot them. Zero
/// turns a bound off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCaps {
    /// Most groups one user may belong to.
    pub groups_per_user: u32,
    /// Most members one group may have.
    pub members_per_group: u32,
}

impl GroupCaps {
    /// No bounds.
    pub const NONE: GroupCaps = GroupCaps {
        groups_per_user: 0,
        members_per_group: 0,
    };

    /// The cap a user with `groups` memberships joining a group with
    /// `members` members would break, if any (the group's first).
    pub fn check(self, groups: u64, members: u64) -> Result<(), CapReached> {
        let full = |count: u64, cap: u32| cap > 0 && count >= u64::from(cap);
        if full(members, self.members_per_group) {
            return Err(CapReached::MembersPerGroup(self.members_per_group));
        }
        if full(groups, self.groups_per_user) {
            return Err(CapReached::GroupsPerUser(self.groups_per_user));
        }
        Ok(())
    }
}

/// Which of the [`GroupCaps`] refused a membership, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapReached {
    /// The user is in this many groups already.
    #[error("the user is in {0} groups, the most one user may be in")]
    GroupsPerUser(u32),
    /// The group has this many members already.
    #[error("the group has {0} members, the most a group may have")]
    MembersPerGroup(u32),
}

/// The name a deleted account's tombstone carries, which the messages it
/// sent still show as their sender's: it ends with a blank, which no
/// registration accepts, so it never collides with a live user's name.
pub fn deleted_user_name(user: UserId) -> String {
    format!("deleted user {user} ")
}

/// What one step of retention ([`Store::prune`]) did, and where the next
/// step starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneStep {
    /// Messages deleted.
    pub messages: u64,
    /// Inbox entries deleted with them.
    pub entries: u64,
    /// The `after` of the next step; `None` when this step reached the
    /// last message, or one sent at or after the cut-off.
    pub next: Option<MessageId>,
}

/// Durable state of the chat server.
///
/// # Behavior
///
/// Every implementation must meet the contract written on each method; the
/// conformance suite checks it. All methods are safe to call concurrently
/// from many tasks and (for a shared database) from many processes.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a user with a unique `name` and returns its new id.
    ///
    /// # Behavior
    /// - Ids are positive and never reused.
    /// - A name already taken (byte-for-byte) fails with `NameTaken`; when
    ///   several callers race for one name exactly one succeeds.
    /// - The user starts with an empty inbox and cursor `Seq::ZERO`.
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError>;

    /// The user with its password hash, or `None` when there is no such id.
    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;

    /// Revokes every resume token of `user` issued so far (by moving its
    /// token epoch on) and returns the new epoch.
    ///
    /// # Behavior
    /// - The epoch only grows: the value returned is higher than any epoch
    ///   `user` reported before, also when callers race.
    /// - `UnknownUser` when the user does not exist.
    async fn revoke_tokens(&self, user: UserId) -> Result<u64, StoreError>;

    /// Replaces the password hash of `user` and, in the same step, revokes
    /// its resume tokens as [`revoke_tokens`](Store::revoke_tokens) does;
    /// returns the new token epoch. `UnknownUser` when there is no such user.
    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError>;

    /// Replaces the password hash of `user` with `new` if it is still
    /// `old`: the same password hashed again with other parameters, so its
    /// resume tokens stay valid. `false` when the hash changed meanwhile
    /// (a password change wins) or there is no such user.
    async fn rehash_password(&self, user: UserId, old: &str, new: &str)
    -> Result<bool, StoreError>;

    /// Bans `user` since `at_ms` (milliseconds since the Unix epoch), or
    /// lifts its ban (`None`).
    ///
    /// # Behavior
    /// - A ban shows in the user's record as `banned_at_ms`; banning a user
    ///   who is banned already keeps the first time. A ban also revokes the
    ///   user's resume tokens as [`revoke_tokens`](Store::revoke_tokens)
    ///   does, so that lifting it later brings no old token back.
    /// - `None` lifts the ban (`banned_at_ms` is `None` afterwards); lifting
    ///   no ban changes nothing. Tokens stay revoked.
    /// - `UnknownUser` when there is no such user (a deleted one included).
    async fn set_banned(&self, user: UserId, at_ms: Option<i64>) -> Result<(), StoreError>;

    /// Deletes the account of `user`.
    ///
    /// # Behavior
    /// - Afterwards every call treats `user` as unknown: `user` is `None`,
    ///   `users` and `find_users` leave it out, a send to it or a
    ///   friendship or membership with it fails with `UnknownUser`, and a
    ///   second delete too. Its friendships (both ways), memberships, read
    ///   positions and its own inbox are gone (`cursor` is `Seq::ZERO`).
    ///   Its name is free for a new registration.
    /// - The messages it sent stay, in their recipients' inboxes (nothing
    ///   they were not given yet is taken away) and in history, with the
    ///   sender named [`deleted_user_name`]. Groups it created stay with
    ///   their other members.
    /// - `UnknownUser` when there is no such user.
    async fn delete_user(&self, user: UserId) -> Result<(), StoreError>;

    /// One bounded step of retention: deletes the messages sent before
    /// `older_than_ms` (milliseconds since the Unix epoch) that every
    /// recipient has acknowledged, with their inbox entries, among the
    /// messages with ids above `after`.
    ///
    /// # Behavior
    /// - Looks at up to `max_rows` messages with ids above `after`, in id
    ///   order, and stops at the first one sent at or after
    ///   `older_than_ms`.
    /// - Deletes a message (and its entries) only when each of its inbox
    ///   entries is at or below its user's acked cursor: an entry not yet
    ///   acknowledged keeps its message and every entry of it. A message
    ///   with no entry left (no recipient, or only deleted users) counts as
    ///   acknowledged.
    /// - Deletes at most `max_rows` rows (messages and entries together),
    ///   except that a message with more entries than that goes alone.
    /// - Nothing a reader may still need changes: entries after a cursor,
    ///   and so sync and live delivery, are untouched; history and the
    ///   conversation list no longer show what was deleted.
    /// - `next` is where the next step starts; `None` once there is
    ///   nothing after what it looked at, or it met a message sent at or
    ///   after `older_than_ms` (later ids are newer, up to clock skew
    ///   between nodes, which the next run catches up with).
    async fn prune(
        &self,
        older_than_ms: i64,
        after: MessageId,
        max_rows: u32,
    ) -> Result<PruneStep, StoreError>;

    /// The users among `ids` that exist, in ascending id order; unknown ids
    /// are left out.
    async fn users(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError>;

    /// Makes `a` and `b` friends of each other.
    ///
    /// # Behavior
    /// - Mutual: afterwards each appears in the other's `friends`.
    /// - Idempotent: returns `true` when the friendship is new, `false` when
    ///   it existed; never stores a duplicate row, also under races.
    /// - `UnknownUser` when either user does not exist.
    async fn add_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError>;

    /// Ends the friendship of `a` and `b` in both directions; `false` when
    /// there was none.
    async fn remove_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError>;

    /// The friends of `user`, in ascending id order.
    async fn friends(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError>;

    /// Creates a group whose only member is `creator`, with role `Creator`.
    ///
    /// # Behavior
    /// - `GroupNameTaken` when the name is taken; `UnknownUser` when the
    ///   creator does not exist.
    /// - `CapReached(GroupsPerUser)` when the creator is in
    ///   `caps.groups_per_user` groups already, decided atomically with the
    ///   creation: racing calls never take a user past the cap.
    async fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError>;

    /// Adds `user` to `group` with role `Normal`.
    ///
    /// # Behavior
    /// - Idempotent: `true` when the membership is new, `false` when the user
    ///   was already a member (whose role is kept); no duplicate rows.
    /// - `UnknownGroup` / `UnknownUser` when either does not exist.
    /// - A new membership that would break `caps` fails with `CapReached`
    ///   (the group's cap first), decided atomically with the insert: racing
    ///   calls never take a group or a user past its cap. An existing
    ///   membership is still `Ok(false)` at a cap.
    async fn join_group(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError>;

    /// Removes `user` from `group`; `false` when it was not a member.
    /// `UnknownGroup` when the group does not exist.
    async fn leave_group(&self, group: GroupId, user: UserId) -> Result<bool, StoreError>;

    /// One group, or `None`.
    async fn group(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError>;

    /// The groups `user` belongs to, in ascending id order.
    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError>;

    /// The members of `group` in ascending user id order;
    /// `UnknownGroup` when it does not exist.
    async fn members(&self, group: GroupId) -> Result<Vec<Member>, StoreError>;

    /// Stores a chat message and one inbox entry per recipient, atomically.
    ///
    /// # Behavior
    /// - One-to-one: the recipient must exist (`UnknownUser`) and gets one
    ///   entry (also when it is the sender itself).
    /// - Group: the group must exist (`UnknownGroup`) and the sender must be
    ///   a member (`NotMember`); every other member gets one entry.
    /// - Each recipient's new entry takes the next `seq` of that inbox:
    ///   1, 2, 3, ... with no gap and no duplicate, also under concurrency.
    /// - Nothing is visible to readers before the whole message is stored;
    ///   on error nothing is stored.
    /// - Idempotent: a message whose (`sender`, `client_msg_id`) was already
    ///   stored is not stored again; the first message is returned with
    ///   `duplicate: true` and no deliveries.
    /// - The stored body is byte-for-byte the one given.
    async fn send(&self, message: NewMessage) -> Result<SendReceipt, StoreError>;

    /// Up to `limit` inbox entries of `user` with `seq > after`, in `seq`
    /// order.
    async fn inbox_after(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError>;

    /// Moves `user`'s acked cursor forward to `seq` and returns the cursor.
    ///
    /// # Behavior
    /// - Never moves backwards: acking a lower `seq` returns the higher one.
    /// - Never passes the last seq of the inbox: a `seq` beyond it is capped.
    async fn ack(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError>;

    /// The acked cursor of `user` (`Seq::ZERO` for a user who acked nothing
    /// or does not exist).
    async fn cursor(&self, user: UserId) -> Result<Seq, StoreError>;

    /// Up to `limit` messages of `conversation` with ids below `before`
    /// (all when `None`), newest first.
    async fn history(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;

    /// Moves `user`'s read position in its conversation `with` (the other
    /// user, or a group) forward to `mid` and returns the position.
    ///
    /// # Behavior
    /// - Never moves backwards: a lower `mid` returns the higher position;
    ///   racing calls leave the highest. A conversation never marked has
    ///   position `MessageId(0)`.
    /// - `mid` need not name a stored message (it is where the client says
    ///   it has read up to).
    /// - One-to-one: `UnknownUser` when the other user does not exist.
    ///   Group: `UnknownGroup` when it does not exist, `NotMember` when
    ///   `user` is not a member. Nothing changes on error.
    /// - Positions are per (user, conversation): both sides of a
    ///   one-to-one conversation keep their own.
    async fn mark_read(
        &self,
        user: UserId,
        with: Target,
        mid: MessageId,
    ) -> Result<MessageId, StoreError>;

    /// Up to `limit` conversations of `user` that hold at least one message,
    /// newest last message first, each with its newest message, its name,
    /// `user`'s read position and unread count.
    ///
    /// # Behavior
    /// - One-to-one conversations in either direction, keyed by the other
    ///   user (`with` = `Target::User`, `name` = that user's name; notes to
    ///   self are keyed by `user` itself); groups `user` is a member of now
    ///   (`Target::Group`, the group's name). A group `user` left is not
    ///   listed, whatever it holds.
    /// - Ordered by the last message's id, descending; with `before`, only
    ///   conversations whose last message id is below it.
    /// - `unread` counts the conversation's messages with an id above
    ///   `read` that `user` did not send; `read` is as
    ///   [`mark_read`](Store::mark_read) left it (`MessageId(0)` if never).
    /// - Reads only `user`'s own conversations: its cost grows with them,
    ///   never with the whole database.
    async fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    /// Users by name: the one named exactly `name` (at most one), or with
    /// `prefix`, up to `limit` users whose name starts with `name`,
    /// ascending by name.
    ///
    /// # Behavior
    /// - Names are compared byte-for-byte (case and trailing spaces count),
    ///   as at registration.
    /// - `%`, `_` and `\` in `name` are plain characters.
    async fn find_users(
        &self,
        name: &str,
        prefix: bool,
        limit: u32,
    ) -> Result<Vec<UserInfo>, StoreError>;

    /// Checks that the store can serve now, as cheaply as it can (health
    /// checks call it).
    ///
    /// # Behavior
    /// - `Ok` when a read would reach the data now; `Unavailable` when the
    ///   backend cannot be reached. Changes nothing.
    /// - An in-process store is always reachable (the default).
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
