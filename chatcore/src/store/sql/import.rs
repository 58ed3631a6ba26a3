//! Imports: users, friendships, groups and messages brought from another
//! chat system with the ids they had there (`chatd import-seed`). Not part
//! of the [`Store`](crate::store::Store) trait: ids chosen by the caller
//! exist only here. Each batch is one transaction that also records the
//! importer's checkpoint, so an interrupted import resumes after its last
//! committed batch and never writes a batch twice.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};

use super::entity::{
    chat_group, friendship, group_member, import_checkpoint, inbox, inbox_state, message, user,
};
use super::error::{Fail, unique_or};
use super::rows::{group_columns, user_info};
use super::shape::{CHUNK, padded};
use super::write::{begin_write, now_ms};
use crate::model::{Conversation, GroupId, GroupInfo, MessageId, Role, Target, UserId, UserInfo};
use crate::store::StoreError;

/// Most rows in one multi-row insert (a power of two; five columns at most,
/// well under every backend's placeholder limit).
const RUN: usize = 256;

/// A user with the id it had at the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedUser {
    pub id: UserId,
    pub name: String,
    /// A PHC string, as registration stores it.
    pub password_hash: String,
}

/// A message to store; its inbox entries are [`ImportedDelivery`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedMessage {
    pub sender: UserId,
    pub target: Target,
    pub body: String,
    /// When it was sent, milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
}

/// A message of this batch or of an earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageRef {
    /// `ImportBatch::messages[i]`.
    InBatch(usize),
    /// A message an earlier batch stored.
    Stored(MessageId),
}

/// One inbox entry: `message` at the next `seq` of `to`'s inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportedDelivery {
    pub to: UserId,
    pub message: MessageRef,
}

/// What one transaction of an import writes, in this order. The rows must
/// be new: a user, group, friendship or membership the store already has
/// fails the whole batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportBatch {
    pub users: Vec<ImportedUser>,
    /// Friendships, each stored both ways as `add_friend` stores them.
    pub friendships: Vec<(UserId, UserId)>,
    pub groups: Vec<GroupInfo>,
    pub members: Vec<(GroupId, UserId, Role)>,
    pub messages: Vec<ImportedMessage>,
    /// Inbox entries, appended in this order; none is acknowledged, so
    /// each recipient receives them at its next login.
    pub deliveries: Vec<ImportedDelivery>,
}

impl ImportBatch {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.friendships.is_empty()
            && self.groups.is_empty()
            && self.members.is_empty()
            && self.messages.is_empty()
            && self.deliveries.is_empty()
    }
}

/// Users and groups the store holds that share an id or a name with ones
/// to be imported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportClashes {
    pub users: Vec<UserInfo>,
    pub groups: Vec<GroupInfo>,
}

pub(super) async fn checkpoint(
    reader: &DatabaseConnection,
    source: &str,
) -> Result<Option<String>, Fail> {
    Ok(import_checkpoint::Entity::find_by_id(source.to_owned())
        .one(reader)
        .await?
        .map(|row| row.state))
}

/// The stored users and groups with any of the ids or names given.
pub(super) async fn clashes(
    reader: &DatabaseConnection,
    users: &[UserInfo],
    groups: &[GroupInfo],
) -> Result<ImportClashes, Fail> {
    let mut found_users = BTreeMap::new();
    for chunk in users.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.id.0).collect();
        let names = chunk.iter().map(|u| u.name.as_str());
        let rows: Vec<(i64, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(
                Condition::any()
                    .add(user::Column::Id.is_in(ids))
                    .add(user::Column::Name.is_in(names)),
            )
            .into_tuple()
            .all(reader)
            .await?;
        found_users.extend(rows.into_iter().map(|row| (row.0, user_info(row))));
    }
    let mut found_groups = BTreeMap::new();
    for chunk in groups.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|g| g.id.0).collect();
        let names = chunk.iter().map(|g| g.name.as_str());
        let rows: Vec<(i64, String, String)> = chat_group::Entity::find()
            .select_only()
            .column(chat_group::Column::Id)
            .column(chat_group::Column::Name)
            .column(chat_group::Column::Description)
            .filter(
                Condition::any()
                    .add(chat_group::Column::Id.is_in(ids))
                    .add(chat_group::Column::Name.is_in(names)),
            )
            .into_tuple()
            .all(reader)
            .await?;
        found_groups.extend(rows.into_iter().map(|row| (row.0, group_columns(row))));
    }
    Ok(ImportClashes {
        users: found_users.into_values().collect(),
        groups: found_groups.into_values().collect(),
    })
}

/// Writes `batch` and the checkpoint `checkpoint` makes from the ids of the
/// batch's new messages, in one transaction; returns those ids.
pub(super) async fn commit(
    writer: &DatabaseConnection,
    source: &str,
    batch: &ImportBatch,
    checkpoint: impl FnOnce(&[MessageId]) -> String,
) -> Result<Vec<MessageId>, Fail> {
    let txn = begin_write(writer).await?;
    let now = now_ms();
    insert_users(&txn, &batch.users, now).await?;
    insert_rows(
        &txn,
        batch
            .friendships
            .iter()
            .flat_map(|&(a, b)| [(a, b), (b, a)])
            .map(|(u, f)| friendship::ActiveModel {
                user_id: Set(u.0),
                friend_id: Set(f.0),
            })
            .collect(),
    )
    .await?;
    insert_rows(
        &txn,
        batch
            .groups
            .iter()
            .map(|g| chat_group::ActiveModel {
                id: Set(g.id.0),
                name: Set(g.name.clone()),
                description: Set(g.desc.clone()),
                created_at: Set(now),
            })
            .collect(),
    )
    .await
    .map_err(|e| unique_or(e, StoreError::GroupNameTaken))?;
    insert_rows(
        &txn,
        batch
            .members
            .iter()
            .map(|&(group, user, role)| group_member::ActiveModel {
                group_id: Set(group.0),
                user_id: Set(user.0),
                role: Set(role.as_str().to_owned()),
                joined_at: Set(now),
            })
            .collect(),
    )
    .await?;
    let ids = insert_messages(&txn, &batch.messages).await?;
    deliver(&txn, &batch.deliveries, &ids).await?;
    save_checkpoint(&txn, source, checkpoint(&ids), now).await?;
    txn.commit().await?;
    Ok(ids)
}

