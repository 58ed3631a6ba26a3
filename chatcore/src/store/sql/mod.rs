//! `SqlStore`: the [`Store`] on SeaORM, for SQLite (the embedded default) and
//! MySQL/MariaDB (clusters). Tables are mirrored in `entity/`, database
//! errors classified in `error.rs`, sends coalesced into shared transactions
//! in `batch.rs`; the schema itself is the `migration` crate.

mod batch;
mod entity;
mod error;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Expr;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, FromQueryResult, JoinType, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};

use self::entity::{chat_group, friendship, group_member, inbox, inbox_state, message, user};
use self::error::{Fail, is_retryable, is_unique_violation, map_db_err};
use super::{GroupCaps, Store, StoreError};
use crate::model::{
    Conversation, Delivery, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId, NewMessage,
    Role, SendReceipt, Seq, Target, UserId, UserInfo, UserRecord,
};

/// How long a SQLite connection waits for a lock before `SQLITE_BUSY`.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most ids bound in one statement (`IN (...)` lists, multi-row inserts);
/// far below SQLite's 32,766 and MySQL's 65,535 placeholders. A power of
/// two, see [`padded`].
const CHUNK: usize = 1024;
/// Prepared statements each MySQL connection keeps (sqlx: 100). Bounded
/// statement shapes (see [`padded`]) stay below it.
const MYSQL_STATEMENT_CACHE: usize = 256;
/// Times a write is run again after its transaction was chosen as a
/// deadlock victim.
const DEADLOCK_RERUNS: u32 = 3;

/// Runs `attempt` again (up to [`DEADLOCK_RERUNS`] times) while its
/// transaction is rolled back as a deadlock victim.
async fn rerun_deadlocked<T, Fut>(what: &str, mut attempt: impl FnMut() -> Fut) -> Result<T, Fail>
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

/// Where the database is and how to size and time its pools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlStoreOptions {
    /// `sqlite://chat.db?mode=rwc`, `sqlite::memory:`,
    /// `mysql://user:password@host:3306/chat`.
    pub url: String,
    /// Size of the read pool on SQLite (writes take one more, dedicated
    /// connection); of the one pool for everything on MySQL.
    pub max_connections: u32,
    /// Longest wait for the database at [`SqlStore::connect`] (migrations
    /// not included); a refused connection may fail sooner, after
    /// `acquire_timeout`.
    pub connect_timeout: Duration,
    /// Longest wait for a free pooled connection; past it a call fails
    /// with `StoreError::Unavailable`.
    pub acquire_timeout: Duration,
    /// Apply pending schema migrations at connect.
    pub run_migrations: bool,
    /// Longest one store call may take, waiting for a pooled connection
    /// or a send's batch included; past it the call fails with
    /// `StoreError::Unavailable` (a send may still have been stored: a
    /// resend with the same client message id finds it).
    pub request_timeout: Duration,
    /// Group commit: concurrent sends share one transaction (one commit,
    /// one log flush) instead of one each. Per-sender order holds because
    /// a sender awaits each send before the next.
    pub batch_sends: bool,
    /// Most sends in one batch.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more sends after its
    /// first; zero takes only the sends already queued, which batches by
    /// itself under load (those queued while the previous batch committed).
    pub batch_window: Duration,
    /// Batches in flight at once on MySQL/MariaDB (one builds while
    /// another commits); SQLite has one writer and always uses one.
    pub batch_writers: usize,
}

impl SqlStoreOptions {
    /// Defaults for `url`: 8 connections, 10 s to connect, 5 s to get a
    /// pooled connection, 5 s per call (below the 10 s a client typically
    /// waits, so it hears errno 30 rather than nothing), migrations applied, sends batched
    /// (up to 256, no window, two writers on MySQL).
    pub fn new(url: impl Into<String>) -> SqlStoreOptions {
        SqlStoreOptions {
            url: url.into(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(5),
            run_migrations: true,
            request_timeout: Duration::from_secs(5),
            batch_sends: true,
            max_batch: 256,
            batch_window: Duration::ZERO,
            batch_writers: 2,
        }
    }
}

/// A [`Store`] on SQLite or MySQL/MariaDB; cheap to clone, clones share
/// the pools.
///
/// On SQLite every write goes through one dedicated writer connection (WAL,
/// `synchronous=NORMAL`, 5 s busy timeout, foreign keys on) and reads use a
/// pool of read-only connections; an in-memory database uses a single
/// connection for both. On MySQL one pool serves reads and writes.
///
/// With `batch_sends` on, sends go to writer tasks that store them in
/// batches (see `batch.rs`); the tasks end when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Runs every write: the SQLite writer connection, or the MySQL pool.
    writer: DatabaseConnection,
    /// Runs reads outside transactions: the SQLite readers (the writer
    /// itself for an in-memory database), or the MySQL pool.
    reader: DatabaseConnection,
    /// The queue of the group-commit writers, when sends are batched.
    batcher: Option<batch::Batcher>,
    /// `SqlStoreOptions::request_timeout`.
    request_timeout: Duration,
}

