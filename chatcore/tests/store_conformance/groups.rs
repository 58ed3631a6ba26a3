//! `create_group`, `join_group` (with their caps), `leave_group`, `group`,
//! `groups_of` and `members`.

use std::collections::HashSet;
use std::sync::Arc;

use chatcore::model::{GroupId, GroupInfo, Member, Role, UserId, UserInfo};
use chatcore::store::{CapReached, GroupCaps, Store, StoreError};

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
        .create_group(
            alice,
            "rustaceans",
            "crabs \u{1f980} & 'quotes'",
            GroupCaps::NONE,
        )
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
            .create_group(alice, &format!("group{n}"), "", GroupCaps::NONE)
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
        .create_group(alice, "rustaceans", "first", GroupCaps::NONE)
        .await
        .expect("create_group");

    let again = store
        .create_group(bob, "rustaceans", "second", GroupCaps::NONE)
        .await;

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

    let created = store
        .create_group(ghost, "haunted", "", GroupCaps::NONE)
        .await;

    assert!(
        matches!(created, Err(StoreError::UnknownUser(id)) if id == ghost),
        "expected UnknownUser({ghost}), got {created:?}"
    );
    let retry = store
        .create_group(alice, "haunted", "", GroupCaps::NONE)
        .await;
    assert!(
        retry.is_ok(),
        "a failed create_group must not take the name: {retry:?}"
    );
}

pub(crate) async fn join_group_adds_a_normal_member_once(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");

    assert!(
        store
            .join_group(group, bob, GroupCaps::NONE)
            .await
            .expect("join_group"),
        "a new membership answers true"
    );
    assert!(
        !store
            .join_group(group, bob, GroupCaps::NONE)
            .await
            .expect("join_group"),
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
        .create_group(alice, "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");

    assert!(
        !store
            .join_group(group, alice, GroupCaps::NONE)
            .await
            .expect("join_group")
    );

    assert_eq!(
        member_ids(&store, group).await,
        vec![(alice, Role::Creator)]
    );
}

pub(crate) async fn join_group_with_unknown_group_or_user_fails(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");
    let no_group = GroupId(group.0 + 1000);
    let ghost = UserId(bob.0 + 1000);

    let unknown_group = store.join_group(no_group, bob, GroupCaps::NONE).await;
    let unknown_user = store.join_group(group, ghost, GroupCaps::NONE).await;

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
        .create_group(alice, "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");
    store
        .join_group(group, bob, GroupCaps::NONE)
        .await
        .expect("join_group");

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
        store
            .join_group(group, bob, GroupCaps::NONE)
            .await
            .expect("join_group"),
        "after leaving, joining is new again"
    );
}

pub(crate) async fn leave_group_by_a_non_member_is_false(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = store
        .create_group(alice, "g", "", GroupCaps::NONE)
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
        .create_group(alice, "g", "", GroupCaps::NONE)
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
        .create_group(alice, "g", "", GroupCaps::NONE)
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
                .create_group(alice, name, "", GroupCaps::NONE)
                .await
                .expect("create_group"),
        );
    }
    // bob joins out of order and skips one; his own group comes last.
    for &group in &[groups[3], groups[0], groups[2]] {
        store
            .join_group(group, bob, GroupCaps::NONE)
            .await
            .expect("join_group");
    }
    let own = store
        .create_group(bob, "bobs", "", GroupCaps::NONE)
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
        .create_group(users[2], "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");
    for &user in &[users[3], users[0], users[1]] {
        store
            .join_group(group, user, GroupCaps::NONE)
            .await
            .expect("join_group");
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
        .create_group(alice, "g", "", GroupCaps::NONE)
        .await
        .expect("create_group");
    let no_group = GroupId(group.0 + 1000);

    let members = store.members(no_group).await;

    assert!(
        matches!(members, Err(StoreError::UnknownGroup(id)) if id == no_group),
        "expected UnknownGroup({no_group}), got {members:?}"
    );
}

fn caps(groups_per_user: u32, members_per_group: u32) -> GroupCaps {
    GroupCaps {
        groups_per_user,
        members_per_group,
    }
}

