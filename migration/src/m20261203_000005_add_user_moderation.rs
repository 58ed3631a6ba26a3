//! Adds what administration keeps on a user: `banned_at` (set while an
//! administrator bans the account: no login, no resume) and `deleted_at`
//! (set when the account was deleted: the row stays as a tombstone,
//! because the messages it sent stay in their recipients' inboxes and
//! name it as their sender). Both are milliseconds since the Unix epoch,
//! `NULL` when not so.
//!
//! Also indexes `inbox.message_id` on SQLite, so that retention can ask
//! which inbox entries hold a message (and SQLite's cascade from a deleted
//! message) without scanning every inbox; MySQL has had that index since
//! the first migration, for the foreign key.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    BannedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    MessageId,
}

const INBOX_MESSAGE_INDEX: &str = "idx_inbox_message";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [User::BannedAt, User::DeletedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(User::Table)
                        .add_column(big_integer_null(column))
                        .to_owned(),
                )
                .await?;
        }
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .create_index(
                    Index::create()
                        .name(INBOX_MESSAGE_INDEX)
                        .table(Inbox::Table)
                        .col(Inbox::MessageId)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            manager
                .drop_index(
                    Index::drop()
                        .name(INBOX_MESSAGE_INDEX)
                        .table(Inbox::Table)
                        .to_owned(),
                )
                .await?;
        }
        for column in [User::DeletedAt, User::BannedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(User::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
