//! The store under concurrency on MySQL/MariaDB, with several `SqlStore`s
//! (separate pools, as separate `chatd` processes would have) on one
//! database, batched and unbatched: inbox seqs stay 1..N, names and rows
//! stay unique, the acked cursor never goes back, and a bad send in a batch
//! fails alone.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test --workspace --test mysql_concurrency
//! ```
//!
//! Each test makes its own database and drops it; without the variable the
//! tests are reported as ignored (and fail when `CHAT_TEST_REQUIRE_SERVICES`
//! is set), except the SQLite run of the bad-send batch, which needs no
//! server.

use std::collections::{BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::mysql::ThrowawayDatabase;
use chat_testkit::{Service, trial};
use chatcore::model::{NewMessage, Seq, Target, UserId};
use chatcore::store::{GroupCaps, SqlStore, SqlStoreOptions, Store, StoreError};

fn main() -> ExitCode {
    let on_mysql = [
        trial!(many_senders_on_four_pools_give_one_user_seqs_1_to_n_and_the_right_ids),
        trial!(group_and_direct_sends_on_four_pools_keep_every_inbox_gap_free),
        trial!(one_name_registered_on_four_pools_at_once_succeeds_exactly_once),
        trial!(racing_joins_and_friend_adds_on_four_pools_store_each_row_once),
        trial!(racing_acks_on_four_pools_never_move_the_cursor_backwards),
        trial!(a_bad_send_in_a_batch_fails_alone),
    ]
    .map(|test| test.needs(&[Service::Mysql]));
    let tests = on_mysql
        .into_iter()
        .chain([trial!(a_bad_send_in_a_batch_fails_alone_on_sqlite)])
        .map(|test| test.multi_thread(4));
    chat_testkit::harness::run(tests)
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

/// Four stores on one database: three batched (different windows), one not.
async fn stores(db: &ThrowawayDatabase) -> Vec<Arc<dyn Store>> {
    let mut all = Vec::new();
    for (batched, window_ms, writers) in [(true, 0, 2), (true, 2, 1), (true, 5, 3), (false, 0, 1)] {
        let mut options = SqlStoreOptions::new(&db.url);
        options.batch_sends = batched;
        options.batch_window = Duration::from_millis(window_ms);
        options.batch_writers = writers;
        options.max_batch = 64;
        let store = SqlStore::connect(options)
            .await
            .unwrap_or_else(|err| panic!("connect {}: {err}", db.url));
        all.push(Arc::new(store) as Arc<dyn Store>);
    }
    all
}

fn chat(sender: UserId, target: Target, body: String, cmid: Option<String>) -> NewMessage {
    NewMessage {
        sender,
        target,
        body,
        client_msg_id: cmid,
        sent_at_ms: 1_767_225_600_000,
    }
}

async fn many_senders_on_four_pools_give_one_user_seqs_1_to_n_and_the_right_ids() {
    let db = ThrowawayDatabase::create().await;
    let stores = stores(&db).await;
    let recipient = stores[0]
        .create_user("recipient", HASH)
        .await
        .expect("recipient");
    const SENDERS: usize = 40;
    const EACH: usize = 25;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let id = stores[i % stores.len()]
            .create_user(&format!("sender{i}"), HASH)
            .await
            .expect("sender");
        senders.push(id);
    }
    let mut tasks = Vec::new();
    for (i, &sender) in senders.iter().enumerate() {
        let store = Arc::clone(&stores[i % stores.len()]);
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for n in 0..EACH {
                let body = format!("from {sender} #{n}");
                let cmid = (n % 2 == 0).then(|| format!("c{n}"));
                let receipt = store
                    .send(chat(sender, Target::User(recipient), body.clone(), cmid))
                    .await
                    .unwrap_or_else(|err| panic!("send {body}: {err}"));
                receipts.push((body, receipt));
            }
            receipts
        }));
    }
    let mut by_seq: HashMap<i64, (String, i64)> = HashMap::new();
    let mut last_of_sender: HashMap<UserId, i64> = HashMap::new();
    for task in tasks {
        for (body, receipt) in task.await.expect("sender task") {
            assert!(!receipt.duplicate, "{body} stored once");
            assert_eq!(receipt.deliveries.len(), 1);
            let delivery = receipt.deliveries[0];
            assert_eq!(delivery.user, recipient);
            let sender = receipt.message.sender.id;
            // Per-sender order: each of a sender's messages lands later.
            let previous = last_of_sender.insert(sender, delivery.seq.0);
            assert!(
                previous < Some(delivery.seq.0),
                "{body} after its sender's previous"
            );
            let old = by_seq.insert(delivery.seq.0, (body, receipt.message.id.0));
            assert!(old.is_none(), "seq {} given twice", delivery.seq.0);
        }
    }
    let n = (SENDERS * EACH) as i64;
    let inbox = stores[3]
        .inbox_after(recipient, Seq::ZERO, 10_000)
        .await
        .expect("inbox");
    let seqs: Vec<i64> = inbox.iter().map(|e| e.seq.0).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "seqs 1..{n}, no gap");
    // Every receipt's id and seq name the message that was sent.
    for entry in &inbox {
        let (body, id) = &by_seq[&entry.seq.0];
        assert_eq!(&entry.message.body, body, "seq {}", entry.seq.0);
        assert_eq!(entry.message.id.0, *id, "id of {body}");
    }
    let ids: BTreeSet<i64> = inbox.iter().map(|e| e.message.id.0).collect();
    assert_eq!(ids.len(), inbox.len(), "message ids are distinct");
    db.drop_database().await;
}

