//! `set_banned` and `delete_user`: what administration changes on an
//! account.

use std::sync::Arc;

use chatcore::model::{Conversation, GroupId, Seq, Target, UserId};
use chatcore::store::{GroupCaps, Store, StoreError, deleted_user_name};

use crate::helpers::{ALL, chat, inbox, register, send};

const AT: i64 = 1_767_225_600_000;

fn is_unknown(result: &Result<impl std::fmt::Debug, StoreError>, user: UserId) -> bool {
    matches!(result, Err(StoreError::UnknownUser(id)) if *id == user)
}

pub(crate) async fn a_ban_shows_in_the_record_and_revokes_tokens(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    store.set_banned(alice, Some(AT)).await.expect("ban");

    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.banned_at_ms, Some(AT));
    assert_eq!(record.token_epoch, 1, "a ban revokes the resume tokens");
    let other = store.user(bob).await.expect("user").expect("bob");
    assert_eq!((other.banned_at_ms, other.token_epoch), (None, 0));
}

pub(crate) async fn banning_twice_keeps_the_first_time(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    store.set_banned(alice, Some(AT)).await.expect("ban");
    store
        .set_banned(alice, Some(AT + 5_000))
        .await
        .expect("again");

    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.banned_at_ms, Some(AT));
    assert_eq!(record.token_epoch, 2, "each ban revokes the tokens again");
}

pub(crate) async fn lifting_a_ban_clears_it_and_keeps_tokens_revoked(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    store.set_banned(alice, Some(AT)).await.expect("ban");

    store.set_banned(alice, None).await.expect("unban");
    store
        .set_banned(alice, None)
        .await
        .expect("lifting no ban changes nothing");

    let record = store.user(alice).await.expect("user").expect("alice");
    assert_eq!(record.banned_at_ms, None);
    assert_eq!(record.token_epoch, 1, "the ban's revocation stands");
}

pub(crate) async fn ban_of_unknown_user_fails_with_unknown_user(store: Arc<dyn Store>) {
    let nobody = UserId(4242);
    assert!(is_unknown(
        &store.set_banned(nobody, Some(AT)).await,
        nobody
    ));
    assert!(is_unknown(&store.set_banned(nobody, None).await, nobody));
}

pub(crate) async fn a_deleted_user_is_unknown_everywhere(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let caps = GroupCaps::NONE;
    let group = store
        .create_group(bob, "club", "", caps)
        .await
        .expect("group");
    store.join_group(group, alice, caps).await.expect("join");
    store.add_friend(alice, bob).await.expect("friends");
    send(&store, chat(bob, Target::User(alice), "for alice")).await;
    store
        .mark_read(alice, Target::User(bob), chatcore::model::MessageId(1))
        .await
        .expect("read");

    store.delete_user(alice).await.expect("delete");

    assert_eq!(store.user(alice).await.expect("user"), None);
    let listed = store.users(&[alice, bob]).await.expect("users");
    assert_eq!(listed.iter().map(|u| u.id).collect::<Vec<_>>(), [bob]);
    let found = store.find_users("alice", false, 10).await.expect("find");
    assert!(found.is_empty(), "found {found:?}");
    assert!(store.friends(bob).await.expect("friends").is_empty());
    let members = store.members(group).await.expect("members");
    assert_eq!(members.iter().map(|m| m.user.id).collect::<Vec<_>>(), [bob]);
    assert!(store.groups_of(alice).await.expect("groups").is_empty());
    assert!(inbox(&store, alice).await.is_empty(), "its inbox is gone");
    assert_eq!(store.cursor(alice).await.expect("cursor"), Seq::ZERO);

    let to_deleted = store.send(chat(bob, Target::User(alice), "hello?")).await;
    assert!(is_unknown(&to_deleted, alice), "{to_deleted:?}");
    let from_deleted = store.send(chat(alice, Target::User(bob), "ghost")).await;
    assert!(is_unknown(&from_deleted, alice), "{from_deleted:?}");
    assert!(is_unknown(&store.add_friend(bob, alice).await, alice));
    assert!(is_unknown(
        &store.join_group(group, alice, caps).await,
        alice
    ));
    assert!(is_unknown(&store.delete_user(alice).await, alice));
    assert!(is_unknown(&store.set_password(alice, "x").await, alice));
    assert!(is_unknown(&store.revoke_tokens(alice).await, alice));
}

pub(crate) async fn a_deleted_users_messages_stay_with_their_recipients(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let caps = GroupCaps::NONE;
    let group: GroupId = store
        .create_group(alice, "club", "", caps)
        .await
        .expect("group");
    store.join_group(group, carol, caps).await.expect("join");
    let direct = send(&store, chat(alice, Target::User(bob), "to bob")).await;
    send(&store, chat(alice, Target::Group(group), "to the club")).await;

    store.delete_user(alice).await.expect("delete");

    let tombstone = deleted_user_name(alice);
    let bobs = inbox(&store, bob).await;
    assert_eq!(bobs.len(), 1, "bob keeps what alice sent him");
    assert_eq!(bobs[0].message.body, "to bob");
    assert_eq!(bobs[0].message.sender.id, alice);
    assert_eq!(bobs[0].message.sender.name, tombstone);
    let carols = inbox(&store, carol).await;
    assert_eq!(carols.len(), 1);
    assert_eq!(carols[0].message.sender.name, tombstone);
    let history = store
        .history(Conversation::Direct(alice, bob), None, ALL)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, direct.message.id);
    assert_eq!(history[0].sender.name, tombstone);
    let members = store.members(group).await.expect("the group stays");
    assert_eq!(
        members.iter().map(|m| m.user.id).collect::<Vec<_>>(),
        [carol]
    );
}

pub(crate) async fn a_deleted_users_name_is_free_again(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    store.delete_user(alice).await.expect("delete");

    let again = register(&store, "alice").await;

    assert_ne!(again, alice, "ids are never reused");
    let record = store.user(again).await.expect("user").expect("new alice");
    assert_eq!(record.name, "alice");
}

pub(crate) async fn delete_of_unknown_user_fails_with_unknown_user(store: Arc<dyn Store>) {
    let nobody = UserId(4242);
    assert!(is_unknown(&store.delete_user(nobody).await, nobody));
}
