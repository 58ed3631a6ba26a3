//! The backends the suite runs against and the fixture that opens a fresh,
//! empty store for every check and tears it down afterwards.

use std::future::Future;
use std::panic;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::Service;
use chat_testkit::mysql::ThrowawayDatabase;
use chatcore::store::{MemoryStore, MeteredStore, SqlStore, SqlStoreOptions, Store};
use tempfile::TempDir;

/// Longest a single check may run: a deadlocked backend fails the test
/// instead of hanging the whole run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// One implementation of `Store`, set up as it is used in production.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    /// `MemoryStore::new()`.
    Memory,
    /// `MemoryStore::new()` inside `MeteredStore`, which must change
    /// nothing of what the store does.
    MeteredMemory,
    /// `SqlStore` on `sqlite::memory:` (one connection for everything).
    SqliteMemory,
    /// `SqlStore` on a SQLite file in a temporary directory (WAL, one
    /// writer, a pool of readers).
    SqliteFile,
    /// `SqlStore` on a throwaway database of the MySQL/MariaDB server named
    /// by `CHAT_TEST_MYSQL_URL`; ignored when it is unset.
    Mysql,
}

impl Backend {
    /// What its tests need besides this process.
    pub(crate) fn needs(self) -> &'static [Service] {
        match self {
            Backend::Mysql => &[Service::Mysql],
            Backend::Memory
            | Backend::MeteredMemory
            | Backend::SqliteMemory
            | Backend::SqliteFile => &[],
        }
    }
}

/// Opens a fresh store of `backend`, runs `check` on it and tears the store
/// down again, also when the check panics (the panic then fails the test).
pub(crate) async fn run<C, F>(backend: Backend, check: C)
where
    C: FnOnce(Arc<dyn Store>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let fixture = Fixture::open(backend).await;
    // A task of its own, so that a failed assertion still reaches the
    // teardown below (a MySQL database must not be left behind).
    let mut task = tokio::spawn(check(Arc::clone(&fixture.store)));
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, &mut task).await;
    if outcome.is_err() {
        task.abort();
    }
    fixture.close().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(join_error)) => match join_error.try_into_panic() {
            Ok(payload) => panic::resume_unwind(payload),
            Err(join_error) => panic!("the check did not run to its end: {join_error}"),
        },
        Err(_) => panic!("the check did not finish within {CHECK_TIMEOUT:?} on {backend:?}"),
    }
}

/// A fresh, empty store and whatever must outlive it.
struct Fixture {
    store: Arc<dyn Store>,
    /// The same store, to close its pools before the teardown.
    sql: Option<SqlStore>,
    /// Holds the SQLite file; removed on drop, after the store is closed.
    dir: Option<TempDir>,
    /// Dropped after the store is closed.
    mysql: Option<ThrowawayDatabase>,
}

impl Fixture {
    async fn open(backend: Backend) -> Fixture {
        match backend {
            Backend::Memory => Fixture {
                store: Arc::new(MemoryStore::new()),
                sql: None,
                dir: None,
                mysql: None,
            },
            Backend::MeteredMemory => Fixture {
                store: MeteredStore::wrap(Arc::new(MemoryStore::new())),
                sql: None,
                dir: None,
                mysql: None,
            },
            Backend::SqliteMemory => Fixture::sql(sql_store("sqlite::memory:").await, None, None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let path = dir.path().join("chat.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                Fixture::sql(sql_store(&url).await, Some(dir), None)
            }
            Backend::Mysql => {
                let database = ThrowawayDatabase::create().await;
                let store = sql_store(&database.url).await;
                Fixture::sql(store, None, Some(database))
            }
        }
    }

    fn sql(store: SqlStore, dir: Option<TempDir>, mysql: Option<ThrowawayDatabase>) -> Fixture {
        Fixture {
            store: Arc::new(store.clone()),
            sql: Some(store),
            dir,
            mysql,
        }
    }

    async fn close(self) {
        if let Some(sql) = &self.sql
            && let Err(err) = sql.close().await
        {
            eprintln!("closing the store failed: {err}");
        }
        if let Some(database) = self.mysql {
            database.drop_database().await;
        }
        drop(self.dir);
    }
}

async fn sql_store(url: &str) -> SqlStore {
    SqlStore::connect(SqlStoreOptions::new(url))
        .await
        .unwrap_or_else(|err| panic!("SqlStore::connect({url}) failed: {err}"))
}
