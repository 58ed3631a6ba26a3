//! `mark_read`, `conversations` and `find_users`: the conversation list,
//! its read positions and unread counts, and users by name.

use std::sync::Arc;

use chatcore::model::{ConversationSummary, GroupId, MessageId, Target, UserId};
use chatcore::store::{GroupCaps, Store, StoreError};

use crate::helpers::{ALL, chat, register, send};

async fn said(store: &Arc<dyn Store>, from: UserId, to: Target, body: &str) -> MessageId {
    send(store, chat(from, to, body)).await.message.id
}

async fn list(store: &Arc<dyn Store>, user: UserId) -> Vec<ConversationSummary> {
    store
        .conversations(user, None, ALL)
        .await
        .expect("conversations")
}

/// (with, last message id, unread, read) of each listed conversation.
fn shape(list: &[ConversationSummary]) -> Vec<(Target, MessageId, u64, MessageId)> {
    list.iter()
        .map(|c| (c.with, c.last.id, c.unread, c.read))
        .collect()
}

async fn group_of(store: &Arc<dyn Store>, name: &str, users: &[UserId]) -> GroupId {
    let group = store
        .create_group(users[0], name, "", GroupCaps::NONE)
        .await
        .expect("create_group");
    for &user in &users[1..] {
        store
            .join_group(group, user, GroupCaps::NONE)
            .await
            .expect("join_group");
    }
    group
}

pub(crate) async fn conversations_list_both_directions_and_groups_newest_first(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let dave = register(&store, "dave").await;
    let group = group_of(&store, "crew", &[alice, bob]).await;
    // A group without messages is not a conversation yet.
    group_of(&store, "quiet", &[alice]).await;
    let m1 = said(&store, alice, Target::User(bob), "hi bob").await;
    let m2 = said(&store, carol, Target::User(alice), "hi alice").await;
    let m3 = said(&store, bob, Target::Group(group), "hi crew").await;
    let m4 = said(&store, bob, Target::User(alice), "hi again").await;
    // Not alice's: must not show.
    said(&store, carol, Target::User(dave), "not for alice").await;

    let listed = list(&store, alice).await;

    assert_eq!(
        shape(&listed),
        vec![
            (Target::User(bob), m4, 1, MessageId(0)),
            (Target::Group(group), m3, 1, MessageId(0)),
            (Target::User(carol), m2, 1, MessageId(0)),
        ]
    );
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["bob", "crew", "carol"]);
    assert_eq!(listed[0].last.body, "hi again");
    assert_eq!(listed[0].last.sender.name, "bob");
    assert!(m1 < m4);
}

pub(crate) async fn unread_counts_what_others_sent_after_the_read_position(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let group = group_of(&store, "crew", &[alice, bob, carol]).await;
    let first = said(&store, bob, Target::User(alice), "1").await;
    said(&store, bob, Target::User(alice), "2").await;
    said(&store, alice, Target::User(bob), "mine").await;
    said(&store, bob, Target::User(alice), "3").await;
    said(&store, bob, Target::Group(group), "g1").await;
    let g2 = said(&store, carol, Target::Group(group), "g2").await;
    said(&store, alice, Target::Group(group), "g mine").await;
    said(&store, carol, Target::Group(group), "g3").await;

    let before = list(&store, alice).await;
    assert_eq!(
        before.iter().map(|c| c.unread).collect::<Vec<_>>(),
        [3, 3],
        "alice's own messages are never unread"
    );

    store
        .mark_read(alice, Target::User(bob), first)
        .await
        .expect("mark_read");
    store
        .mark_read(alice, Target::Group(group), g2)
        .await
        .expect("mark_read");
    let after = list(&store, alice).await;
    let group_entry = after.iter().find(|c| c.with == Target::Group(group));
    let direct_entry = after.iter().find(|c| c.with == Target::User(bob));
    assert_eq!(group_entry.map(|c| (c.unread, c.read)), Some((1, g2)));
    assert_eq!(direct_entry.map(|c| (c.unread, c.read)), Some((2, first)));
    // Bob's side of the same conversation keeps its own position.
    let bobs = list(&store, bob).await;
    let bob_direct = bobs.iter().find(|c| c.with == Target::User(alice));
    assert_eq!(
        bob_direct.map(|c| (c.unread, c.read)),
        Some((1, MessageId(0)))
    );
}

pub(crate) async fn mark_read_only_moves_forward(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let to_bob = Target::User(bob);

    assert_eq!(
        store.mark_read(alice, to_bob, MessageId(7)).await.ok(),
        Some(MessageId(7))
    );
    assert_eq!(
        store.mark_read(alice, to_bob, MessageId(3)).await.ok(),
        Some(MessageId(7))
    );
    assert_eq!(
        store.mark_read(alice, to_bob, MessageId(9)).await.ok(),
        Some(MessageId(9))
    );
    assert_eq!(
        store.mark_read(alice, to_bob, MessageId(0)).await.ok(),
        Some(MessageId(9))
    );
    // Another conversation starts at zero.
    let carol = register(&store, "carol").await;
    assert_eq!(
        store
            .mark_read(alice, Target::User(carol), MessageId(0))
            .await
            .ok(),
        Some(MessageId(0))
    );
}

