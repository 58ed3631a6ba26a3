//! Queries: each store call that only reads, run on the reader pool, and
//! the lookups that writes share (generic over a connection or a
//! transaction).

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait as _, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, JoinType, QueryFilter,
    QueryOrder, QuerySelect, RelationTrait,
};

use super::entity::{
    chat_group, friendship, group_member, inbox, inbox_state, message, read_position, user,
};
use super::error::Fail;
use super::rows::{
    InboxRow, MessageRow, group_columns, group_info, user_info, user_record, with_message_columns,
};
use super::shape::{CHUNK, padded};
use crate::model::{
    Conversation, ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId,
    Role, Seq, Target, UserId, UserInfo, UserRecord,
};
use crate::store::StoreError;

pub(super) async fn user(db: &DatabaseConnection, id: UserId) -> Result<Option<UserRecord>, Fail> {
    let found = user::Entity::find_by_id(id.0)
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?;
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
            .filter(user::Column::DeletedAt.is_null())
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
        .filter(user::Column::DeletedAt.is_null())
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

pub(super) async fn is_member<C: ConnectionTrait>(
    db: &C,
    group: GroupId,
    user: UserId,
) -> Result<bool, Fail> {
    let found: Option<i64> = group_member::Entity::find_by_id((group.0, user.0))
        .select_only()
        .column(group_member::Column::UserId)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Scalar subqueries per statement when many are asked at once: one row
/// of this many columns (far below SQLite's 2,000 and MySQL's 4,096).
const SCALARS: usize = 128;

/// The values of `arms`, each a query of one row and one integer column
/// (`NULL` as `None`), run as few `SELECT (arm), (arm), ...` statements:
/// one round trip per [`SCALARS`] arms, and each arm a seek of its own.
async fn scalars(
    db: &DatabaseConnection,
    arms: Vec<SelectStatement>,
) -> Result<Vec<Option<i64>>, Fail> {
    let mut values = Vec::with_capacity(arms.len());
    let mut arms = arms.into_iter().peekable();
    while arms.peek().is_some() {
        let mut query = Query::select();
        let mut width = 0;
        for arm in arms.by_ref().take(SCALARS) {
            query.expr(Expr::SubQuery(None, Box::new(arm.into())));
            width += 1;
        }
        let row = db
            .query_one(&query)
            .await?
            .ok_or_else(|| StoreError::Internal("a scalar query returned no row".into()))?;
        for column in 0..width {
            values.push(row.try_get_by_index::<Option<i64>>(column)?);
        }
    }
    Ok(values)
}

/// The conversations of `user` (see `Store::conversations`): the one-to-one
/// peers from two `GROUP BY`s over the sender and recipient indexes, each
/// group's newest message by a seek on the conversation index; then, for
/// the page only, the messages, names, read positions and unread counts.
pub(super) async fn conversations(
    db: &DatabaseConnection,
    user: UserId,
    before: Option<MessageId>,
    limit: u32,
) -> Result<Vec<ConversationSummary>, Fail> {
    let direct = |mine: message::Column, theirs: message::Column| {
        message::Entity::find()
            .select_only()
            .column(theirs)
            .column_as(Expr::col(message::Column::Id).max(), "last")
            .filter(mine.eq(user.0))
            .filter(message::Column::Kind.eq(message::KIND_DIRECT))
            .group_by(theirs)
            .into_tuple::<(i64, i64)>()
            .all(db)
    };
    let sent = direct(message::Column::SenderId, message::Column::TargetId).await?;
    let received = direct(message::Column::TargetId, message::Column::SenderId).await?;
    // The newest message id of each conversation, keyed by its other side.
    let mut last: HashMap<Target, i64> = HashMap::new();
    for (peer, id) in sent.into_iter().chain(received) {
        let entry = last.entry(Target::User(UserId(peer))).or_insert(id);
        *entry = Ord::max(*entry, id);
    }
    let groups = groups_of(db, user).await?;
    let arms = groups
        .iter()
        .map(|g| {
            Query::select()
                .expr(Expr::col(message::Column::Id).max())
                .from(message::Entity)
                .and_where(
                    Expr::col(message::Column::Conversation).eq(Conversation::Group(g.id).key()),
                )
                .take()
        })
        .collect();
    for (group, newest) in groups.iter().zip(scalars(db, arms).await?) {
        if let Some(id) = newest {
            last.insert(Target::Group(group.id), id);
        }
    }

    let mut page: Vec<(Target, i64)> = last
        .into_iter()
        .filter(|&(_, id)| before.is_none_or(|before| id < before.0))
        .collect();
    page.sort_unstable_by_key(|&(_, id)| std::cmp::Reverse(id));
    page.truncate(limit as usize);
    if page.is_empty() {
        return Ok(Vec::new());
    }

    let ids: Vec<i64> = page.iter().map(|&(_, id)| id).collect();
    let mut messages: HashMap<i64, Message> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<MessageRow> = with_message_columns(message::Entity::find().select_only())
            .filter(message::Column::Id.is_in(padded(chunk)))
            .into_model()
            .all(db)
            .await?;
        for row in rows {
            let message = row.into_message()?;
            messages.insert(message.id.0, message);
        }
    }
    let peers: Vec<UserId> = page
        .iter()
        .filter_map(|&(with, _)| match with {
            Target::User(peer) => Some(peer),
            Target::Group(_) => None,
        })
        .collect();
    let names: HashMap<UserId, String> = users(db, &peers)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let group_names: HashMap<GroupId, String> =
        groups.into_iter().map(|g| (g.id, g.name)).collect();
    let positions: HashMap<(i16, i64), i64> = read_position::Entity::find()
        .select_only()
        .column(read_position::Column::Kind)
        .column(read_position::Column::PeerId)
        .column(read_position::Column::Mid)
        .filter(read_position::Column::UserId.eq(user.0))
        .into_tuple::<(i16, i64, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(kind, peer, mid)| ((kind, peer), mid))
        .collect();
    let read_of = |with: Target| {
        let key = match with {
            Target::User(peer) => (message::KIND_DIRECT, peer.0),
            Target::Group(group) => (message::KIND_GROUP, group.0),
        };
        positions.get(&key).copied().unwrap_or(0)
    };
    // Unread: a range of the recipient index (one-to-one: what the peer
    // sent `user`) or of the conversation index (group: what others sent).
    let arms = page
        .iter()
        .map(|&(with, _)| {
            let read = read_of(with);
            let mut arm = Query::select();
            arm.expr(Expr::col(message::Column::Id).count())
                .from(message::Entity);
            match with {
                Target::User(peer) => arm
                    .and_where(Expr::col(message::Column::TargetId).eq(user.0))
                    .and_where(Expr::col(message::Column::Kind).eq(message::KIND_DIRECT))
                    .and_where(Expr::col(message::Column::SenderId).eq(peer.0))
                    .and_where(Expr::col(message::Column::Id).gt(read))
                    // Notes to self are all sent by `user`.
                    .and_where(Expr::col(message::Column::SenderId).ne(user.0)),
                Target::Group(group) => arm
                    .and_where(
                        Expr::col(message::Column::Conversation)
                            .eq(Conversation::Group(group).key()),
                    )
                    .and_where(Expr::col(message::Column::Id).gt(read))
                    .and_where(Expr::col(message::Column::SenderId).ne(user.0)),
            };
            arm.take()
        })
        .collect();
    let unread = scalars(db, arms).await?;

    page.into_iter()
        .zip(unread)
        .map(|((with, id), unread)| {
            let last = messages.remove(&id).ok_or_else(|| {
                StoreError::Internal(format!("message {id} vanished while listing"))
            })?;
            let name = match with {
                Target::User(peer) => names.get(&peer).cloned(),
                Target::Group(group) => group_names.get(&group).cloned(),
            };
            Ok(ConversationSummary {
                with,
                name: name.unwrap_or_default(),
                last,
                unread: unread.map_or(0, |n| u64::try_from(n).unwrap_or_default()),
                read: MessageId(read_of(with)),
            })
        })
        .collect()
}

/// Users named `name`, or whose names start with it: a range of the
/// unique name index, `[name, successor)`, since every name with the
/// prefix sorts there in a binary collation (and no other does).
pub(super) async fn find_users(
    db: &DatabaseConnection,
    name: &str,
    prefix: bool,
    limit: u32,
) -> Result<Vec<UserInfo>, Fail> {
    let mut query = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Name)
        .filter(user::Column::DeletedAt.is_null());
    if prefix {
        query = query.filter(user::Column::Name.gte(name));
        if let Some(end) = prefix_end(name) {
            query = query.filter(user::Column::Name.lt(end));
        }
    } else {
        query = query.filter(user::Column::Name.eq(name));
    }
    let rows: Vec<(i64, String)> = query
        .order_by_asc(user::Column::Name)
        .limit(u64::from(limit))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(user_info).collect())
}

/// The first string after every string that starts with `prefix`: the
/// prefix with its last character that can grow grown by one (in code
/// point order, which a binary collation of UTF-8 follows); `None` when
/// no character can (the range is open-ended).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_grows_the_last_character() {
        assert_eq!(prefix_end("bo").as_deref(), Some("bp"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }
}
