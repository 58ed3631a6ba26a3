//! Retention: one bounded step of deleting old messages that every
//! recipient has acknowledged, with their inbox entries.
//!
//! What may go is read on the reader first, outside any transaction: a
//! message that is acknowledged stays so (cursors only grow, and no entry
//! is ever added to an old message), so the short write transaction that
//! follows only deletes.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};

use super::entity::{inbox, inbox_state, message, user};
use super::error::Fail;
use super::shape::{CHUNK, padded};
use super::write::{begin_write, rerun_deadlocked};
use crate::model::MessageId;
use crate::store::PruneStep;

pub(super) async fn prune(
    reader: &DatabaseConnection,
    writer: &DatabaseConnection,
    older_than_ms: i64,
    after: MessageId,
    max_rows: u32,
) -> Result<PruneStep, Fail> {
    let limit = u64::from(Ord::max(max_rows, 1));
    let window: Vec<(i64, i64)> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .column(message::Column::CreatedAt)
        .filter(message::Column::Id.gt(after.0))
        .order_by_asc(message::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(reader)
        .await?;
    let old: Vec<i64> = window
        .iter()
        .take_while(|(_, at)| *at < older_than_ms)
        .map(|(id, _)| *id)
        .collect();
    let reached_new = old.len() < window.len();
    let at_end = (window.len() as u64) < limit;

    let pinned = pinned(reader, &old).await?;
    let prunable: Vec<i64> = old
        .iter()
        .copied()
        .filter(|id| !pinned.contains_key(id))
        .collect();
    let entries = entry_counts(reader, &prunable).await?;

    // In id order while the rows fit (the first always goes); the next
    // step starts right after the last message decided here.
    let mut taken = Vec::new();
    let mut rows = 0;
    let mut cut_at = None;
    for &id in &prunable {
        let cost = 1 + entries.get(&id).copied().unwrap_or(0);
        if !taken.is_empty() && rows + cost > limit {
            cut_at = Some(id);
            break;
        }
        rows += cost;
        taken.push(id);
    }
    let next = match cut_at {
        Some(first_left) => old.iter().copied().take_while(|&id| id < first_left).last(),
        None if reached_new || at_end => None,
        None => window.last().map(|&(id, _)| id),
    };
    let (messages, entries) = if taken.is_empty() {
        (0, 0)
    } else {
        rerun_deadlocked("prune", || delete(writer, &taken)).await?
    };
    Ok(PruneStep {
        messages,
        entries,
        next: next.map(MessageId),
    })
}

/// Of `messages`, those with an entry that its (live) user has not
/// acknowledged yet, as keys. A deleted user's entries pin nothing.
async fn pinned(db: &DatabaseConnection, messages: &[i64]) -> Result<HashMap<i64, ()>, Fail> {
    let mut found = HashMap::new();
    for chunk in messages.chunks(CHUNK) {
        let rows: Vec<i64> = inbox::Entity::find()
            .select_only()
            .column(inbox::Column::MessageId)
            .distinct()
            .join(JoinType::InnerJoin, inbox::Relation::User.def())
            .join(JoinType::InnerJoin, inbox_state::Relation::User.def().rev())
            .filter(inbox::Column::MessageId.is_in(padded(chunk)))
            .filter(user::Column::DeletedAt.is_null())
            .filter(
                Expr::col((inbox::Entity, inbox::Column::Seq)).gt(Expr::col((
                    inbox_state::Entity,
                    inbox_state::Column::AckedSeq,
                ))),
            )
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().map(|id| (id, ())));
    }
    Ok(found)
}

/// How many inbox entries each of `messages` has (none: left out).
async fn entry_counts(
    db: &DatabaseConnection,
    messages: &[i64],
) -> Result<HashMap<i64, u64>, Fail> {
    let mut counts = HashMap::new();
    for chunk in messages.chunks(CHUNK) {
        let rows: Vec<(i64, i64)> = inbox::Entity::find()
            .select_only()
            .column(inbox::Column::MessageId)
            .column_as(
                Expr::from(Func::count(Expr::col(inbox::Column::Seq))),
                "entries",
            )
            .filter(inbox::Column::MessageId.is_in(padded(chunk)))
            .group_by(inbox::Column::MessageId)
            .into_tuple()
            .all(db)
            .await?;
        counts.extend(
            rows.into_iter()
                .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0))),
        );
    }
    Ok(counts)
}

/// Deletes `messages` and their entries in one transaction; the counts
/// of both.
async fn delete(writer: &DatabaseConnection, messages: &[i64]) -> Result<(u64, u64), Fail> {
    let txn = begin_write(writer).await?;
    let (mut deleted_messages, mut deleted_entries) = (0, 0);
    for chunk in messages.chunks(CHUNK) {
        deleted_entries += inbox::Entity::delete_many()
            .filter(inbox::Column::MessageId.is_in(padded(chunk)))
            .exec(&txn)
            .await?
            .rows_affected;
        deleted_messages += message::Entity::delete_many()
            .filter(message::Column::Id.is_in(padded(chunk)))
            .exec(&txn)
            .await?
            .rows_affected;
    }
    txn.commit().await?;
    Ok((deleted_messages, deleted_entries))
}
