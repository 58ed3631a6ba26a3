//! The backends the suite runs against and the fixture that opens a fresh,
//! empty store for every check and tears it down afterwards.

use std::future::Future;
use std::panic;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatcore::store::{MemoryStore, SqlStore, SqlStoreOptions, Store};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

/// Names the MySQL/MariaDB server (without a database) to test against.
const MYSQL_URL_VAR: &str = "CHAT_TEST_MYSQL_URL";
/// Longest a single check may run: a deadlocked backend fails the test
/// instead of hanging the whole run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// One implementation of `Store`, set up as it is used in production.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backend {
    /// `MemoryStore::new()`.
    Memory,
    /// `SqlStore` on `sqlite::memory:` (one connection for everything).
    SqliteMemory,
    /// `SqlStore` on a SQLite file in a temporary directory (WAL, one
    /// writer, a pool of readers).
    SqliteFile,
    /// `SqlStore` on a throwaway database of the MySQL/MariaDB server named
    /// by `CHAT_TEST_MYSQL_URL`; skipped when it is unset.
    Mysql,
}

/// Opens a fresh store of `backend`, runs `check` on it and tears the store
/// down again, also when the check panics (the panic then fails the test).
pub(crate) async fn run<C, F>(backend: Backend, check: C)
where
    C: FnOnce(Arc<dyn Store>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let Some(fixture) = Fixture::open(backend).await else {
        return;
    };
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
    /// `None` when the backend is not available here (MySQL without
    /// `CHAT_TEST_MYSQL_URL`).
    async fn open(backend: Backend) -> Option<Fixture> {
        let fixture = match backend {
            Backend::Memory => Fixture {
                store: Arc::new(MemoryStore::new()),
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
                let Ok(server_url) = std::env::var(MYSQL_URL_VAR) else {
                    // CI sets this: there a suite that cannot run fails.
                    assert!(
                        std::env::var_os("CHAT_TEST_REQUIRE_SERVICES").is_none(),
                        "{MYSQL_URL_VAR} is not set but CHAT_TEST_REQUIRE_SERVICES is"
                    );
                    eprintln!("skipping MySQL conformance: {MYSQL_URL_VAR} is not set");
                    return None;
                };
                let database = ThrowawayDatabase::create(&server_url).await;
                let store = sql_store(&database.url).await;
                Fixture::sql(store, None, Some(database))
            }
        };
        Some(fixture)
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

/// A database created for one check on the MySQL/MariaDB server and dropped
/// after it.
struct ThrowawayDatabase {
    /// Connected to the server, not to the database.
    admin: DatabaseConnection,
    /// Only ASCII letters, digits and `_` (it is spliced into SQL: a
    /// database name cannot be a bind parameter).
    name: String,
    /// The store's URL: the server URL with the database appended.
    url: String,
}

impl ThrowawayDatabase {
    async fn create(server_url: &str) -> ThrowawayDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "chat_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            &uuid::Uuid::new_v4().simple().to_string()[..12],
        );
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "database name {name:?} must be safe to splice into SQL"
        );

        let mut options = ConnectOptions::new(server_url.to_owned());
        options.max_connections(1).sqlx_logging(false);
        let admin = Database::connect(options)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {MYSQL_URL_VAR}={server_url}: {err}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name} failed: {err}"));

        // `mysql://user@host:3306[/][?query]` -> `mysql://user@host:3306/<name>[?query]`
        let (base, query) = match server_url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (server_url, None),
        };
        let mut url = format!("{}/{name}", base.trim_end_matches('/'));
        if let Some(query) = query {
            url.push('?');
            url.push_str(query);
        }
        ThrowawayDatabase { admin, name, url }
    }

    /// Best effort: a database left behind is only litter.
    async fn drop_database(self) {
        let name = &self.name;
        if let Err(err) = self
            .admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
        {
            eprintln!("could not drop test database {name}: {err}");
        }
        if let Err(err) = self.admin.close().await {
            eprintln!("could not close the admin connection: {err}");
        }
    }
}
