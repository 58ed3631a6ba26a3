//! What the server sends: the backlog read at login, then pushed messages
//! and events. A message is shown once (one at or below the last `seq` seen
//! is a repeat) and acked.

use chatcore::client::{ChatMessage, Event};
use chatcore::model::Seq;
use chatcore::protocol::ErrorCode;

use super::error::is;
use super::{Flow, Session};
use crate::output::{Notice, Output};

/// Largest `SYNC` page.
const SYNC_PAGE: u32 = 500;
/// Pages read at login before the rest is left to the server's pushes.
const CATCH_UP_PAGES: usize = 20;

impl Session {
    /// Keeps a message unless it is a repeat; returns what to show.
    fn accept(&mut self, message: ChatMessage) -> Option<Output> {
        if let Some(seq) = message.seq {
            if seq <= self.seen {
                tracing::debug!(%seq, seen = %self.seen, "dropping a repeated message");
                return None;
            }
            self.seen = seq;
        }
        self.roster.learn(message.from, &message.name);
        let group = message.groupid.and_then(|g| self.roster.group_name(g));
        Some(Output::Message { message, group })
    }

    /// Reads the inbox after the last `seq` seen and shows it, so that the
    /// backlog is complete before the first command. The server pushes the
    /// same entries too; they are dropped as repeats.
    pub(super) async fn catch_up(&mut self) {
        for _ in 0..CATCH_UP_PAGES {
            let Ok(client) = self.client() else { return };
            match client.sync(self.seen, SYNC_PAGE).await {
                Ok((messages, more)) => {
                    for message in messages {
                        if let Some(output) = self.accept(message) {
                            self.emit(output).await;
                        }
                    }
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "catching up failed; the server's pushes follow");
                    break;
                }
            }
        }
        self.ack().await;
    }

    async fn ack(&self) {
        if let Ok(client) = self.client()
            && self.seen > Seq::ZERO
            && let Err(e) = client.ack(self.seen).await
        {
            tracing::debug!(error = %e, "ack not sent");
        }
    }

    pub(super) async fn on_event(&mut self, event: Event) -> Flow {
        match event {
            Event::Message(message) => {
                if let Some(output) = self.accept(message) {
                    self.emit(output).await;
                    self.ack().await;
                }
            }
            // Logged in elsewhere: reconnecting would kick that session in
            // turn.
            Event::Kicked { errno, errmsg } if is(errno, ErrorCode::Kicked) => {
                self.emit(Output::Notice(Notice::Ended {
                    reason: format!("{errmsg} (not reconnecting, so the two do not take turns)"),
                }))
                .await;
                return Flow::Stop;
            }
            Event::Kicked { errmsg, .. } => self.lost(errmsg).await,
            Event::Error { errno, errmsg } => {
                self.emit(Output::Notice(Notice::ServerError { errno, errmsg }))
                    .await;
            }
            Event::Presence { user, online } => {
                if self.roster.is_friend(user) {
                    self.roster.set_online(user, online);
                    self.publish();
                } else {
                    // Presence of someone not on the list: they befriended
                    // us since it was read. Read it again, for their name
                    // (completion offers it) and their state.
                    self.refresh_friends().await;
                }
                let who = self.roster.user(user);
                self.emit(Output::Notice(Notice::Presence { who, online }))
                    .await;
            }
        }
        Flow::Continue
    }
}
