//! `SqlStore`: the [`Store`] on SeaORM, for SQLite (the embedded default) and
//! MySQL/MariaDB (clusters); the schema itself is the `migration` crate.
//!
//! # Layout
//!
//! - `mod.rs`: the store, its options, and the [`Store`] calls, each
//!   bounded by `request_timeout` in one place (`SqlStore::bounded`).
//! - `connect.rs`: pools, SQLite pragmas (WAL, one writer connection,
//!   read-only readers), MySQL options, migrations under a named lock.
//! - `write.rs`: transactions that write (users, friendships, groups, lone
//!   sends, acks), rerun when chosen as a deadlock victim.
//! - `batch.rs`: group commit: concurrent sends share one transaction.
//! - `import.rs`: users, groups and messages brought from another system
//!   with their own ids, in batches that commit with a checkpoint.
//! - `prune.rs`: retention, one bounded step at a time.
//! - `read.rs`: queries. `rows.rs`: rows turned into model records.
//! - `shape.rs`: chunking and padding that keep statement texts few.
//! - `error.rs`: database errors classified into `StoreError`, once.
//! - `entity/`: the tables, mirrored.
//!
//! # Tasks
//!
//! With `batch_sends` on, the store spawns its batch writers on a
//! `TaskTracker` it owns; [`SqlStore::close`] stops them (queued sends are
//! still stored and answered, new ones refused) and waits for them before
//! closing the pools. Without `close` they end with the last clone.

mod batch;
mod connect;
mod entity;
mod error;
mod import;
mod prune;
mod read;
mod rows;
mod shape;
mod write;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{DatabaseConnection, DbBackend};

