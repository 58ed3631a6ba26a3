//! Reading the seed's MySQL database (its five tables, see
//! docs/import-seed.md), read-only.
//!
//! The seed's connections ran `SET NAMES gbk` while its clients sent
//! UTF-8, so the server took each UTF-8 byte pair for a GBK character and
//! stored that character in the column's own character set. Converting a
//! column back to GBK, on the same kind of server that made the mistake,
//! gives the bytes the client sent; they are UTF-8 where the conversion
//! lost nothing (a character GBK lacks would come back as `?`).

use std::str::FromStr;

use anyhow::{Context, bail};
use futures::Stream;
use sea_orm::sqlx::mysql::{
    MySql, MySqlArguments, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow,
};
use sea_orm::sqlx::{self, Row};

/// The text expression of column `$col` as the bytes the seed's client sent.
macro_rules! sent_bytes {
    ($col:literal) => {
        concat!("CAST(CONVERT(", $col, " USING gbk) AS BINARY)")
    };
}

/// Whether converting column `$col` back to GBK lost nothing (1), or not (0;
/// NULL for NULL).
macro_rules! lossless {
    ($col:literal) => {
        concat!(
            "(BINARY CONVERT(CONVERT(",
            $col,
            " USING gbk) USING utf8mb4) = BINARY CONVERT(",
            $col,
            " USING utf8mb4))"
        )
    };
}

/// Whether column `$col` holds text the seed's client sent whole, as
/// UTF-8: computed by the server, so that checking a password never brings
/// it here.
macro_rules! sent_whole {
    ($col:literal) => {
        concat!(
            "(",
            lossless!($col),
            " AND CAST(CONVERT(",
            sent_bytes!($col),
            " USING utf8mb4) AS BINARY) = ",
            sent_bytes!($col),
            ")"
        )
    };
}

const USERS: &str = concat!(
    "SELECT id, ",
    sent_bytes!("name"),
    ", ",
    lossless!("name"),
    ", ",
    sent_whole!("password"),
    " FROM user ORDER BY id"
);

const PASSWORDS: &str = concat!(
    "SELECT id, ",
    sent_bytes!("password"),
    " FROM user WHERE id > ? AND id <= ? AND password IS NOT NULL ORDER BY id"
);

const GROUPS: &str = concat!(
    "SELECT id, ",
    sent_bytes!("groupname"),
    ", ",
    lossless!("groupname"),
    ", ",
    sent_bytes!("groupdesc"),
    ", ",
    lossless!("groupdesc"),
    " FROM allgroup ORDER BY id"
);

/// One row per distinct (user, friend) pair after `(?, ?)`, with how many
/// rows it has and whether the other direction is a row too (for a pair
/// whose user id is the greater, so that each friendship is met once
/// first).
const FRIENDS: &str = "SELECT f.userid, f.friendid, COUNT(*), \
     MAX(f.userid > f.friendid AND EXISTS (SELECT 1 FROM friend r \
       WHERE r.userid = f.friendid AND r.friendid = f.userid)) \
     FROM friend f WHERE f.userid > ? OR (f.userid = ? AND f.friendid > ?) \
     GROUP BY f.userid, f.friendid ORDER BY f.userid, f.friendid LIMIT ?";

/// One row per distinct (group, user) pair after `(?, ?)`, with how many
/// rows it has and whether any says `creator`.
const MEMBERS: &str = "SELECT groupid, userid, COUNT(*), MAX(grouprole = 'creator') \
     FROM groupuser WHERE groupid > ? OR (groupid = ? AND userid > ?) \
     GROUP BY groupid, userid ORDER BY groupid, userid LIMIT ?";

/// Every offline message in the table's own order (it has no key: InnoDB
/// reads a table without one in insertion order).
const MESSAGES: &str = concat!(
    "SELECT userid, ",
    sent_bytes!("message"),
    ", ",
    lossless!("message"),
    ", CHAR_LENGTH(message) FROM offlinemessage"
);

const MESSAGE_COLUMN_LENGTH: &str = "SELECT CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'offlinemessage' AND COLUMN_NAME = 'message'";

/// The seed's database, read-only.
#[derive(Debug, Clone)]
pub(crate) struct Seed {
    pool: MySqlPool,
    /// `HOST:PORT/DATABASE`: names the seed in the target's checkpoint.
    pub(crate) name: String,
}

