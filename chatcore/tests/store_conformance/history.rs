//! `history`: one conversation, newest first, paged by message id.

use std::sync::Arc;

use chatcore::model::{Conversation, GroupId, Message, MessageId, Target, UserId};
use chatcore::store::{GroupCaps, Store};

use crate::helpers::{ALL, chat, ids, register, send};

async fn history(
    store: &Arc<dyn Store>,
    conversation: Conversation,
    before: Option<MessageId>,
    limit: u32,
) -> Vec<Message> {
    store
        .history(conversation, before, limit)
        .await
        .expect("history")
}

/// Sends `count` one-to-one messages alternating between `a` and `b`;
/// returns the stored messages oldest first.
async fn talk(store: &Arc<dyn Store>, a: UserId, b: UserId, count: usize) -> Vec<Message> {
    let mut sent = Vec::new();
    for n in 0..count {
        let (from, to) = if n % 2 == 0 { (a, b) } else { (b, a) };
        let body = format!("{from}->{to} #{n}");
        sent.push(
            send(store, chat(from, Target::User(to), &body))
                .await
                .message,
        );
    }
    sent
}

async fn group_with(
    store: &Arc<dyn Store>,
    name: &str,
    creator: UserId,
    others: &[UserId],
) -> GroupId {
    let group = store
        .create_group(creator, name, "", GroupCaps::NONE)
        .await
        .expect("create_group");
    for &user in others {
        store
            .join_group(group, user, GroupCaps::NONE)
            .await
            .expect("join_group");
    }
    group
}

fn newest_first(mut messages: Vec<Message>) -> Vec<Message> {
    messages.reverse();
    messages
}

pub(crate) async fn history_lists_messages_newest_first(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let sent = talk(&store, alice, bob, 5).await;

    let listed = history(&store, Conversation::Direct(alice, bob), None, ALL).await;

    assert_eq!(listed, newest_first(sent));
}

pub(crate) async fn history_pages_backwards_with_before(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let sent = talk(&store, alice, bob, 7).await;
    let conversation = Conversation::Direct(alice, bob);

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = history(&store, conversation, before, 3).await;
        let Some(oldest) = page.last() else { break };
        before = Some(oldest.id);
        pages.push(ids(&page));
    }

    let expected: Vec<MessageId> = ids(&newest_first(sent.clone()));
    assert_eq!(
        pages,
        vec![
            expected[0..3].to_vec(),
            expected[3..6].to_vec(),
            expected[6..].to_vec()
        ]
    );
    assert_eq!(
        ids(&history(&store, conversation, Some(sent[3].id), ALL).await),
        ids(&newest_first(sent[..3].to_vec())),
        "before excludes the message it names"
    );
    assert_eq!(history(&store, conversation, None, 0).await, vec![]);
}

pub(crate) async fn direct_history_is_the_same_from_both_sides(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let sent = talk(&store, alice, bob, 4).await;

    let from_alice = history(&store, Conversation::Direct(alice, bob), None, ALL).await;
    let from_bob = history(&store, Conversation::Direct(bob, alice), None, ALL).await;

    assert_eq!(from_alice, from_bob);
    assert_eq!(from_alice, newest_first(sent));
}

pub(crate) async fn direct_history_excludes_other_conversations(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let group = group_with(&store, "g", alice, &[bob]).await;

    let mut ab = Vec::new();
    let mut to_self = Vec::new();
    for n in 0..3 {
        ab.extend(talk(&store, alice, bob, 1).await);
        talk(&store, alice, carol, 1).await;
        talk(&store, bob, carol, 1).await;
        send(&store, chat(bob, Target::Group(group), &format!("g{n}"))).await;
        to_self.push(
            send(&store, chat(alice, Target::User(alice), "self"))
                .await
                .message,
        );
        ab.extend(talk(&store, bob, alice, 1).await);
    }

    assert_eq!(
        history(&store, Conversation::Direct(alice, bob), None, ALL).await,
        newest_first(ab)
    );
    assert_eq!(
        history(&store, Conversation::Direct(alice, alice), None, ALL).await,
        newest_first(to_self)
    );
    assert_eq!(
        ids(&history(&store, Conversation::Direct(bob, bob), None, ALL).await),
        vec![]
    );
}

pub(crate) async fn group_history_lists_the_group_messages_newest_first(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let group = group_with(&store, "g", alice, &[bob, carol]).await;
    let other = group_with(&store, "other", alice, &[bob]).await;

    let mut in_group = Vec::new();
    for (n, sender) in [alice, bob, carol, bob].into_iter().enumerate() {
        in_group.push(
            send(&store, chat(sender, Target::Group(group), &format!("g{n}")))
                .await
                .message,
        );
        send(&store, chat(bob, Target::Group(other), "elsewhere")).await;
        send(&store, chat(alice, Target::User(bob), "direct")).await;
    }
    // A member who leaves does not take their messages out of history.
    store.leave_group(group, carol).await.expect("leave_group");

    let listed = history(&store, Conversation::Group(group), None, ALL).await;
    assert_eq!(listed, newest_first(in_group.clone()));
    assert_eq!(
        ids(&history(&store, Conversation::Group(group), Some(in_group[2].id), 1).await),
        vec![in_group[1].id]
    );
}

pub(crate) async fn history_of_a_silent_conversation_is_empty(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let group = group_with(&store, "quiet", alice, &[]).await;
    talk(&store, alice, bob, 2).await;

    assert_eq!(
        history(&store, Conversation::Direct(alice, carol), None, ALL).await,
        vec![]
    );
    assert_eq!(
        history(&store, Conversation::Group(group), None, ALL).await,
        vec![]
    );
}
