//! Creates the whole chat schema: users with their inbox state, friendships,
//! groups and members, messages and the per-user inbox. Written for
//! MySQL/MariaDB (InnoDB, utf8mb4, binary collation) and SQLite alike.

use sea_orm_migration::{
    prelude::*,
    schema::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
};

/// Table options on MySQL/MariaDB: transactional storage, every Unicode
/// character (emoji too), and strings compared byte for byte. The binary
/// collation must be a NO PAD one: `utf8mb4_bin` ignores trailing spaces,
/// so "bob" and "bob " would collide in the unique indexes.
const MARIADB_TABLE_OPTIONS: &str =
    "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin";
const MYSQL_TABLE_OPTIONS: &str = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin";

/// MariaDB and MySQL 8 name their NO PAD binary collations differently.
async fn mysql_table_options(manager: &SchemaManager<'_>) -> Result<&'static str, DbErr> {
    let db = manager.get_connection();
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT VERSION()",
        ))
        .await?;
    let version: String = match row {
        Some(row) => row.try_get_by_index(0)?,
        None => String::new(),
    };
    Ok(if version.contains("MariaDB") {
        MARIADB_TABLE_OPTIONS
    } else {
        MYSQL_TABLE_OPTIONS
    })
}

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DbBackend::MySql;
        let options = if mysql {
            mysql_table_options(manager).await?
        } else {
            ""
        };

        for mut table in tables(mysql) {
            if mysql {
                table.extra(options);
            }
            manager.create_table(table).await?;
        }
        // MySQL gets its secondary indexes inside CREATE TABLE (it has no
        // CREATE INDEX IF NOT EXISTS); SQLite only accepts them separately.
        if !mysql {
            for mut index in secondary_indexes() {
                manager.create_index(index.if_not_exists().take()).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents, so foreign keys never block a drop.
        let tables = [
            Inbox::Table.into_iden(),
            Message::Table.into_iden(),
            GroupMember::Table.into_iden(),
            ChatGroup::Table.into_iden(),
            Friendship::Table.into_iden(),
            InboxState::Table.into_iden(),
            User::Table.into_iden(),
        ];
        for table in tables {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    Name,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum InboxState {
    Table,
    UserId,
    LastSeq,
    AckedSeq,
}

#[derive(DeriveIden)]
enum Friendship {
    Table,
    UserId,
    FriendId,
}

#[derive(DeriveIden)]
enum ChatGroup {
    Table,
    Id,
    Name,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GroupMember {
    Table,
    GroupId,
    UserId,
    Role,
    JoinedAt,
}

#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    SenderId,
    Kind,
    TargetId,
    Conversation,
    Body,
    ClientMsgId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    UserId,
    Seq,
    MessageId,
}

/// The tables in creation order (parents before children).
fn tables(mysql: bool) -> Vec<TableCreateStatement> {
    let mut user = Table::create();
    user.table(User::Table)
        .if_not_exists()
        .col(big_integer(User::Id).auto_increment().primary_key())
        .col(string_len(User::Name, 64))
        .col(string_len(User::PasswordHash, 255))
        .col(big_integer(User::CreatedAt))
        .index(
            Index::create()
                .name("uq_user_name")
                .col(User::Name)
                .unique(),
        );

    let mut inbox_state = Table::create();
    inbox_state
        .table(InboxState::Table)
        .if_not_exists()
        .col(big_integer(InboxState::UserId).primary_key())
        .col(big_integer(InboxState::LastSeq).default(0))
        .col(big_integer(InboxState::AckedSeq).default(0))
        .foreign_key(
            ForeignKey::create()
                .name("fk_inbox_state_user")
                .from(InboxState::Table, InboxState::UserId)
                .to(User::Table, User::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );

    let mut friendship = Table::create();
    friendship
        .table(Friendship::Table)
        .if_not_exists()
        .col(big_integer(Friendship::UserId))
        .col(big_integer(Friendship::FriendId))
        .primary_key(
            Index::create()
                .col(Friendship::UserId)
                .col(Friendship::FriendId),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_friendship_user")
                .from(Friendship::Table, Friendship::UserId)
                .to(User::Table, User::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_friendship_friend")
                .from(Friendship::Table, Friendship::FriendId)
                .to(User::Table, User::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );

    let mut chat_group = Table::create();
    chat_group
        .table(ChatGroup::Table)
        .if_not_exists()
        .col(big_integer(ChatGroup::Id).auto_increment().primary_key())
        .col(string_len(ChatGroup::Name, 64))
        .col(string_len(ChatGroup::Description, 255).default(""))
        .col(big_integer(ChatGroup::CreatedAt))
        .index(
            Index::create()
                .name("uq_chat_group_name")
                .col(ChatGroup::Name)
                .unique(),
        );

    let mut group_member = Table::create();
    group_member
        .table(GroupMember::Table)
        .if_not_exists()
        .col(big_integer(GroupMember::GroupId))
        .col(big_integer(GroupMember::UserId))
        .col(string_len(GroupMember::Role, 16))
        .col(big_integer(GroupMember::JoinedAt))
        .primary_key(
            Index::create()
                .col(GroupMember::GroupId)
                .col(GroupMember::UserId),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_group_member_group")
                .from(GroupMember::Table, GroupMember::GroupId)
                .to(ChatGroup::Table, ChatGroup::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_group_member_user")
                .from(GroupMember::Table, GroupMember::UserId)
                .to(User::Table, User::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );

    // MySQL's TEXT holds at most 65,535 bytes; a 64 KiB body needs MEDIUMTEXT.
    let body = if mysql {
        ColumnDef::new(Message::Body)
            .custom("MEDIUMTEXT")
            .not_null()
            .take()
    } else {
        text(Message::Body)
    };
    let mut message = Table::create();
    message
        .table(Message::Table)
        .if_not_exists()
        .col(big_integer(Message::Id).auto_increment().primary_key())
        .col(big_integer(Message::SenderId))
        .col(small_integer(Message::Kind))
        .col(big_integer(Message::TargetId))
        .col(string_len(Message::Conversation, 48))
        .col(body)
        .col(string_len_null(Message::ClientMsgId, 64))
        .col(big_integer(Message::CreatedAt))
        .index(
            Index::create()
                .name("uq_message_sender_client")
                .col(Message::SenderId)
                .col(Message::ClientMsgId)
                .unique(),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_message_sender")
                .from(Message::Table, Message::SenderId)
                .to(User::Table, User::Id),
        );

    let mut inbox = Table::create();
    inbox
        .table(Inbox::Table)
        .if_not_exists()
        .col(big_integer(Inbox::UserId))
        .col(big_integer(Inbox::Seq))
        .col(big_integer(Inbox::MessageId))
        .primary_key(Index::create().col(Inbox::UserId).col(Inbox::Seq))
        // An inbox belongs to a user: served by the primary key's prefix,
        // so it costs no index of its own.
        .foreign_key(
            ForeignKey::create()
                .name("fk_inbox_user")
                .from(Inbox::Table, Inbox::UserId)
                .to(User::Table, User::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        // An entry always has its message (a dangling one would be a gap
        // in the inbox as read). MySQL indexes `message_id` for it.
        .foreign_key(
            ForeignKey::create()
                .name("fk_inbox_message")
                .from(Inbox::Table, Inbox::MessageId)
                .to(Message::Table, Message::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );

    if mysql {
        group_member.index(&mut group_member_user_index());
        message.index(&mut message_conversation_index());
    }

    vec![
        user.take(),
        inbox_state.take(),
        friendship.take(),
        chat_group.take(),
        group_member.take(),
        message.take(),
        inbox.take(),
    ]
}

/// Plain (non-unique) indexes, each named uniquely across the database.
fn secondary_indexes() -> [IndexCreateStatement; 2] {
    [group_member_user_index(), message_conversation_index()]
}

/// "Groups of a user" without scanning the (group_id, user_id) key.
fn group_member_user_index() -> IndexCreateStatement {
    Index::create()
        .name("idx_group_member_user")
        .table(GroupMember::Table)
        .col(GroupMember::UserId)
        .col(GroupMember::GroupId)
        .take()
}

/// History of one conversation, newest first.
fn message_conversation_index() -> IndexCreateStatement {
    Index::create()
        .name("idx_message_conversation")
        .table(Message::Table)
        .col(Message::Conversation)
        .col(Message::Id)
        .take()
}
