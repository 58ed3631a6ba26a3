//! Focused checks of the SQL-specific parts (seq allocation, idempotent
//! sends, the ack cursor, utf8mb4) on `sqlite::memory:`, a SQLite file and,
//! when `CHAT_TEST_MYSQL_URL` is set, MySQL/MariaDB. The behaviour of every
//! `Store` lives in the conformance suite.

use std::error::Error;
use std::sync::Arc;

use super::{SqlStore, SqlStoreOptions};
use crate::model::{GroupId, NewMessage, Seq, Target, UserId};
use crate::store::{Store, StoreError};

type TestResult = Result<(), Box<dyn Error>>;

/// Each available backend with a name for messages; the temp dir must
/// outlive the file store.
async fn backends() -> Result<(tempfile::TempDir, Vec<(&'static str, SqlStore)>), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let file_url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let mut stores = vec![
        (
            "sqlite-memory",
            SqlStore::connect(SqlStoreOptions::new("sqlite::memory:")).await?,
        ),
        (
            "sqlite-file",
            SqlStore::connect(SqlStoreOptions::new(file_url)).await?,
        ),
    ];
    match std::env::var("CHAT_TEST_MYSQL_URL") {
        Ok(url) => {
            let store = SqlStore::connect(SqlStoreOptions::new(url)).await?;
            stores.push(("mysql", store));
        }
        Err(_) => eprintln!("CHAT_TEST_MYSQL_URL unset: MySQL/MariaDB not tested"),
    }
    Ok((dir, stores))
}

/// Names unique per run, since a MySQL database outlives the test.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn chat(sender: UserId, target: Target, body: &str, client_msg_id: Option<&str>) -> NewMessage {
    NewMessage {
        sender,
        target,
        body: body.to_owned(),
        client_msg_id: client_msg_id.map(str::to_owned),
        sent_at_ms: 1_700_000_000_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_take_gap_free_seqs_per_inbox() -> TestResult {
    let (_dir, stores) = backends().await?;
    for (backend, store) in stores {
        let store = Arc::new(store);
        let bob = store.create_user(&unique("bob"), "h").await?;
        let group_members = [
            store.create_user(&unique("a"), "h").await?,
            store.create_user(&unique("b"), "h").await?,
            store.create_user(&unique("c"), "h").await?,
        ];
        let group = store
            .create_group(group_members[0], &unique("g"), "")
            .await?;
        for &member in &group_members[1..] {
            store.join_group(group, member).await?;
        }
        store.join_group(group, bob).await?;

        // 3 senders x 10 one-to-one messages to bob, plus 10 group
        // messages (each also lands in bob's inbox), all at once.
        let mut tasks = Vec::new();
        for (i, &sender) in group_members.iter().enumerate() {
            for n in 0..10 {
                let store = Arc::clone(&store);
                let target = if i == 0 {
                    Target::Group(group)
                } else {
                    Target::User(bob)
                };
                tasks.push(tokio::spawn(async move {
                    store
                        .send(chat(sender, target, &format!("{i}/{n}"), None))
                        .await
                }));
            }
        }
        for &sender in &group_members[1..] {
            for n in 0..5 {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    store
                        .send(chat(sender, Target::User(bob), &format!("x/{n}"), None))
                        .await
                }));
            }
        }
        let mut bob_seqs = Vec::new();
        for task in tasks {
            let receipt = task.await??;
            for d in receipt.deliveries {
                if d.user == bob {
                    bob_seqs.push(d.seq.0);
                }
            }
        }
        bob_seqs.sort_unstable();
        let expected: Vec<i64> = (1..=40).collect();
        assert_eq!(bob_seqs, expected, "{backend}: bob's seqs");

        let inbox = store.inbox_after(bob, Seq::ZERO, 100).await?;
        let seqs: Vec<i64> = inbox.iter().map(|e| e.seq.0).collect();
        assert_eq!(seqs, expected, "{backend}: bob's inbox");
        let page = store.inbox_after(bob, Seq(38), 10).await?;
        assert_eq!(page.len(), 2, "{backend}: page after 38");
        // The creator sent every group message: the others got 10 each.
        let c_inbox = store.inbox_after(group_members[2], Seq::ZERO, 100).await?;
        assert_eq!(c_inbox.len(), 10, "{backend}: c's inbox");
        assert!(
            c_inbox
                .iter()
                .all(|e| e.message.target == Target::Group(group))
        );
        let a_inbox = store.inbox_after(group_members[0], Seq::ZERO, 100).await?;
        assert!(a_inbox.is_empty(), "{backend}: a sent to the group only");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_with_same_client_id_stores_once_also_when_racing() -> TestResult {
    let (_dir, stores) = backends().await?;
    for (backend, store) in stores {
        let store = Arc::new(store);
        let alice = store.create_user(&unique("alice"), "h").await?;
        let bob = store.create_user(&unique("bob"), "h").await?;

        let first = store
            .send(chat(alice, Target::User(bob), "hi", Some("m1")))
            .await?;
        assert!(!first.duplicate);
        assert_eq!(first.deliveries.len(), 1);
        let again = store
            .send(chat(alice, Target::User(bob), "changed", Some("m1")))
            .await?;
        assert!(again.duplicate, "{backend}");
        assert!(again.deliveries.is_empty(), "{backend}");
        assert_eq!(again.message, first.message, "{backend}");

        let mut tasks = Vec::new();
        for _ in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                store
                    .send(chat(alice, Target::User(bob), "race", Some("m2")))
                    .await
            }));
        }
        let mut ids = Vec::new();
        let mut stored = 0;
        for task in tasks {
            let receipt = task.await??;
            ids.push(receipt.message.id);
            if !receipt.duplicate {
                stored += 1;
            }
        }
        assert_eq!(stored, 1, "{backend}: exactly one send stored");
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{backend}: {ids:?}");
        let inbox = store.inbox_after(bob, Seq::ZERO, 100).await?;
        assert_eq!(inbox.len(), 2, "{backend}: one entry per stored message");
    }
    Ok(())
}