async fn group_and_direct_sends_on_four_pools_keep_every_inbox_gap_free() {
    let db = ThrowawayDatabase::create().await;
    let stores = stores(&db).await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(
            stores[0]
                .create_user(&format!("u{i}"), HASH)
                .await
                .expect("user"),
        );
    }
    let group = stores[0]
        .create_group(users[0], "everyone", "", GroupCaps::NONE)
        .await
        .expect("group");
    for &u in &users[1..] {
        assert!(
            stores[1]
                .join_group(group, u, GroupCaps::NONE)
                .await
                .expect("join")
        );
    }
    let mut tasks = Vec::new();
    for (i, &sender) in users.iter().enumerate() {
        let store = Arc::clone(&stores[i % stores.len()]);
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..20 {
                let target = if n % 3 == 0 {
                    Target::Group(group)
                } else {
                    Target::User(users[(i + n) % users.len()])
                };
                store
                    .send(chat(sender, target, format!("{i}-{n}"), None))
                    .await
                    .expect("send");
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender task");
    }
    for &u in &users {
        let inbox = stores[2]
            .inbox_after(u, Seq::ZERO, 10_000)
            .await
            .expect("inbox");
        let seqs: Vec<i64> = inbox.iter().map(|e| e.seq.0).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "user {u}"
        );
    }
    db.drop_database().await;
}

async fn one_name_registered_on_four_pools_at_once_succeeds_exactly_once() {
    let db = ThrowawayDatabase::create().await;
    let stores = stores(&db).await;
    for round in 0..5 {
        let name = format!("contested{round}");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&stores[i % stores.len()]);
            let name = name.clone();
            tasks.push(tokio::spawn(
                async move { store.create_user(&name, HASH).await },
            ));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => won += 1,
                Err(StoreError::NameTaken) => {}
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(won, 1, "{name}");
    }
    db.drop_database().await;
}

async fn racing_joins_and_friend_adds_on_four_pools_store_each_row_once() {
    let db = ThrowawayDatabase::create().await;
    let stores = stores(&db).await;
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(
            stores[0]
                .create_user(&format!("u{i}"), HASH)
                .await
                .expect("user"),
        );
    }
    let group = stores[0]
        .create_group(users[0], "g", "", GroupCaps::NONE)
        .await
        .expect("group");
    let mut tasks = Vec::new();
    for i in 0..48 {
        let store = Arc::clone(&stores[i % stores.len()]);
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let a = users[i % users.len()];
            let b = users[(i / users.len() + i + 1) % users.len()];
            // Both directions of a pair race, and every user joins often.
            let friend = if i % 2 == 0 {
                store.add_friend(a, b).await
            } else {
                store.add_friend(b, a).await
            };
            let joined = store.join_group(group, a, GroupCaps::NONE).await;
            (friend.expect("add_friend"), joined.expect("join_group"))
        }));
    }
    let mut new_joins = 0;
    for task in tasks {
        let (_, joined) = task.await.expect("task");
        new_joins += usize::from(joined);
    }
    assert_eq!(new_joins, users.len() - 1, "each non-creator joins once");
    let members = stores[3].members(group).await.expect("members");
    let ids: Vec<UserId> = members.iter().map(|m| m.user.id).collect();
    assert_eq!(ids, users, "one row per member, ascending");
    for &u in &users {
        let friends = stores[2].friends(u).await.expect("friends");
        let ids: Vec<UserId> = friends.iter().map(|f| f.id).collect();
        let distinct: BTreeSet<UserId> = ids.iter().copied().collect();
        assert_eq!(ids.len(), distinct.len(), "no duplicate friend of {u}");
    }
    db.drop_database().await;
}

async fn racing_acks_on_four_pools_never_move_the_cursor_backwards() {
    let db = ThrowawayDatabase::create().await;
    let stores = stores(&db).await;
    let user = stores[0].create_user("reader", HASH).await.expect("user");
    let sender = stores[0].create_user("writer", HASH).await.expect("user");
    for n in 0..100 {
        stores[n % 4]
            .send(chat(sender, Target::User(user), format!("m{n}"), None))
            .await
            .expect("send");
    }
    let mut tasks = Vec::new();
    for i in 0..8usize {
        let store = Arc::clone(&stores[i % stores.len()]);
        tasks.push(tokio::spawn(async move {
            let mut seen = 0;
            for n in 0..40usize {
                // A scrambled mix of low and high acks.
                let seq = ((i * 37 + n * 13) % 120) as i64;
                let cursor = store.ack(user, Seq(seq)).await.expect("ack").0;
                assert!(cursor >= seq.min(100), "ack {seq} answered {cursor}");
                let now = store.cursor(user).await.expect("cursor").0;
                assert!(now >= seen, "cursor went back from {seen} to {now}");
                assert!(now <= 100, "cursor {now} beyond the inbox");
                seen = now;
            }
        }));
    }
    for task in tasks {
        task.await.expect("ack task");
    }
    assert_eq!(stores[3].cursor(user).await.expect("cursor"), Seq(100));
    db.drop_database().await;
}

