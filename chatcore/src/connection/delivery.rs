//! Delivery to one live session, driven by one number, `delivered`: the
//! highest inbox `seq` written to the client. A doorbell for
//! `delivered + 1` is written at once; an older one is dropped; a newer
//! one (a gap) or a refill request reads the store from `delivered`
//! onwards. Login sync is the same mechanism starting from the acked
//! cursor. Legacy clients never ack, so for them what was written is the
//! acked cursor.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::presence::ShownPresence;
use super::transport::Transport;
use super::writer::Writer;
use crate::hub::{SessionEvent, SessionFeed};
use crate::model::{InboxEntry, Message, Seq};
use crate::protocol::{Dialect, ServerFrame, msgid};
use crate::service::{ChatService, Session};
use crate::telemetry::{self, DeliveryPath};

/// How long a failed refill waits before it is tried again.
const REFILL_RETRY: Duration = Duration::from_secs(1);

/// A logged-in connection: its session, what the hub feeds it, and how
/// far its inbox has been written.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) session: Session,
    pub(super) feed: SessionFeed,
    delivered: Seq,
    /// When a refill that failed is tried again.
    retry_refill_at: Option<Instant>,
    /// Friends' presence as the client was shown it (native only).
    pub(super) presence: ShownPresence,
}

/// Of a batch of doorbells, the run that continues `delivered` without a
/// hole, and whether a hole came after it.
fn in_order(delivered: Seq, batch: Vec<SessionEvent>) -> (Vec<(Seq, Arc<Message>)>, bool) {
    let mut expected = delivered.next();
    let mut pushes = Vec::with_capacity(batch.len());
    for SessionEvent::Deliver { seq, message } in batch {
        if seq < expected {
            continue; // already written (by a refill)
        }
        if seq > expected {
            return (pushes, true);
        }
        pushes.push((seq, message));
        expected = seq.next();
    }
    (pushes, false)
}

impl Live {
    /// A session whose inbox was acked up to `cursor`, whose client was
    /// shown `presence`.
    pub(super) fn new(
        session: Session,
        feed: SessionFeed,
        cursor: Seq,
        presence: ShownPresence,
    ) -> Live {
        Live {
            session,
            feed,
            delivered: cursor,
            retry_refill_at: None,
            presence,
        }
    }

