//! The decisions of an import, apart from any database: the checkpoint it
//! keeps, what a seed offline message is, and which offline rows are one
//! group message.

use std::collections::BTreeSet;

use chatcore::model::{GroupId, MessageId, Target, UserId};
use chatcore::store::{ImportBatch, ImportedDelivery, ImportedMessage, MessageRef};
use chrono::{Local, NaiveDateTime, TimeZone};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::{Report, Skip};

/// Where an import stands: the stage and the last seed row it finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub(crate) enum Progress {
    /// Users up to this id are done.
    Users {
        after: i64,
    },
    /// `friend` pairs up to this (user, friend) are done.
    Friends {
        after: (i64, i64),
    },
    /// Groups up to this id are done.
    Groups {
        after: i64,
    },
    /// `groupuser` pairs up to this (group, user) are done.
    Members {
        after: (i64, i64),
    },
    /// The first `rows` offline messages are done; `open` are the group
    /// messages further rows may still add recipients to.
    Messages {
        rows: u64,
        open: Vec<OpenGroupMessage>,
    },
    Done,
}

impl Progress {
    pub(crate) const START: Progress = Progress::Users { after: i64::MIN };

    /// Whether users up to `id` are imported already.
    pub(crate) fn user_done(&self, id: i64) -> bool {
        match self {
            Progress::Users { after } => id <= *after,
            _ => true,
        }
    }

    /// Whether groups up to `id` are imported already.
    pub(crate) fn group_done(&self, id: i64) -> bool {
        match self {
            Progress::Users { .. } | Progress::Friends { .. } => false,
            Progress::Groups { after } => id <= *after,
            _ => true,
        }
    }
}

/// What the target keeps between runs (`import_checkpoint.state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) progress: Progress,
    pub(crate) report: Report,
}

/// A seed offline message, as the seed's server stored it (its own JSON
/// of a ONE_CHAT or GROUP_CHAT request; numbering varies between copies of
/// the seed, so the keys tell which it is).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct SeedChat {
    /// The sender.
    id: i64,
    msg: String,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    groupid: Option<i64>,
}

/// An offline message row made sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chat {
    pub(crate) sender: UserId,
    pub(crate) group: Option<GroupId>,
    pub(crate) body: String,
    /// `None` when the seed's `time` is missing or unreadable.
    pub(crate) sent_at_ms: Option<i64>,
}

/// Reads one offline message's text; `cut_at` is the column's length in
/// characters, `chars` the row's.
pub(crate) fn read_chat(
    text: &str,
    chars: i64,
    cut_at: Option<i64>,
    max_bytes: usize,
) -> Result<Chat, Skip> {
    let chat: SeedChat = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            Skip::MessageNotChat
        } else if cut_at == Some(chars) {
            Skip::MessageCutOff
        } else {
            Skip::MessageNotJson
        }
    })?;
    if chat.msg.len() > max_bytes {
        return Err(Skip::MessageTooLong);
    }
    Ok(Chat {
        sender: UserId(chat.id),
        group: chat.groupid.map(GroupId),
        body: chat.msg,
        sent_at_ms: chat.time.as_deref().and_then(seed_time_ms),
    })
}

/// The seed's `YYYY-MM-DD HH:MM:SS`, its clients' local time (read here in
/// this machine's zone), as milliseconds since the Unix epoch.
pub(crate) fn seed_time_ms(time: &str) -> Option<i64> {
    let naive = NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").ok()?;
    // A time a DST change skipped does not exist; one it repeated is
    // taken at its first occurrence.
    Some(
        Local
            .from_local_datetime(&naive)
            .earliest()?
            .timestamp_millis(),
    )
}

/// Rows of one group message further apart than this are two messages.
/// The seed wrote a group message's rows in one loop, one per offline
/// member, so only rows of concurrent sends come between them.
pub(crate) const GROUP_ROWS_WINDOW: u64 = 1000;

/// A group message whose rows may not all have been seen yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenGroupMessage {
    /// SHA-256 of the row's text, hex.
    key: String,
    /// The stored message (in a checkpoint, always stored).
    message: i64,
    recipients: BTreeSet<i64>,
    last_row: u64,
}

/// An open group message while its batch is being built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Open {
    key: String,
    message: MessageRef,
    recipients: BTreeSet<i64>,
    last_row: u64,
}

/// Turns offline rows, in table order, into messages and inbox entries:
/// a one-to-one row is a message of its own; a group row joins the open
/// group message with the same text that lacks its recipient (the seed
/// stored a group message once per offline member), or opens one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MessagePlanner {
    open: Vec<Open>,
}

