//! Writes: each store call that changes data (users, friendships, groups,
//! lone sends, acks), as one transaction on the writer connection, run
//! again when the database picks it as a deadlock victim.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use super::entity::{
    chat_group, friendship, group_member, inbox, inbox_state, message, read_position, user,
};
use super::error::{Fail, is_retryable, is_unique_violation, unique_or};
use super::read::{acked_seq, find_by_client_msg_id, group_exists, is_member, user_exists};
use super::rows::{duplicate_receipt, epoch, user_info};
use super::shape::{CHUNK, padded, pow2_runs};
use crate::model::{
    Conversation, Delivery, GroupId, Message, MessageId, NewMessage, Role, SendReceipt, Seq,
    Target, UserId,
};
use crate::store::{GroupCaps, StoreError, deleted_user_name};

/// Times a write is run again after its transaction was chosen as a
/// deadlock victim.
const DEADLOCK_RERUNS: u32 = 3;

/// Runs `attempt` again (up to [`DEADLOCK_RERUNS`] times) while its
/// transaction is rolled back as a deadlock victim.
pub(super) async fn rerun_deadlocked<T, Fut>(
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, Fail>
where
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut reruns = 0;
    loop {
        match attempt().await {
            Err(Fail::Db(e)) if is_retryable(&e) && reruns < DEADLOCK_RERUNS => {
                reruns += 1;
                tracing::debug!(what, reruns, error = %e, "rolled back, running it again");
            }
            result => return result,
        }
    }
}

/// A write transaction: `BEGIN IMMEDIATE` on SQLite, so it takes the
/// write lock up front instead of failing to upgrade a read lock later.
pub(super) async fn begin_write(writer: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    writer
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await
}