pub(crate) async fn racing_mark_reads_leave_the_highest(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let tasks: Vec<_> = (1..=20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .mark_read(alice, Target::User(bob), MessageId(n))
                    .await
                    .expect("mark_read")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        store
            .mark_read(alice, Target::User(bob), MessageId(0))
            .await
            .ok(),
        Some(MessageId(20))
    );
}

pub(crate) async fn mark_read_refuses_unknown_targets_and_non_members(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = group_of(&store, "bobs", &[bob]).await;

    let unknown_user = store
        .mark_read(alice, Target::User(UserId(9_999)), MessageId(1))
        .await;
    assert!(
        matches!(unknown_user, Err(StoreError::UnknownUser(UserId(9_999)))),
        "{unknown_user:?}"
    );
    let unknown_group = store
        .mark_read(alice, Target::Group(GroupId(9_999)), MessageId(1))
        .await;
    assert!(
        matches!(unknown_group, Err(StoreError::UnknownGroup(GroupId(9_999)))),
        "{unknown_group:?}"
    );
    let outsider = store
        .mark_read(alice, Target::Group(group), MessageId(1))
        .await;
    assert!(
        matches!(outsider, Err(StoreError::NotMember { .. })),
        "{outsider:?}"
    );
    // Nothing was stored for alice.
    store
        .join_group(group, alice, GroupCaps::NONE)
        .await
        .expect("join_group");
    assert_eq!(
        store
            .mark_read(alice, Target::Group(group), MessageId(0))
            .await
            .ok(),
        Some(MessageId(0))
    );
}

pub(crate) async fn conversations_page_backwards_with_before(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let mut lasts = Vec::new();
    for n in 0..5 {
        let peer = register(&store, &format!("peer{n}")).await;
        lasts.push(said(&store, peer, Target::User(alice), "hello").await);
    }
    lasts.reverse();

    let first = store.conversations(alice, None, 2).await.expect("page 1");
    let after_first = first.last().map(|c| c.last.id);
    let second = store
        .conversations(alice, after_first, 2)
        .await
        .expect("page 2");
    let after_second = second.last().map(|c| c.last.id);
    let third = store
        .conversations(alice, after_second, 2)
        .await
        .expect("page 3");

    let ids = |page: &[ConversationSummary]| page.iter().map(|c| c.last.id).collect::<Vec<_>>();
    assert_eq!(ids(&first), lasts[0..2]);
    assert_eq!(ids(&second), lasts[2..4]);
    assert_eq!(ids(&third), lasts[4..5]);
}

pub(crate) async fn a_left_group_and_silent_groups_are_not_listed(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let left = group_of(&store, "left", &[alice, bob]).await;
    group_of(&store, "silent", &[alice, bob]).await;
    said(&store, bob, Target::Group(left), "before leaving").await;
    store.leave_group(left, alice).await.expect("leave_group");

    assert_eq!(list(&store, alice).await, Vec::new());
}

pub(crate) async fn notes_to_self_are_one_conversation_with_nothing_unread(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    said(&store, alice, Target::User(alice), "note 1").await;
    let last = said(&store, alice, Target::User(alice), "note 2").await;

    assert_eq!(
        shape(&list(&store, alice).await),
        vec![(Target::User(alice), last, 0, MessageId(0))]
    );
}

pub(crate) async fn find_users_matches_exactly_or_by_prefix_in_name_order(store: Arc<dyn Store>) {
    let bob = register(&store, "bob").await;
    let bobby = register(&store, "bobby").await;
    let boa = register(&store, "boa").await;
    register(&store, "Bob").await;
    register(&store, "alice").await;
    register(&store, "bp").await;

    let exact = store
        .find_users("bob", false, 10)
        .await
        .expect("find_users");
    assert_eq!(exact.iter().map(|u| u.id).collect::<Vec<_>>(), [bob]);
    let none = store.find_users("bo", false, 10).await.expect("find_users");
    assert!(none.is_empty(), "{none:?}");

    let prefixed = store.find_users("bo", true, 10).await.expect("find_users");
    assert_eq!(
        prefixed.iter().map(|u| u.id).collect::<Vec<_>>(),
        [boa, bob, bobby]
    );
    let limited = store.find_users("bo", true, 2).await.expect("find_users");
    assert_eq!(limited.iter().map(|u| u.id).collect::<Vec<_>>(), [boa, bob]);
}

pub(crate) async fn find_users_takes_wildcards_literally(store: Arc<dyn Store>) {
    let percent = register(&store, "50%off").await;
    register(&store, "50 off").await;
    register(&store, "a_b").await;
    register(&store, "axb").await;

    let found = store.find_users("50%", true, 10).await.expect("find_users");
    assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), [percent]);
    let underscore = store.find_users("a_", true, 10).await.expect("find_users");
    assert_eq!(
        underscore
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>(),
        ["a_b"]
    );
}
