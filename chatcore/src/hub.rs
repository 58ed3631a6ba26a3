//! The `Hub`: this node's logged-in sessions, and the loop that hands bus
//! events to them. The map holds only senders and controls; each
//! connection task owns its socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusEvent, BusReceiver, KickReason};
use crate::model::{Message, Seq, UserId};
use crate::presence::{Lease, SessionId};
use crate::protocol::ErrorCode;
use crate::telemetry;

/// Something for one session's connection to write.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// Inbox entry `seq` of the session's user.
    Deliver { seq: Seq, message: Arc<Message> },
}

/// Most friends whose presence changes a session keeps apart; beyond
/// them it reads all its friends' presence again.
const PRESENCE_CHANGES: usize = 64;

/// Whose presence a session should read again, gathered until its
/// connection looks: a friend who logs in and out twice meanwhile is read
/// once, and nothing waits for the connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct PresenceChanges {
    /// These friends' sessions started or ended.
    pub(crate) friends: Vec<UserId>,
    /// Some node died: every friend shown online may be offline now.
    pub(crate) all: bool,
}

impl PresenceChanges {
    fn is_empty(&self) -> bool {
        self.friends.is_empty() && !self.all
    }

    fn add(&mut self, friend: UserId) {
        if self.all || self.friends.contains(&friend) {
            return;
        }
        if self.friends.len() >= PRESENCE_CHANGES {
            self.friends = Vec::new();
            self.all = true;
        } else {
            self.friends.push(friend);
        }
    }
}

/// The hub's side channel to one session: end it, tell it to refill from
/// the store because doorbells were dropped, or to show friends' presence.
#[derive(Debug, Default)]
struct SessionControl {
    ended: CancellationToken,
    reason: OnceLock<ErrorCode>,
    refill: AtomicBool,
    presence: Mutex<PresenceChanges>,
    wake: Notify,
}

impl SessionControl {
    /// Ends the session for `reason` (the first reason given wins).
    fn end(&self, reason: ErrorCode) {
        let _ = self.reason.set(reason);
        self.ended.cancel();
    }

    /// Resolves once the session has been ended.
    async fn ended(&self) {
        self.ended.cancelled().await
    }

    /// Why the session was ended.
    fn reason(&self) -> Option<ErrorCode> {
        self.reason.get().copied()
    }

    /// Asks the session to refill its inbox from the store.
    fn request_refill(&self) {
        self.refill.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn presence(&self) -> MutexGuard<'_, PresenceChanges> {
        self.presence.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the session that `friend`'s presence changed, or (`None`)
    /// that any friend's may have.
    fn presence_changed(&self, friend: Option<UserId>) {
        match friend {
            Some(friend) => self.presence().add(friend),
            None => self.presence().all = true,
        }
        self.wake.notify_one();
    }

    /// Resolves when a refill or a look at presence was asked for, and
    /// clears the refill request (presence changes are taken apart).
    async fn requested(&self) -> FeedEvent {
        loop {
            if self.refill.swap(false, Ordering::AcqRel) {
                return FeedEvent::Refill;
            }
            if !self.presence().is_empty() {
                return FeedEvent::Presence;
            }
            self.wake.notified().await;
        }
    }
}

/// A session as the hub knows it: where its deliveries go.
#[derive(Debug, Clone)]
struct LocalSession {
    id: SessionId,
    outbox: mpsc::Sender<SessionEvent>,
    control: Arc<SessionControl>,
}

/// What one session's connection reads from the hub: its live deliveries
/// (a bounded queue) and the hub's orders (end, refill). Made at login;
/// dropping it drops whatever was still queued.
#[derive(Debug)]
pub struct SessionFeed {
    events: mpsc::Receiver<SessionEvent>,
    control: Arc<SessionControl>,
}

/// What the hub has for a session, by priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedEvent {
    /// The session ends, for this reason.
    Ended(ErrorCode),
    /// Deliveries were put in the caller's batch.
    Deliveries,
    /// Doorbells were dropped: read the inbox from the store.
    Refill,
    /// Friends' presence changed: see [`SessionFeed::presence_changes`].
    Presence,
}

impl SessionFeed {
    /// The next delivery, for an embedder that drives sessions itself;
    /// `None` once the hub let go of the session.
    pub async fn recv(&mut self) -> Option<SessionEvent> {
        self.events.recv().await
    }

    /// Waits for the next thing the hub has for the session: its end
    /// first, then deliveries (up to `limit`, into `batch`), then refill
    /// requests.
    pub(crate) async fn next(&mut self, batch: &mut Vec<SessionEvent>, limit: usize) -> FeedEvent {
        let ended = |control: &SessionControl| {
            FeedEvent::Ended(control.reason().unwrap_or(ErrorCode::Kicked))
        };
        tokio::select! {
            biased;
            _ = self.control.ended() => ended(&self.control),
            received = self.events.recv_many(batch, limit) => {
                if received == 0 {
                    // The hub let go of the session.
                    ended(&self.control)
                } else {
                    FeedEvent::Deliveries
                }
            }
            requested = self.control.requested() => requested,
        }
    }