impl SqlStore {
    /// Connects (and migrates, when `opts.run_migrations`).
    ///
    /// Fails with `Unavailable` when the database cannot be reached in
    /// `opts.connect_timeout`, `Internal` for a URL of an unsupported kind
    /// or a failed migration.
    pub async fn connect(opts: SqlStoreOptions) -> Result<SqlStore, StoreError> {
        let (writer, reader) = if opts.url.starts_with("sqlite:") {
            SqlStore::connect_sqlite(&opts).await?
        } else if opts.url.starts_with("mysql:") {
            let pool = connect(&opts, mysql_options(&opts)).await?;
            (pool.clone(), pool)
        } else {
            return Err(StoreError::Internal(
                "unsupported database URL: expected sqlite: or mysql:".to_owned(),
            ));
        };
        let mut store = SqlStore {
            writer,
            reader,
            batcher: None,
            request_timeout: opts.request_timeout,
        };
        if opts.batch_sends {
            let writers = match store.writer.get_database_backend() {
                DbBackend::Sqlite => 1,
                _ => opts.batch_writers.max(1),
            };
            store.batcher = Some(batch::Batcher::start(
                store.clone(),
                batch::BatchConfig {
                    max_batch: opts.max_batch.max(1),
                    window: opts.batch_window,
                    writers,
                    timeout: opts.request_timeout,
                },
            ));
        }
        Ok(store)
    }

    /// The writer and the reader connections of a SQLite database.
    async fn connect_sqlite(
        opts: &SqlStoreOptions,
    ) -> Result<(DatabaseConnection, DatabaseConnection), StoreError> {
        // Separate connections to `sqlite::memory:` would be separate
        // databases, and the last one closing would drop it: one connection
        // for everything, kept open for the store's lifetime.
        let memory = opts.url.contains(":memory:") || opts.url.contains("mode=memory");
        let mut writer_opts = sqlite_options(opts);
        writer_opts
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .map_sqlx_sqlite_opts(move |o| {
                let o = o
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true);
                if memory {
                    o
                } else {
                    o.journal_mode(SqliteJournalMode::Wal)
                }
            });
        // The writer first: it creates the file, turns WAL on and migrates
        // before any reader opens the database read-only.
        let writer = connect(opts, writer_opts).await?;
        if memory {
            return Ok((writer.clone(), writer));
        }
        let mut reader_opts = sqlite_options(opts);
        reader_opts
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .map_sqlx_sqlite_opts(|o| {
                o.read_only(true)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
        let mut reader_only = opts.clone();
        reader_only.run_migrations = false;
        let reader = connect(&reader_only, reader_opts).await?;
        Ok((writer, reader))
    }

    /// Closes every connection (on SQLite this also checkpoints the WAL).
    /// Calls made afterwards, also through clones, fail with `Unavailable`.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.reader.close_by_ref().await.map_err(Fail::from)?;
        self.writer.close_by_ref().await.map_err(Fail::from)?;
        Ok(())
    }

