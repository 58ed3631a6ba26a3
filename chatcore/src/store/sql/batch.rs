//! Group commit of sends. Each writer task owns a bounded queue; a send
//! goes to the queue of the writer with the fewest sends pending, waits
//! there until its writer takes what is queued (up to `max_batch`, waiting
//! at most `window` for more) and stores it in one transaction, and is
//! answered after the commit. One commit and one log flush per batch
//! instead of per message; no lock is shared between the writers.
//!
//! A batch keeps every rule of a lone send: seqs come from the per-user
//! counter in the same transaction, counters are locked in ascending user id
//! order by one statement, items are applied in arrival order, and no answer
//! leaves before the commit. A refused item (unknown user or group, not a
//! member, an already stored client message id) is refused alone; a batch
//! that fails as a whole for any other reason than the database being
//! unavailable is run again one send at a time, so that the bad send fails
//! alone.
//!
//! The writers run on a `TaskTracker` the [`Batcher`] owns. They end when
//! the last `Batcher` clone is dropped, or at [`Batcher::stop`]: that
//! closes every queue (new sends fail with `Unavailable`), lets the
//! writers store what was already queued, and waits for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::sea_query::{Expr, ExprTrait as _};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    IsolationLevel, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::entity::{chat_group, group_member, inbox, inbox_state, message, user};
use super::error::Fail;
use super::rows::{duplicate_receipt, user_info};
use super::shape::{CHUNK, padded, pow2_runs};
use super::write::{rerun_deadlocked, send_alone};
use crate::model::{
    Conversation, Delivery, Message, MessageId, NewMessage, SendReceipt, Seq, Target, UserId,
    UserInfo,
};
use crate::store::StoreError;

/// Most bytes of message bodies in one multi-row `INSERT`, well below
/// MariaDB's default `max_allowed_packet` (16 MiB).
const INSERT_BYTES: usize = 4 << 20;
/// Most client message ids looked up in one statement (a power of two).
const CMID_CHUNK: usize = 256;

/// How the writers form batches (from `SqlStoreOptions`).
#[derive(Clone, Copy, Debug)]
pub(super) struct BatchConfig {
    pub(super) max_batch: usize,
    pub(super) window: Duration,
    pub(super) writers: usize,
    /// Longest one batch may take; past it the batch is abandoned (rolled
    /// back unless its commit already went out) and its callers told
    /// `Unavailable`.
    pub(super) timeout: Duration,
}

/// One queued send and where its answer goes.
struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<SendReceipt, StoreError>>,
}

/// The queue of one writer task.
#[derive(Debug)]
struct Lane {
    jobs: mpsc::Sender<Job>,
    /// Sends given to this lane whose callers still wait for an answer:
    /// queued, or in the writer's current batch.
    pending: AtomicUsize,
}

/// The sending side of the writers' queues; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Batcher {
    lanes: Arc<[Lane]>,
    /// Where the search for the least loaded lane starts; moved on by
    /// every send, so that lanes equally loaded take turns.
    turn: Arc<AtomicUsize>,
    /// Cancelled by [`Batcher::stop`]: each writer closes its queue.
    stop: CancellationToken,
    /// The writer tasks.
    tracker: TaskTracker,
}

impl Batcher {
    /// Starts `config.writers` writer tasks (at least one) on `writer`.
    pub(super) fn start(writer: &DatabaseConnection, config: BatchConfig) -> Batcher {
        let capacity = config.max_batch.saturating_mul(4).max(16);
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let lanes = (0..config.writers.max(1))
            .map(|_| {
                let (jobs, queue) = mpsc::channel(capacity);
                tracker.spawn(write_batches(writer.clone(), queue, config, stop.clone()));
                Lane {
                    jobs,
                    pending: AtomicUsize::new(0),
                }
            })
            .collect();
        Batcher {
            lanes,
            turn: Arc::new(AtomicUsize::new(0)),
            stop,
            tracker,
        }
    }