#[tokio::test]
async fn ack_never_moves_back_nor_past_the_last_seq() -> TestResult {
    let (_dir, stores) = backends().await?;
    for (backend, store) in stores {
        let alice = store.create_user(&unique("alice"), "h").await?;
        let bob = store.create_user(&unique("bob"), "h").await?;
        assert_eq!(store.ack(bob, Seq(5)).await?, Seq::ZERO, "{backend}: empty");
        for n in 0..3 {
            store
                .send(chat(alice, Target::User(bob), &n.to_string(), None))
                .await?;
        }
        assert_eq!(store.ack(bob, Seq(2)).await?, Seq(2), "{backend}");
        assert_eq!(
            store.ack(bob, Seq(1)).await?,
            Seq(2),
            "{backend}: backwards"
        );
        assert_eq!(store.ack(bob, Seq(99)).await?, Seq(3), "{backend}: capped");
        assert_eq!(store.cursor(bob).await?, Seq(3), "{backend}");
        assert_eq!(
            store.cursor(UserId(i64::MAX)).await?,
            Seq::ZERO,
            "{backend}"
        );
        assert_eq!(store.ack(UserId(i64::MAX), Seq(1)).await?, Seq::ZERO);
    }
    Ok(())
}

#[tokio::test]
async fn names_and_bodies_round_trip_byte_for_byte() -> TestResult {
    let (_dir, stores) = backends().await?;
    for (backend, store) in stores {
        let suffix = unique("");
        let name = format!("张伟😀{suffix}");
        let alice = store.create_user(&name, "h").await?;
        // Binary collation: case and accents make different names.
        store.create_user(&format!("ZHANG{suffix}"), "h").await?;
        store.create_user(&format!("zhang{suffix}"), "h").await?;
        assert!(matches!(
            store.create_user(&name, "h").await,
            Err(StoreError::NameTaken)
        ));
        let group_name = format!("群组🎉{suffix}");
        let group = store.create_group(alice, &group_name, "描述 ✨").await?;
        assert!(matches!(
            store.create_group(alice, &group_name, "").await,
            Err(StoreError::GroupNameTaken)
        ));
        let info = store.group(group).await?;
        assert_eq!(
            info.map(|g| (g.name, g.desc)),
            Some((group_name, "描述 ✨".to_owned()))
        );
        assert_eq!(store.user(alice).await?.map(|u| u.name), Some(name));

        // 64 KiB of 4-byte characters: past MySQL's TEXT limit.
        let body = "🦀".repeat(16 * 1024);
        let receipt = store
            .send(chat(alice, Target::Group(group), &body, None))
            .await?;
        let history = store
            .history(crate::model::Conversation::Group(group), None, 10)
            .await?;
        assert_eq!(history.len(), 1, "{backend}");
        assert_eq!(history[0].body, body, "{backend}");
        assert_eq!(history[0].id, receipt.message.id);
        assert!(matches!(
            store
                .send(chat(alice, Target::Group(GroupId(i64::MAX)), "x", None))
                .await,
            Err(StoreError::UnknownGroup(_))
        ));
    }
    Ok(())
}

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
