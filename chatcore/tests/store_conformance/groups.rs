//! `create_group`, `join_group`, `leave_group`, `group`, `groups_of`,
//! `members`, `group_count` and `member_count`.

use std::collections::HashSet;
use std::sync::Arc;

use chatcore::model::{GroupId, GroupInfo, Member, Role, UserId, UserInfo};
use chatcore::store::{Store, StoreError};

use crate::helpers::register;

fn member(id: UserId, name: &str, role: Role) -> Member {
    Member {
        user: UserInfo {
            id,
            name: name.to_owned(),
        },
        role,
    }
}

async fn member_ids(store: &Arc<dyn Store>, group: GroupId) -> Vec<(UserId, Role)> {
    let members = store.members(group).await.expect("members");
    members.into_iter().map(|m| (m.user.id, m.role)).collect()
}

async fn group_ids_of(store: &Arc<dyn Store>, user: UserId) -> Vec<GroupId> {
    let groups = store.groups_of(user).await.expect("groups_of");
    groups.into_iter().map(|g| g.id).collect()
}

pub(crate) async fn create_group_makes_the_creator_its_only_member_with_role_creator(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;

    let group = store
        .create_group(alice, "rustaceans", "crabs \u{1f980} & 'quotes'")
        .await
        .expect("create_group");

    let info = GroupInfo {
        id: group,
        name: "rustaceans".to_owned(),
        desc: "crabs \u{1f980} & 'quotes'".to_owned(),
    };
    assert_eq!(store.group(group).await.expect("group"), Some(info.clone()));
    assert_eq!(
        store.members(group).await.expect("members"),
        vec![member(alice, "alice", Role::Creator)]
    );
    assert_eq!(store.groups_of(alice).await.expect("groups_of"), vec![info]);
}

pub(crate) async fn create_group_returns_positive_distinct_ids(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let mut seen = HashSet::new();
    for n in 0..6 {
        let group = store
            .create_group(alice, &format!("group{n}"), "")
            .await
            .expect("create_group");
        assert!(group.0 > 0, "group id {group} is not positive");
        assert!(seen.insert(group), "group id {group} was handed out twice");
    }
}

pub(crate) async fn taken_group_name_fails_with_group_name_taken(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "rustaceans", "first")
        .await
        .expect("create_group");

    let again = store.create_group(bob, "rustaceans", "second").await;

    assert!(
        matches!(again, Err(StoreError::GroupNameTaken)),
        "expected GroupNameTaken, got {again:?}"
    );
    let kept = store.group(group).await.expect("group");
    assert_eq!(kept.map(|g| g.desc), Some("first".to_owned()));
    assert_eq!(group_ids_of(&store, bob).await, vec![]);
}

pub(crate) async fn create_group_by_unknown_user_fails_with_unknown_user(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let ghost = UserId(alice.0 + 1000);

    let created = store.create_group(ghost, "haunted", "").await;

    assert!(
        matches!(created, Err(StoreError::UnknownUser(id)) if id == ghost),
        "expected UnknownUser({ghost}), got {created:?}"
    );
    let retry = store.create_group(alice, "haunted", "").await;
    assert!(
        retry.is_ok(),
        "a failed create_group must not take the name: {retry:?}"
    );
}

pub(crate) async fn join_group_adds_a_normal_member_once(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");

    assert!(
        store.join_group(group, bob).await.expect("join_group"),
        "a new membership answers true"
    );
    assert!(
        !store.join_group(group, bob).await.expect("join_group"),
        "an existing membership answers false"
    );

    assert_eq!(
        store.members(group).await.expect("members"),
        vec![
            member(alice, "alice", Role::Creator),
            member(bob, "bob", Role::Normal)
        ]
    );
    assert_eq!(group_ids_of(&store, bob).await, vec![group]);
}

pub(crate) async fn join_group_by_the_creator_keeps_the_creator_role(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");

    assert!(!store.join_group(group, alice).await.expect("join_group"));

    assert_eq!(
        member_ids(&store, group).await,
        vec![(alice, Role::Creator)]
    );
}

pub(crate) async fn join_group_with_unknown_group_or_user_fails(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");
    let no_group = GroupId(group.0 + 1000);
    let ghost = UserId(bob.0 + 1000);

    let unknown_group = store.join_group(no_group, bob).await;
    let unknown_user = store.join_group(group, ghost).await;

    assert!(
        matches!(unknown_group, Err(StoreError::UnknownGroup(id)) if id == no_group),
        "expected UnknownGroup({no_group}), got {unknown_group:?}"
    );
    assert!(
        matches!(unknown_user, Err(StoreError::UnknownUser(id)) if id == ghost),
        "expected UnknownUser({ghost}), got {unknown_user:?}"
    );
    assert_eq!(
        member_ids(&store, group).await,
        vec![(alice, Role::Creator)]
    );
    assert_eq!(group_ids_of(&store, bob).await, vec![]);
}

