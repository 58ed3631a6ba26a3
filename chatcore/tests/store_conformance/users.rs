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
            token_epoch: 0,
            banned_at_ms: None,
        })
    );
}

pub(crate) async fn revoke_tokens_moves_the_epoch_on(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    let first = store.revoke_tokens(alice).await.expect("revoke");
    let second = store.revoke_tokens(alice).await.expect("revoke");

    assert!(first > 0 && second > first, "epochs {first} then {second}");
    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.token_epoch, second);
    assert_eq!(record.password_hash, HASH, "revoking keeps the password");
    let other = store.user(bob).await.expect("user").expect("bob");
    assert_eq!(other.token_epoch, 0, "only alice's tokens were revoked");
}

pub(crate) async fn racing_revocations_each_get_a_higher_epoch(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let before = store.user(alice).await.expect("user").expect("alice");

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.revoke_tokens(alice).await.expect("revoke") })
        })
        .collect();
    let mut epochs = HashSet::new();
    for task in tasks {
        let epoch = task.await.expect("task");
        assert!(epoch > before.token_epoch);
        assert!(epochs.insert(epoch), "epoch {epoch} was handed out twice");
    }

    let after = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(Some(&after.token_epoch), epochs.iter().max());
}

pub(crate) async fn set_password_replaces_the_hash_and_revokes_tokens(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    let epoch = store
        .set_password(alice, "$argon2id$new")
        .await
        .expect("set_password");

    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.password_hash, "$argon2id$new");
    assert!(epoch > 0);
    assert_eq!(record.token_epoch, epoch);
}

pub(crate) async fn rehash_replaces_only_the_hash_it_was_made_from(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let before = store.user(alice).await.expect("user").expect("alice");

    let replaced = store
        .rehash_password(alice, &before.password_hash, "$argon2id$rehashed")
        .await
        .expect("rehash_password");
    let after = store.user(alice).await.expect("user").expect("alice");
    assert!(replaced);
    assert_eq!(after.password_hash, "$argon2id$rehashed");
    assert_eq!(after.token_epoch, before.token_epoch, "tokens stay valid");

    // A password changed meanwhile wins over a rehash of the old one.
    store
        .set_password(alice, "$argon2id$changed")
        .await
        .expect("set_password");
    let stale = store
        .rehash_password(alice, "$argon2id$rehashed", "$argon2id$late")
        .await
        .expect("rehash_password");
    assert!(!stale);
    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.password_hash, "$argon2id$changed");

    let nobody = store
        .rehash_password(UserId(alice.0 + 1000), "x", "y")
        .await
        .expect("rehash_password");
    assert!(!nobody, "no such user: nothing replaced");
}

pub(crate) async fn token_calls_on_unknown_user_fail_with_unknown_user(store: Arc<dyn Store>) {
    let nobody = UserId(987_654);

    let revoked = store.revoke_tokens(nobody).await;
    let changed = store.set_password(nobody, HASH).await;

    assert!(
        matches!(revoked, Err(StoreError::UnknownUser(id)) if id == nobody),
        "revoke_tokens gave {revoked:?}"
    );
    assert!(
        matches!(changed, Err(StoreError::UnknownUser(id)) if id == nobody),
        "set_password gave {changed:?}"
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
