//! The chat server's schema as a frozen history of sea-orm migrations.
//!
//! Each migration lives in its own file named `mYYYYMMDD_NNNNNN_verb_noun.rs`
//! (the file name is the version recorded in `seaql_migrations`), uses only
//! local identifiers (never the live entities) and is never edited once
//! released: schema changes are new migrations appended to [`Migrator`].

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_chat_tables;
mod m20261128_000002_add_user_token_epoch;
mod m20261203_000003_create_read_position;
mod m20261203_000004_create_import_checkpoint;
mod m20261203_000005_add_user_moderation;

/// Every migration of the schema, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_chat_tables::Migration),
            Box::new(m20261128_000002_add_user_token_epoch::Migration),
            Box::new(m20261203_000003_create_read_position::Migration),
            Box::new(m20261203_000004_create_import_checkpoint::Migration),
            Box::new(m20261203_000005_add_user_moderation::Migration),
        ]
    }
}
