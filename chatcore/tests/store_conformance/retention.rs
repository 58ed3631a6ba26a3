//! `prune`: retention deletes old messages every recipient acknowledged,
//! and nothing else.

use std::sync::Arc;

use chatcore::model::{Conversation, GroupId, MessageId, NewMessage, Seq, Target, UserId};
use chatcore::store::{GroupCaps, PruneStep, Store};

use crate::helpers::{ALL, SENT_AT_MS, chat, inbox, register, send, seqs};

/// The cut-off of these checks: messages sent before it are old.
const CUTOFF: i64 = SENT_AT_MS + 1_000;

fn at(message: NewMessage, sent_at_ms: i64) -> NewMessage {
    NewMessage {
        sent_at_ms,
        ..message
    }
}

/// Steps until done, `max_rows` at a time; the steps taken.
async fn prune_all(store: &Arc<dyn Store>, max_rows: u32) -> Vec<PruneStep> {
    let mut steps = Vec::new();
    let mut after = MessageId(0);
    loop {
        let step = store.prune(CUTOFF, after, max_rows).await.expect("prune");
        steps.push(step);
        match step.next {
            Some(next) => {
                assert!(next > after, "a step moves on: {after:?} then {next:?}");
                after = next;
            }
            None => return steps,
        }
        assert!(steps.len() < 1000, "pruning never ends: {steps:?}");
    }
}

fn totals(steps: &[PruneStep]) -> (u64, u64) {
    steps
        .iter()
        .fold((0, 0), |(m, e), s| (m + s.messages, e + s.entries))
}

async fn history_of(store: &Arc<dyn Store>, a: UserId, b: UserId) -> Vec<String> {
    let messages = store
        .history(Conversation::Direct(a, b), None, ALL)
        .await
        .expect("history");
    messages.into_iter().rev().map(|m| m.body).collect()
}

pub(crate) async fn an_acknowledged_old_message_goes_and_an_unacknowledged_one_stays(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    send(&store, chat(alice, Target::User(bob), "old, read")).await;
    send(&store, chat(alice, Target::User(bob), "old, unread")).await;
    store.ack(bob, Seq(1)).await.expect("ack");

    let steps = prune_all(&store, 1000).await;

    assert_eq!(totals(&steps), (1, 1));
    let left = inbox(&store, bob).await;
    assert_eq!(seqs(&left), [2], "the unacknowledged entry stays");
    assert_eq!(left[0].message.body, "old, unread");
    assert_eq!(history_of(&store, alice, bob).await, ["old, unread"]);
    assert_eq!(store.cursor(bob).await.expect("cursor"), Seq(1));
}

pub(crate) async fn new_messages_stay_even_when_acknowledged(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    send(&store, chat(alice, Target::User(bob), "old")).await;
    send(&store, at(chat(alice, Target::User(bob), "new"), CUTOFF)).await;
    store.ack(bob, Seq(2)).await.expect("ack");

    let steps = prune_all(&store, 1000).await;

    assert_eq!(totals(&steps), (1, 1));
    assert_eq!(history_of(&store, alice, bob).await, ["new"]);
    assert_eq!(seqs(&inbox(&store, bob).await), [2]);
}

pub(crate) async fn a_group_message_goes_only_once_every_member_acknowledged(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let carol = register(&store, "carol").await;
    let caps = GroupCaps::NONE;
    let group: GroupId = store
        .create_group(alice, "club", "", caps)
        .await
        .expect("group");
    for member in [bob, carol] {
        store.join_group(group, member, caps).await.expect("join");
    }
    send(&store, chat(alice, Target::Group(group), "hi all")).await;
    store.ack(bob, Seq(1)).await.expect("bob acks");

    assert_eq!(totals(&prune_all(&store, 1000).await), (0, 0));
    assert_eq!(
        seqs(&inbox(&store, bob).await),
        [1],
        "carol pins it for all"
    );

    store.ack(carol, Seq(1)).await.expect("carol acks");
    assert_eq!(totals(&prune_all(&store, 1000).await), (1, 2));
    assert!(inbox(&store, bob).await.is_empty());
    assert!(inbox(&store, carol).await.is_empty());
    let history = store
        .history(Conversation::Group(group), None, ALL)
        .await
        .expect("history");
    assert!(history.is_empty(), "{history:?}");
}

pub(crate) async fn steps_stay_within_max_rows_and_together_prune_everything(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    for n in 0..25 {
        send(&store, chat(alice, Target::User(bob), &format!("m{n}"))).await;
    }
    // The 21st is not acknowledged: it and what follows stay.
    store.ack(bob, Seq(20)).await.expect("ack");

    let steps = prune_all(&store, 6).await;

    for step in &steps {
        assert!(step.messages + step.entries <= 6, "{step:?}");
    }
    assert!(
        steps.len() >= 7,
        "20 messages of 2 rows, 3 per step: {steps:?}"
    );
    assert_eq!(totals(&steps), (20, 20));
    assert_eq!(
        seqs(&inbox(&store, bob).await),
        (21..=25).collect::<Vec<_>>()
    );
    // Sync from the cursor and the next sends are as before.
    let after_cursor = store.inbox_after(bob, Seq(20), ALL).await.expect("sync");
    assert_eq!(seqs(&after_cursor), (21..=25).collect::<Vec<_>>());
    let next = send(&store, chat(alice, Target::User(bob), "later")).await;
    assert_eq!(next.deliveries[0].seq, Seq(26));
}

pub(crate) async fn a_deleted_recipients_entries_pin_nothing(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    send(&store, chat(alice, Target::User(bob), "never read")).await;
    store.delete_user(bob).await.expect("delete bob");

    assert_eq!(totals(&prune_all(&store, 1000).await).0, 1);
    assert!(history_of(&store, alice, bob).await.is_empty());
}

pub(crate) async fn pruning_an_empty_store_is_one_step_of_nothing(store: Arc<dyn Store>) {
    let steps = prune_all(&store, 1000).await;
    assert_eq!(steps, [PruneStep::default()]);
}