/// Seed text as the client sent it, or why it cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeedText {
    Text(String),
    Null,
    /// Not valid UTF-8 once undone, or a character was lost.
    Invalid,
}

impl SeedText {
    fn from_row(bytes: Option<Vec<u8>>, lossless: Option<i64>) -> SeedText {
        match (bytes, lossless) {
            (None, _) => SeedText::Null,
            (Some(bytes), Some(1)) => {
                String::from_utf8(bytes).map_or(SeedText::Invalid, SeedText::Text)
            }
            (Some(_), _) => SeedText::Invalid,
        }
    }
}

/// A row of `user` without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedUser {
    pub(crate) id: i64,
    pub(crate) name: SeedText,
    /// Not NULL, and its text came through whole.
    pub(crate) password_ok: bool,
}

/// A row of `allgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedGroup {
    pub(crate) id: i64,
    pub(crate) name: SeedText,
    pub(crate) desc: SeedText,
}

/// The rows of one (user, friend) pair of `friend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FriendRows {
    pub(crate) user: i64,
    pub(crate) friend: i64,
    pub(crate) count: i64,
    /// The user id is the greater and (friend, user) is a row too.
    pub(crate) mirrored: bool,
}

/// The rows of one (group, user) pair of `groupuser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberRows {
    pub(crate) group: i64,
    pub(crate) user: i64,
    pub(crate) count: i64,
    pub(crate) creator: bool,
}

/// A row of `offlinemessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeedMessage {
    pub(crate) recipient: i64,
    pub(crate) text: SeedText,
    /// Characters as stored.
    pub(crate) chars: i64,
}

/// `mysql://USER@HOST:PORT/DB`, refused when it carries a password (a
/// command line is visible to every user of the machine).
pub(crate) fn parse_url(url: &str) -> anyhow::Result<MySqlConnectOptions> {
    let Some(rest) = url.strip_prefix("mysql://") else {
        bail!("--from must be a mysql:// URL");
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        bail!(
            "--from must not carry the password: put it in CHAT_IMPORT_SOURCE_PASSWORD or a \
             file named by --source-password-file"
        );
    }
    MySqlConnectOptions::from_str(url).context("--from is not a usable MySQL URL")
}

/// A query of the seed's, with its arguments bound.
type SeedQuery<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

impl Seed {
    /// Every row of `query`, each made a `T` by `decode`; `what` names the
    /// rows in errors.
    async fn all<T>(
        &self,
        query: SeedQuery<'_>,
        what: &str,
        decode: impl Fn(&MySqlRow) -> Result<T, sqlx::Error>,
    ) -> anyhow::Result<Vec<T>> {
        let rows = query
            .fetch_all(&self.pool)
            .await
            .with_context(|| format!("reading the seed's {what}"))?;
        rows.iter()
            .map(decode)
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading the seed's {what}"))
    }

    pub(crate) async fn connect(
        options: MySqlConnectOptions,
        password: Option<&str>,
    ) -> anyhow::Result<Seed> {
        let name = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let options = match password {
            Some(password) => options.password(password),
            None => options,
        };
        let pool = MySqlPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .with_context(|| format!("connecting to the seed database {name}"))?;
        Ok(Seed { pool, name })
    }

    pub(crate) async fn users(&self) -> anyhow::Result<Vec<SeedUser>> {
        self.all(sqlx::query(USERS), "users", |row| {
            Ok(SeedUser {
                id: row.try_get(0)?,
                name: SeedText::from_row(row.try_get(1)?, row.try_get(2)?),
                password_ok: row.try_get::<Option<i64>, _>(3)? == Some(1),
            })
        })
        .await
    }

