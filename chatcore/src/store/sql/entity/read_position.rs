//! `read_position`: how far each user has read each of its conversations.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "read_position")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) user_id: i64,
    /// `message::KIND_DIRECT` (`peer_id` is the other user) or
    /// `message::KIND_GROUP` (`peer_id` is the group).
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) kind: i16,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) peer_id: i64,
    /// The newest message id the user has seen there; only grows.
    pub(crate) mid: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
