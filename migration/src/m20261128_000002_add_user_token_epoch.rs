//! Adds `user.token_epoch`: the generation of a user's resume tokens. A
//! token carries the epoch it was issued in and is valid only while the
//! user's epoch is unchanged, so logging out or changing the password
//! (which bump it) revokes every token issued before, on every node.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum User {
    Table,
    TokenEpoch,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(User::Table)
                    .add_column(big_integer(User::TokenEpoch).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(User::Table)
                    .drop_column(User::TokenEpoch)
                    .to_owned(),
            )
            .await
    }
}
