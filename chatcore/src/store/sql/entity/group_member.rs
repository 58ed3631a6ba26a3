//! `group_member`: one row per (group, member) with the member's role.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "group_member")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) group_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) user_id: i64,
    /// `Role::as_str`: `"creator"` or `"normal"`.
    pub(crate) role: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) joined_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::chat_group::Entity",
        from = "Column::GroupId",
        to = "super::chat_group::Column::Id",
        on_delete = "Cascade"
    )]
    Group,
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
