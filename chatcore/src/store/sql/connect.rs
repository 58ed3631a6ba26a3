//! Opening the database: the pools and their options, SQLite's pragmas
//! (WAL, one writer connection, read-only readers), MySQL's statement
//! cache, and migrations (on MySQL under a server-wide named lock). Each
//! backend's part builds with its cargo feature (`sqlite`, `mysql`).

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
#[cfg(feature = "sqlite")]
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, RuntimeErr, sqlx};
#[cfg(feature = "mysql")]
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::SqlStoreOptions;
use super::error::{Fail, map_db_err};
use crate::store::StoreError;

/// How long a SQLite connection waits for a lock before `SQLITE_BUSY`.
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements each MySQL connection keeps (sqlx: 100). Bounded
/// statement shapes (see `shape.rs`) stay below it.
#[cfg(feature = "mysql")]
const MYSQL_STATEMENT_CACHE: usize = 256;

/// The connections of one store.
#[derive(Debug)]
pub(super) struct Pools {
    /// Runs every write: the SQLite writer connection, or the MySQL pool.
    pub(super) writer: DatabaseConnection,
    /// Runs reads outside transactions: the SQLite readers (the writer
    /// itself for an in-memory database), or the MySQL pool.
    pub(super) reader: DatabaseConnection,
}

/// Connects to `opts.url` (and migrates, when `opts.run_migrations`).
pub(super) async fn open(opts: &SqlStoreOptions) -> Result<Pools, StoreError> {
    if opts.url.starts_with("sqlite:") {
        open_sqlite(opts).await
    } else if opts.url.starts_with("mysql:") {
        open_mysql(opts).await
    } else {
        Err(StoreError::Internal(
            "unsupported database URL: expected sqlite: or mysql:".to_owned(),
        ))
    }
}

/// The one pool of a MySQL/MariaDB database.
#[cfg(feature = "mysql")]
async fn open_mysql(opts: &SqlStoreOptions) -> Result<Pools, StoreError> {
    let pool = connect(opts, mysql_options(opts)).await?;
    Ok(Pools {
        writer: pool.clone(),
        reader: pool,
    })
}

#[cfg(not(feature = "mysql"))]
async fn open_mysql(_: &SqlStoreOptions) -> Result<Pools, StoreError> {
    Err(not_built("MySQL", "mysql"))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_: &SqlStoreOptions) -> Result<Pools, StoreError> {
    Err(not_built("SQLite", "sqlite"))
}

/// The refusal of a URL whose backend this build left out.
#[cfg(not(all(feature = "sqlite", feature = "mysql")))]
fn not_built(backend: &str, feature: &str) -> StoreError {
    StoreError::Internal(format!(
        "this build of chatcore has no {backend} backend (cargo feature `{feature}`)"
    ))
}

/// The writer and the reader connections of a SQLite database.
#[cfg(feature = "sqlite")]
async fn open_sqlite(opts: &SqlStoreOptions) -> Result<Pools, StoreError> {
    // Separate connections to `sqlite::memory:` would be separate
    // databases, and the last one closing would drop it: one connection
    // for everything, kept open for the store's lifetime.
    let memory = opts.url.contains(":memory:") || opts.url.contains("mode=memory");
    let mut writer_opts = sqlite_options(opts);
    writer_opts
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .map_sqlx_sqlite_opts(move |o| {
            let o = o
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            if memory {
                o
            } else {
                o.journal_mode(SqliteJournalMode::Wal)
            }
        });
    // The writer first: it creates the file, turns WAL on and migrates
    // before any reader opens the database read-only.
    let writer = connect(opts, writer_opts).await?;
    if memory {
        return Ok(Pools {
            writer: writer.clone(),
            reader: writer,
        });
    }
    let mut reader_opts = sqlite_options(opts);
    reader_opts
        .max_connections(opts.max_connections.max(1))
        .min_connections(0)
        .map_sqlx_sqlite_opts(|o| {
            o.read_only(true)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true)
        });
    let mut reader_only = opts.clone();
    reader_only.run_migrations = false;
    let reader = connect(&reader_only, reader_opts).await?;
    Ok(Pools { writer, reader })
}

/// Options shared by every pool of one store.
#[cfg(feature = "sqlite")]
fn sqlite_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = base_options(opts);
    // A local file: no point pinging a connection before handing it out.
    options.test_before_acquire(false);
    options
}

#[cfg(feature = "mysql")]
fn mysql_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = base_options(opts);
    options
        .map_sqlx_mysql_opts(|o| o.statement_cache_capacity(MYSQL_STATEMENT_CACHE))
        .max_connections(opts.max_connections.max(1))
        // Ping only connections idle long enough to have been dropped by
        // the server or a proxy, not one round trip per query.
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    options
}

fn base_options(opts: &SqlStoreOptions) -> ConnectOptions {
    let mut options = ConnectOptions::new(opts.url.clone());
    options
        .connect_timeout(opts.connect_timeout)
        .acquire_timeout(opts.acquire_timeout)
        .sqlx_logging(false);
    options
}

