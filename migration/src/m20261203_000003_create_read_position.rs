//! Adds `read_position`, how far each user has read each of its
//! conversations (one-to-one by peer, group by group), and the two
//! `message` indexes that list a user's one-to-one conversations with
//! their newest message and count what is unread in them.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ReadPosition {
    Table,
    UserId,
    Kind,
    PeerId,
    Mid,
}

#[derive(DeriveIden)]
enum Message {
    Table,
    SenderId,
    Kind,
    TargetId,
    Id,
}

const SENT_INDEX: &str = "idx_message_sender_kind_target";
const RECEIVED_INDEX: &str = "idx_message_target_kind_sender";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DbBackend::MySql;
        let mut table = Table::create();
        table
            .table(ReadPosition::Table)
            .if_not_exists()
            .col(big_integer(ReadPosition::UserId))
            // 1: one-to-one (`peer_id` is a user id); 2: group (a group id),
            // as `message.kind`.
            .col(small_integer(ReadPosition::Kind))
            .col(big_integer(ReadPosition::PeerId))
            .col(big_integer(ReadPosition::Mid).default(0))
            .primary_key(
                Index::create()
                    .col(ReadPosition::UserId)
                    .col(ReadPosition::Kind)
                    .col(ReadPosition::PeerId),
            )
            .foreign_key(
                ForeignKey::create()
                    .name("fk_read_position_user")
                    .from(ReadPosition::Table, ReadPosition::UserId)
                    .to(User::Table, User::Id)
                    .on_delete(ForeignKeyAction::Cascade),
            );
        if mysql {
            table.extra("ENGINE=InnoDB");
        }
        manager.create_table(table.take()).await?;

        // MySQL has no CREATE INDEX IF NOT EXISTS; this migration runs once.
        for mut index in message_indexes() {
            if !mysql {
                index.if_not_exists();
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [SENT_INDEX, RECEIVED_INDEX] {
            manager
                .drop_index(Index::drop().name(name).table(Message::Table).to_owned())
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(ReadPosition::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// The peers a user sent one-to-one messages to, and the peers that sent
/// to it, each with the newest message id (`GROUP BY` over the index); the
/// second also counts a conversation's unread messages by range.
fn message_indexes() -> [IndexCreateStatement; 2] {
    [
        Index::create()
            .name(SENT_INDEX)
            .table(Message::Table)
            .col(Message::SenderId)
            .col(Message::Kind)
            .col(Message::TargetId)
            .col(Message::Id)
            .take(),
        Index::create()
            .name(RECEIVED_INDEX)
            .table(Message::Table)
            .col(Message::TargetId)
            .col(Message::Kind)
            .col(Message::SenderId)
            .col(Message::Id)
            .take(),
    ]
}
