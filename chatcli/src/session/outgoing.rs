//! The outbox: messages the user sends, oldest first, each kept with its
//! `cmid` until the server acks it; after a break they go out again with
//! the same `cmid`, so the server stores each once.

use chatcore::model::Target;
use tokio::sync::oneshot;

use super::Session;
use super::connection::Link;
use super::error::Failure;
use crate::output::{Label, Notice, Output, Reply};

/// A message waiting for the server's ack.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// Client message id: a resend with it is stored once.
    cmid: String,
    target: Target,
    to: Label,
    text: String,
    done: oneshot::Sender<bool>,
}

impl Session {
    /// Queues a message and sends what the queue holds, oldest first.
    pub(super) async fn enqueue(
        &mut self,
        target: Target,
        to: Label,
        text: String,
        done: oneshot::Sender<bool>,
    ) {
        self.outbox.push_back(Outgoing {
            cmid: uuid::Uuid::new_v4().to_string(),
            target,
            to: to.clone(),
            text,
            done,
        });
        if matches!(self.link, Link::Up(_)) {
            self.flush().await;
        } else {
            self.emit(Output::Reply(Reply::Queued { to })).await;
        }
    }

    /// Sends queued messages until the queue is empty or the link breaks;
    /// what is not acked stays queued, with its `cmid`, for the next try.
    pub(super) async fn flush(&mut self) {
        loop {
            let (Link::Up(client), Some(next)) = (&self.link, self.outbox.front()) else {
                return;
            };
            let result = client.send(next.target, &next.text, Some(&next.cmid)).await;
            match result {
                Ok(sent) => {
                    let Some(item) = self.outbox.pop_front() else {
                        return;
                    };
                    tracing::debug!(cmid = %item.cmid, mid = %sent.mid, dup = sent.duplicate, "sent");
                    self.emit(Output::Reply(Reply::Sent {
                        to: item.to,
                        text: item.text,
                        sent,
                    }))
                    .await;
                    let _ = item.done.send(true);
                }
                Err(e) => match Failure::from(e) {
                    Failure::Lost(reason) => {
                        self.lost(reason).await;
                        return;
                    }
                    Failure::Refused(reason) => {
                        let Some(item) = self.outbox.pop_front() else {
                            return;
                        };
                        self.fail(
                            item.done,
                            format!("could not send to {}: {reason}", item.to),
                        )
                        .await;
                    }
                    Failure::Offline => return,
                },
            }
        }
    }

    /// Tells about messages that never reached the server.
    pub(super) async fn drop_outbox(&mut self) {
        let unsent = self.outbox.len();
        if unsent > 0 {
            self.emit(Output::Notice(Notice::Unsent(unsent))).await;
        }
        self.outbox.clear();
    }
}
