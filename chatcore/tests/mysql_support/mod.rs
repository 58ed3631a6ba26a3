//! Shared by the `mysql_*` tests: a throwaway database on the MySQL/MariaDB
//! server named by `CHAT_TEST_MYSQL_URL`, and the rule for skipping when it
//! is unset (a failure instead when `CHAT_TEST_REQUIRE_SERVICES` is set).
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// Names the MySQL/MariaDB server (without a database) to test against.
pub const MYSQL_URL_VAR: &str = "CHAT_TEST_MYSQL_URL";

/// The server URL, or `None` (with a note on stderr) when the test should
/// be skipped; panics when services are required.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(MYSQL_URL_VAR) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CHAT_TEST_REQUIRE_SERVICES").is_none(),
                "{MYSQL_URL_VAR} is not set but CHAT_TEST_REQUIRE_SERVICES is"
            );
            eprintln!("skipping {test}: {MYSQL_URL_VAR} is not set");
            None
        }
    }
}

/// A database made for one test and dropped by [`ThrowawayDatabase::drop_database`].
pub struct ThrowawayDatabase {
    /// Connected to the server, not to the database.
    pub admin: DatabaseConnection,
    /// ASCII letters, digits and `_` only (spliced into SQL).
    pub name: String,
    /// The server URL with the database appended.
    pub url: String,
}

impl ThrowawayDatabase {
    /// `None` when the test is to be skipped (see [`server_url`]).
    pub async fn create(test: &str) -> Option<ThrowawayDatabase> {
        let server_url = server_url(test)?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "chat_test_{}_{}_{:012x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            getrandom::u64().expect("random") >> 16,
        );
        let mut options = ConnectOptions::new(server_url.clone());
        options.max_connections(2).sqlx_logging(false);
        let admin = Database::connect(options)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {MYSQL_URL_VAR}={server_url}: {err}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name} failed: {err}"));
        let url = database_url(&server_url, &name);
        Some(ThrowawayDatabase { admin, name, url })
    }

    /// Runs one statement on the server; name tables as `` `db`.table ``
    /// with [`ThrowawayDatabase::name`].
    pub async fn execute(&self, sql: &str) {
        self.admin
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql} failed: {err}"));
    }

    /// Best effort: a database left behind is only litter.
    pub async fn drop_database(self) {
        let name = &self.name;
        if let Err(err) = self
            .admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .await
        {
            eprintln!("could not drop test database {name}: {err}");
        }
        let _ = self.admin.close().await;
    }
}

/// `mysql://user@host:3306[/][?query]` -> `mysql://user@host:3306/<name>[?query]`
pub fn database_url(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let mut url = format!("{}/{name}", base.trim_end_matches('/'));
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
