//! `send`: recipients, seqs, atomicity, idempotency and bodies.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chatcore::model::{
    Conversation, Delivery, GroupId, Message, MessageId, Seq, Target, UserId, UserInfo,
};
use chatcore::store::{GroupCaps, Store, StoreError};

use crate::helpers::{
    ALL, SENT_AT_MS, chat, chat_with_id, ids, inbox, one_to, register, send, seqs,
};

fn delivery(user: UserId, seq: i64) -> Delivery {
    Delivery {
        user,
        seq: Seq(seq),
    }
}

/// A group created by `creator` with `others` joined.
async fn group_of(
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

async fn history(store: &Arc<dyn Store>, conversation: Conversation) -> Vec<Message> {
    store
        .history(conversation, None, ALL)
        .await
        .expect("history")
}

pub(crate) async fn direct_send_returns_the_stored_message(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    let receipt = send(
        &store,
        chat_with_id(alice, Target::User(bob), "hi bob", "c-1"),
    )
    .await;

    assert!(!receipt.duplicate);
    assert!(
        receipt.message.id.0 > 0,
        "message id {}",
        receipt.message.id
    );
    assert_eq!(
        receipt.message,
        Message {
            id: receipt.message.id,
            sender: UserInfo {
                id: alice,
                name: "alice".to_owned()
            },
            target: Target::User(bob),
            body: "hi bob".to_owned(),
            client_msg_id: Some("c-1".to_owned()),
            sent_at_ms: SENT_AT_MS,
        }
    );
    let entries = inbox(&store, bob).await;
    assert_eq!(seqs(&entries), vec![1]);
    assert_eq!(entries[0].message, receipt.message);
    assert!(
        inbox(&store, alice).await.is_empty(),
        "the sender of a one-to-one message gets no entry"
    );
}

pub(crate) async fn direct_sends_give_the_recipient_seq_1_2_3(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    let mut message_ids = HashSet::new();
    for n in 1..=3 {
        let receipt = send(&store, chat(alice, Target::User(bob), &format!("#{n}"))).await;
        assert_eq!(receipt.deliveries, vec![delivery(bob, n)]);
        assert!(
            message_ids.insert(receipt.message.id),
            "message ids are unique"
        );
    }

    let entries = inbox(&store, bob).await;
    assert_eq!(seqs(&entries), one_to(3));
    let bodies: Vec<&str> = entries.iter().map(|e| e.message.body.as_str()).collect();
    assert_eq!(bodies, ["#1", "#2", "#3"]);
}

pub(crate) async fn direct_send_to_unknown_user_fails_and_stores_nothing(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let ghost = UserId(bob.0 + 1000);

    let sent = store
        .send(chat_with_id(alice, Target::User(ghost), "anyone?", "c-1"))
        .await;

    assert!(
        matches!(sent, Err(StoreError::UnknownUser(id)) if id == ghost),
        "expected UnknownUser({ghost}), got {sent:?}"
    );
    assert!(
        history(&store, Conversation::Direct(alice, ghost))
            .await
            .is_empty()
    );
    assert!(inbox(&store, alice).await.is_empty());
    // The client id was not used up by the failed send.
    let retry = send(&store, chat_with_id(alice, Target::User(bob), "hi", "c-1")).await;
    assert!(!retry.duplicate, "nothing was stored, so this is no resend");
    assert_eq!(retry.deliveries, vec![delivery(bob, 1)]);
}

pub(crate) async fn send_to_self_delivers_one_entry_to_the_sender(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    let receipt = send(&store, chat(alice, Target::User(alice), "note to self")).await;

    assert_eq!(receipt.deliveries, vec![delivery(alice, 1)]);
    let entries = inbox(&store, alice).await;
    assert_eq!(seqs(&entries), vec![1]);
    assert_eq!(entries[0].message, receipt.message);
    assert_eq!(
        ids(&history(&store, Conversation::Direct(alice, alice)).await),
        vec![receipt.message.id]
    );
}

pub(crate) async fn group_send_delivers_one_entry_to_every_member_but_the_sender(
    store: Arc<dyn Store>,
) {
    let creator = register(&store, "creator").await;
    let sender = register(&store, "sender").await;
    let carol = register(&store, "carol").await;
    let dave = register(&store, "dave").await;
    let outsider = register(&store, "outsider").await;
    let group = group_of(&store, "g", creator, &[sender, carol, dave]).await;

    let receipt = send(&store, chat(sender, Target::Group(group), "hello all")).await;

    assert!(!receipt.duplicate);
    assert_eq!(receipt.message.target, Target::Group(group));
    let mut deliveries = receipt.deliveries.clone();
    deliveries.sort_by_key(|d| d.user);
    let mut expected = vec![delivery(creator, 1), delivery(carol, 1), delivery(dave, 1)];
    expected.sort_by_key(|d| d.user);
    assert_eq!(deliveries, expected);
    for member in [creator, carol, dave] {
        let entries = inbox(&store, member).await;
        assert_eq!(seqs(&entries), vec![1], "inbox of member {member}");
        assert_eq!(entries[0].message, receipt.message);
    }
    assert!(
        inbox(&store, sender).await.is_empty(),
        "the sender gets no entry"
    );
    assert!(
        inbox(&store, outsider).await.is_empty(),
        "a non-member gets no entry"
    );
}

pub(crate) async fn group_send_by_the_only_member_delivers_nothing(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = group_of(&store, "solo", alice, &[]).await;

    let receipt = send(&store, chat(alice, Target::Group(group), "echo")).await;

    assert_eq!(receipt.deliveries, vec![]);
    assert!(inbox(&store, alice).await.is_empty());
    assert_eq!(
        ids(&history(&store, Conversation::Group(group)).await),
        vec![receipt.message.id]
    );
}

pub(crate) async fn group_send_by_a_non_member_fails_with_not_member(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let former = register(&store, "former").await;
    let group = group_of(&store, "g", alice, &[former]).await;
    store.leave_group(group, former).await.expect("leave_group");

    for outsider in [bob, former] {
        let sent = store
            .send(chat(outsider, Target::Group(group), "let me in"))
            .await;
        assert!(
            matches!(sent, Err(StoreError::NotMember { user, group: g }) if user == outsider && g == group),
            "expected NotMember {{ user: {outsider}, group: {group} }}, got {sent:?}"
        );
    }

    assert!(
        inbox(&store, alice).await.is_empty(),
        "nothing was delivered"
    );
    assert!(history(&store, Conversation::Group(group)).await.is_empty());
}

pub(crate) async fn group_send_to_unknown_group_fails_with_unknown_group(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let group = group_of(&store, "g", alice, &[]).await;
    let no_group = GroupId(group.0 + 1000);

    let sent = store
        .send(chat(alice, Target::Group(no_group), "hello?"))
        .await;

    assert!(
        matches!(sent, Err(StoreError::UnknownGroup(id)) if id == no_group),
        "expected UnknownGroup({no_group}), got {sent:?}"
    );
    assert!(
        history(&store, Conversation::Group(no_group))
            .await
            .is_empty()
    );
}

pub(crate) async fn resend_with_the_same_client_msg_id_returns_the_first_message_without_deliveries(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let first = send(
        &store,
        chat_with_id(alice, Target::User(bob), "first", "c-1"),
    )
    .await;

    let mut resend = chat_with_id(alice, Target::User(bob), "second", "c-1");
    resend.sent_at_ms += 5_000;
    let again = send(&store, resend).await;

    assert!(again.duplicate, "a resend is reported as duplicate");
    assert_eq!(
        again.message, first.message,
        "the first message is returned"
    );
    assert_eq!(again.deliveries, vec![], "a resend delivers nothing");
    assert_eq!(seqs(&inbox(&store, bob).await), vec![1], "inbox unchanged");
    assert_eq!(
        ids(&history(&store, Conversation::Direct(alice, bob)).await),
        vec![first.message.id]
    );
    // No seq was used up by the resend.
    let next = send(
        &store,
        chat_with_id(alice, Target::User(bob), "next", "c-2"),
    )
    .await;
    assert_eq!(next.deliveries, vec![delivery(bob, 2)]);
}

pub(crate) async fn group_resend_with_the_same_client_msg_id_delivers_nothing(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let group = group_of(&store, "g", alice, &[bob]).await;
    let first = send(&store, chat_with_id(bob, Target::Group(group), "hi", "g-1")).await;

    let again = send(&store, chat_with_id(bob, Target::Group(group), "hi", "g-1")).await;

    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    assert_eq!(again.deliveries, vec![]);
    assert_eq!(seqs(&inbox(&store, alice).await), vec![1]);
}

pub(crate) async fn same_client_msg_id_from_different_senders_is_distinct_messages(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;

    let from_alice = send(
        &store,
        chat_with_id(alice, Target::User(carol), "a", "same"),
    )
    .await;
    let from_bob = send(&store, chat_with_id(bob, Target::User(carol), "b", "same")).await;

    assert!(!from_bob.duplicate);
    assert_ne!(from_alice.message.id, from_bob.message.id);
    assert_eq!(from_bob.deliveries, vec![delivery(carol, 2)]);
    let bodies: Vec<String> = inbox(&store, carol)
        .await
        .into_iter()
        .map(|e| e.message.body)
        .collect();
    assert_eq!(bodies, ["a", "b"]);
}

pub(crate) async fn client_msg_ids_are_compared_byte_for_byte(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    // Each differs from "msg-1" in bytes only.
    let client_ids = ["msg-1", "MSG-1", "msg-1 ", "caf\u{e9}", "cafe\u{301}"];
    let mut message_ids = HashSet::new();
    for (n, client_id) in client_ids.into_iter().enumerate() {
        let receipt = send(
            &store,
            chat_with_id(alice, Target::User(bob), client_id, client_id),
        )
        .await;
        assert!(
            !receipt.duplicate,
            "{client_id:?} is a new client id, but the send was taken for a resend of {:?}",
            receipt.message.client_msg_id
        );
        assert_eq!(receipt.message.client_msg_id.as_deref(), Some(client_id));
        assert_eq!(receipt.deliveries, vec![delivery(bob, n as i64 + 1)]);
        assert!(message_ids.insert(receipt.message.id));
    }
}

pub(crate) async fn messages_without_client_msg_id_are_never_taken_for_resends(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    let first = send(&store, chat(alice, Target::User(bob), "same")).await;
    let second = send(&store, chat(alice, Target::User(bob), "same")).await;

    assert!(!second.duplicate);
    assert_ne!(first.message.id, second.message.id);
    assert_eq!(seqs(&inbox(&store, bob).await), one_to(2));
}

pub(crate) async fn racing_resends_store_the_message_once(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;

    let racers: Vec<_> = (0..10)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .send(chat_with_id(
                        alice,
                        Target::User(bob),
                        "once",
                        "retry-storm",
                    ))
                    .await
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for racer in racers {
        receipts.push(racer.await.expect("send task").expect("send"));
    }

    let originals: Vec<_> = receipts.iter().filter(|r| !r.duplicate).collect();
    assert_eq!(
        originals.len(),
        1,
        "exactly one racing send stores the message"
    );
    let stored = &originals[0].message;
    for receipt in &receipts {
        assert_eq!(&receipt.message, stored);
        if receipt.duplicate {
            assert_eq!(receipt.deliveries, vec![]);
        }
    }
    assert_eq!(originals[0].deliveries, vec![delivery(bob, 1)]);
    assert_eq!(seqs(&inbox(&store, bob).await), vec![1]);
}

pub(crate) async fn concurrent_sends_to_one_user_take_seqs_1_to_200_without_gaps(
    store: Arc<dyn Store>,
) {
    const TASKS: usize = 8;
    const SENDS: usize = 25;
    let bob = register(&store, "bob").await;
    let mut senders = Vec::new();
    for n in 0..TASKS {
        senders.push(register(&store, &format!("sender{n}")).await);
    }

    let tasks: Vec<_> = senders
        .iter()
        .map(|&sender| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..SENDS {
                    let receipt = store
                        .send(chat(sender, Target::User(bob), &format!("{sender}/{n}")))
                        .await
                        .expect("send");
                    assert_eq!(receipt.deliveries.len(), 1);
                    assert_eq!(receipt.deliveries[0].user, bob);
                    seqs.push((receipt.deliveries[0].seq.0, receipt.message.id));
                }
                seqs
            })
        })
        .collect();
    let mut delivered = Vec::new();
    for task in tasks {
        let seqs = task.await.expect("send task");
        assert!(
            seqs.windows(2).all(|w| w[0].0 < w[1].0),
            "one sender's later message takes a later seq: {seqs:?}"
        );
        delivered.extend(seqs);
    }

    let total = (TASKS * SENDS) as i64;
    delivered.sort_unstable();
    let delivered_seqs: Vec<i64> = delivered.iter().map(|&(seq, _)| seq).collect();
    assert_eq!(
        delivered_seqs,
        one_to(total),
        "receipts: no gap, no duplicate"
    );
    let entries = inbox(&store, bob).await;
    assert_eq!(seqs(&entries), one_to(total), "inbox: no gap, no duplicate");
    let stored: Vec<(i64, MessageId)> = entries.iter().map(|e| (e.seq.0, e.message.id)).collect();
    assert_eq!(
        stored, delivered,
        "each entry holds the message its receipt named"
    );
}

