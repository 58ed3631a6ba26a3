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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_stores_the_queued_sends_then_refuses_new_ones() -> TestResult {
    use std::time::Duration;

    use crate::model::{NewMessage, Seq, Target};
    use crate::store::{Store, StoreError};

    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    // A long window: the sends are still queued when `close` begins.
    let mut options = SqlStoreOptions::new(url.clone());
    options.batch_window = Duration::from_millis(300);
    let store = SqlStore::connect(options).await?;
    let alice = store.create_user("alice", "hash").await?;
    let bob = store.create_user("bob", "hash").await?;
    let chat = |body: String| NewMessage {
        sender: alice,
        target: Target::User(bob),
        body,
        client_msg_id: None,
        sent_at_ms: 1_767_225_600_000,
    };
    let sends: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            let message = chat(format!("queued {n}"));
            tokio::spawn(async move { store.send(message).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;

    store.close().await?;
    for send in sends {
        send.await??;
    }
    let late = store.send(chat("too late".to_owned())).await;
    assert!(
        matches!(late, Err(StoreError::Unavailable(_))),
        "a send after close is refused: {late:?}"
    );

    let reopened = SqlStore::connect(SqlStoreOptions::new(url)).await?;
    let inbox = reopened.inbox_after(bob, Seq::ZERO, 100).await?;
    assert_eq!(inbox.len(), 8, "every send queued before close is stored");
    reopened.close().await?;
    Ok(())
}