impl MessagePlanner {
    pub(crate) fn resume(open: &[OpenGroupMessage]) -> MessagePlanner {
        MessagePlanner {
            open: open
                .iter()
                .map(|o| Open {
                    key: o.key.clone(),
                    message: MessageRef::Stored(MessageId(o.message)),
                    recipients: o.recipients.clone(),
                    last_row: o.last_row,
                })
                .collect(),
        }
    }

    /// Adds row `row` (for `recipient`, with raw `text`) to `batch`.
    pub(crate) fn place(
        &mut self,
        row: u64,
        recipient: UserId,
        text: &str,
        chat: Chat,
        sent_at_ms: i64,
        batch: &mut ImportBatch,
    ) {
        let Some(group) = chat.group else {
            batch.messages.push(ImportedMessage {
                sender: chat.sender,
                target: Target::User(recipient),
                body: chat.body,
                sent_at_ms,
            });
            batch.deliveries.push(ImportedDelivery {
                to: recipient,
                message: MessageRef::InBatch(batch.messages.len() - 1),
            });
            return;
        };
        self.open
            .retain(|o| row.saturating_sub(o.last_row) <= GROUP_ROWS_WINDOW);
        let key = hex(&Sha256::digest(text.as_bytes()));
        let joined = self
            .open
            .iter_mut()
            .find(|o| o.key == key && !o.recipients.contains(&recipient.0));
        let message = match joined {
            Some(open) => {
                open.recipients.insert(recipient.0);
                open.last_row = row;
                open.message
            }
            None => {
                batch.messages.push(ImportedMessage {
                    sender: chat.sender,
                    target: Target::Group(group),
                    body: chat.body,
                    sent_at_ms,
                });
                let message = MessageRef::InBatch(batch.messages.len() - 1);
                self.open.push(Open {
                    key,
                    message,
                    recipients: BTreeSet::from([recipient.0]),
                    last_row: row,
                });
                message
            }
        };
        batch.deliveries.push(ImportedDelivery {
            to: recipient,
            message,
        });
    }

    /// The open messages as a checkpoint records them, once the batch's
    /// new messages got `ids`.
    pub(crate) fn checkpoint(&self, ids: &[MessageId]) -> Vec<OpenGroupMessage> {
        self.open
            .iter()
            .map(|o| OpenGroupMessage {
                key: o.key.clone(),
                message: stored(o.message, ids).0,
                recipients: o.recipients.clone(),
                last_row: o.last_row,
            })
            .collect()
    }

    /// The batch was committed and its new messages got `ids`.
    pub(crate) fn committed(&mut self, ids: &[MessageId]) {
        for open in &mut self.open {
            open.message = MessageRef::Stored(stored(open.message, ids));
        }
    }
}