pub(crate) async fn caps_refuse_new_memberships_and_change_nothing(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let two_groups = caps(2, 0);
    let first = store
        .create_group(alice, "first", "", two_groups)
        .await
        .expect("create under the cap");
    let second = store
        .create_group(alice, "second", "", two_groups)
        .await
        .expect("create up to the cap");
    let third = store.create_group(alice, "third", "", two_groups).await;
    assert!(
        matches!(
            third,
            Err(StoreError::CapReached(CapReached::GroupsPerUser(2)))
        ),
        "a third group for alice: {third:?}"
    );
    assert_eq!(group_ids_of(&store, alice).await, vec![first, second]);
    assert_eq!(
        store.group(GroupId(second.0 + 1)).await.expect("group"),
        None
    );

    let two_members = caps(0, 2);
    assert!(
        store
            .join_group(first, bob, two_members)
            .await
            .expect("join up to the cap")
    );
    let full = store.join_group(first, carol, two_members).await;
    assert!(
        matches!(
            full,
            Err(StoreError::CapReached(CapReached::MembersPerGroup(2)))
        ),
        "carol joining a full group: {full:?}"
    );
    assert_eq!(group_ids_of(&store, carol).await, vec![]);
    assert!(
        !store
            .join_group(first, bob, two_members)
            .await
            .expect("a member joining again at the cap"),
        "an existing membership stays a success at the cap"
    );

    // Both caps reached: the group's is named.
    let both = store.join_group(first, carol, caps(0, 2)).await;
    assert!(matches!(
        both,
        Err(StoreError::CapReached(CapReached::MembersPerGroup(2)))
    ));
    // Room again after a leave; zero turns a cap off.
    store.leave_group(second, alice).await.expect("leave");
    store
        .create_group(alice, "third", "", two_groups)
        .await
        .expect("create after leaving one");
    store
        .join_group(first, carol, GroupCaps::NONE)
        .await
        .expect("join without caps");
    assert_eq!(member_ids(&store, first).await.len(), 3);
}

pub(crate) async fn racing_joins_never_pass_a_cap(store: Arc<dyn Store>) {
    const RACERS: usize = 16;
    const CAP: u32 = 5;
    let creator = register(&store, "creator").await;
    let group = store
        .create_group(creator, "popular", "", GroupCaps::NONE)
        .await
        .expect("create_group");
    let mut users = Vec::new();
    for n in 0..RACERS {
        users.push(register(&store, &format!("fan{n}")).await);
    }
    let racers: Vec<_> = users
        .iter()
        .map(|&user| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.join_group(group, user, caps(0, CAP)).await })
        })
        .collect();
    let (mut joined, mut refused) = (0, 0);
    for racer in racers {
        match racer.await.expect("join task") {
            Ok(true) => joined += 1,
            Err(StoreError::CapReached(CapReached::MembersPerGroup(CAP))) => refused += 1,
            other => panic!("a racing join: {other:?}"),
        }
    }
    assert_eq!(joined, CAP - 1, "the creator holds one of the {CAP} places");
    assert_eq!(refused, RACERS as u32 - (CAP - 1));
    assert_eq!(member_ids(&store, group).await.len(), CAP as usize);

    // One user joining many groups at once, and creating some.
    let joiner = register(&store, "joiner").await;
    let mut groups = Vec::new();
    for n in 0..RACERS {
        groups.push(
            store
                .create_group(creator, &format!("club{n}"), "", GroupCaps::NONE)
                .await
                .expect("create_group"),
        );
    }
    let racers: Vec<_> = groups
        .iter()
        .enumerate()
        .map(|(n, &group)| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                if n % 4 == 0 {
                    let name = format!("own{n}");
                    store
                        .create_group(joiner, &name, "", caps(CAP, 0))
                        .await
                        .map(|_| true)
                } else {
                    store.join_group(group, joiner, caps(CAP, 0)).await
                }
            })
        })
        .collect();
    let mut accepted = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(true) => accepted += 1,
            Err(StoreError::CapReached(CapReached::GroupsPerUser(CAP))) => {}
            other => panic!("a racing join or create: {other:?}"),
        }
    }
    assert_eq!(accepted, CAP);
    assert_eq!(group_ids_of(&store, joiner).await.len(), CAP as usize);
}
