//! `inbox_after`, `ack` and `cursor`.

use std::sync::Arc;

use chatcore::model::{InboxEntry, SendReceipt, Seq, Target, UserId};
use chatcore::store::Store;

use crate::helpers::{chat, inbox, one_to, register, send, seqs};

/// `count` one-to-one messages from `from` to `to`.
async fn fill(store: &Arc<dyn Store>, from: UserId, to: UserId, count: i64) -> Vec<SendReceipt> {
    let mut receipts = Vec::new();
    for n in 1..=count {
        receipts.push(send(store, chat(from, Target::User(to), &format!("#{n}"))).await);
    }
    receipts
}

async fn after(store: &Arc<dyn Store>, user: UserId, seq: i64, limit: u32) -> Vec<InboxEntry> {
    store
        .inbox_after(user, Seq(seq), limit)
        .await
        .expect("inbox_after")
}

async fn ack(store: &Arc<dyn Store>, user: UserId, seq: i64) -> Seq {
    store.ack(user, Seq(seq)).await.expect("ack")
}

async fn cursor(store: &Arc<dyn Store>, user: UserId) -> Seq {
    store.cursor(user).await.expect("cursor")
}

pub(crate) async fn inbox_after_returns_the_entries_after_a_seq_in_seq_order(
    store: Arc<dyn Store>,
) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    let receipts = fill(&store, alice, bob, 5).await;

    let entries = after(&store, bob, 2, 100).await;

    assert_eq!(seqs(&entries), vec![3, 4, 5]);
    for (entry, receipt) in entries.iter().zip(&receipts[2..]) {
        assert_eq!(entry.message, receipt.message, "entry {}", entry.seq);
    }
    assert_eq!(seqs(&after(&store, bob, 0, 100).await), one_to(5));
    assert_eq!(seqs(&after(&store, bob, 5, 100).await), Vec::<i64>::new());
    assert_eq!(seqs(&after(&store, bob, 50, 100).await), Vec::<i64>::new());
}

pub(crate) async fn inbox_after_returns_at_most_limit_entries(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 5).await;

    assert_eq!(seqs(&after(&store, bob, 0, 2).await), vec![1, 2]);
    assert_eq!(seqs(&after(&store, bob, 2, 2).await), vec![3, 4]);
    assert_eq!(seqs(&after(&store, bob, 4, 2).await), vec![5]);
    assert_eq!(seqs(&after(&store, bob, 0, 0).await), Vec::<i64>::new());
}

pub(crate) async fn paging_through_the_inbox_reads_every_entry_once(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 7).await;

    let mut read = Vec::new();
    let mut last = 0;
    loop {
        let page = after(&store, bob, last, 3).await;
        let Some(end) = page.last() else { break };
        last = end.seq.0;
        read.extend(seqs(&page));
    }

    assert_eq!(read, one_to(7));
}

pub(crate) async fn ack_moves_the_cursor_forward(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 5).await;

    assert_eq!(ack(&store, bob, 2).await, Seq(2));
    assert_eq!(cursor(&store, bob).await, Seq(2));
    assert_eq!(ack(&store, bob, 4).await, Seq(4));
    assert_eq!(cursor(&store, bob).await, Seq(4));
    assert_eq!(
        cursor(&store, alice).await,
        Seq::ZERO,
        "cursors are per user"
    );
    assert_eq!(
        seqs(&inbox(&store, bob).await),
        one_to(5),
        "acked entries stay readable"
    );
}

pub(crate) async fn ack_of_a_lower_seq_keeps_the_higher_cursor(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 5).await;
    ack(&store, bob, 4).await;

    assert_eq!(ack(&store, bob, 1).await, Seq(4));
    assert_eq!(ack(&store, bob, 0).await, Seq(4));
    assert_eq!(ack(&store, bob, 4).await, Seq(4));
    assert_eq!(cursor(&store, bob).await, Seq(4));
}

pub(crate) async fn ack_beyond_the_last_seq_is_capped(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 2).await;

    assert_eq!(ack(&store, bob, 10).await, Seq(2));
    assert_eq!(cursor(&store, bob).await, Seq(2));

    fill(&store, alice, bob, 1).await;
    assert_eq!(
        ack(&store, bob, 3).await,
        Seq(3),
        "the cap follows new entries"
    );
    assert_eq!(ack(&store, bob, i64::MAX).await, Seq(3));
}

pub(crate) async fn ack_on_an_empty_inbox_keeps_the_cursor_at_zero(store: Arc<dyn Store>) {
    let bob = register(&store, "bob").await;

    assert_eq!(ack(&store, bob, 5).await, Seq::ZERO);
    assert_eq!(cursor(&store, bob).await, Seq::ZERO);
}

pub(crate) async fn racing_acks_leave_the_highest_cursor(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;
    let bob = register(&store, "bob").await;
    fill(&store, alice, bob, 20).await;

    // Interleaved high and low acks, as from two connections of one user.
    let acks: Vec<_> = (1..=20)
        .map(|n| if n % 2 == 0 { n } else { 21 - n })
        .map(|seq| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { (seq, store.ack(bob, Seq(seq)).await) })
        })
        .collect();
    for ack in acks {
        let (seq, cursor) = ack.await.expect("ack task");
        let cursor = cursor.expect("ack");
        assert!(
            cursor >= Seq(seq),
            "ack({seq}) returned {cursor}: below the seq just acked"
        );
    }

    assert_eq!(cursor(&store, bob).await, Seq(20));
}

pub(crate) async fn cursor_of_unknown_user_is_zero(store: Arc<dyn Store>) {
    let alice = register(&store, "alice").await;

    assert_eq!(cursor(&store, UserId(alice.0 + 1000)).await, Seq::ZERO);
    assert_eq!(cursor(&store, UserId(0)).await, Seq::ZERO);
}
