//! Rows as the database returns them, turned into the records of
//! `crate::model`; the only place that knows how a column maps to a field.

use sea_orm::{EntityTrait, FromQueryResult, JoinType, QuerySelect, RelationTrait, Select};

use super::entity::{chat_group, message, user};
use crate::model::{
    GroupId, GroupInfo, Message, MessageId, SendReceipt, Target, UserId, UserInfo, UserRecord,
};
use crate::store::StoreError;

/// A message joined with its sender's name, as history and inbox read it.
#[derive(Debug, FromQueryResult)]
pub(super) struct MessageRow {
    id: i64,
    sender_id: i64,
    sender_name: String,
    kind: i16,
    target_id: i64,
    body: String,
    client_msg_id: Option<String>,
    created_at: i64,
}

impl MessageRow {
    pub(super) fn into_message(self) -> Result<Message, StoreError> {
        Ok(Message {
            id: MessageId(self.id),
            sender: user_info((self.sender_id, self.sender_name)),
            target: target(self.id, self.kind, self.target_id)?,
            body: self.body,
            client_msg_id: self.client_msg_id,
            sent_at_ms: self.created_at,
        })
    }
}

/// An inbox entry with its message.
#[derive(Debug, FromQueryResult)]
pub(super) struct InboxRow {
    pub(super) seq: i64,
    #[sea_orm(nested)]
    pub(super) message: MessageRow,
}

/// Adds the columns of [`MessageRow`] to a query that already reaches the
/// `message` table (or starts from it), joining the sender.
pub(super) fn with_message_columns<E: EntityTrait>(select: Select<E>) -> Select<E> {
    select
        .column(message::Column::Id)
        .column(message::Column::SenderId)
        .column_as(user::Column::Name, "sender_name")
        .column(message::Column::Kind)
        .column(message::Column::TargetId)
        .column(message::Column::Body)
        .column(message::Column::ClientMsgId)
        .column(message::Column::CreatedAt)
        .join(JoinType::InnerJoin, message::Relation::Sender.def())
}

/// The answer to a resend: the message stored first, sent by `sender`.
pub(super) fn duplicate_receipt(
    stored: message::Model,
    sender: UserInfo,
) -> Result<SendReceipt, StoreError> {
    Ok(SendReceipt {
        message: Message {
            id: MessageId(stored.id),
            sender,
            target: target(stored.id, stored.kind, stored.target_id)?,
            body: stored.body,
            client_msg_id: stored.client_msg_id,
            sent_at_ms: stored.created_at,
        },
        deliveries: Vec::new(),
        duplicate: true,
    })
}

/// Whom `message` was sent to, from its `kind` and `target_id` columns.
fn target(message: i64, kind: i16, target_id: i64) -> Result<Target, StoreError> {
    match kind {
        message::KIND_DIRECT => Ok(Target::User(UserId(target_id))),
        message::KIND_GROUP => Ok(Target::Group(GroupId(target_id))),
        other => Err(StoreError::Internal(format!(
            "message {message} has unknown kind {other}"
        ))),
    }
}

pub(super) fn user_record(row: user::Model) -> UserRecord {
    UserRecord {
        id: UserId(row.id),
        name: row.name,
        password_hash: row.password_hash,
        token_epoch: epoch(row.token_epoch),
        banned_at_ms: row.banned_at,
    }
}

/// A token epoch column (never negative) as the model's `u64`.
pub(super) fn epoch(column: i64) -> u64 {
    u64::try_from(column).unwrap_or_default()
}

pub(super) fn user_info((id, name): (i64, String)) -> UserInfo {
    UserInfo {
        id: UserId(id),
        name,
    }
}

pub(super) fn group_info(row: chat_group::Model) -> GroupInfo {
    group_columns((row.id, row.name, row.description))
}

/// A group from its (`id`, `name`, `description`) columns.
pub(super) fn group_columns((id, name, desc): (i64, String, String)) -> GroupInfo {
    GroupInfo {
        id: GroupId(id),
        name,
        desc,
    }
}