    /// Shows the client the presence changes the hub gathered (a legacy
    /// client has nowhere to show them).
    pub(super) async fn show_presence<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
    ) -> io::Result<()> {
        let changes = self.feed.presence_changes();
        if self.dialect() != Dialect::Native {
            return Ok(());
        }
        self.presence.update(service, out, changes).await
    }

    pub(super) fn dialect(&self) -> Dialect {
        self.session.dialect()
    }

    /// When a failed refill is due again, if one failed.
    pub(super) fn retry_refill_at(&self) -> Option<Instant> {
        self.retry_refill_at
    }

    /// Records that everything up to `seq` is written.
    pub(super) async fn advance(&mut self, service: &ChatService, seq: Seq) {
        self.delivered = seq;
        if self.dialect() == Dialect::Legacy
            && let Err(e) = service.mark_delivered(&self.session, seq).await
        {
            tracing::warn!(error = %e, "could not record legacy delivery");
        }
    }

    /// Writes the pushes that continue `delivered`, in order, and
    /// advances it.
    async fn write_pushes<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
        pushes: Vec<(Seq, Arc<Message>)>,
        path: DeliveryPath,
    ) -> io::Result<()> {
        let dialect = self.dialect();
        let mut last = self.delivered;
        let (mut one_to_one, mut group) = (0, 0);
        for (seq, message) in pushes {
            if seq != last.next() {
                continue;
            }
            match telemetry::push_msgid(&message) {
                msgid::GROUP_CHAT => group += 1,
                _ => one_to_one += 1,
            }
            ServerFrame::Push { seq, message }.encode(dialect, out.buffer());
            last = seq;
        }
        telemetry::frames_out(msgid::ONE_CHAT, one_to_one);
        telemetry::frames_out(msgid::GROUP_CHAT, group);
        telemetry::deliveries(path, one_to_one + group);
        out.flush(dialect).await?;
        if last != self.delivered {
            self.advance(service, last).await;
        }
        Ok(())
    }

    /// Writes inbox entries read from the store.
    pub(super) async fn write_entries<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
        entries: &[InboxEntry],
    ) -> io::Result<()> {
        let pushes = entries
            .iter()
            .map(|e| (e.seq, Arc::new(e.message.clone())))
            .collect();
        self.write_pushes(service, out, pushes, DeliveryPath::Store)
            .await
    }

    /// Writes live deliveries; a gap switches to a refill from the store.
    pub(super) async fn deliver<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
        batch: Vec<SessionEvent>,
    ) -> io::Result<()> {
        let (pushes, gap) = in_order(self.delivered, batch);
        self.write_pushes(service, out, pushes, DeliveryPath::Live)
            .await?;
        if gap {
            self.refill(service, out).await?;
        }
        Ok(())
    }

    /// Reads the inbox from `delivered` until it is exhausted; a store
    /// failure is retried later ([`Live::retry_refill_at`]).
    pub(super) async fn refill<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
    ) -> io::Result<()> {
        self.retry_refill_at = None;
        loop {
            let page = match service.inbox_after(&self.session, self.delivered).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "refill failed; retrying");
                    self.retry_refill_at = Some(Instant::now() + REFILL_RETRY);
                    return Ok(());
                }
            };
            let full = page.len() >= service.config().sync_page as usize;
            self.write_entries(service, out, &page).await?;
            if !full {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use bytes::BytesMut;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::connection::FrameError;
    use crate::model::{MessageId, Target, UserId, UserInfo};
    use crate::node::{self, Backends};
    use crate::protocol::{AnonymousRequest, Chat, Login, NATIVE_PROTO, Register, SessionRequest};
    use crate::service::{Caller, HashParams, LoggedIn, Outcome, Passwords, ServiceConfig};
    use crate::store::MemoryStore;

    /// A transport that records what is written and never reads.
    #[derive(Default)]
    struct Recorder {
        written: Vec<u8>,
    }

    impl Transport for Recorder {
        fn recv(&mut self) -> impl Future<Output = Option<Result<BytesMut, FrameError>>> + Send {
            std::future::pending()
        }

        async fn send(&mut self, frames: &[u8], _: Dialect) -> io::Result<()> {
            self.written.extend_from_slice(frames);
            Ok(())
        }

        async fn close(self) {}
    }

    /// The inbox positions of the pushes written, in order.
    fn written_seqs(out: &mut Writer<Recorder>) -> Vec<i64> {
        out.transport()
            .written
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| match ServerFrame::decode(line) {
                Ok(ServerFrame::Push { seq, .. }) => seq.0,
                other => panic!("not a push: {other:?}"),
            })
            .collect()
    }

    const CALLER: Caller = Caller {
        peer: None,
        outbox_capacity: 16,
    };

    async fn logged_in(service: &ChatService, name: &str) -> LoggedIn {
        let register = AnonymousRequest::Register(Register {
            name: name.into(),
            password: "pw".into(),
            proto: Some(NATIVE_PROTO),
        });
        let Outcome::Reply(ServerFrame::RegisterOk { id, .. }) = service
            .handle_anonymous(CALLER, register.dialect(), None, register)
            .await
        else {
            panic!("registered");
        };
        let login = AnonymousRequest::Login(Login {
            id,
            password: "pw".into(),
            proto: Some(NATIVE_PROTO),
        });
        match service
            .handle_anonymous(CALLER, login.dialect(), None, login)
            .await
        {
            Outcome::LoggedIn(login) => *login,
            other => panic!("logged in: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_gap_is_refilled_from_the_store_in_pages_and_stale_doorbells_dropped() {
        let shutdown = CancellationToken::new();
        let config = ServiceConfig {
            sync_page: 2,
            ..ServiceConfig::default()
        };
        let passwords = Passwords::new(HashParams::insecure_fast(), 1).expect("params");
        let service = node::start(
            Backends::local(Arc::new(MemoryStore::new())),
            passwords,
            config,
            &TaskTracker::new(),
            shutdown.clone(),
        );
        let alice = logged_in(&service, "alice").await;
        let bob = logged_in(&service, "bob").await;
        for i in 0..5 {
            let chat = SessionRequest::Chat(Chat {
                id: None,
                target: Target::User(bob.session.user().id),
                msg: format!("m{i}"),
                cmid: None,
            });
            let outcome = service.handle(&alice.session, None, chat).await;
            assert!(matches!(outcome, Outcome::Reply(ServerFrame::ChatAck(_))));
        }
        let mut live = Live::new(
            bob.session,
            bob.feed,
            bob.reply.cursor,
            ShownPresence::default(),
        );
        let mut out = Writer::new(Recorder::default());

        // Doorbell 3 while 1 and 2 were never written: a gap.
        live.deliver(&service, &mut out, vec![doorbell(3)])
            .await
            .expect("written");
        assert_eq!(
            written_seqs(&mut out),
            [1, 2, 3, 4, 5],
            "refilled in pages of 2"
        );
        assert_eq!(live.delivered, Seq(5));

        // A doorbell for what the refill already wrote changes nothing.
        out.transport().written.clear();
        live.deliver(&service, &mut out, vec![doorbell(4)])
            .await
            .expect("written");
        assert!(written_seqs(&mut out).is_empty());
        shutdown.cancel();
    }

    fn doorbell(seq: i64) -> SessionEvent {
        SessionEvent::Deliver {
            seq: Seq(seq),
            message: Arc::new(Message {
                id: MessageId(seq),
                sender: UserInfo {
                    id: UserId(1),
                    name: "alice".into(),
                },
                target: Target::User(UserId(2)),
                body: format!("m{seq}"),
                client_msg_id: None,
                sent_at_ms: 0,
            }),
        }
    }

    fn seqs(pushes: &[(Seq, Arc<Message>)]) -> Vec<i64> {
        pushes.iter().map(|(seq, _)| seq.0).collect()
    }

    #[test]
    fn doorbells_that_continue_the_cursor_are_written_in_order() {
        let (pushes, gap) = in_order(Seq(3), vec![doorbell(4), doorbell(5), doorbell(6)]);
        assert_eq!(seqs(&pushes), [4, 5, 6]);
        assert!(!gap);
    }

    #[test]
    fn doorbells_already_written_are_dropped() {
        let (pushes, gap) = in_order(Seq(5), vec![doorbell(4), doorbell(5), doorbell(6)]);
        assert_eq!(seqs(&pushes), [6]);
        assert!(!gap);
    }

    #[test]
    fn a_hole_stops_the_run_and_asks_for_a_refill() {
        let (pushes, gap) = in_order(Seq(3), vec![doorbell(4), doorbell(6), doorbell(7)]);
        assert_eq!(seqs(&pushes), [4], "nothing past the hole is written");
        assert!(gap);
        let (pushes, gap) = in_order(Seq(3), vec![doorbell(5)]);
        assert!(pushes.is_empty());
        assert!(gap);
    }
}