use self::error::Fail;
pub use self::import::{
    ImportBatch, ImportClashes, ImportedDelivery, ImportedMessage, ImportedUser, MessageRef,
};
use super::{GroupCaps, PruneStep, Store, StoreError};
use crate::model::{
    Conversation, ConversationSummary, GroupId, GroupInfo, InboxEntry, Member, Message, MessageId,
    NewMessage, SendReceipt, Seq, Target, UserId, UserInfo, UserRecord,
};

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
    /// Batches in flight at once on MySQL/MariaDB: writer tasks, each with
    /// its own queue, gathering and committing its own batches (one builds
    /// while another commits); SQLite has one writer and always uses one.
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
/// the pools and the batch writers.
///
/// On SQLite every write goes through one dedicated writer connection (WAL,
/// `synchronous=NORMAL`, 5 s busy timeout, foreign keys on) and reads use a
/// pool of read-only connections; an in-memory database uses a single
/// connection for both. On MySQL one pool serves reads and writes.
///
/// With `batch_sends` on, sends go to writer tasks that store them in
/// batches (see `batch.rs`); [`SqlStore::close`] stops them, and they also
/// end when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Runs every write: the SQLite writer connection, or the MySQL pool.
    writer: DatabaseConnection,
    /// Runs reads outside transactions: the SQLite readers (the writer
    /// itself for an in-memory database), or the MySQL pool.
    reader: DatabaseConnection,
    /// The queues of the group-commit writers, when sends are batched.
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
        let connect::Pools { writer, reader } = connect::open(&opts).await?;
        let batcher = opts.batch_sends.then(|| {
            let writers = match writer.get_database_backend() {
                DbBackend::Sqlite => 1,
                _ => opts.batch_writers.max(1),
            };
            batch::Batcher::start(
                &writer,
                batch::BatchConfig {
                    max_batch: opts.max_batch.max(1),
                    window: opts.batch_window,
                    writers,
                    timeout: opts.request_timeout,
                },
            )
        });
        Ok(SqlStore {
            writer,
            reader,
            batcher,
            request_timeout: opts.request_timeout,
        })
    }

    /// Stops the batch writers (sends already queued are stored and
    /// answered first, later ones fail with `Unavailable`) and waits for
    /// them, then closes every connection (on SQLite this also checkpoints
    /// the WAL). Calls made afterwards, also through clones, fail with
    /// `Unavailable`.
    pub async fn close(&self) -> Result<(), StoreError> {
        if let Some(batcher) = &self.batcher {
            batcher.stop().await;
        }
        self.reader.close_by_ref().await.map_err(Fail::from)?;
        self.writer.close_by_ref().await.map_err(Fail::from)?;
        Ok(())
    }

    /// The checkpoint the last committed batch of the import from `source`
    /// recorded (see [`SqlStore::import_batch`]); `None` before the first.
    pub async fn import_checkpoint(&self, source: &str) -> Result<Option<String>, StoreError> {
        self.bounded(import::checkpoint(&self.writer, source)).await
    }

    /// The stored users and groups that share an id or a name with any of
    /// `users` and `groups` (descriptions are not compared).
    pub async fn import_clashes(
        &self,
        users: &[UserInfo],
        groups: &[GroupInfo],
    ) -> Result<ImportClashes, StoreError> {
        self.bounded(import::clashes(&self.writer, users, groups))
            .await
    }

    /// Writes `batch` with the ids it carries, and records as the import's
    /// checkpoint for `source` what `checkpoint` makes of the ids of the
    /// batch's new messages, all in one transaction; returns those ids
    /// (in the order of `batch.messages`).
    ///
    /// A user or group whose id or name is taken, or a friendship or
    /// membership already stored, fails the whole batch (`NameTaken`,
    /// `GroupNameTaken`, `Internal`) and nothing of it is written; so does
    /// an inbox entry for a user who does not exist (`UnknownUser`).
    pub async fn import_batch(
        &self,
        source: &str,
        batch: &ImportBatch,
        checkpoint: impl FnOnce(&[MessageId]) -> String + Send,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.bounded(import::commit(&self.writer, source, batch, checkpoint))
            .await
    }

    /// Runs one store call within `request_timeout` (waiting for a pooled
    /// connection or a send's batch included); its failure is classified
    /// once, by `error.rs`.
    async fn bounded<T, E>(&self, call: impl Future<Output = Result<T, E>>) -> Result<T, StoreError>
    where
        StoreError: From<E>,
    {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer from the database within {:?}",
                self.request_timeout
            ))),
        }
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        self.bounded(write::create_user(&self.writer, name, password_hash))
            .await
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.bounded(read::user(&self.reader, id)).await
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError> {
        self.bounded(read::users(&self.reader, ids)).await
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        self.bounded(write::bump_token_epoch(&self.writer, user, None))
            .await
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError> {
        self.bounded(write::bump_token_epoch(
            &self.writer,
            user,
            Some(password_hash),
        ))
        .await
    }

    async fn rehash_password(
        &self,
        user: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        self.bounded(write::rehash_password(&self.writer, user, old, new))
            .await
    }

    async fn set_banned(&self, user: UserId, at_ms: Option<i64>) -> Result<(), StoreError> {
        self.bounded(write::set_banned(&self.writer, user, at_ms))
            .await
    }

    async fn delete_user(&self, user: UserId) -> Result<(), StoreError> {
        self.bounded(write::delete_user(&self.writer, user)).await
    }

    async fn prune(
        &self,
        older_than_ms: i64,
        after: MessageId,
        max_rows: u32,
    ) -> Result<PruneStep, StoreError> {
        self.bounded(prune::prune(
            &self.reader,
            &self.writer,
            older_than_ms,
            after,
            max_rows,
        ))
        .await
    }

    async fn add_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.bounded(write::add_friend(&self.reader, &self.writer, a, b))
            .await
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        self.bounded(write::remove_friend(&self.writer, a, b)).await
    }

    async fn friends(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError> {
        self.bounded(read::friends(&self.reader, user)).await
    }

    async fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError> {
        self.bounded(write::create_group(&self.writer, creator, name, desc, caps))
            .await
    }

    async fn join_group(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError> {
        self.bounded(write::join_group(&self.writer, group, user, caps))
            .await
    }

    async fn leave_group(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        self.bounded(write::leave_group(&self.reader, &self.writer, group, user))
            .await
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError> {
        self.bounded(read::group(&self.reader, group)).await
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        self.bounded(read::groups_of(&self.reader, user)).await
    }

    async fn members(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        self.bounded(read::members(&self.reader, group)).await
    }

    async fn send(&self, message: NewMessage) -> Result<SendReceipt, StoreError> {
        match &self.batcher {
            Some(batcher) => self.bounded(batcher.send(message)).await,
            None => {
                self.bounded(write::send_alone(&self.writer, &message))
                    .await
            }
        }
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        self.bounded(read::inbox_after(&self.reader, user, after, limit))
            .await
    }

    async fn ack(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError> {
        self.bounded(write::ack(&self.writer, user, seq)).await
    }

    async fn cursor(&self, user: UserId) -> Result<Seq, StoreError> {
        self.bounded(read::acked_seq(&self.reader, user)).await
    }

    async fn history(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.bounded(read::history(&self.reader, conversation, before, limit))
            .await
    }

    async fn mark_read(
        &self,
        user: UserId,
        with: Target,
        mid: MessageId,
    ) -> Result<MessageId, StoreError> {
        self.bounded(write::mark_read(
            &self.reader,
            &self.writer,
            user,
            with,
            mid,
        ))
        .await
    }

    async fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.bounded(read::conversations(&self.reader, user, before, limit))
            .await
    }

    async fn find_users(
        &self,
        name: &str,
        prefix: bool,
        limit: u32,
    ) -> Result<Vec<UserInfo>, StoreError> {
        self.bounded(read::find_users(&self.reader, name, prefix, limit))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The readers: on SQLite the writer may be busy with a batch for a
        // while, which says nothing about reachability.
        self.bounded(async { self.reader.ping().await.map_err(Fail::from) })
            .await
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests;
