//! `MeteredStore`: a decorator that records the latency and failures of
//! every call of the store it wraps, so that no backend measures itself.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{GroupCaps, PruneStep, Store, StoreError};
use crate::model::{
    Conversation, ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId,
    NewMessage, SendReceipt, Seq, Target, UserId, UserInfo, UserRecord,
};
use crate::telemetry::{counter, histogram, names, static_key};

/// Wraps any [`Store`]; behaves exactly like it, and records
/// `chat_store_duration_seconds` and `chat_store_errors_total` (backend
/// failures: `Unavailable`, `Internal`) by method.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// `inner`, measured.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner })
    }
}

/// Awaits `$call`, recording its latency and failure under `op = $op`.
macro_rules! metered {
    ($op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        histogram(static_key!(names::STORE_DURATION, "op" => $op)).record(started.elapsed());
        // Answers such as `NameTaken` are the store working as it should.
        if matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::Internal(_))
        ) {
            counter(static_key!(names::STORE_ERRORS, "op" => $op)).increment(1);
        }
        result
    }};
}

// One line per method: a method added to `Store` is added here the same way.
#[async_trait]
impl Store for MeteredStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        metered!("create_user", self.inner.create_user(name, password_hash))
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        metered!("user", self.inner.user(id))
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError> {
        metered!("users", self.inner.users(ids))
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        metered!("revoke_tokens", self.inner.revoke_tokens(user))
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError> {
        metered!("set_password", self.inner.set_password(user, password_hash))
    }

    async fn rehash_password(
        &self,
        user: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        metered!(
            "rehash_password",
            self.inner.rehash_password(user, old, new)
        )
    }

    async fn set_banned(&self, user: UserId, at_ms: Option<i64>) -> Result<(), StoreError> {
        metered!("set_banned", self.inner.set_banned(user, at_ms))
    }

    async fn delete_user(&self, user: UserId) -> Result<(), StoreError> {
        metered!("delete_user", self.inner.delete_user(user))
    }

    async fn prune(
        &self,
        older_than_ms: i64,
        after: MessageId,
        max_rows: u32,
    ) -> Result<PruneStep, StoreError> {
        metered!("prune", self.inner.prune(older_than_ms, after, max_rows))
    }

    async fn add_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        metered!("add_friend", self.inner.add_friend(a, b))
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        metered!("remove_friend", self.inner.remove_friend(a, b))
    }

    async fn friends(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError> {
        metered!("friends", self.inner.friends(user))
    }

    async fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError> {
        metered!(
            "create_group",
            self.inner.create_group(creator, name, desc, caps)
        )
    }

    async fn join_group(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError> {
        metered!("join_group", self.inner.join_group(group, user, caps))
    }

    async fn leave_group(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        metered!("leave_group", self.inner.leave_group(group, user))
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError> {
        metered!("group", self.inner.group(group))
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        metered!("groups_of", self.inner.groups_of(user))
    }

    async fn members(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        metered!("members", self.inner.members(group))
    }

    async fn send(&self, message: NewMessage) -> Result<SendReceipt, StoreError> {
        metered!("send", self.inner.send(message))
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        metered!("inbox_after", self.inner.inbox_after(user, after, limit))
    }

    async fn ack(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError> {
        metered!("ack", self.inner.ack(user, seq))
    }

    async fn cursor(&self, user: UserId) -> Result<Seq, StoreError> {
        metered!("cursor", self.inner.cursor(user))
    }

    async fn history(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        metered!("history", self.inner.history(conversation, before, limit))
    }

    async fn mark_read(
        &self,
        user: UserId,
        with: Target,
        mid: MessageId,
    ) -> Result<MessageId, StoreError> {
        metered!("mark_read", self.inner.mark_read(user, with, mid))
    }

    async fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        metered!(
            "conversations",
            self.inner.conversations(user, before, limit)
        )
    }

    async fn find_users(
        &self,
        name: &str,
        prefix: bool,
        limit: u32,
    ) -> Result<Vec<UserInfo>, StoreError> {
        metered!("find_users", self.inner.find_users(name, prefix, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        metered!("ping", self.inner.ping())
    }
}
