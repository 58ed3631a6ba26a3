//! SeaORM entities, one file per table of the schema the migrations build
//! (`m20261128_000001_create_chat_tables` and those after it), in the
//! classic `DeriveEntityModel` format. They mirror the schema; the
//! migrations, never these, define it.

pub(crate) mod chat_group;
pub(crate) mod friendship;
pub(crate) mod group_member;
pub(crate) mod import_checkpoint;
pub(crate) mod inbox;
pub(crate) mod inbox_state;
pub(crate) mod message;
pub(crate) mod read_position;
pub(crate) mod user;
