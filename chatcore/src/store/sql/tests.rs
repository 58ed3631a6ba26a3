//! Checks of what only the SQL store has: the SQLite connection set-up.
//! The behaviour every `Store` shares is checked by the conformance suite
//! (`chatcore/tests/store_conformance.rs`), against MySQL/MariaDB too.

use std::error::Error;

use super::{SqlStore, SqlStoreOptions};

type TestResult = Result<(), Box<dyn Error>>;

#[tokio::test]
async fn sqlite_file_has_wal_one_writer_and_read_only_readers() -> TestResult {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let store = SqlStore::connect(SqlStoreOptions::new(url)).await?;
    let pragma =
        async |db: &sea_orm::DatabaseConnection, sql: &str| -> Result<String, Box<dyn Error>> {
            let row = db
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                .await?
                .ok_or("no pragma row")?;
            Ok(match row.try_get_by_index::<String>(0) {
                Ok(text) => text,
                Err(_) => row.try_get_by_index::<i64>(0)?.to_string(),
            })
        };
    for (role, db) in [("writer", &store.writer), ("reader", &store.reader)] {
        assert_eq!(pragma(db, "PRAGMA journal_mode").await?, "wal", "{role}");
        assert_eq!(
            pragma(db, "PRAGMA synchronous").await?,
            "1",
            "{role}: NORMAL"
        );
        assert_eq!(pragma(db, "PRAGMA foreign_keys").await?, "1", "{role}");
        assert_eq!(pragma(db, "PRAGMA busy_timeout").await?, "5000", "{role}");
    }
    let write = store
        .reader
        .execute_unprepared("DELETE FROM inbox_state")
        .await;
    assert!(write.is_err(), "readers are read-only");
    Ok(())
}