async fn a_bad_send_in_a_batch_fails_alone() {
    let db = ThrowawayDatabase::create().await;
    bad_send_fails_alone(&db.url, async |user: UserId| {
        db.execute(&format!(
            "DELETE FROM `{}`.inbox_state WHERE user_id = {}",
            db.name, user.0
        ))
        .await;
    })
    .await;
    db.drop_database().await;
}

/// The same batch on SQLite (one writer, which is also its batcher).
async fn a_bad_send_in_a_batch_fails_alone_on_sqlite() {
    use sea_orm::{ConnectionTrait, Database};

    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    bad_send_fails_alone(&url, async |user: UserId| {
        let other = Database::connect(url.as_str())
            .await
            .expect("second connection");
        other
            .execute_unprepared(&format!(
                "DELETE FROM inbox_state WHERE user_id = {}",
                user.0
            ))
            .await
            .expect("delete");
        other.close().await.expect("close");
    })
    .await;
}

/// One batch holding good sends and every kind of bad one; `vanish`
/// removes a user's inbox counter behind the store's back.
async fn bad_send_fails_alone(url: &str, vanish: impl AsyncFnOnce(UserId)) {
    // One writer with a long window: everything sent at once lands in one
    // batch.
    let mut options = SqlStoreOptions::new(url);
    options.batch_window = Duration::from_millis(300);
    options.batch_writers = 1;
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(options).await.expect("connect"));
    let alice = store.create_user("alice", HASH).await.expect("alice");
    let bob = store.create_user("bob", HASH).await.expect("bob");
    let carol = store.create_user("carol", HASH).await.expect("carol");
    let vanishing = store.create_user("vanishing", HASH).await.expect("user");
    let group = store
        .create_group(bob, "bobs", "", GroupCaps::NONE)
        .await
        .expect("group");
    let first = store
        .send(chat(
            alice,
            Target::User(bob),
            "first".into(),
            Some("once".into()),
        ))
        .await
        .expect("first");
    // The recipient's inbox counter disappears behind the store's back, as
    // if the user were being deleted: its send cannot be stored.
    vanish(vanishing).await;

    let sends = vec![
        chat(alice, Target::User(bob), "ok 1".into(), None),
        chat(
            alice,
            Target::User(UserId(999_999)),
            "to nobody".into(),
            None,
        ),
        chat(carol, Target::User(bob), "ok 2".into(), Some("c1".into())),
        chat(
            alice,
            Target::User(bob),
            "resend".into(),
            Some("once".into()),
        ),
        chat(carol, Target::Group(group), "not a member".into(), None),
        chat(
            carol,
            Target::User(vanishing),
            "to a vanished inbox".into(),
            None,
        ),
        chat(bob, Target::Group(group), "to my own group".into(), None),
        chat(
            carol,
            Target::User(bob),
            "ok 2 again".into(),
            Some("c1".into()),
        ),
        chat(bob, Target::User(alice), "ok 3".into(), None),
    ];
    let mut tasks = Vec::new();
    for send in sends {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move { store.send(send).await }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("send task"));
    }
    let ok = |i: usize| match &results[i] {
        Ok(receipt) => receipt.clone(),
        Err(err) => panic!("send {i} failed: {err}"),
    };
    assert!(!ok(0).duplicate);
    assert!(matches!(
        results[1],
        Err(StoreError::UnknownUser(UserId(999_999)))
    ));
    assert!(!ok(2).duplicate);
    assert!(ok(3).duplicate, "a resend");
    assert_eq!(ok(3).message.id, first.message.id);
    assert!(matches!(results[4], Err(StoreError::NotMember { .. })));
    assert!(
        results[5].is_err(),
        "the vanished inbox fails: {:?}",
        results[5]
    );
    assert!(ok(6).deliveries.is_empty(), "only member: no deliveries");
    assert!(ok(7).duplicate, "resend in the same batch");
    assert_eq!(ok(7).message.id, ok(2).message.id);
    assert_eq!(ok(7).message.body, "ok 2");
    assert!(!ok(8).duplicate);

    let bobs: Vec<(i64, String)> = store
        .inbox_after(bob, Seq::ZERO, 100)
        .await
        .expect("inbox")
        .into_iter()
        .map(|e| (e.seq.0, e.message.body))
        .collect();
    assert_eq!(
        bobs,
        vec![
            (1, "first".to_owned()),
            (2, "ok 1".to_owned()),
            (3, "ok 2".to_owned())
        ]
    );
    let alices = store
        .inbox_after(alice, Seq::ZERO, 100)
        .await
        .expect("inbox");
    assert_eq!(alices.len(), 1);
    assert_eq!(alices[0].message.body, "ok 3");
}
