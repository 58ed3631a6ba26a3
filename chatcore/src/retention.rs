//! Retention: the background job that deletes messages older than a set
//! age once every recipient has acknowledged them, with their inbox
//! entries, in bounded steps ([`Store::prune`]) with a pause between
//! them, so that sends never wait long behind it. Nothing a recipient has
//! not acknowledged is ever deleted, whatever its age.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::model::MessageId;
use crate::store::{PruneStep, Store, StoreError};
use crate::telemetry;

/// How old a message must be to go, and how the job paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Messages sent longer ago than this may go (once acknowledged).
    pub max_age: Duration,
    /// Time between the starts of two passes over the messages.
    pub every: Duration,
    /// Most rows (messages and inbox entries) one step deletes, in one
    /// transaction.
    pub batch_rows: u32,
    /// Pause after each step that deleted something, so that the
    /// database serves sends between steps.
    pub pause: Duration,
}

impl RetentionConfig {
    /// Keeps `days` days of messages: one pass an hour, 1,000 rows per
    /// step, 100 ms between steps.
    pub fn days(days: u32) -> RetentionConfig {
        RetentionConfig {
            max_age: Duration::from_secs(u64::from(days) * 24 * 3600),
            every: Duration::from_secs(3600),
            batch_rows: 1000,
            pause: Duration::from_millis(100),
        }
    }
}

/// One pass over every message sent before `now_ms - max_age`, step by
/// step, until none is left to look at or `shutdown`; returns what it
/// deleted (`next` is unused).
pub async fn prune_pass(
    store: &dyn Store,
    config: &RetentionConfig,
    now_ms: i64,
    shutdown: &CancellationToken,
) -> Result<PruneStep, StoreError> {
    let age = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
    let older_than = now_ms.saturating_sub(age);
    let mut total = PruneStep::default();
    let mut after = MessageId(0);
    loop {
        let step = store.prune(older_than, after, config.batch_rows).await?;
        total.messages += step.messages;
        total.entries += step.entries;
        telemetry::pruned(step.messages, step.entries);
        let Some(next) = step.next else {
            return Ok(total);
        };
        after = next;
        if step.messages > 0 {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(total),
                _ = tokio::time::sleep(config.pause) => {}
            }
        } else if shutdown.is_cancelled() {
            return Ok(total);
        }
    }
}

/// Runs a pass at once and then every `config.every`, until `shutdown`.
/// A failed pass is logged and tried again at the next one.
pub async fn run(store: Arc<dyn Store>, config: RetentionConfig, shutdown: CancellationToken) {
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match prune_pass(store.as_ref(), &config, now_ms, &shutdown).await {
            Ok(done) if done.messages > 0 => tracing::info!(
                messages = done.messages,
                entries = done.entries,
                "retention deleted acknowledged old messages"
            ),
            Ok(_) => tracing::debug!("retention: nothing to delete"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; trying again later"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewMessage, Seq, Target};
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_pass_takes_small_steps_and_keeps_what_is_not_acknowledged() {
        let store = MemoryStore::new();
        let alice = store.create_user("alice", "h").await.expect("alice");
        let bob = store.create_user("bob", "h").await.expect("bob");
        for n in 0..10 {
            let message = NewMessage {
                sender: alice,
                target: Target::User(bob),
                body: format!("m{n}"),
                client_msg_id: None,
                sent_at_ms: 1_000 + n,
            };
            store.send(message).await.expect("send");
        }
        store.ack(bob, Seq(7)).await.expect("ack");
        let config = RetentionConfig {
            max_age: Duration::from_millis(10),
            every: Duration::from_secs(3600),
            // One message and its entry per step.
            batch_rows: 2,
            pause: Duration::ZERO,
        };
        let done = prune_pass(&store, &config, 1_000_000, &CancellationToken::new())
            .await
            .expect("pass");
        assert_eq!((done.messages, done.entries), (7, 7));
        let left = store.inbox_after(bob, Seq::ZERO, 100).await.expect("inbox");
        let seqs: Vec<i64> = left.iter().map(|e| e.seq.0).collect();
        assert_eq!(seqs, [8, 9, 10], "the unacknowledged ones stay");
    }
}