async fn insert_users(
    txn: &DatabaseTransaction,
    users: &[ImportedUser],
    now: i64,
) -> Result<(), Fail> {
    let rows = users
        .iter()
        .map(|u| user::ActiveModel {
            id: Set(u.id.0),
            name: Set(u.name.clone()),
            password_hash: Set(u.password_hash.clone()),
            created_at: Set(now),
            token_epoch: Set(0),
            banned_at: Set(None),
            deleted_at: Set(None),
        })
        .collect();
    insert_rows(txn, rows)
        .await
        .map_err(|e| unique_or(e, StoreError::NameTaken))?;
    let states = users
        .iter()
        .map(|u| inbox_state::ActiveModel {
            user_id: Set(u.id.0),
            last_seq: Set(0),
            acked_seq: Set(0),
        })
        .collect();
    Ok(insert_rows(txn, states).await?)
}

async fn insert_messages(
    txn: &DatabaseTransaction,
    messages: &[ImportedMessage],
) -> Result<Vec<MessageId>, Fail> {
    let mut ids = Vec::with_capacity(messages.len());
    for m in messages {
        let (kind, target_id) = match m.target {
            Target::User(to) => (message::KIND_DIRECT, to.0),
            Target::Group(group) => (message::KIND_GROUP, group.0),
        };
        let inserted = message::Entity::insert(message::ActiveModel {
            id: sea_orm::ActiveValue::NotSet,
            sender_id: Set(m.sender.0),
            kind: Set(kind),
            target_id: Set(target_id),
            conversation: Set(Conversation::of(m.sender, m.target).key()),
            body: Set(m.body.clone()),
            client_msg_id: Set(None),
            created_at: Set(m.sent_at_ms),
        })
        .exec(txn)
        .await?;
        ids.push(MessageId(inserted.last_insert_id));
    }
    Ok(ids)
}

/// Appends the entries in order: reads each recipient's last seq once
/// (locking its row), numbers the entries in memory, then writes the
/// entries and the new last seqs.
async fn deliver(
    txn: &DatabaseTransaction,
    deliveries: &[ImportedDelivery],
    new_ids: &[MessageId],
) -> Result<(), Fail> {
    let recipients: BTreeSet<i64> = deliveries.iter().map(|d| d.to.0).collect();
    let recipients: Vec<i64> = recipients.into_iter().collect();
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for chunk in recipients.chunks(CHUNK) {
        let rows: Vec<(i64, i64)> = inbox_state::Entity::find()
            .select_only()
            .column(inbox_state::Column::UserId)
            .column(inbox_state::Column::LastSeq)
            .filter(inbox_state::Column::UserId.is_in(padded(chunk)))
            .lock_exclusive()
            .into_tuple()
            .all(txn)
            .await?;
        last.extend(rows);
    }
    let mut entries = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let seq = last.get_mut(&d.to.0).ok_or(StoreError::UnknownUser(d.to))?;
        *seq += 1;
        let message_id = match d.message {
            MessageRef::Stored(id) => id.0,
            MessageRef::InBatch(i) => {
                new_ids
                    .get(i)
                    .ok_or_else(|| {
                        StoreError::Internal(format!(
                            "an inbox entry names message {i} of the batch, which has {}",
                            new_ids.len()
                        ))
                    })?
                    .0
            }
        };
        entries.push(inbox::ActiveModel {
            user_id: Set(d.to.0),
            seq: Set(*seq),
            message_id: Set(message_id),
        });
    }
    insert_rows(txn, entries).await?;
    for (user, seq) in last {
        inbox_state::Entity::update_many()
            .col_expr(
                inbox_state::Column::LastSeq,
                sea_orm::sea_query::Expr::value(seq),
            )
            .filter(inbox_state::Column::UserId.eq(user))
            .exec(txn)
            .await?;
    }
    Ok(())
}

async fn save_checkpoint(
    txn: &DatabaseTransaction,
    source: &str,
    state: String,
    now: i64,
) -> Result<(), Fail> {
    let row = import_checkpoint::ActiveModel {
        source: Set(source.to_owned()),
        state: Set(state),
        updated_at: Set(now),
    };
    let exists = import_checkpoint::Entity::find_by_id(source.to_owned())
        .select_only()
        .column(import_checkpoint::Column::Source)
        .lock_exclusive()
        .into_tuple::<String>()
        .one(txn)
        .await?
        .is_some();
    if exists {
        import_checkpoint::Entity::update(row).exec(txn).await?;
    } else {
        import_checkpoint::Entity::insert(row)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Inserts `rows` in multi-row statements of power-of-two lengths (few
/// statement shapes, see `shape.rs`).
async fn insert_rows<A>(txn: &DatabaseTransaction, rows: Vec<A>) -> Result<(), sea_orm::DbErr>
where
    A: ActiveModelTrait + Send,
{
    let mut left = rows.len();
    let mut rows = rows.into_iter();
    while left > 0 {
        let run = 1 << left.min(RUN).ilog2();
        <A::Entity as EntityTrait>::insert_many(rows.by_ref().take(run))
            .exec_without_returning(txn)
            .await?;
        left -= run;
    }
    Ok(())
}
