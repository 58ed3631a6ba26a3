//! Queries: each store call that only reads, run on the reader pool, and
//! the lookups that writes share (generic over a connection or a
//! transaction).

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationTrait,
};

use super::entity::{chat_group, friendship, group_member, inbox, inbox_state, message, user};
use super::error::Fail;
use super::rows::{
    InboxRow, MessageRow, group_columns, group_info, user_info, user_record, with_message_columns,
};
use super::shape::{CHUNK, padded};
use crate::model::{
    Conversation, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, Role, Seq, UserId,
    UserInfo, UserRecord,
};
use crate::store::StoreError;

pub(super) async fn user(db: &DatabaseConnection, id: UserId) -> Result<Option<UserRecord>, Fail> {
    let found = user::Entity::find_by_id(id.0).one(db).await?;
    Ok(found.map(user_record))
}

pub(super) async fn users(db: &DatabaseConnection, ids: &[UserId]) -> Result<Vec<UserInfo>, Fail> {
    let mut wanted: Vec<i64> = ids.iter().map(|id| id.0).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut found = Vec::with_capacity(wanted.len());
    // Ascending chunks of an ascending list keep the result ascending.
    for chunk in wanted.chunks(CHUNK) {
        let rows: Vec<(i64, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(padded(chunk)))
            .order_by_asc(user::Column::Id)
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(user_info));
    }
    Ok(found)
}

pub(super) async fn friends(db: &DatabaseConnection, user: UserId) -> Result<Vec<UserInfo>, Fail> {
    let rows: Vec<(i64, String)> = friendship::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Name)
        .join(JoinType::InnerJoin, friendship::Relation::Friend.def())
        .filter(friendship::Column::UserId.eq(user.0))
        .order_by_asc(friendship::Column::FriendId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(user_info).collect())
}

pub(super) async fn group(
    db: &DatabaseConnection,
    group: GroupId,
) -> Result<Option<GroupInfo>, Fail> {
    let found = chat_group::Entity::find_by_id(group.0).one(db).await?;
    Ok(found.map(group_info))
}

pub(super) async fn groups_of(
    db: &DatabaseConnection,
    user: UserId,
) -> Result<Vec<GroupInfo>, Fail> {
    let rows: Vec<(i64, String, String)> = group_member::Entity::find()
        .select_only()
        .column(chat_group::Column::Id)
        .column(chat_group::Column::Name)
        .column(chat_group::Column::Description)
        .join(JoinType::InnerJoin, group_member::Relation::Group.def())
        .filter(group_member::Column::UserId.eq(user.0))
        .order_by_asc(group_member::Column::GroupId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(group_columns).collect())
}

pub(super) async fn members(db: &DatabaseConnection, group: GroupId) -> Result<Vec<Member>, Fail> {
    if !group_exists(db, group).await? {
        return Err(StoreError::UnknownGroup(group).into());
    }
    let rows: Vec<(i64, String, String)> = group_member::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Name)
        .column(group_member::Column::Role)
        .join(JoinType::InnerJoin, group_member::Relation::User.def())
        .filter(group_member::Column::GroupId.eq(group.0))
        .order_by_asc(group_member::Column::UserId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, role)| Member {
            user: user_info((id, name)),
            role: Role::from_stored(&role),
        })
        .collect())
}

pub(super) async fn inbox_after(
    db: &DatabaseConnection,
    user: UserId,
    after: Seq,
    limit: u32,
) -> Result<Vec<InboxEntry>, Fail> {
    let rows: Vec<InboxRow> = with_message_columns(
        inbox::Entity::find()
            .select_only()
            .column(inbox::Column::Seq)
            .join(JoinType::InnerJoin, inbox::Relation::Message.def()),
    )
    .filter(inbox::Column::UserId.eq(user.0))
    .filter(inbox::Column::Seq.gt(after.0))
    .order_by_asc(inbox::Column::Seq)
    .limit(u64::from(limit))
    .into_model()
    .all(db)
    .await?;
    let entries = rows.into_iter().map(|row| {
        Ok(InboxEntry {
            seq: Seq(row.seq),
            message: row.message.into_message()?,
        })
    });
    entries.collect()
}

pub(super) async fn history(
    db: &DatabaseConnection,
    conversation: Conversation,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Vec<Message>, Fail> {
    let mut query = with_message_columns(message::Entity::find().select_only())
        .filter(message::Column::Conversation.eq(conversation.key()));
    if let Some(before) = before {
        query = query.filter(message::Column::Id.lt(before.0));
    }
    let rows: Vec<MessageRow> = query
        .order_by_desc(message::Column::Id)
        .limit(u64::from(limit))
        .into_model()
        .all(db)
        .await?;
    let messages = rows.into_iter().map(|row| Ok(row.into_message()?));
    messages.collect()
}

/// The acked cursor; `Seq::ZERO` for a user without inbox state.
pub(super) async fn acked_seq<C: ConnectionTrait>(db: &C, user: UserId) -> Result<Seq, Fail> {
    let acked: Option<i64> = inbox_state::Entity::find_by_id(user.0)
        .select_only()
        .column(inbox_state::Column::AckedSeq)
        .into_tuple()
        .one(db)
        .await?;
    Ok(acked.map_or(Seq::ZERO, Seq))
}

pub(super) async fn user_exists<C: ConnectionTrait>(db: &C, user: UserId) -> Result<bool, Fail> {
    let found: Option<i64> = user::Entity::find_by_id(user.0)
        .select_only()
        .column(user::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn group_exists<C: ConnectionTrait>(db: &C, group: GroupId) -> Result<bool, Fail> {
    let found: Option<i64> = chat_group::Entity::find_by_id(group.0)
        .select_only()
        .column(chat_group::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The message `sender` stored earlier under `client_msg_id`, if any.
pub(super) async fn find_by_client_msg_id<C: ConnectionTrait>(
    db: &C,
    sender: UserId,
    client_msg_id: &str,
) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find()
        .filter(message::Column::SenderId.eq(sender.0))
        .filter(message::Column::ClientMsgId.eq(client_msg_id))
        .one(db)
        .await
}