    /// The users with ids in `after + 1..=last` with their password as the
    /// client sent it: in memory only until it is hashed.
    pub(crate) async fn passwords(
        &self,
        after: i64,
        last: i64,
    ) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
        let query = sqlx::query(PASSWORDS).bind(after).bind(last);
        self.all(query, "passwords", |row| {
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await
    }

    pub(crate) async fn groups(&self) -> anyhow::Result<Vec<SeedGroup>> {
        self.all(sqlx::query(GROUPS), "groups", |row| {
            Ok(SeedGroup {
                id: row.try_get(0)?,
                name: SeedText::from_row(row.try_get(1)?, row.try_get(2)?),
                desc: SeedText::from_row(row.try_get(3)?, row.try_get(4)?),
            })
        })
        .await
    }

    pub(crate) async fn friends(
        &self,
        after: (i64, i64),
        limit: usize,
    ) -> anyhow::Result<Vec<FriendRows>> {
        self.all(after_pair(FRIENDS, after, limit), "friend rows", |row| {
            Ok(FriendRows {
                user: row.try_get(0)?,
                friend: row.try_get(1)?,
                count: row.try_get(2)?,
                mirrored: row.try_get::<Option<i64>, _>(3)? == Some(1),
            })
        })
        .await
    }

    pub(crate) async fn members(
        &self,
        after: (i64, i64),
        limit: usize,
    ) -> anyhow::Result<Vec<MemberRows>> {
        self.all(after_pair(MEMBERS, after, limit), "group members", |row| {
            Ok(MemberRows {
                group: row.try_get(0)?,
                user: row.try_get(1)?,
                count: row.try_get(2)?,
                creator: row.try_get::<Option<i64>, _>(3)? == Some(1),
            })
        })
        .await
    }

    /// Every offline message, in the table's order.
    pub(crate) fn messages(&self) -> impl Stream<Item = anyhow::Result<SeedMessage>> + '_ {
        use futures::TryStreamExt as _;
        sqlx::query(MESSAGES)
            .fetch(&self.pool)
            .map_err(anyhow::Error::from)
            .and_then(|row: MySqlRow| async move {
                Ok(SeedMessage {
                    recipient: row.try_get(0)?,
                    text: SeedText::from_row(row.try_get(1)?, row.try_get(2)?),
                    chars: row.try_get(3)?,
                })
            })
    }

    /// The declared length of `offlinemessage.message` in characters (500
    /// in the course's schema): a row that long was maybe cut off there.
    pub(crate) async fn message_column_length(&self) -> anyhow::Result<Option<i64>> {
        let length: Option<Option<i64>> = sqlx::query_scalar(MESSAGE_COLUMN_LENGTH)
            .fetch_optional(&self.pool)
            .await
            .context("reading the seed's offlinemessage column")?;
        Ok(length.flatten())
    }

    /// Rows in `table`, for the progress bar.
    pub(crate) async fn count(&self, table: Table) -> anyhow::Result<u64> {
        let sql = match table {
            Table::Friend => "SELECT COUNT(*) FROM friend",
            Table::Groupuser => "SELECT COUNT(*) FROM groupuser",
            Table::Offlinemessage => "SELECT COUNT(*) FROM offlinemessage",
        };
        let count: i64 = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .with_context(|| format!("counting the seed's {table:?} rows"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sql` (a keyset page over a pair of columns) for up to `limit` pairs
/// after `after`.
fn after_pair(sql: &'static str, after: (i64, i64), limit: usize) -> SeedQuery<'static> {
    sqlx::query(sql)
        .bind(after.0)
        .bind(after.0)
        .bind(after.1)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// The seed's tables whose rows are counted for a progress bar (users and
/// groups are read whole first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Friend,
    Groupuser,
    Offlinemessage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_source_url_is_refused() {
        let err = parse_url("mysql://root:secret@127.0.0.1:3306/chat").expect_err("refused");
        assert!(
            err.to_string().contains("CHAT_IMPORT_SOURCE_PASSWORD"),
            "{err}"
        );
        assert!(!format!("{err:#}").contains("secret"));
        assert!(parse_url("mysql://root@127.0.0.1:3306/chat").is_ok());
        assert!(parse_url("postgres://root@127.0.0.1/chat").is_err());
    }

    #[test]
    fn undone_text_is_text_only_when_nothing_was_lost() {
        assert_eq!(
            SeedText::from_row(Some("张三".as_bytes().to_vec()), Some(1)),
            SeedText::Text("张三".to_owned())
        );
        assert_eq!(
            SeedText::from_row(Some(vec![0xe5, 0xbc]), Some(1)),
            SeedText::Invalid
        );
        assert_eq!(
            SeedText::from_row(Some(b"a?".to_vec()), Some(0)),
            SeedText::Invalid
        );
        assert_eq!(SeedText::from_row(None, None), SeedText::Null);
    }
}
