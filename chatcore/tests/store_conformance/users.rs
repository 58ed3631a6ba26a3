//! `create_user`, `user` and `users`.

use std::collections::HashSet;
use std::sync::Arc;

use chatcore::model::{Seq, UserId, UserInfo, UserRecord};
use chatcore::store::{Store, StoreError};

use crate::helpers::{HASH, inbox, register};

pub(crate) async fn create_user_returns_positive_distinct_ids(store: Arc<dyn Store>) {
    let mut seen = HashSet::new();
    for n in 0..12 {
        let id = register(&store, &format!("user{n}")).await;
        assert!(id.0 > 0, "user id {id} is not positive");
        assert!(seen.insert(id), "user id {id} was handed out twice");
    }
}

pub(crate) async fn new_user_has_empty_inbox_and_zero_cursor(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    assert!(inbox(&store, alice).await.is_empty());
    assert_eq!(store.cursor(alice).await.expect("cursor"), Seq::ZERO);
}

pub(crate) async fn taken_name_fails_with_name_taken(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    let again = store.create_user("alice", "$argon2id$other").await;

    assert!(
        matches!(again, Err(StoreError::NameTaken)),
        "expected NameTaken, got {again:?}"
    );
    let kept = store.user(alice).await.expect("user");
    assert_eq!(
        kept.map(|u| u.password_hash),
        Some(HASH.to_owned()),
        "the first user must be left as it was"
    );
}

pub(crate) async fn names_are_compared_byte_for_byte(store: Arc<dyn Store>) {
    // Each differs from "alice" in bytes only: case, a trailing space, a
    // composed vs a decomposed accent.
    let names = [
        "alice",
        "Alice",
        "ALICE",
        "alice ",
        "caf\u{e9}",
        "cafe\u{301}",
    ];
    let mut ids = HashSet::new();
    for name in names {
        let created = store.create_user(name, HASH).await;
        let id = created
            .unwrap_or_else(|err| panic!("{name:?} is a new name, but create_user gave {err:?}"));
        assert!(ids.insert(id));
        let record = store.user(id).await.expect("user");
        assert_eq!(record.map(|u| u.name), Some(name.to_owned()));
    }
}

pub(crate) async fn exactly_one_of_racing_registrations_of_a_name_wins(store: Arc<dyn Store>) {
    let racers: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.create_user("popular", &format!("hash{n}")).await })
        })
        .collect();

    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.expect("registration task") {
            Ok(id) => winners.push(id),
            Err(StoreError::NameTaken) => {}
            Err(err) => panic!("a losing registration must fail with NameTaken, got {err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let record = store.user(winners[0]).await.expect("user");
    assert_eq!(record.map(|u| u.name), Some("popular".to_owned()));
}

pub(crate) async fn user_returns_the_record_as_registered(store: Arc<dyn Store>) {
    let name = "O'Brien \"\u{5f20}\u{4e09}\" \u{1f642}\\";
    let id = store.create_user(name, HASH).await.expect("create_user");

    assert_eq!(
        store.user(id).await.expect("user"),
        Some(UserRecord {
            id,
            name: name.to_owned(),
            password_hash: HASH.to_owned(),
        })
    );
}

pub(crate) async fn user_of_unknown_id_is_none(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    for unknown in [
        UserId(alice.0 + 1),
        UserId(alice.0 + 1000),
        UserId(0),
        UserId(-1),
    ] {
        let found = store.user(unknown).await.expect("user");
        assert_eq!(found, None, "user({unknown})");
    }
}

pub(crate) async fn users_lists_known_ids_ascending_and_leaves_out_unknown(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let unknown = UserId(carol.0 + 1000);

    let found = store
        .users(&[carol, unknown, alice, bob])
        .await
        .expect("users");

    let info = |id, name: &str| UserInfo {
        id,
        name: name.to_owned(),
    };
    assert_eq!(
        found,
        vec![info(alice, "alice"), info(bob, "bob"), info(carol, "carol")]
    );
    assert_eq!(store.users(&[unknown]).await.expect("users"), vec![]);
    assert_eq!(store.users(&[]).await.expect("users"), vec![]);
}