/// Opens a pool within `opts.connect_timeout` and migrates it when asked.
async fn connect(
    opts: &SqlStoreOptions,
    options: ConnectOptions,
) -> Result<DatabaseConnection, StoreError> {
    let db = match tokio::time::timeout(opts.connect_timeout, Database::connect(options)).await {
        Ok(Ok(db)) => db,
        Ok(Err(e)) => return Err(open_failed(opts, e).await),
        Err(_) => {
            let waited = format!("no database connection within {:?}", opts.connect_timeout);
            return Err(match cause(opts).await {
                Some(cause) => StoreError::Unavailable(format!("{waited}: {cause}")),
                None => StoreError::Unavailable(waited),
            });
        }
    };
    if opts.run_migrations {
        #[cfg(feature = "mysql")]
        if db.get_database_backend() == DbBackend::MySql {
            migrate_locked(opts).await?;
            return Ok(db);
        }
        migrate(&db).await?;
    }
    Ok(db)
}

/// Why the pool could not be opened, in words that say what to do.
async fn open_failed(opts: &SqlStoreOptions, err: DbErr) -> StoreError {
    #[cfg(feature = "sqlite")]
    if opts.url.starts_with("sqlite:")
        && let Some(missing) = missing_sqlite_file(&opts.url)
    {
        return StoreError::Internal(format!(
            "the SQLite database file {missing} does not exist, and the URL does not ask \
             for it to be created: add `?mode=rwc` (sqlite://{missing}?mode=rwc)"
        ));
    }
    // The pool retries a refused connection until its deadline, then
    // reports only that it timed out: one direct attempt finds the cause.
    if pool_timed_out(&err)
        && let Some(cause) = cause(opts).await
    {
        return StoreError::Unavailable(format!("cannot connect to the database: {cause}"));
    }
    match map_db_err(err) {
        // Opening a SQLite file fails for good (a missing directory, no
        // permission) where a running store's failure to open one more
        // connection may pass.
        StoreError::Unavailable(detail) if opts.url.starts_with("sqlite:") => {
            StoreError::Internal(format!("cannot open the SQLite database: {detail}"))
        }
        other => other,
    }
}

fn pool_timed_out(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(e)) => matches!(**e, sqlx::Error::PoolTimedOut),
        _ => false,
    }
}

/// The error of one direct connection to a MySQL/MariaDB `opts.url`,
/// if it fails within the connect timeout.
async fn cause(opts: &SqlStoreOptions) -> Option<String> {
    #[cfg(feature = "mysql")]
    if opts.url.starts_with("mysql:") {
        use sea_orm::sqlx::Connection as _;
        let attempt = sqlx::mysql::MySqlConnection::connect(&opts.url);
        return match tokio::time::timeout(opts.connect_timeout, attempt).await {
            Ok(Err(e)) => Some(e.to_string()),
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                None
            }
            Err(_) => Some(format!(
                "no answer from the server within {:?}",
                opts.connect_timeout
            )),
        };
    }
    let _ = opts;
    None
}

/// The file of a SQLite `url` when it does not exist and the URL does
/// not say to create it (`mode=rwc`).
#[cfg(feature = "sqlite")]
fn missing_sqlite_file(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.trim_start_matches("//");
    let memory = path.is_empty() || path == ":memory:" || query.contains("mode=memory");
    let creates = query.split('&').any(|pair| pair == "mode=rwc");
    (!memory && !creates && !std::path::Path::new(path).exists()).then(|| path.to_owned())
}

/// Applies pending migrations on MySQL/MariaDB one process at a time: nodes
/// of a cluster starting together would otherwise run the same migration
/// twice (and `ALTER TABLE ... ADD COLUMN` is not idempotent). The lock is
/// a named lock of the database server, held by one dedicated connection
/// (so the lock and the migrations share it) and freed with it should the
/// process die.
#[cfg(feature = "mysql")]
async fn migrate_locked(opts: &SqlStoreOptions) -> Result<(), StoreError> {
    const WAIT_SECS: u32 = 120;
    let mut options = mysql_options(opts);
    options.max_connections(1).min_connections(1);
    let db = Database::connect(options).await.map_err(Fail::from)?;
    let lock = "CONCAT('chat_migrate:', DATABASE())";
    let got: Option<i64> = db
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT GET_LOCK({lock}, {WAIT_SECS})"),
        ))
        .await
        .map_err(Fail::from)?
        .and_then(|row| row.try_get_by_index(0).ok());
    if got != Some(1) {
        return Err(StoreError::Unavailable(format!(
            "another node held the migration lock for {WAIT_SECS} s"
        )));
    }
    let migrated = migrate(&db).await;
    let _ = db
        .execute_raw(Statement::from_string(
            DbBackend::MySql,
            format!("DO RELEASE_LOCK({lock})"),
        ))
        .await;
    let _ = db.close().await;
    migrated
}

/// Applies pending migrations. Two nodes starting together may both try:
/// the loser's bookkeeping insert fails, and a second look finds nothing
/// left to do.
async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    let first = match Migrator::up(db, None).await {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match Migrator::get_pending_migrations(db).await {
        Ok(pending) if pending.is_empty() => Ok(()),
        _ => Err(match map_db_err(first) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("migrating: {m}")),
            StoreError::Internal(m) => StoreError::Internal(format!("migration failed: {m}")),
            other => other,
        }),
    }
}