pub(super) async fn create_user(
    writer: &DatabaseConnection,
    name: &str,
    password_hash: &str,
) -> Result<UserId, Fail> {
    let txn = begin_write(writer).await?;
    let inserted = user::Entity::insert(user::ActiveModel {
        id: NotSet,
        name: Set(name.to_owned()),
        password_hash: Set(password_hash.to_owned()),
        created_at: Set(now_ms()),
        token_epoch: Set(0),
        banned_at: Set(None),
        deleted_at: Set(None),
    })
    .exec(&txn)
    .await
    .map_err(|e| unique_or(e, StoreError::NameTaken))?;
    let id = inserted.last_insert_id;
    inbox_state::Entity::insert(inbox_state::ActiveModel {
        user_id: Set(id),
        last_seq: Set(0),
        acked_seq: Set(0),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(UserId(id))
}

/// Moves `user`'s token epoch on (and replaces its password hash when
/// given) and reads the new epoch back in the same transaction: the
/// update's row lock orders racing callers, so each sees its own bump.
pub(super) async fn bump_token_epoch(
    writer: &DatabaseConnection,
    user: UserId,
    password_hash: Option<&str>,
) -> Result<u64, Fail> {
    let txn = begin_write(writer).await?;
    let mut update = user::Entity::update_many()
        .col_expr(
            user::Column::TokenEpoch,
            Expr::col(user::Column::TokenEpoch).add(1),
        )
        .filter(user::Column::Id.eq(user.0))
        .filter(user::Column::DeletedAt.is_null());
    if let Some(hash) = password_hash {
        update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
    }
    let updated = update.exec(&txn).await?;
    if updated.rows_affected == 0 {
        return Err(StoreError::UnknownUser(user).into());
    }
    let stored: Option<i64> = user::Entity::find_by_id(user.0)
        .select_only()
        .column(user::Column::TokenEpoch)
        .into_tuple()
        .one(&txn)
        .await?;
    txn.commit().await?;
    let stored = stored.ok_or(StoreError::UnknownUser(user))?;
    Ok(epoch(stored))
}

/// Bans (`Some`: since when, unless banned already, and a new token
/// epoch) or lifts the ban (`None`) of a live user, in one statement.
pub(super) async fn set_banned(
    writer: &DatabaseConnection,
    user: UserId,
    at_ms: Option<i64>,
) -> Result<(), Fail> {
    let mut update = user::Entity::update_many()
        .filter(user::Column::Id.eq(user.0))
        .filter(user::Column::DeletedAt.is_null());
    update = match at_ms {
        Some(at) => update
            .col_expr(
                user::Column::BannedAt,
                Func::coalesce([Expr::col(user::Column::BannedAt), Expr::val(at)]).into(),
            )
            .col_expr(
                user::Column::TokenEpoch,
                Expr::col(user::Column::TokenEpoch).add(1),
            ),
        None => update.col_expr(user::Column::BannedAt, Expr::val(Option::<i64>::None)),
    };
    // Rows matched, not changed, on both backends (MySQL through
    // CLIENT_FOUND_ROWS): lifting no ban still finds the user.
    if update.exec(writer).await?.rows_affected == 0 {
        return Err(StoreError::UnknownUser(user).into());
    }
    Ok(())
}

/// Turns a live user into its tombstone and deletes what was only its
/// own, in one transaction (see `Store::delete_user`).
pub(super) async fn delete_user(writer: &DatabaseConnection, user: UserId) -> Result<(), Fail> {
    rerun_deadlocked("delete_user", || erase_user(writer, user)).await
}

async fn erase_user(writer: &DatabaseConnection, user: UserId) -> Result<(), Fail> {
    let txn = begin_write(writer).await?;
    // The row stays: the messages it sent still name it (and a foreign
    // key keeps it). Its name is one no registration can take, so the
    // old one is free again; no password hash verifies against "".
    let tombstoned = user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::val(deleted_user_name(user)))
        .col_expr(user::Column::PasswordHash, Expr::val(""))
        .col_expr(user::Column::DeletedAt, Expr::val(now_ms()))
        .col_expr(user::Column::BannedAt, Expr::val(Option::<i64>::None))
        .col_expr(
            user::Column::TokenEpoch,
            Expr::col(user::Column::TokenEpoch).add(1),
        )
        .filter(user::Column::Id.eq(user.0))
        .filter(user::Column::DeletedAt.is_null())
        .exec(&txn)
        .await?;
    if tombstoned.rows_affected == 0 {
        return Err(StoreError::UnknownUser(user).into());
    }
    // Friendships are two rows each: the user's own (by key prefix) and
    // the one back from each friend (by full key, never a scan of
    // `friend_id`).
    let friends: Vec<i64> = friendship::Entity::find()
        .select_only()
        .column(friendship::Column::FriendId)
        .filter(friendship::Column::UserId.eq(user.0))
        .into_tuple()
        .all(&txn)
        .await?;
    for chunk in friends.chunks(CHUNK) {
        friendship::Entity::delete_many()
            .filter(friendship::Column::UserId.is_in(padded(chunk)))
            .filter(friendship::Column::FriendId.eq(user.0))
            .exec(&txn)
            .await?;
    }
    friendship::Entity::delete_many()
        .filter(friendship::Column::UserId.eq(user.0))
        .exec(&txn)
        .await?;
    group_member::Entity::delete_many()
        .filter(group_member::Column::UserId.eq(user.0))
        .exec(&txn)
        .await?;
    read_position::Entity::delete_many()
        .filter(read_position::Column::UserId.eq(user.0))
        .exec(&txn)
        .await?;
    inbox::Entity::delete_many()
        .filter(inbox::Column::UserId.eq(user.0))
        .exec(&txn)
        .await?;
    inbox_state::Entity::update_many()
        .col_expr(inbox_state::Column::LastSeq, Expr::val(0))
        .col_expr(inbox_state::Column::AckedSeq, Expr::val(0))
        .filter(inbox_state::Column::UserId.eq(user.0))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// One conditional update: the hash changes only if it is still `old`,
/// and the token epoch stays.
pub(super) async fn rehash_password(
    writer: &DatabaseConnection,
    user: UserId,
    old: &str,
    new: &str,
) -> Result<bool, Fail> {
    let updated = user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(new))
        .filter(user::Column::Id.eq(user.0))
        .filter(user::Column::PasswordHash.eq(old))
        .exec(writer)
        .await?;
    Ok(updated.rows_affected > 0)
}

/// Checks both users on `reader`, then inserts both directions on `writer`.
pub(super) async fn add_friend(
    reader: &DatabaseConnection,
    writer: &DatabaseConnection,
    a: UserId,
    b: UserId,
) -> Result<bool, Fail> {
    for id in [a, b] {
        if !user_exists(reader, id).await? {
            return Err(StoreError::UnknownUser(id).into());
        }
    }
    // Both rows in one statement, always in key order, so two racing
    // calls (a, b) and (b, a) lock the same row first and cannot deadlock.
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut pairs = vec![(lo, hi)];
    if lo != hi {
        pairs.push((hi, lo));
    }
    let rows = pairs.into_iter().map(|(u, f)| friendship::ActiveModel {
        user_id: Set(u.0),
        friend_id: Set(f.0),
    });
    // A plain insert, not ON CONFLICT DO NOTHING: on MySQL sqlx reports
    // matched rows (CLIENT_FOUND_ROWS), so the row count of the
    // DO NOTHING polyfill cannot tell a new row from an old one; a
    // duplicate key error can, on every backend.
    match friendship::Entity::insert_many(rows)
        .exec_without_returning(writer)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn remove_friend(
    writer: &DatabaseConnection,
    a: UserId,
    b: UserId,
) -> Result<bool, Fail> {
    let pair = |u: UserId, f: UserId| {
        Condition::all()
            .add(friendship::Column::UserId.eq(u.0))
            .add(friendship::Column::FriendId.eq(f.0))
    };
    let deleted = friendship::Entity::delete_many()
        .filter(Condition::any().add(pair(a, b)).add(pair(b, a)))
        .exec(writer)
        .await?;
    Ok(deleted.rows_affected > 0)
}

pub(super) async fn create_group(
    writer: &DatabaseConnection,
    creator: UserId,
    name: &str,
    desc: &str,
    caps: GroupCaps,
) -> Result<GroupId, Fail> {
    rerun_deadlocked("create_group", || {
        insert_group(writer, creator, name, desc, caps)
    })
    .await
}

async fn insert_group(
    writer: &DatabaseConnection,
    creator: UserId,
    name: &str,
    desc: &str,
    caps: GroupCaps,
) -> Result<GroupId, Fail> {
    let txn = begin_write(writer).await?;
    if !lock_user(&txn, creator).await? {
        return Err(StoreError::UnknownUser(creator).into());
    }
    caps.check(group_count(&txn, creator).await?, 0)
        .map_err(StoreError::CapReached)?;
    let now = now_ms();
    let inserted = chat_group::Entity::insert(chat_group::ActiveModel {
        id: NotSet,
        name: Set(name.to_owned()),
        description: Set(desc.to_owned()),
        created_at: Set(now),
    })
    .exec(&txn)
    .await
    .map_err(|e| unique_or(e, StoreError::GroupNameTaken))?;
    let id = inserted.last_insert_id;
    group_member::Entity::insert(group_member::ActiveModel {
        group_id: Set(id),
        user_id: Set(creator.0),
        role: Set(Role::Creator.as_str().to_owned()),
        joined_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(GroupId(id))
}

pub(super) async fn join_group(
    writer: &DatabaseConnection,
    group: GroupId,
    user: UserId,
    caps: GroupCaps,
) -> Result<bool, Fail> {
    rerun_deadlocked("join_group", || insert_member(writer, group, user, caps)).await
}

/// Adds a membership within `caps`. Every change to a group's members
/// locks the group's row and every change to a user's groups locks the
/// user's row (always in that order, so joins cannot deadlock each
/// other), and the counts are read after both locks are held: whoever
/// changed them last has committed. On SQLite the single writer
/// connection serialises all of this anyway (its locks are no-ops).
async fn insert_member(
    writer: &DatabaseConnection,
    group: GroupId,
    user: UserId,
    caps: GroupCaps,
) -> Result<bool, Fail> {
    let txn = begin_write(writer).await?;
    let locked: Option<i64> = chat_group::Entity::find_by_id(group.0)
        .select_only()
        .column(chat_group::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .one(&txn)
        .await?;
    if locked.is_none() {
        return Err(StoreError::UnknownGroup(group).into());
    }
    if !lock_user(&txn, user).await? {
        return Err(StoreError::UnknownUser(user).into());
    }
    let member = group_member::Entity::find_by_id((group.0, user.0))
        .one(&txn)
        .await?
        .is_some();
    if member {
        // The existing row (and its role) is left as it is.
        return Ok(false);
    }
    let members = group_member::Entity::find()
        .filter(group_member::Column::GroupId.eq(group.0))
        .count(&txn)
        .await?;
    caps.check(group_count(&txn, user).await?, members)
        .map_err(StoreError::CapReached)?;
    group_member::Entity::insert(group_member::ActiveModel {
        group_id: Set(group.0),
        user_id: Set(user.0),
        role: Set(Role::Normal.as_str().to_owned()),
        joined_at: Set(now_ms()),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// Checks the group on `reader`, then deletes the membership on `writer`.
pub(super) async fn leave_group(
    reader: &DatabaseConnection,
    writer: &DatabaseConnection,
    group: GroupId,
    user: UserId,
) -> Result<bool, Fail> {
    if !group_exists(reader, group).await? {
        return Err(StoreError::UnknownGroup(group).into());
    }
    let deleted = group_member::Entity::delete_many()
        .filter(group_member::Column::GroupId.eq(group.0))
        .filter(group_member::Column::UserId.eq(user.0))
        .exec(writer)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// One send in a transaction of its own, run again (up to
/// [`DEADLOCK_RERUNS`] times) when chosen as a deadlock victim.
pub(super) async fn send_alone(
    writer: &DatabaseConnection,
    message: &NewMessage,
) -> Result<SendReceipt, Fail> {
    rerun_deadlocked("send", || store_message(writer, message)).await
}

/// One attempt at a lone send, in one transaction.
async fn store_message(writer: &DatabaseConnection, new: &NewMessage) -> Result<SendReceipt, Fail> {
    let txn = begin_write(writer).await?;
    // Sender and (one-to-one) recipient in one round trip.
    let mut wanted = vec![new.sender.0];
    if let Target::User(to) = new.target {
        wanted.push(to.0);
    }
    let found: Vec<(i64, String)> = user::Entity::find()
        .select_only()
        .column(user::Column::Id)
        .column(user::Column::Name)
        .filter(user::Column::Id.is_in(wanted))
        .filter(user::Column::DeletedAt.is_null())
        .into_tuple()
        .all(&txn)
        .await?;
    let sender = found
        .iter()
        .find(|(id, _)| *id == new.sender.0)
        .map(|(id, name)| user_info((*id, name.clone())))
        .ok_or(StoreError::UnknownUser(new.sender))?;

    if let Some(client_msg_id) = new.client_msg_id.as_deref()
        && let Some(stored) = find_by_client_msg_id(&txn, new.sender, client_msg_id).await?
    {
        txn.rollback().await?;
        return Ok(duplicate_receipt(stored, sender)?);
    }

    let (kind, target_id, recipients) = match new.target {
        Target::User(to) => {
            if !found.iter().any(|(id, _)| *id == to.0) {
                return Err(StoreError::UnknownUser(to).into());
            }
            (message::KIND_DIRECT, to.0, vec![to.0])
        }
        Target::Group(group) => {
            let members: Vec<i64> = group_member::Entity::find()
                .select_only()
                .column(group_member::Column::UserId)
                .filter(group_member::Column::GroupId.eq(group.0))
                .order_by_asc(group_member::Column::UserId)
                .into_tuple()
                .all(&txn)
                .await?;
            // A member's row proves the group exists; only a refusal
            // needs the second look to tell which refusal it is.
            if !members.contains(&new.sender.0) {
                return Err(if group_exists(&txn, group).await? {
                    StoreError::NotMember {
                        user: new.sender,
                        group,
                    }
                } else {
                    StoreError::UnknownGroup(group)
                }
                .into());
            }
            let others = members.into_iter().filter(|&u| u != new.sender.0);
            (message::KIND_GROUP, group.0, others.collect())
        }
    };

    let inserted = message::Entity::insert(message::ActiveModel {
        id: NotSet,
        sender_id: Set(new.sender.0),
        kind: Set(kind),
        target_id: Set(target_id),
        conversation: Set(Conversation::of(new.sender, new.target).key()),
        body: Set(new.body.clone()),
        client_msg_id: Set(new.client_msg_id.clone()),
        created_at: Set(new.sent_at_ms),
    })
    .exec(&txn)
    .await;
    let message_id = match inserted {
        Ok(inserted) => inserted.last_insert_id,
        Err(e) => {
            // A concurrent send with the same client id committed first
            // (the check above could not see it yet): answer as a resend.
            if let Some(client_msg_id) = new.client_msg_id.as_deref()
                && is_unique_violation(&e)
            {
                txn.rollback().await?;
                let stored = find_by_client_msg_id(writer, new.sender, client_msg_id).await?;
                if let Some(stored) = stored {
                    return Ok(duplicate_receipt(stored, sender)?);
                }
            }
            return Err(e.into());
        }
    };

    let deliveries = allocate_seqs(&txn, &recipients).await?;
    for run in pow2_runs(deliveries.len()) {
        let rows = deliveries[run].iter().map(|d| inbox::ActiveModel {
            user_id: Set(d.user.0),
            seq: Set(d.seq.0),
            message_id: Set(message_id),
        });
        inbox::Entity::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;

    Ok(SendReceipt {
        message: Message {
            id: MessageId(message_id),
            sender,
            target: new.target,
            body: new.body.clone(),
            client_msg_id: new.client_msg_id.clone(),
            sent_at_ms: new.sent_at_ms,
        },
        deliveries,
        duplicate: false,
    })
}

/// Takes the next seq of every recipient's inbox, in ascending user id
/// order (the order row locks are taken in, so concurrent sends cannot
/// deadlock), without `UPDATE ... RETURNING` (MariaDB has none).
async fn allocate_seqs(
    txn: &DatabaseTransaction,
    recipients: &[i64],
) -> Result<Vec<Delivery>, Fail> {
    let mut users = recipients.to_vec();
    users.sort_unstable();
    users.dedup();
    let mut deliveries = Vec::with_capacity(users.len());
    for chunk in users.chunks(CHUNK) {
        inbox_state::Entity::update_many()
            .col_expr(
                inbox_state::Column::LastSeq,
                Expr::col(inbox_state::Column::LastSeq).add(1),
            )
            .filter(inbox_state::Column::UserId.is_in(padded(chunk)))
            .exec(txn)
            .await?;
        let seqs: Vec<(i64, i64)> = inbox_state::Entity::find()
            .select_only()
            .column(inbox_state::Column::UserId)
            .column(inbox_state::Column::LastSeq)
            .filter(inbox_state::Column::UserId.is_in(padded(chunk)))
            .order_by_asc(inbox_state::Column::UserId)
            .into_tuple()
            .all(txn)
            .await?;
        if seqs.len() != chunk.len() {
            return Err(StoreError::Internal(format!(
                "inbox state missing for {} of {} recipients",
                chunk.len() - seqs.len(),
                chunk.len()
            ))
            .into());
        }
        deliveries.extend(seqs.into_iter().map(|(user, seq)| Delivery {
            user: UserId(user),
            seq: Seq(seq),
        }));
    }
    Ok(deliveries)
}

/// Moves the acked cursor to `max(acked, min(seq, last))`.
pub(super) async fn ack(writer: &DatabaseConnection, user: UserId, seq: Seq) -> Result<Seq, Fail> {
    let txn = begin_write(writer).await?;
    // acked = max(acked, min(seq, last)) as one statement; the WHERE
    // clause makes a lower seq a no-op (acked <= last always holds).
    let capped = Expr::case(
        Expr::col(inbox_state::Column::LastSeq).lt(seq.0),
        Expr::col(inbox_state::Column::LastSeq),
    )
    .finally(Expr::val(seq.0));
    inbox_state::Entity::update_many()
        .col_expr(inbox_state::Column::AckedSeq, capped.into())
        .filter(inbox_state::Column::UserId.eq(user.0))
        .filter(inbox_state::Column::AckedSeq.lt(seq.0))
        .exec(&txn)
        .await?;
    let acked = acked_seq(&txn, user).await?;
    txn.commit().await?;
    Ok(acked)
}

/// Locks `user`'s row for the transaction: false when there is none.
async fn lock_user(txn: &DatabaseTransaction, user: UserId) -> Result<bool, Fail> {
    let found: Option<i64> = user::Entity::find_by_id(user.0)
        .select_only()
        .column(user::Column::Id)
        .filter(user::Column::DeletedAt.is_null())
        .lock_exclusive()
        .into_tuple()
        .one(txn)
        .await?;
    Ok(found.is_some())
}

/// How many groups `user` belongs to.
async fn group_count(txn: &DatabaseTransaction, user: UserId) -> Result<u64, Fail> {
    Ok(group_member::Entity::find()
        .filter(group_member::Column::UserId.eq(user.0))
        .count(txn)
        .await?)
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A conversation seen from one user, as `read_position` keys it.
pub(super) fn read_key(with: Target) -> (i16, i64) {
    match with {
        Target::User(peer) => (message::KIND_DIRECT, peer.0),
        Target::Group(group) => (message::KIND_GROUP, group.0),
    }
}

/// Checks the conversation on `reader`, then moves the position forward
/// on `writer`.
pub(super) async fn mark_read(
    reader: &DatabaseConnection,
    writer: &DatabaseConnection,
    user: UserId,
    with: Target,
    mid: MessageId,
) -> Result<MessageId, Fail> {
    match with {
        Target::User(peer) => {
            if !user_exists(reader, peer).await? {
                return Err(StoreError::UnknownUser(peer).into());
            }
        }
        Target::Group(group) => {
            if !group_exists(reader, group).await? {
                return Err(StoreError::UnknownGroup(group).into());
            }
            if !is_member(reader, group, user).await? {
                return Err(StoreError::NotMember { user, group }.into());
            }
        }
    }
    rerun_deadlocked("mark_read", || raise_read(writer, user, with, mid)).await
}

/// Three single statements, no transaction around them: each is atomic
/// and the position only grows, so no lock is held across them (a
/// transaction reading the missing row FOR UPDATE would take gap locks
/// that racing first marks deadlock on).
async fn raise_read(
    writer: &DatabaseConnection,
    user: UserId,
    with: Target,
    mid: MessageId,
) -> Result<MessageId, Fail> {
    let (kind, peer) = read_key(with);
    if raise_stored_read(writer, user, with, mid).await? == 0 {
        // No row, or one at `mid` or above already.
        let row = read_position::ActiveModel {
            user_id: Set(user.0),
            kind: Set(kind),
            peer_id: Set(peer),
            mid: Set(mid.0),
        };
        match read_position::Entity::insert(row)
            .exec_without_returning(writer)
            .await
        {
            Ok(_) => {}
            // It exists (maybe a racing first mark, maybe lower): raise it.
            Err(e) if is_unique_violation(&e) => {
                raise_stored_read(writer, user, with, mid).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let position = stored_read(writer, user, kind, peer)
        .await?
        .unwrap_or(mid.0);
    Ok(MessageId(position))
}

/// position = max(position, mid), as one statement; the rows it raised.
async fn raise_stored_read(
    writer: &DatabaseConnection,
    user: UserId,
    with: Target,
    mid: MessageId,
) -> Result<u64, DbErr> {
    let (kind, peer) = read_key(with);
    let raised = read_position::Entity::update_many()
        .col_expr(read_position::Column::Mid, Expr::val(mid.0))
        .filter(read_position::Column::UserId.eq(user.0))
        .filter(read_position::Column::Kind.eq(kind))
        .filter(read_position::Column::PeerId.eq(peer))
        .filter(read_position::Column::Mid.lt(mid.0))
        .exec(writer)
        .await?;
    Ok(raised.rows_affected)
}

async fn stored_read(
    writer: &DatabaseConnection,
    user: UserId,
    kind: i16,
    peer: i64,
) -> Result<Option<i64>, DbErr> {
    read_position::Entity::find_by_id((user.0, kind, peer))
        .select_only()
        .column(read_position::Column::Mid)
        .into_tuple()
        .one(writer)
        .await
}