fn stored(message: MessageRef, ids: &[MessageId]) -> MessageId {
    match message {
        MessageRef::Stored(id) => id,
        // The store returns one id per message of the batch.
        MessageRef::InBatch(i) => ids.get(i).copied().unwrap_or(MessageId(0)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_row(sender: i64, group: i64, msg: &str) -> String {
        format!(
            r#"{{"groupid":{group},"id":{sender},"msg":"{msg}","msgid":9,"name":"n","time":"2024-01-01 12:00:00"}}"#
        )
    }

    fn one_row(sender: i64, to: i64, msg: &str) -> String {
        format!(
            r#"{{"id":{sender},"msg":"{msg}","msgid":5,"name":"n","time":"2024-01-01 12:00:00","toid":{to}}}"#
        )
    }

    /// Offline rows (recipient, text) of a seed: a group message to 2, 3
    /// and 4 with a one-to-one message to 3 between its rows, the same
    /// text sent to the group again, and a group message to 2 alone.
    fn rows() -> Vec<(i64, String)> {
        vec![
            (2, group_row(1, 7, "hi all")),
            (3, group_row(1, 7, "hi all")),
            (3, one_row(5, 3, "psst")),
            (4, group_row(1, 7, "hi all")),
            (2, group_row(1, 7, "hi all")),
            (3, group_row(1, 7, "hi all")),
            (2, group_row(6, 7, "me too")),
        ]
    }

    /// Runs the planner over `rows`, committing (with made-up ids, as a
    /// store would hand them out) and checkpointing every `every` rows;
    /// returns each recipient's inbox as (message number, body).
    fn inboxes(every: usize) -> Vec<(i64, i64, String)> {
        let mut next_id = 100;
        let mut bodies = std::collections::BTreeMap::new();
        let mut inbox = Vec::new();
        let mut planner = MessagePlanner::default();
        let mut batch = ImportBatch::default();
        let rows = rows();
        for (row, (to, text)) in rows.iter().enumerate() {
            let chat = read_chat(text, 0, None, 1000).expect("a chat");
            planner.place(row as u64, UserId(*to), text, chat, 0, &mut batch);
            if (row + 1) % every == 0 || row + 1 == rows.len() {
                let ids: Vec<MessageId> = batch
                    .messages
                    .iter()
                    .map(|m| {
                        next_id += 1;
                        bodies.insert(next_id, m.body.clone());
                        MessageId(next_id)
                    })
                    .collect();
                for d in &batch.deliveries {
                    inbox.push((d.to.0, stored(d.message, &ids).0));
                }
                // What a later run would resume from.
                let open = planner.checkpoint(&ids);
                let text = serde_json::to_string(&open).expect("json");
                planner =
                    MessagePlanner::resume(&serde_json::from_str::<Vec<_>>(&text).expect("json"));
                batch = ImportBatch::default();
            }
        }
        inbox
            .into_iter()
            .map(|(to, id)| (to, id, bodies[&id].clone()))
            .collect()
    }

    #[test]
    fn a_group_message_stored_per_member_is_one_message_and_repeats_stay_apart() {
        let whole = inboxes(usize::MAX);
        let ids: Vec<i64> = whole.iter().map(|(_, id, _)| *id).collect();
        // Rows 0, 1, 3 are one message; rows 4 and 5 (2 and 3 again) the
        // second sending of the same text.
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[3]);
        assert_ne!(ids[2], ids[0]);
        assert_eq!(ids[4], ids[5]);
        assert_ne!(ids[4], ids[0]);
        assert_ne!(ids[6], ids[4]);
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), 4);
        // Each recipient's inbox keeps the rows' order.
        let of = |user: i64| -> Vec<String> {
            whole
                .iter()
                .filter(|(to, _, _)| *to == user)
                .map(|(_, _, body)| body.clone())
                .collect()
        };
        assert_eq!(of(3), ["hi all", "psst", "hi all"]);
        assert_eq!(of(2), ["hi all", "hi all", "me too"]);
    }

    #[test]
    fn resuming_after_any_row_plans_the_same_messages() {
        let whole = inboxes(usize::MAX);
        // Message ids differ with the batching; which rows share one must not.
        let shape = |inbox: &[(i64, i64, String)]| -> Vec<usize> {
            let mut seen = Vec::new();
            inbox
                .iter()
                .map(|(_, id, _)| {
                    if !seen.contains(id) {
                        seen.push(*id);
                    }
                    seen.iter().position(|s| s == id).unwrap_or_default()
                })
                .collect()
        };
        for every in 1..=rows().len() {
            let split = inboxes(every);
            assert_eq!(
                shape(&split),
                shape(&whole),
                "checkpoint every {every} rows"
            );
        }
    }

    #[test]
    fn group_rows_too_far_apart_are_two_messages() {
        let text = group_row(1, 7, "x");
        let chat = || read_chat(&text, 0, None, 100).expect("chat");
        let mut planner = MessagePlanner::default();
        let mut batch = ImportBatch::default();
        planner.place(0, UserId(2), &text, chat(), 0, &mut batch);
        planner.place(GROUP_ROWS_WINDOW, UserId(3), &text, chat(), 0, &mut batch);
        planner.place(
            2 * GROUP_ROWS_WINDOW + 1,
            UserId(4),
            &text,
            chat(),
            0,
            &mut batch,
        );
        assert_eq!(batch.messages.len(), 2);
    }

    #[test]
    fn offline_rows_are_read_or_skipped_with_their_reason() {
        let chat = read_chat(&one_row(1, 2, "你好"), 0, None, 100).expect("chat");
        assert_eq!(chat.sender, UserId(1));
        assert_eq!(chat.group, None);
        assert_eq!(chat.body, "你好");
        assert_eq!(chat.sent_at_ms, seed_time_ms("2024-01-01 12:00:00"));
        assert!(chat.sent_at_ms.is_some());
        assert_eq!(
            read_chat("hello", 5, Some(500), 100),
            Err(Skip::MessageNotJson)
        );
        assert_eq!(
            read_chat(r#"{"id":1,"msg":"abc"#, 500, Some(500), 100),
            Err(Skip::MessageCutOff)
        );
        assert_eq!(
            read_chat(r#"{"msg":"no sender"}"#, 17, Some(500), 100),
            Err(Skip::MessageNotChat)
        );
        assert_eq!(
            read_chat(&one_row(1, 2, "too long"), 0, None, 3),
            Err(Skip::MessageTooLong)
        );
        let untimed =
            read_chat(r#"{"id":1,"msg":"m","time":"yesterday"}"#, 0, None, 100).expect("chat");
        assert_eq!(untimed.sent_at_ms, None);
    }

    #[test]
    fn seed_times_are_local_times() {
        let ms = seed_time_ms("2024-03-05 06:07:08").expect("a time");
        assert_eq!(chatcore::protocol::format_time(ms), "2024-03-05 06:07:08");
        assert_eq!(seed_time_ms("2024-13-05 06:07:08"), None);
    }
}