pub(crate) async fn leave_group_removes_the_member(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");
    store.join_group(group, bob).await.expect("join_group");

    assert!(store.leave_group(group, bob).await.expect("leave_group"));

    assert_eq!(
        member_ids(&store, group).await,
        vec![(alice, Role::Creator)]
    );
    assert_eq!(group_ids_of(&store, bob).await, vec![]);
    assert!(
        !store.leave_group(group, bob).await.expect("leave_group"),
        "no membership left to remove"
    );
    assert!(
        store.join_group(group, bob).await.expect("join_group"),
        "after leaving, joining is new again"
    );
}

pub(crate) async fn leave_group_by_a_non_member_is_false(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");

    assert!(!store.leave_group(group, bob).await.expect("leave_group"));
    assert_eq!(
        member_ids(&store, group).await,
        vec![(alice, Role::Creator)]
    );
}

pub(crate) async fn leave_unknown_group_fails_with_unknown_group(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");
    let no_group = GroupId(group.0 + 1000);

    let left = store.leave_group(no_group, alice).await;

    assert!(
        matches!(left, Err(StoreError::UnknownGroup(id)) if id == no_group),
        "expected UnknownGroup({no_group}), got {left:?}"
    );
}

pub(crate) async fn group_of_unknown_id_is_none(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");

    for unknown in [GroupId(group.0 + 1000), GroupId(0), GroupId(-1)] {
        assert_eq!(store.group(unknown).await.expect("group"), None);
    }
}

pub(crate) async fn groups_of_lists_groups_in_ascending_id_order(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let loner = register(&store, "loner").await;
    let mut groups = Vec::new();
    for name in ["g1", "g2", "g3", "g4"] {
        groups.push(
            store
                .create_group(alice, name, "")
                .await
                .expect("create_group"),
        );
    }
    // bob joins out of order and skips one; his own group comes last.
    for &group in &[groups[3], groups[0], groups[2]] {
        store.join_group(group, bob).await.expect("join_group");
    }
    let own = store
        .create_group(bob, "bobs", "")
        .await
        .expect("create_group");

    assert_eq!(
        group_ids_of(&store, bob).await,
        vec![groups[0], groups[2], groups[3], own]
    );
    assert_eq!(group_ids_of(&store, alice).await, groups);
    assert_eq!(group_ids_of(&store, loner).await, vec![]);
}

pub(crate) async fn members_are_listed_in_ascending_user_id_order(store: Arc<dyn Store>) {
    let users = [
        register(&store, "u1").await,
        register(&store, "u2").await,
        register(&store, "u3").await,
        register(&store, "u4").await,
    ];
    let group = store
        .create_group(users[2], "g", "")
        .await
        .expect("create_group");
    for &user in &[users[3], users[0], users[1]] {
        store.join_group(group, user).await.expect("join_group");
    }

    assert_eq!(
        store.members(group).await.expect("members"),
        vec![
            member(users[0], "u1", Role::Normal),
            member(users[1], "u2", Role::Normal),
            member(users[2], "u3", Role::Creator),
            member(users[3], "u4", Role::Normal),
        ]
    );
}

pub(crate) async fn members_of_unknown_group_fails_with_unknown_group(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = store
        .create_group(alice, "g", "")
        .await
        .expect("create_group");
    let no_group = GroupId(group.0 + 1000);

    let members = store.members(no_group).await;

    assert!(
        matches!(members, Err(StoreError::UnknownGroup(id)) if id == no_group),
        "expected UnknownGroup({no_group}), got {members:?}"
    );
}

pub(crate) async fn group_and_member_counts_follow_joins_and_leaves(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    assert_eq!(store.group_count(alice).await.expect("group_count"), 0);

    let first = store
        .create_group(alice, "first", "")
        .await
        .expect("create");
    let second = store
        .create_group(alice, "second", "")
        .await
        .expect("create");
    assert_eq!(store.group_count(alice).await.expect("group_count"), 2);
    assert_eq!(store.member_count(first).await.expect("member_count"), 1);

    store.join_group(first, bob).await.expect("join");
    // A repeated join adds nothing.
    store.join_group(first, bob).await.expect("join again");
    assert_eq!(store.member_count(first).await.expect("member_count"), 2);
    assert_eq!(store.group_count(bob).await.expect("group_count"), 1);

    store.leave_group(first, alice).await.expect("leave");
    assert_eq!(store.member_count(first).await.expect("member_count"), 1);
    assert_eq!(store.member_count(second).await.expect("member_count"), 1);
    assert_eq!(store.group_count(alice).await.expect("group_count"), 1);
    for user in [alice, bob] {
        let listed = store.groups_of(user).await.expect("groups_of").len() as u64;
        assert_eq!(store.group_count(user).await.expect("group_count"), listed);
    }
}

pub(crate) async fn counts_of_unknown_ids(store: Arc<dyn Store>) {
    assert_eq!(
        store.group_count(UserId(4242)).await.expect("group_count"),
        0
    );
    assert!(matches!(
        store.member_count(GroupId(4242)).await,
        Err(StoreError::UnknownGroup(GroupId(4242)))
    ));
}
