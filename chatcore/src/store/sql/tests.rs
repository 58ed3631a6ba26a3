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

#[tokio::test]
async fn an_import_batch_commits_with_its_checkpoint_or_not_at_all() -> TestResult {
    use super::{ImportBatch, ImportedDelivery, ImportedMessage, ImportedUser, MessageRef};
    use crate::model::{GroupId, GroupInfo, Role, Seq, Target, UserId, UserInfo};
    use crate::store::Store;

    let store = SqlStore::connect(SqlStoreOptions::new("sqlite::memory:")).await?;
    assert_eq!(store.import_checkpoint("seed").await?, None);
    let user = |id: i64, name: &str| ImportedUser {
        id: UserId(id),
        name: name.to_owned(),
        password_hash: "$argon2id$made-up".to_owned(),
    };
    let (ann, bo, cy, group) = (UserId(7), UserId(9), UserId(11), GroupId(3));
    let first = ImportBatch {
        users: vec![user(7, "ann"), user(9, "bo")],
        friendships: vec![(ann, bo)],
        groups: vec![GroupInfo {
            id: group,
            name: "g".to_owned(),
            desc: "d".to_owned(),
        }],
        members: vec![(group, ann, Role::Creator), (group, bo, Role::Normal)],
        messages: vec![
            ImportedMessage {
                sender: ann,
                target: Target::Group(group),
                body: "hi all".to_owned(),
                sent_at_ms: 1_000,
            },
            ImportedMessage {
                sender: bo,
                target: Target::User(ann),
                body: "yo".to_owned(),
                sent_at_ms: 2_000,
            },
        ],
        deliveries: vec![
            ImportedDelivery {
                to: bo,
                message: MessageRef::InBatch(0),
            },
            ImportedDelivery {
                to: ann,
                message: MessageRef::InBatch(1),
            },
        ],
    };
    let ids = store
        .import_batch("seed", &first, |ids| format!("{} messages", ids.len()))
        .await?;
    assert_eq!(ids.len(), 2);
    assert_eq!(
        store.import_checkpoint("seed").await?.as_deref(),
        Some("2 messages")
    );
    assert_eq!(
        store.user(ann).await?.map(|u| u.name).as_deref(),
        Some("ann")
    );
    let names = |users: Vec<UserInfo>| users.into_iter().map(|u| u.name).collect::<Vec<_>>();
    assert_eq!(names(store.friends(ann).await?), ["bo"]);
    assert_eq!(names(store.friends(bo).await?), ["ann"], "both ways");
    let roles: Vec<(i64, Role)> = store
        .members(group)
        .await?
        .into_iter()
        .map(|m| (m.user.id.0, m.role))
        .collect();
    assert_eq!(roles, [(7, Role::Creator), (9, Role::Normal)]);
    let inbox = store.inbox_after(bo, Seq::ZERO, 10).await?;
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        (inbox[0].seq, inbox[0].message.body.as_str()),
        (Seq(1), "hi all")
    );
    assert_eq!(inbox[0].message.sent_at_ms, 1_000);
    assert_eq!(store.cursor(bo).await?, Seq::ZERO, "unread");

    // A later batch adds a recipient to a message an earlier one stored.
    let second = ImportBatch {
        users: vec![user(11, "cy")],
        deliveries: vec![ImportedDelivery {
            to: cy,
            message: MessageRef::Stored(ids[0]),
        }],
        ..ImportBatch::default()
    };
    store
        .import_batch("seed", &second, |_| "second".to_owned())
        .await?;
    let inbox = store.inbox_after(cy, Seq::ZERO, 10).await?;
    assert_eq!(
        inbox.iter().map(|e| e.message.id).collect::<Vec<_>>(),
        [ids[0]]
    );

    // A batch that cannot be written leaves neither rows nor checkpoint.
    let clashing = ImportBatch {
        users: vec![user(12, "dee"), user(7, "ann again")],
        ..ImportBatch::default()
    };
    assert!(
        store
            .import_batch("seed", &clashing, |_| "bad".to_owned())
            .await
            .is_err()
    );
    assert_eq!(
        store.import_checkpoint("seed").await?.as_deref(),
        Some("second")
    );
    assert!(store.user(UserId(12)).await?.is_none());

    let clashes = store
        .import_clashes(
            &[
                UserInfo {
                    id: UserId(100),
                    name: "ann".to_owned(),
                },
                UserInfo {
                    id: bo,
                    name: "zed".to_owned(),
                },
            ],
            &[GroupInfo {
                id: GroupId(50),
                name: "g".to_owned(),
                desc: String::new(),
            }],
        )
        .await?;
    assert_eq!(names(clashes.users), ["ann", "bo"]);
    assert_eq!(
        clashes.groups.iter().map(|g| g.id).collect::<Vec<_>>(),
        [group]
    );

    // Registrations after an import get ids above the imported ones.
    assert!(store.create_user("new", "hash").await?.0 > 11);
    Ok(())
}
