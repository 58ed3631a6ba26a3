//! `user`: one row per registered user.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub(crate) id: i64,
    #[sea_orm(unique)]
    pub(crate) name: String,
    pub(crate) password_hash: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) created_at: i64,
    /// Generation of the user's resume tokens; bumped to revoke them.
    pub(crate) token_epoch: i64,
    /// When an administrator banned the user (milliseconds since the Unix
    /// epoch); `None` while not banned.
    pub(crate) banned_at: Option<i64>,
    /// When the account was deleted; the row stays as the tombstone its
    /// sent messages still name. Every lookup of live users skips it.
    pub(crate) deleted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
