//! Adds `import_checkpoint`: how far an import from another chat system
//! (`chatd import-seed`) has got, one row per source, written in the same
//! transaction as each batch it imports, so that an interrupted import
//! resumes after its last committed batch and a finished one is not redone.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ImportCheckpoint {
    Table,
    Source,
    State,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DbBackend::MySql;
        // The importer's own record of its progress: a few kilobytes, more
        // than MySQL's TEXT holds at worst.
        let state = if mysql {
            ColumnDef::new(ImportCheckpoint::State)
                .custom("MEDIUMTEXT")
                .not_null()
                .take()
        } else {
            text(ImportCheckpoint::State)
        };
        let mut table = Table::create();
        table
            .table(ImportCheckpoint::Table)
            .if_not_exists()
            .col(string_len(ImportCheckpoint::Source, 255).primary_key())
            .col(state)
            .col(big_integer(ImportCheckpoint::UpdatedAt));
        if mysql {
            table.extra("ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin");
        }
        manager.create_table(table.take()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ImportCheckpoint::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
