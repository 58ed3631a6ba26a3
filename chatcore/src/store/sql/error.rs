//! Classifies SeaORM/sqlx errors once, at the backend edge, into what the
//! caller can do about them (`StoreError`).

use std::ops::Deref;

use sea_orm::sqlx::error::DatabaseError;
#[cfg(feature = "mysql")]
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

use crate::store::StoreError;

/// A failure inside the SQL store: either already a domain answer, or a
/// database error still to be classified (and possibly retried).
#[derive(Debug)]
pub(crate) enum Fail {
    Store(StoreError),
    Db(DbErr),
}

impl From<DbErr> for Fail {
    fn from(err: DbErr) -> Fail {
        Fail::Db(err)
    }
}

impl From<StoreError> for Fail {
    fn from(err: StoreError) -> Fail {
        Fail::Store(err)
    }
}

impl From<Fail> for StoreError {
    fn from(fail: Fail) -> StoreError {
        match fail {
            Fail::Store(err) => err,
            Fail::Db(err) => map_db_err(err),
        }
    }
}

/// `Unavailable` for what may pass (connections, pool timeouts, I/O, lock
/// contention, a server going away), `Internal` with the message otherwise.
pub(crate) fn map_db_err(err: DbErr) -> StoreError {
    if is_unavailable(&err) {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

/// `replacement` for a unique-key violation, the database error otherwise.
pub(crate) fn unique_or(err: DbErr, replacement: StoreError) -> Fail {
    if is_unique_violation(&err) {
        Fail::Store(replacement)
    } else {
        Fail::Db(err)
    }
}

/// A duplicate primary key or unique key (MySQL 1062 etc., SQLite 1555/2067).
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// The transaction was rolled back as a deadlock victim (MySQL 1213) or lost
/// a snapshot race (SQLite `BUSY_SNAPSHOT`): running it again is correct.
pub(crate) fn is_retryable(err: &DbErr) -> bool {
    match database_error(err) {
        Some(db) => mysql_number(db) == Some(1213) || sqlite_code(db) == Some(SQLITE_BUSY_SNAPSHOT),
        None => false,
    }
}

const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_BUSY_SNAPSHOT: i32 = SQLITE_BUSY | (2 << 8);

fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.deref() {
            sqlx::Error::Configuration(_) | sqlx::Error::InvalidArgument(_) => false,
            // The server's own answer: a wrong password or an unknown
            // database stays wrong, a full or restarting server may pass.
            sqlx::Error::Database(db) => is_transient(db.as_ref()),
            _ => true,
        },
        DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            match e.deref() {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => is_transient(db.as_ref()),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Server-side errors that say "not now" rather than "never".
fn is_transient(db: &dyn DatabaseError) -> bool {
    if let Some(number) = mysql_number(db) {
        // 1040 too many connections, 1053 server shutdown, 1152 and
        // 1158-1161 network errors, 1205 lock wait timeout, 1213 deadlock,
        // 1290 read-only server (failover), 1927 connection killed,
        // 4031 disconnected for inactivity.
        return matches!(
            number,
            1040 | 1053 | 1152 | 1158..=1161 | 1205 | 1213 | 1290 | 1927 | 4031
        );
    }
    if let Some(code) = sqlite_code(db) {
        // Extended codes carry the primary code in their low byte.
        return matches!(
            code & 0xff,
            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN
        );
    }
    false
}

fn database_error(err: &DbErr) -> Option<&dyn DatabaseError> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => match e.deref() {
            sqlx::Error::Database(db) => Some(db.as_ref()),
            _ => None,
        },
        _ => None,
    }
}

/// MySQL's error number; `None` for another backend's error.
#[cfg(feature = "mysql")]
fn mysql_number(db: &dyn DatabaseError) -> Option<u16> {
    db.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// A build without MySQL has no MySQL errors.
#[cfg(not(feature = "mysql"))]
fn mysql_number(_: &dyn DatabaseError) -> Option<u16> {
    None
}

/// SQLite's extended result code (sqlx reports it as the error code);
/// `None` for another backend's error.
#[cfg(feature = "sqlite")]
fn sqlite_code(db: &dyn DatabaseError) -> Option<i32> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?
        .code()?
        .parse()
        .ok()
}

/// A build without SQLite has no SQLite errors.
#[cfg(not(feature = "sqlite"))]
fn sqlite_code(_: &dyn DatabaseError) -> Option<i32> {
    None
}