    /// The friends whose presence changed since the last call.
    pub(crate) fn presence_changes(&mut self) -> PresenceChanges {
        std::mem::take(&mut *self.control.presence())
    }
}

/// This node's sessions; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    bus: Arc<dyn Bus>,
    lease: Lease,
    sessions: Mutex<HashMap<UserId, Vec<LocalSession>>>,
}

impl Hub {
    /// A hub with no sessions, publishing on and subscribing to `bus`,
    /// delivering only while `lease` holds.
    pub(crate) fn new(bus: Arc<dyn Bus>, lease: Lease) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                bus,
                lease,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<UserId, Vec<LocalSession>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds session `id` of `user`, subscribing to the user's events, and
    /// returns what its connection reads: deliveries queue up to
    /// `capacity`, and beyond that the session refills from the store.
    pub(crate) fn register(&self, user: UserId, id: SessionId, capacity: usize) -> SessionFeed {
        let (outbox, events) = mpsc::channel(capacity.max(1));
        let control = Arc::new(SessionControl::default());
        let mut sessions = self.sessions();
        let list = sessions.entry(user).or_default();
        if list.is_empty() {
            self.inner.bus.subscribe(user);
            telemetry::user_logged_in(true);
        }
        list.push(LocalSession {
            id,
            outbox,
            control: Arc::clone(&control),
        });
        SessionFeed { events, control }
    }

    /// Removes a session; the last one of a user unsubscribes.
    pub(crate) fn unregister(&self, user: UserId, id: SessionId) {
        let mut sessions = self.sessions();
        if let Some(list) = sessions.get_mut(&user) {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                sessions.remove(&user);
                self.inner.bus.unsubscribe(user);
                telemetry::user_logged_in(false);
            }
        }
    }

    /// How many sessions this node holds.
    pub(crate) fn len(&self) -> usize {
        self.sessions().values().map(Vec::len).sum()
    }

    /// Ends one session of `user`, if this node holds it.
    pub(crate) fn end(&self, user: UserId, session: SessionId, reason: ErrorCode) {
        for local in self.sessions().get(&user).into_iter().flatten() {
            if local.id == session {
                local.control.end(reason);
            }
        }
    }

    /// Ends every session of this node.
    pub(crate) fn end_all(&self, reason: ErrorCode) {
        for local in self.sessions().values().flatten() {
            local.control.end(reason);
        }
    }

    /// Hands one bus event to the sessions it concerns.
    pub(crate) fn dispatch(&self, event: BusEvent) {
        if !self.inner.lease.is_valid() {
            // Another node may serve these users now: this one must not
            // deliver. Its clients reconnect and resume from their cursors.
            self.end_all(ErrorCode::Unavailable);
            return;
        }
        let sessions = self.sessions();
        match event {
            BusEvent::Deliver { user, seq, message } => {
                for session in sessions.get(&user).into_iter().flatten() {
                    let event = SessionEvent::Deliver {
                        seq,
                        message: Arc::clone(&message),
                    };
                    if let Err(mpsc::error::TrySendError::Full(_)) = session.outbox.try_send(event)
                    {
                        // The outbox is bounded; the store still has the
                        // message, so the session catches up from there.
                        session.control.request_refill();
                    }
                }
            }
            BusEvent::Kick {
                user,
                session,
                reason,
            } => {
                drop(sessions);
                let code = match reason {
                    KickReason::Replaced => ErrorCode::Kicked,
                    KickReason::Admin => ErrorCode::EndedByAdmin,
                };
                self.end(user, session, code);
            }
            BusEvent::Presence { user, friend } => {
                for session in sessions.get(&user).into_iter().flatten() {
                    session.control.presence_changed(Some(friend));
                }
            }
            BusEvent::Resync { user: Some(user) } => {
                for session in sessions.get(&user).into_iter().flatten() {
                    session.control.request_refill();
                }
            }
            BusEvent::Resync { user: None } => {
                for session in sessions.values().flatten() {
                    session.control.request_refill();
                }
            }
        }
    }

    /// Tells every session that any friend's presence may have changed
    /// (a node died).
    pub(crate) fn presence_changed_everywhere(&self) {
        for session in self.sessions().values().flatten() {
            session.control.presence_changed(None);
        }
    }

    /// Hands every event from `events` to local sessions until the bus
    /// closes or `shutdown` fires.
    pub(crate) async fn run(self, mut events: BusReceiver, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.dispatch(event),
                    None => break,
                },
            }
        }
    }
}