pub(crate) async fn concurrent_group_and_direct_sends_keep_every_inbox_gap_free(
    store: Arc<dyn Store>,
) {
    const SENDS: i64 = 10;
    let mut members = Vec::new();
    for name in ["m0", "m1", "m2", "m3"] {
        members.push(register(&store, name).await);
    }
    let group = group_of(&store, "busy", members[0], &members[1..]).await;

    // Every member sends SENDS group messages and SENDS direct messages to
    // the next member, all at once.
    let tasks: Vec<_> = members
        .iter()
        .enumerate()
        .flat_map(|(i, &sender)| {
            let next = members[(i + 1) % members.len()];
            [Target::Group(group), Target::User(next)].map(|target| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..SENDS {
                        store
                            .send(chat(sender, target, &format!("{n}")))
                            .await
                            .expect("send");
                    }
                })
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("send task");
    }

    // Each member receives the group messages of the 3 others and the
    // direct messages of one member.
    let expected = (members.len() as i64 - 1) * SENDS + SENDS;
    for &member in &members {
        let entries = inbox(&store, member).await;
        assert_eq!(seqs(&entries), one_to(expected), "inbox of {member}");
        let distinct: BTreeSet<MessageId> = entries.iter().map(|e| e.message.id).collect();
        assert_eq!(distinct.len() as i64, expected, "one entry per message");
    }
}

