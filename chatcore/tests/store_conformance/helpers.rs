//! Small builders shared by the checks, so that each check reads as the
//! behaviour it pins down.

use std::sync::Arc;

use chatcore::model::{
    InboxEntry, Message, MessageId, NewMessage, SendReceipt, Seq, Target, UserId,
};
use chatcore::store::Store;

/// A stand-in PHC string; stores keep it opaque.
pub(crate) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
/// Any timestamp; stores keep it as given.
pub(crate) const SENT_AT_MS: i64 = 1_767_225_600_123;
/// More than any check puts in one inbox or conversation.
pub(crate) const ALL: u32 = 10_000;

/// Registers a user that must not exist yet.
pub(crate) async fn register(store: &Arc<dyn Store>, name: &str) -> UserId {
    store
        .create_user(name, HASH)
        .await
        .unwrap_or_else(|err| panic!("create_user({name:?}) failed: {err}"))
}

/// A message without a client id.
pub(crate) fn chat(sender: UserId, target: Target, body: &str) -> NewMessage {
    NewMessage {
        sender,
        target,
        body: body.to_owned(),
        client_msg_id: None,
        sent_at_ms: SENT_AT_MS,
    }
}

/// A message with a client id, so resends are idempotent.
pub(crate) fn chat_with_id(
    sender: UserId,
    target: Target,
    body: &str,
    client_msg_id: &str,
) -> NewMessage {
    NewMessage {
        client_msg_id: Some(client_msg_id.to_owned()),
        ..chat(sender, target, body)
    }
}

/// Sends a message that must be accepted.
pub(crate) async fn send(store: &Arc<dyn Store>, message: NewMessage) -> SendReceipt {
    store
        .send(message.clone())
        .await
        .unwrap_or_else(|err| panic!("send({message:?}) failed: {err}"))
}

/// The whole inbox of `user`.
pub(crate) async fn inbox(store: &Arc<dyn Store>, user: UserId) -> Vec<InboxEntry> {
    store
        .inbox_after(user, Seq::ZERO, ALL)
        .await
        .unwrap_or_else(|err| panic!("inbox_after({user}) failed: {err}"))
}

/// The seqs of some inbox entries, in the order given.
pub(crate) fn seqs(entries: &[InboxEntry]) -> Vec<i64> {
    entries.iter().map(|entry| entry.seq.0).collect()
}

/// The message ids of some messages, in the order given.
pub(crate) fn ids(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|message| message.id).collect()
}

/// `1..=n` as a vector, the seqs of an inbox holding `n` entries.
pub(crate) fn one_to(n: i64) -> Vec<i64> {
    (1..=n).collect()
}