    /// Queues `message` on the least loaded writer and waits for the
    /// commit of its batch.
    pub(super) async fn send(&self, message: NewMessage) -> Result<SendReceipt, StoreError> {
        let stopped = || StoreError::Unavailable("the store's writers have stopped".to_owned());
        let lane = self.least_loaded().ok_or_else(stopped)?;
        let _pending = Pending::count(&lane.pending);
        let (reply, answer) = oneshot::channel();
        lane.jobs
            .send(Job { message, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the send's batch was abandoned".to_owned(),
            ))
        })
    }

    /// The lane with the fewest pending sends, the first from `turn` on
    /// among equals.
    fn least_loaded(&self) -> Option<&Lane> {
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let count = self.lanes.len();
        (0..count)
            .map(|i| &self.lanes[(start + i) % count])
            .min_by_key(|lane| lane.pending.load(Ordering::Relaxed))
    }

    /// Stops the writers: their queues close (new sends fail with
    /// `Unavailable`), what was queued is still stored and answered, and
    /// this returns once every writer task has ended.
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// One send counted on a lane while its caller waits (also when the
/// caller gives up: dropping it uncounts the send).
struct Pending<'a>(&'a AtomicUsize);

impl<'a> Pending<'a> {
    fn count(pending: &'a AtomicUsize) -> Pending<'a> {
        pending.fetch_add(1, Ordering::Relaxed);
        Pending(pending)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One writer: takes a batch off its queue, stores it, answers, repeats,
/// until the queue is closed and empty.
async fn write_batches(
    writer: DatabaseConnection,
    mut queue: mpsc::Receiver<Job>,
    config: BatchConfig,
    stop: CancellationToken,
) {
    let mut jobs = Vec::with_capacity(config.max_batch);
    while gather(&mut queue, &mut jobs, config, &stop).await {
        // A caller that gave up (timed out, disconnected) gets no message
        // stored behind its back.
        jobs.retain(|job| !job.reply.is_closed());
        let batch = std::mem::take(&mut jobs);
        if batch.is_empty() {
            continue;
        }
        // On time-out the batch is dropped: its transaction rolls back and
        // its callers, whose answers are dropped with it, get `Unavailable`.
        if tokio::time::timeout(config.timeout, run_batch(&writer, batch))
            .await
            .is_err()
        {
            tracing::warn!(timeout = ?config.timeout, "a batch of sends timed out");
        }
    }
}

/// Takes the next batch off `queue` into `jobs`: what is queued, up to
/// `max_batch`, after the first waiting up to `window` for more. Once
/// `stop` is cancelled the queue is closed, so only what it already holds
/// is taken. False when the queue is closed and empty.
async fn gather(
    queue: &mut mpsc::Receiver<Job>,
    jobs: &mut Vec<Job>,
    config: BatchConfig,
    stop: &CancellationToken,
) -> bool {
    // `recv_many` is cancel safe: losing the race to `stop` loses no job.
    let received = tokio::select! {
        received = queue.recv_many(jobs, config.max_batch) => received,
        () = stop.cancelled() => {
            queue.close();
            queue.recv_many(jobs, config.max_batch).await
        }
    };
    if received == 0 {
        return false;
    }
    if !config.window.is_zero() {
        let deadline = tokio::time::Instant::now() + config.window;
        while jobs.len() < config.max_batch {
            let room = config.max_batch - jobs.len();
            match tokio::time::timeout_at(deadline, queue.recv_many(jobs, room)).await {
                Ok(received) if received > 0 => {}
                _ => break,
            }
        }
    }
    true
}

/// What a batch does with one of its sends.
enum Plan {
    /// Refused before anything was written.
    Refused(StoreError),
    /// A resend of a message stored earlier.
    Stored(message::Model, UserInfo),
    /// A resend of the new message `accepted[i]` of this same batch.
    SameAs(usize),
    /// New: stored as `accepted[i]`.
    New(usize),
}

/// A send the batch stores.
struct Accepted<'a> {
    new: &'a NewMessage,
    sender: UserInfo,
    kind: i16,
    target_id: i64,
    /// Ascending user ids.
    recipients: Vec<i64>,
}

/// Stores `jobs` and answers each: as one transaction when possible, one
/// send at a time when the batch as a whole fails.
async fn run_batch(writer: &DatabaseConnection, jobs: Vec<Job>) {
    if let [_] = jobs.as_slice() {
        for job in jobs {
            let result = send_alone(writer, &job.message).await;
            let _ = job.reply.send(result.map_err(StoreError::from));
        }
        return;
    }
    let messages: Vec<&NewMessage> = jobs.iter().map(|job| &job.message).collect();
    let outcome = rerun_deadlocked("batch", || store_batch(writer, &messages)).await;
    match outcome {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(fail) => {
            let err = StoreError::from(fail);
            if let StoreError::Unavailable(reason) = &err {
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
                return;
            }
            // A duplicate key raced in from elsewhere, a row vanished, a
            // value the database refused: whichever send it was fails
            // alone (or succeeds) on its own.
            tracing::debug!(error = %err, sends = jobs.len(), "batch failed, sending one by one");
            for job in jobs {
                if job.reply.is_closed() {
                    continue;
                }
                let result = send_alone(writer, &job.message).await;
                let _ = job.reply.send(result.map_err(StoreError::from));
            }
        }
    }
}

/// A batch transaction: `BEGIN IMMEDIATE` on SQLite; REPEATABLE READ on
/// MySQL whatever the server's default, which `write_batch` relies on to
/// find the ids of its messages.
async fn begin_batch(writer: &DatabaseConnection) -> Result<DatabaseTransaction, Fail> {
    let isolation_level = match writer.get_database_backend() {
        DbBackend::Sqlite => None,
        _ => Some(IsolationLevel::RepeatableRead),
    };
    Ok(writer
        .begin_with_options(TransactionOptions {
            isolation_level,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?)
}

/// One attempt at storing `batch` in one transaction: the answer of each
/// send in order, or the error that failed the batch as a whole (nothing
/// stored then).
async fn store_batch(
    writer: &DatabaseConnection,
    batch: &[&NewMessage],
) -> Result<Vec<Result<SendReceipt, StoreError>>, Fail> {
    let txn = begin_batch(writer).await?;
    match write_batch(&txn, batch).await {
        Ok(answers) => {
            txn.commit().await?;
            Ok(answers)
        }
        Err(fail) => {
            // Roll back now rather than when the connection is next used:
            // the sends are about to be run again one by one and must not
            // wait for this transaction's row locks.
            let _ = txn.rollback().await;
            Err(fail)
        }
    }
}

/// Writes `batch` in `txn` (which the caller commits): the answer of each
/// send in order, or the error that fails the batch as a whole.
async fn write_batch(
    txn: &DatabaseTransaction,
    batch: &[&NewMessage],
) -> Result<Vec<Result<SendReceipt, StoreError>>, Fail> {
    // The highest message id this transaction sees. Its snapshot starts
    // here (the first read), so afterwards every visible row above it
    // is one this transaction inserted: rows committed before the
    // snapshot have lower ids, rows committed after it are not visible.
    // That finds the ids of a multi-row INSERT without assuming that
    // they are consecutive (they need not be on MySQL 8 with
    // `innodb_autoinc_lock_mode=2`).
    let highest: Option<i64> = message::Entity::find()
        .select_only()
        .column_as(message::Column::Id.max(), "highest")
        .into_tuple()
        .one(txn)
        .await?
        .flatten();
    let highest = highest.unwrap_or(0);

    let (plans, accepted) = plan(txn, batch).await?;
    if accepted.is_empty() {
        return Ok(answers(plans, &accepted, &[], &[]));
    }

    // The messages, in arrival order, in as few statements as fit.
    let mut start = 0;
    while start < accepted.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < accepted.len()
            && end - start < CHUNK
            && (end == start || bytes + accepted[end].new.body.len() <= INSERT_BYTES)
        {
            bytes += accepted[end].new.body.len();
            end += 1;
        }
        for run in pow2_runs(end - start) {
            let run = start + run.start..start + run.end;
            let rows = accepted[run].iter().map(|a| message::ActiveModel {
                id: NotSet,
                sender_id: Set(a.new.sender.0),
                kind: Set(a.kind),
                target_id: Set(a.target_id),
                conversation: Set(Conversation::of(a.new.sender, a.new.target).key()),
                body: Set(a.new.body.clone()),
                client_msg_id: Set(a.new.client_msg_id.clone()),
                created_at: Set(a.new.sent_at_ms),
            });
            message::Entity::insert_many(rows)
                .exec_without_returning(txn)
                .await?;
        }
        start = end;
    }
    // Ids grow with insertion order within and across the statements.
    let ids: Vec<i64> = message::Entity::find()
        .select_only()
        .column(message::Column::Id)
        .filter(message::Column::Id.gt(highest))
        .order_by_asc(message::Column::Id)
        .into_tuple()
        .all(txn)
        .await?;
    if ids.len() != accepted.len() {
        return Err(StoreError::Internal(format!(
            "a batch inserted {} messages but sees {} new ids",
            accepted.len(),
            ids.len()
        ))
        .into());
    }

    // Seqs: how many entries each recipient gets, taken from the
    // counters in one statement per chunk of ascending user ids.
    let mut wanted: BTreeMap<i64, i64> = BTreeMap::new();
    for a in &accepted {
        for &user in &a.recipients {
            *wanted.entry(user).or_default() += 1;
        }
    }
    let users: Vec<(i64, i64)> = wanted.into_iter().collect();
    let mut next: HashMap<i64, i64> = HashMap::with_capacity(users.len());
    for chunk in users.chunks(CHUNK) {
        let ids_in_chunk: Vec<i64> = padded(chunk).into_iter().map(|(user, _)| user).collect();
        let increment: Expr = if chunk.iter().all(|&(_, n)| n == 1) {
            Expr::val(1)
        } else {
            let branches = padded(chunk);
            let mut case = Expr::case(
                Expr::col(inbox_state::Column::UserId).eq(branches[0].0),
                branches[0].1,
            );
            for &(user, n) in &branches[1..] {
                case = case.case(Expr::col(inbox_state::Column::UserId).eq(user), n);
            }
            case.finally(0).into()
        };
        let updated = inbox_state::Entity::update_many()
            .col_expr(
                inbox_state::Column::LastSeq,
                Expr::col(inbox_state::Column::LastSeq).add(increment),
            )
            .filter(inbox_state::Column::UserId.is_in(ids_in_chunk.clone()))
            .exec(txn)
            .await?;
        // A recipient that vanished since it was checked: the batch
        // fails and is run one send at a time, which reports it.
        if updated.rows_affected != chunk.len() as u64 {
            return Err(StoreError::Internal(format!(
                "inbox state found for {} of {} recipients",
                updated.rows_affected,
                chunk.len()
            ))
            .into());
        }
        let last: Vec<(i64, i64)> = inbox_state::Entity::find()
            .select_only()
            .column(inbox_state::Column::UserId)
            .column(inbox_state::Column::LastSeq)
            .filter(inbox_state::Column::UserId.is_in(ids_in_chunk))
            .into_tuple()
            .all(txn)
            .await?;
        let counts: HashMap<i64, i64> = chunk.iter().copied().collect();
        for (user, last_seq) in last {
            let n = counts.get(&user).copied().unwrap_or(0);
            next.insert(user, last_seq - n + 1);
        }
    }

    // Each message's entries, in arrival order.
    let mut deliveries: Vec<Vec<Delivery>> = Vec::with_capacity(accepted.len());
    for a in &accepted {
        let mut mine = Vec::with_capacity(a.recipients.len());
        for &user in &a.recipients {
            let Some(seq) = next.get_mut(&user) else {
                return Err(StoreError::Internal(format!("no seq taken for user {user}")).into());
            };
            mine.push(Delivery {
                user: UserId(user),
                seq: Seq(*seq),
            });
            *seq += 1;
        }
        deliveries.push(mine);
    }
    let rows: Vec<inbox::ActiveModel> = deliveries
        .iter()
        .zip(&ids)
        .flat_map(|(mine, &message_id)| {
            mine.iter().map(move |d| inbox::ActiveModel {
                user_id: Set(d.user.0),
                seq: Set(d.seq.0),
                message_id: Set(message_id),
            })
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        for run in pow2_runs(chunk.len()) {
            inbox::Entity::insert_many(chunk[run].iter().cloned())
                .exec_without_returning(txn)
                .await?;
        }
    }
    Ok(answers(plans, &accepted, &ids, &deliveries))
}

/// Decides each send of `batch`, in arrival order, from what the
/// transaction reads: senders and one-to-one recipients, group members,
/// client message ids already stored.
async fn plan<'a>(
    txn: &DatabaseTransaction,
    batch: &[&'a NewMessage],
) -> Result<(Vec<Plan>, Vec<Accepted<'a>>), Fail> {
    // Users: every sender and one-to-one recipient.
    let mut wanted: Vec<i64> = Vec::with_capacity(batch.len() * 2);
    let mut groups: Vec<i64> = Vec::new();
    for new in batch {
        wanted.push(new.sender.0);
        match new.target {
            Target::User(to) => wanted.push(to.0),
            Target::Group(group) => groups.push(group.0),
        }
    }
    wanted.sort_unstable();
    wanted.dedup();
    let mut names: HashMap<i64, String> = HashMap::with_capacity(wanted.len());
    for chunk in wanted.chunks(CHUNK) {
        let rows: Vec<(i64, String)> = user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(padded(chunk)))
            .filter(user::Column::DeletedAt.is_null())
            .into_tuple()
            .all(txn)
            .await?;
        names.extend(rows);
    }

    // Members of every group written to, ascending.
    groups.sort_unstable();
    groups.dedup();
    let mut members: HashMap<i64, Vec<i64>> = HashMap::with_capacity(groups.len());
    for chunk in groups.chunks(CHUNK) {
        let rows: Vec<(i64, i64)> = group_member::Entity::find()
            .select_only()
            .column(group_member::Column::GroupId)
            .column(group_member::Column::UserId)
            .filter(group_member::Column::GroupId.is_in(padded(chunk)))
            .order_by_asc(group_member::Column::GroupId)
            .order_by_asc(group_member::Column::UserId)
            .into_tuple()
            .all(txn)
            .await?;
        for (group, user) in rows {
            members.entry(group).or_default().push(user);
        }
    }
    // A group refusing a sender: does it exist at all? Asked only then.
    let mut refusing: Vec<i64> = batch
        .iter()
        .filter_map(|new| match new.target {
            Target::Group(group)
                if members
                    .get(&group.0)
                    .is_none_or(|m| m.binary_search(&new.sender.0).is_err()) =>
            {
                Some(group.0)
            }
            _ => None,
        })
        .collect();
    refusing.sort_unstable();
    refusing.dedup();
    let mut existing_groups: Vec<i64> = Vec::new();
    for chunk in refusing.chunks(CHUNK) {
        let rows: Vec<i64> = chat_group::Entity::find()
            .select_only()
            .column(chat_group::Column::Id)
            .filter(chat_group::Column::Id.is_in(padded(chunk)))
            .into_tuple()
            .all(txn)
            .await?;
        existing_groups.extend(rows);
    }

    // Client message ids already stored.
    let mut keys: Vec<(i64, &str)> = batch
        .iter()
        .filter_map(|new| Some((new.sender.0, new.client_msg_id.as_deref()?)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut stored: HashMap<(i64, String), message::Model> = HashMap::new();
    for chunk in keys.chunks(CMID_CHUNK) {
        let mut any = Condition::any();
        for &(sender, cmid) in &padded(chunk) {
            any = any.add(
                Condition::all()
                    .add(message::Column::SenderId.eq(sender))
                    .add(message::Column::ClientMsgId.eq(cmid)),
            );
        }
        let rows = message::Entity::find().filter(any).all(txn).await?;
        for row in rows {
            if let Some(cmid) = row.client_msg_id.clone() {
                stored.insert((row.sender_id, cmid), row);
            }
        }
    }

    let mut plans = Vec::with_capacity(batch.len());
    let mut accepted: Vec<Accepted<'a>> = Vec::with_capacity(batch.len());
    let mut fresh: HashMap<(i64, &str), usize> = HashMap::new();
    for &new in batch {
        let Some(name) = names.get(&new.sender.0) else {
            plans.push(Plan::Refused(StoreError::UnknownUser(new.sender)));
            continue;
        };
        let sender = user_info((new.sender.0, name.clone()));
        if let Some(cmid) = new.client_msg_id.as_deref() {
            if let Some(row) = stored.get(&(new.sender.0, cmid.to_owned())) {
                plans.push(Plan::Stored(row.clone(), sender));
                continue;
            }
            if let Some(&first) = fresh.get(&(new.sender.0, cmid)) {
                plans.push(Plan::SameAs(first));
                continue;
            }
        }
        let (kind, target_id, recipients) = match new.target {
            Target::User(to) => {
                if !names.contains_key(&to.0) {
                    plans.push(Plan::Refused(StoreError::UnknownUser(to)));
                    continue;
                }
                (message::KIND_DIRECT, to.0, vec![to.0])
            }
            Target::Group(group) => {
                let all = members.get(&group.0).map(Vec::as_slice).unwrap_or(&[]);
                if all.binary_search(&new.sender.0).is_err() {
                    plans.push(Plan::Refused(if existing_groups.contains(&group.0) {
                        StoreError::NotMember {
                            user: new.sender,
                            group,
                        }
                    } else {
                        StoreError::UnknownGroup(group)
                    }));
                    continue;
                }
                let others = all.iter().copied().filter(|&u| u != new.sender.0);
                (message::KIND_GROUP, group.0, others.collect())
            }
        };
        if let Some(cmid) = new.client_msg_id.as_deref() {
            fresh.insert((new.sender.0, cmid), accepted.len());
        }
        plans.push(Plan::New(accepted.len()));
        accepted.push(Accepted {
            new,
            sender,
            kind,
            target_id,
            recipients,
        });
    }
    Ok((plans, accepted))
}

/// The answer to each send once the batch is committed.
fn answers(
    plans: Vec<Plan>,
    accepted: &[Accepted<'_>],
    ids: &[i64],
    deliveries: &[Vec<Delivery>],
) -> Vec<Result<SendReceipt, StoreError>> {
    let message = |i: usize| -> Result<Message, StoreError> {
        let (Some(a), Some(&id)) = (accepted.get(i), ids.get(i)) else {
            return Err(StoreError::Internal(format!("batch item {i} has no id")));
        };
        Ok(Message {
            id: MessageId(id),
            sender: a.sender.clone(),
            target: a.new.target,
            body: a.new.body.clone(),
            client_msg_id: a.new.client_msg_id.clone(),
            sent_at_ms: a.new.sent_at_ms,
        })
    };
    plans
        .into_iter()
        .map(|plan| match plan {
            Plan::Refused(err) => Err(err),
            Plan::Stored(row, sender) => duplicate_receipt(row, sender),
            Plan::SameAs(i) => Ok(SendReceipt {
                message: message(i)?,
                deliveries: Vec::new(),
                duplicate: true,
            }),
            Plan::New(i) => Ok(SendReceipt {
                message: message(i)?,
                deliveries: deliveries.get(i).cloned().unwrap_or_default(),
                duplicate: false,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::{Batcher, Lane, Pending};

    /// Three lanes without writers; `pending[i]` sends waiting on lane i.
    fn batcher(pending: [usize; 3]) -> Batcher {
        let lanes = pending
            .into_iter()
            .map(|n| Lane {
                jobs: mpsc::channel(1).0,
                pending: AtomicUsize::new(n),
            })
            .collect();
        Batcher {
            lanes,
            turn: Arc::new(AtomicUsize::new(0)),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    fn chosen(batcher: &Batcher) -> Option<usize> {
        let lane = batcher.least_loaded()?;
        batcher.lanes.iter().position(|l| std::ptr::eq(l, lane))
    }

    #[test]
    fn a_send_goes_to_the_lane_with_the_fewest_pending_sends() {
        let batcher = batcher([3, 1, 2]);
        for _ in 0..4 {
            assert_eq!(chosen(&batcher), Some(1));
        }
    }

    #[test]
    fn equally_loaded_lanes_take_turns() {
        let batcher = batcher([0, 0, 0]);
        let turns: Vec<_> = (0..6).map(|_| chosen(&batcher)).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2].map(Some));
    }

    #[test]
    fn a_send_counts_on_its_lane_until_its_caller_stops_waiting() {
        let pending = AtomicUsize::new(0);
        let first = Pending::count(&pending);
        let second = Pending::count(&pending);
        assert_eq!(pending.load(Ordering::Relaxed), 2);
        drop(first);
        drop(second);
        assert_eq!(pending.load(Ordering::Relaxed), 0);
    }
}