pub(crate) async fn a_message_in_history_is_already_in_every_recipient_inbox(
    store: Arc<dyn Store>,
) {
    let sender = register(&store, "sender").await;
    let mut recipients = Vec::new();
    for n in 0..5 {
        recipients.push(register(&store, &format!("r{n}")).await);
    }
    let group = group_of(&store, "g", sender, &recipients).await;

    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            for n in 0..40 {
                store
                    .send(chat(sender, Target::Group(group), &format!("{n}")))
                    .await
                    .expect("send");
                tokio::task::yield_now().await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    loop {
        let finished = done.load(Ordering::SeqCst);
        let newest = store
            .history(Conversation::Group(group), None, 1)
            .await
            .expect("history");
        if let Some(message) = newest.first() {
            for &recipient in &recipients {
                let entries = inbox(&store, recipient).await;
                assert!(
                    entries.iter().any(|e| e.message.id == message.id),
                    "message {} is in history but not yet in the inbox of {recipient}",
                    message.id
                );
            }
        }
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer task");
}

/// A body over 60 KiB mixing 1- to 4-byte characters and escapes.
fn large_body() -> String {
    const TARGET: usize = 60 * 1024 + 123;
    let chunk = "\u{6c49}\u{5b57} \u{1f600} '\"` \\ \n\r\t abc ";
    chunk
        .chars()
        .cycle()
        .scan(0, |len, c| {
            *len += c.len_utf8();
            (*len <= TARGET).then_some(c)
        })
        .collect()
}

pub(crate) async fn body_round_trips_byte_for_byte(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let bodies = [
        String::new(),
        "plain ascii".to_owned(),
        "\u{4f60}\u{597d}\u{ff0c}\u{4e16}\u{754c}".to_owned(),
        "\u{1f44b}\u{1f3fd} \u{1f9d1}\u{200d}\u{1f4bb} \u{1f1e8}\u{1f1f3} \u{1f980}".to_owned(),
        "single ' double \" back `".to_owned(),
        r"C:\path\to\file \\ \n \' \0".to_owned(),
        "line 1\nline 2\r\nline 3\n\n".to_owned(),
        "   leading and trailing spaces\t   ".to_owned(),
        "'); DROP TABLE message; -- %_ *".to_owned(),
        "nul \u{0} inside".to_owned(),
        large_body(),
    ];
    assert!(bodies[bodies.len() - 1].len() > 60 * 1024);

    for body in &bodies {
        let receipt = send(&store, chat(alice, Target::User(bob), body)).await;
        let short = body.chars().take(40).collect::<String>();
        assert_eq!(&receipt.message.body, body, "receipt body of {short:?}");
        let seq = receipt.deliveries[0].seq;
        let entry = store
            .inbox_after(bob, Seq(seq.0 - 1), 1)
            .await
            .expect("inbox_after");
        assert_eq!(entry.len(), 1);
        assert!(
            entry[0].message.body == *body,
            "inbox body of {short:?} differs"
        );
        let newest = store
            .history(Conversation::Direct(bob, alice), None, 1)
            .await
            .expect("history");
        assert!(newest[0].body == *body, "history body of {short:?} differs");
    }
}
