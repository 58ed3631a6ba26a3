//! `message`: every stored chat message, one row however many recipients.

use sea_orm::entity::prelude::*;

/// `kind` of a one-to-one message (`target_id` is a user id).
pub(crate) const KIND_DIRECT: i16 = 1;
/// `kind` of a group message (`target_id` is a group id).
pub(crate) const KIND_GROUP: i16 = 2;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub(crate) id: i64,
    pub(crate) sender_id: i64,
    /// [`KIND_DIRECT`] or [`KIND_GROUP`].
    pub(crate) kind: i16,
    pub(crate) target_id: i64,
    /// `Conversation::key()`, for history.
    pub(crate) conversation: String,
    #[sea_orm(column_type = "Text")]
    pub(crate) body: String,
    pub(crate) client_msg_id: Option<String>,
    /// Milliseconds since the Unix epoch (server time of the send).
    pub(crate) created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::SenderId",
        to = "super::user::Column::Id"
    )]
    Sender,
}

impl ActiveModelBehavior for ActiveModel {}