    /// Runs one store call within `request_timeout`.
    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from the database within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// A write transaction: `BEGIN IMMEDIATE` on SQLite, so it takes the
    /// write lock up front instead of failing to upgrade a read lock later.
    async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        self.writer
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    async fn insert_user(&self, name: &str, password_hash: &str) -> Result<UserId, Fail> {
        let txn = self.begin_write().await?;
        let inserted = user::Entity::insert(user::ActiveModel {
            id: NotSet,
            name: Set(name.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            created_at: Set(now_ms()),
            token_epoch: Set(0),
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
    async fn bump_token_epoch(
        &self,
        user: UserId,
        password_hash: Option<&str>,
    ) -> Result<u64, Fail> {
        // Scoped: in the whole module its `max` would shadow `Ord::max`.
        use sea_orm::sea_query::ExprTrait as _;
        let txn = self.begin_write().await?;
        let mut update = user::Entity::update_many()
            .col_expr(
                user::Column::TokenEpoch,
                Expr::col(user::Column::TokenEpoch).add(1),
            )
            .filter(user::Column::Id.eq(user.0));
        if let Some(hash) = password_hash {
            update = update.col_expr(user::Column::PasswordHash, Expr::value(hash));
        }
        let updated = update.exec(&txn).await?;
        if updated.rows_affected == 0 {
            return Err(StoreError::UnknownUser(user).into());
        }
        let epoch: Option<i64> = user::Entity::find_by_id(user.0)
            .select_only()
            .column(user::Column::TokenEpoch)
            .into_tuple()
            .one(&txn)
            .await?;
        txn.commit().await?;
        let epoch = epoch.ok_or(StoreError::UnknownUser(user))?;
        Ok(u64::try_from(epoch).unwrap_or_default())
    }

    async fn insert_friendship(&self, a: UserId, b: UserId) -> Result<bool, Fail> {
        for id in [a, b] {
            if !user_exists(&self.reader, id).await? {
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
            .exec_without_returning(&self.writer)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn insert_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, Fail> {
        let txn = self.begin_write().await?;
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

    /// Adds a membership within `caps`. Every change to a group's members
    /// locks the group's row and every change to a user's groups locks the
    /// user's row (always in that order, so joins cannot deadlock each
    /// other), and the counts are read after both locks are held: whoever
    /// changed them last has committed. On SQLite the single writer
    /// connection serialises all of this anyway (its locks are no-ops).
    async fn insert_member(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, Fail> {
        let txn = self.begin_write().await?;
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

    /// One attempt at [`Store::send`], in one transaction.
    async fn store_message(&self, new: &NewMessage) -> Result<SendReceipt, Fail> {
        let txn = self.begin_write().await?;
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
            return duplicate_receipt(stored, sender);
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
                    let stored =
                        find_by_client_msg_id(&self.writer, new.sender, client_msg_id).await?;
                    if let Some(stored) = stored {
                        return duplicate_receipt(stored, sender);
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

    async fn advance_cursor(&self, user: UserId, seq: Seq) -> Result<Seq, Fail> {
        use sea_orm::sea_query::ExprTrait as _;

        let txn = self.begin_write().await?;
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
}

/// The calls of [`Store`], without their time limit.
impl SqlStore {
    async fn create_user_now(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        Ok(self.insert_user(name, password_hash).await?)
    }

    async fn user_now(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let found = user::Entity::find_by_id(id.0)
            .one(&self.reader)
            .await
            .map_err(Fail::from)?;
        Ok(found.map(|u| UserRecord {
            id: UserId(u.id),
            name: u.name,
            password_hash: u.password_hash,
            token_epoch: u64::try_from(u.token_epoch).unwrap_or_default(),
        }))
    }

    async fn revoke_tokens_now(&self, user: UserId) -> Result<u64, StoreError> {
        Ok(self.bump_token_epoch(user, None).await?)
    }

    async fn set_password_now(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError> {
        Ok(self.bump_token_epoch(user, Some(password_hash)).await?)
    }

    async fn users_now(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError> {
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
                .all(&self.reader)
                .await
                .map_err(Fail::from)?;
            found.extend(rows.into_iter().map(user_info));
        }
        Ok(found)
    }

    async fn add_friend_now(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        Ok(self.insert_friendship(a, b).await?)
    }

    async fn remove_friend_now(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let pair = |u: UserId, f: UserId| {
            Condition::all()
                .add(friendship::Column::UserId.eq(u.0))
                .add(friendship::Column::FriendId.eq(f.0))
        };
        let deleted = friendship::Entity::delete_many()
            .filter(Condition::any().add(pair(a, b)).add(pair(b, a)))
            .exec(&self.writer)
            .await
            .map_err(Fail::from)?;
        Ok(deleted.rows_affected > 0)
    }

    async fn friends_now(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError> {
        let rows: Vec<(i64, String)> = friendship::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .join(JoinType::InnerJoin, friendship::Relation::Friend.def())
            .filter(friendship::Column::UserId.eq(user.0))
            .order_by_asc(friendship::Column::FriendId)
            .into_tuple()
            .all(&self.reader)
            .await
            .map_err(Fail::from)?;
        Ok(rows.into_iter().map(user_info).collect())
    }

    async fn create_group_now(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError> {
        Ok(rerun_deadlocked("create_group", || {
            self.insert_group(creator, name, desc, caps)
        })
        .await?)
    }

    async fn join_group_now(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError> {
        Ok(rerun_deadlocked("join_group", || self.insert_member(group, user, caps)).await?)
    }

    async fn leave_group_now(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        if !group_exists(&self.reader, group).await? {
            return Err(StoreError::UnknownGroup(group));
        }
        let deleted = group_member::Entity::delete_many()
            .filter(group_member::Column::GroupId.eq(group.0))
            .filter(group_member::Column::UserId.eq(user.0))
            .exec(&self.writer)
            .await
            .map_err(Fail::from)?;
        Ok(deleted.rows_affected > 0)
    }

    async fn group_now(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError> {
        let found = chat_group::Entity::find_by_id(group.0)
            .one(&self.reader)
            .await
            .map_err(Fail::from)?;
        Ok(found.map(|g| group_info((g.id, g.name, g.description))))
    }

    async fn groups_of_now(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        let rows: Vec<(i64, String, String)> = group_member::Entity::find()
            .select_only()
            .column(chat_group::Column::Id)
            .column(chat_group::Column::Name)
            .column(chat_group::Column::Description)
            .join(JoinType::InnerJoin, group_member::Relation::Group.def())
            .filter(group_member::Column::UserId.eq(user.0))
            .order_by_asc(group_member::Column::GroupId)
            .into_tuple()
            .all(&self.reader)
            .await
            .map_err(Fail::from)?;
        Ok(rows.into_iter().map(group_info).collect())
    }

    async fn members_now(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        if !group_exists(&self.reader, group).await? {
            return Err(StoreError::UnknownGroup(group));
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
            .all(&self.reader)
            .await
            .map_err(Fail::from)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, role)| Member {
                user: user_info((id, name)),
                role: Role::from_stored(&role),
            })
            .collect())
    }

    async fn send_now(&self, message: NewMessage) -> Result<SendReceipt, StoreError> {
        match &self.batcher {
            Some(batcher) => batcher.send(message).await,
            None => self.send_alone(&message).await,
        }
    }

    /// One send in a transaction of its own, run again (up to
    /// [`DEADLOCK_RERUNS`] times) when chosen as a deadlock victim.
    async fn send_alone(&self, message: &NewMessage) -> Result<SendReceipt, StoreError> {
        Ok(rerun_deadlocked("send", || self.store_message(message)).await?)
    }

    async fn inbox_after_now(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
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
        .all(&self.reader)
        .await
        .map_err(Fail::from)?;
        rows.into_iter()
            .map(|row| {
                Ok(InboxEntry {
                    seq: Seq(row.seq),
                    message: row.message.into_message()?,
                })
            })
            .collect()
    }

    async fn ack_now(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError> {
        Ok(self.advance_cursor(user, seq).await?)
    }

    async fn cursor_now(&self, user: UserId) -> Result<Seq, StoreError> {
        Ok(acked_seq(&self.reader, user).await?)
    }

    async fn history_now(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut query = with_message_columns(message::Entity::find().select_only())
            .filter(message::Column::Conversation.eq(conversation.key()));
        if let Some(before) = before {
            query = query.filter(message::Column::Id.lt(before.0));
        }
        let rows: Vec<MessageRow> = query
            .order_by_desc(message::Column::Id)
            .limit(u64::from(limit))
            .into_model()
            .all(&self.reader)
            .await
            .map_err(Fail::from)?;
        rows.into_iter().map(MessageRow::into_message).collect()
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        self.timed(self.create_user_now(name, password_hash)).await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.timed(self.user_now(id)).await
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError> {
        self.timed(self.users_now(ids)).await
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        self.timed(self.revoke_tokens_now(user)).await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError> {
        self.timed(self.set_password_now(user, password_hash)).await
    }

    async fn add_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.timed(self.add_friend_now(a, b)).await
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.timed(self.remove_friend_now(a, b)).await
    }

    async fn friends(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError> {
        self.timed(self.friends_now(user)).await
    }

    async fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError> {
        self.timed(self.create_group_now(creator, name, desc, caps))
            .await
    }

    async fn join_group(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError> {
        self.timed(self.join_group_now(group, user, caps)).await
    }

    async fn leave_group(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        self.timed(self.leave_group_now(group, user)).await
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError> {
        self.timed(self.group_now(group)).await
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        self.timed(self.groups_of_now(user)).await
    }

    async fn members(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        self.timed(self.members_now(group)).await
    }

    async fn send(&self, message: NewMessage) -> Result<SendReceipt, StoreError> {
        self.timed(self.send_now(message)).await
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        self.timed(self.inbox_after_now(user, after, limit)).await
    }

    async fn ack(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError> {
        self.timed(self.ack_now(user, seq)).await
    }

    async fn cursor(&self, user: UserId) -> Result<Seq, StoreError> {
        self.timed(self.cursor_now(user)).await
    }

    async fn history(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.timed(self.history_now(conversation, before, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The readers: on SQLite the writer may be busy with a batch for a
        // while, which says nothing about reachability.
        self.timed(async { Ok(self.reader.ping().await.map_err(Fail::from)?) })
            .await
    }
}

/// A message joined with its sender's name, as history and inbox read it.
#[derive(Debug, FromQueryResult)]
struct MessageRow {
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
    fn into_message(self) -> Result<Message, StoreError> {
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

#[derive(Debug, FromQueryResult)]
struct InboxRow {
    seq: i64,
    #[sea_orm(nested)]
    message: MessageRow,
}

/// Adds the columns of [`MessageRow`] to a query that already reaches the
/// `message` table (or starts from it), joining the sender.
fn with_message_columns<E: EntityTrait>(select: Select<E>) -> Select<E> {
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

/// Takes the next seq of every recipient's inbox, in ascending user id
/// order (the order row locks are taken in, so concurrent sends cannot
/// deadlock), without `UPDATE ... RETURNING` (MariaDB has none).
async fn allocate_seqs(
    txn: &DatabaseTransaction,
    recipients: &[i64],
) -> Result<Vec<Delivery>, Fail> {
    use sea_orm::sea_query::ExprTrait as _;

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

async fn find_by_client_msg_id<C: ConnectionTrait>(
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

fn duplicate_receipt(stored: message::Model, sender: UserInfo) -> Result<SendReceipt, Fail> {
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

async fn user_exists<C: ConnectionTrait>(db: &C, user: UserId) -> Result<bool, Fail> {
    let found: Option<i64> = user::Entity::find_by_id(user.0)
        .select_only()
        .column(user::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// Locks `user`'s row for the transaction: false when there is none.
async fn lock_user(txn: &DatabaseTransaction, user: UserId) -> Result<bool, Fail> {
    let found: Option<i64> = user::Entity::find_by_id(user.0)
        .select_only()
        .column(user::Column::Id)
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

async fn group_exists<C: ConnectionTrait>(db: &C, group: GroupId) -> Result<bool, Fail> {
    let found: Option<i64> = chat_group::Entity::find_by_id(group.0)
        .select_only()
        .column(chat_group::Column::Id)
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The acked cursor; `Seq::ZERO` for a user without inbox state.
async fn acked_seq<C: ConnectionTrait>(db: &C, user: UserId) -> Result<Seq, Fail> {
    let acked: Option<i64> = inbox_state::Entity::find_by_id(user.0)
        .select_only()
        .column(inbox_state::Column::AckedSeq)
        .into_tuple()
        .one(db)
        .await?;
    Ok(acked.map_or(Seq::ZERO, Seq))
}

fn target(message: i64, kind: i16, target_id: i64) -> Result<Target, StoreError> {
    match kind {
        message::KIND_DIRECT => Ok(Target::User(UserId(target_id))),
        message::KIND_GROUP => Ok(Target::Group(GroupId(target_id))),
        other => Err(StoreError::Internal(format!(
            "message {message} has unknown kind {other}"
        ))),
    }
}

/// `replacement` for a unique-key violation, the database error otherwise.
fn unique_or(err: DbErr, replacement: StoreError) -> Fail {
    if is_unique_violation(&err) {
        Fail::Store(replacement)
    } else {
        Fail::Db(err)
    }
}

/// `items` lengthened to the next power of two by repeating the last one,
/// for an `IN (...)` list (or `CASE` branches) that means the same.
///
/// Every distinct statement text is a prepared statement in sqlx's
/// per-connection cache; once the cache is full each new one evicts
/// another, and that eviction (a `COM_STMT_CLOSE`, which has no reply)
/// followed at once by the next command stalls for a delayed ACK (~200 ms
/// on Linux loopback, as sqlx does not set `TCP_NODELAY`). Lists padded to
/// powers of two, and multi-row inserts cut into power-of-two runs
/// ([`pow2_runs`]), keep the number of shapes small and the cache warm.
fn padded<T: Copy>(items: &[T]) -> Vec<T> {
    let mut list = items.to_vec();
    if let Some(&last) = items.last() {
        list.resize(items.len().next_power_of_two(), last);
    }
    list
}

/// `0..len` cut into consecutive runs whose lengths are powers of two,
/// longest first (see [`padded`]).
fn pow2_runs(len: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = len - start;
        if left == 0 {
            return None;
        }
        let run = 1 << left.ilog2();
        start += run;
        Some(start - run..start)
    })
}

fn user_info((id, name): (i64, String)) -> UserInfo {
    UserInfo {
        id: UserId(id),
        name,
    }
}

fn group_info((id, name, desc): (i64, String, String)) -> GroupInfo {
    GroupInfo {
        id: GroupId(id),
        name,
        desc,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Options shared by every pool of one store.
fn sqlite_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = base_options(opts);
    // A local file: no point pinging a connection before handing it out.
    options.test_before_acquire(false);
    options
}

fn mysql_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = base_options(opts);
    options
        .map_sqlx_mysql_opts(|o| o.statement_cache_capacity(MYSQL_STATEMENT_CACHE))
        .max_connections(opts.max_connections.max(1))
        // Ping only connections idle long enough to have been dropped by
        // the server or a proxy, not one round trip per query.
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    options
}

fn base_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = ConnectOptions::new(opts.url.clone());
    options
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.acquire_timeout)
        .sqlx_logging(false);
    options
}

/// Opens a pool within `opts.connect_timeout` and migrates it when asked.
async fn connect(
    opts: &SqlStoreOptions,
    options: ConnectOptions,
) -> Result<DatabaseConnection, StoreError> {
    let db = tokio::time::timeout(opts.connect_timeout, Database::connect(options))
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "no database connection within {:?}",
                opts.connect_timeout
            ))
        })?
        .map_err(Fail::from)?;
    if opts.run_migrations {
        if db.get_database_backend() == DbBackend::MySql {
            migrate_locked(opts).await?;
        } else {
            migrate(&db).await?;
        }
    }
    Ok(db)
}

/// Applies pending migrations on MySQL/MariaDB one process at a time: nodes
/// of a cluster starting together would otherwise run the same migration
/// twice (and `ALTER TABLE ... ADD COLUMN` is not idempotent). The lock is
/// a named lock of the database server, held by one dedicated connection
/// (so the lock and the migrations share it) and freed with it should the
/// process die.
async fn migrate_locked(opts: &SqlStoreOptions) -> Result<(), StoreError> {
    const WAIT_SECS: u32 = 120;
    let mut options = mysql_options(opts);
    options.max_connections(1).min_connections(1);
    let db = Database::connect(options).await.map_err(Fail::from)?;
    let lock = "CONCAT('chat_migrate:', DATABASE())";
    let got: Option<i64> = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT GET_LOCK({lock}, {WAIT_SECS})"),
        ))
        .await
        .map_err(Fail::from)?
        .and_then(|row| row.try_get_by_index(0).ok());
    if got != Some(1) {
        return Err(StoreError::Unavailable(format!(
            "another node held the migration lock for {WAIT_SECS} s"
        )));
    }
    let migrated = migrate(&db).await;
    let _ = db
        .execute_raw(Statement::from_string(
            DbBackend::MySql,
            format!("DO RELEASE_LOCK({lock})"),
        ))
        .await;
    let _ = db.close().await;
    migrated
}

/// Applies pending migrations. Two nodes starting together may both try:
/// the loser's bookkeeping insert fails, and a second look finds nothing
/// left to do.
async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    let first = match Migrator::up(db, None).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match Migrator::get_pending_migrations(db).await {
        Ok(pending) if pending.is_empty() => Ok(()),
        _ => Err(match map_db_err(first) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("migrating: {m}")),
            StoreError::Internal(m) => StoreError::Internal(format!("migration failed: {m}")),
            other => other,
        }),
    }
}

#[cfg(test)]
mod tests;
