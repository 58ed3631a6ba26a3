//! `add_friend`, `remove_friend` and `friends`.

use std::sync::Arc;

use chatcore::model::{UserId, UserInfo};
use chatcore::store::{Store, StoreError};

use crate::helpers::register;

async fn friend_ids(store: &Arc<dyn Store>, user: UserId) -> Vec<UserId> {
    let friends = store.friends(user).await.expect("friends");
    friends.into_iter().map(|friend| friend.id).collect()
}

pub(crate) async fn add_friend_is_mutual(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;

    assert!(store.add_friend(alice, bob).await.expect("add_friend"));

    assert_eq!(
        store.friends(alice).await.expect("friends"),
        vec![UserInfo {
            id: bob,
            name: "bob".to_owned()
        }]
    );
    assert_eq!(
        store.friends(bob).await.expect("friends"),
        vec![UserInfo {
            id: alice,
            name: "alice".to_owned()
        }]
    );
    assert_eq!(friend_ids(&store, carol).await, vec![]);
}

pub(crate) async fn add_friend_is_idempotent(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    assert!(
        store.add_friend(alice, bob).await.expect("add_friend"),
        "a new friendship answers true"
    );
    assert!(
        !store.add_friend(alice, bob).await.expect("add_friend"),
        "an existing friendship answers false"
    );
    assert!(
        !store.add_friend(bob, alice).await.expect("add_friend"),
        "the friendship exists from the other side too"
    );

    assert_eq!(friend_ids(&store, alice).await, vec![bob]);
    assert_eq!(friend_ids(&store, bob).await, vec![alice]);
}

pub(crate) async fn add_friend_with_unknown_user_fails_with_unknown_user(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let ghost = UserId(alice.0 + 1000);

    let forward = store.add_friend(alice, ghost).await;
    let backward = store.add_friend(ghost, alice).await;

    assert!(
        matches!(forward, Err(StoreError::UnknownUser(id)) if id == ghost),
        "add_friend(alice, ghost): expected UnknownUser({ghost}), got {forward:?}"
    );
    assert!(
        matches!(backward, Err(StoreError::UnknownUser(id)) if id == ghost),
        "add_friend(ghost, alice): expected UnknownUser({ghost}), got {backward:?}"
    );
    assert_eq!(friend_ids(&store, alice).await, vec![]);
}

pub(crate) async fn racing_add_friend_stores_one_friendship(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    // Both directions at once, as when two users accept each other.
    let racers: Vec<_> = (0..12)
        .map(|n| {
            let store = Arc::clone(&store);
            let (a, b) = if n % 2 == 0 {
                (alice, bob)
            } else {
                (bob, alice)
            };
            tokio::spawn(async move { store.add_friend(a, b).await })
        })
        .collect();
    let mut new = 0;
    for racer in racers {
        if racer.await.expect("add_friend task").expect("add_friend") {
            new += 1;
        }
    }

    assert_eq!(
        new, 1,
        "exactly one racing add_friend finds the friendship new"
    );
    assert_eq!(friend_ids(&store, alice).await, vec![bob]);
    assert_eq!(friend_ids(&store, bob).await, vec![alice]);
}

pub(crate) async fn remove_friend_ends_the_friendship_both_ways(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    store.add_friend(alice, bob).await.expect("add_friend");
    store.add_friend(alice, carol).await.expect("add_friend");

    assert!(
        store
            .remove_friend(bob, alice)
            .await
            .expect("remove_friend")
    );

    assert_eq!(friend_ids(&store, alice).await, vec![carol]);
    assert_eq!(friend_ids(&store, bob).await, vec![]);
    assert!(
        !store
            .remove_friend(alice, bob)
            .await
            .expect("remove_friend"),
        "no friendship left to remove"
    );
    assert!(
        store.add_friend(alice, bob).await.expect("add_friend"),
        "after removal the friendship is new again"
    );
}

pub(crate) async fn remove_friend_without_friendship_is_false(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    assert!(
        !store
            .remove_friend(alice, bob)
            .await
            .expect("remove_friend")
    );
    assert_eq!(friend_ids(&store, alice).await, vec![]);
}

pub(crate) async fn friends_are_listed_in_ascending_id_order(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let others = [
        register(&store, "zed").await,
        register(&store, "bob").await,
        register(&store, "mallory").await,
        register(&store, "carol").await,
    ];
    for &other in others.iter().rev() {
        store.add_friend(other, alice).await.expect("add_friend");
    }

    let mut ascending = others.to_vec();
    ascending.sort();
    assert_eq!(friend_ids(&store, alice).await, ascending);
}
