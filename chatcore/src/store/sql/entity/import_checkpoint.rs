//! `import_checkpoint`: how far the import from one source has got.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "import_checkpoint")]
pub(crate) struct Model {
    /// The importer's name for its source (`host:port/database`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) source: String,
    /// The importer's own record, opaque to the store.
    #[sea_orm(column_type = "Text")]
    pub(crate) state: String,
    /// Milliseconds since the Unix epoch.
    pub(crate) updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
