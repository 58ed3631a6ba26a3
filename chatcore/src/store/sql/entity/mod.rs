//! SeaORM entities, one file per table of the migration
//! `m20261128_000001_create_chat_tables` (classic `DeriveEntityModel` format).
//! They mirror the schema; the migration, never these, defines it.

pub(crate) mod chat_group;
pub(crate) mod friendship;
pub(crate) mod group_member;
pub(crate) mod inbox;
pub(crate) mod inbox_state;
pub(crate) mod message;
pub(crate) mod user;
