//! The `Hub`: this node's logged-in sessions, and the loop that hands bus
//! events to them. The map holds only senders and controls; each
//! connection task owns its socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusEvent, BusReceiver};
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

/// The hub's side channel to one session: end it, or tell it to refill
/// from the store because doorbells were dropped.
#[derive(Debug, Default)]
pub struct SessionControl {
    ended: CancellationToken,
    reason: OnceLock<ErrorCode>,
    refill: AtomicBool,
    wake: Notify,
}

impl SessionControl {
    /// Ends the session for `reason` (the first reason given wins).
    pub fn end(&self, reason: ErrorCode) {
        let _ = self.reason.set(reason);
        self.ended.cancel();
    }

    /// Resolves once the session has been ended.
    pub async fn ended(&self) {
        self.ended.cancelled().await
    }

    /// Why the session was ended.
    pub fn reason(&self) -> Option<ErrorCode> {
        self.reason.get().copied()
    }

    /// Asks the session to refill its inbox from the store.
    pub fn request_refill(&self) {
        self.refill.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Resolves when a refill was requested, and clears the request.
    pub async fn refill_requested(&self) {
        loop {
            if self.refill.swap(false, Ordering::AcqRel) {
                return;
            }
            self.wake.notified().await;
        }
    }
}

/// A session as the hub knows it.
#[derive(Debug, Clone)]
pub struct LocalSession {
    pub id: SessionId,
    pub outbox: mpsc::Sender<SessionEvent>,
    pub control: Arc<SessionControl>,
}

/// This node's sessions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
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
    pub fn new(bus: Arc<dyn Bus>, lease: Lease) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                bus,
                lease,
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The bus this hub subscribes on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<UserId, Vec<LocalSession>>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a session of `user`, subscribing to the user's events.
    pub fn register(&self, user: UserId, session: LocalSession) {
        let mut sessions = self.sessions();
        let list = sessions.entry(user).or_default();
        if list.is_empty() {
            self.inner.bus.subscribe(user);
            telemetry::user_logged_in(true);
        }
        list.push(session);
    }

    /// Removes a session; the last one of a user unsubscribes.
    pub fn unregister(&self, user: UserId, id: SessionId) {
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
    pub fn len(&self) -> usize {
        self.sessions().values().map(Vec::len).sum()
    }

    /// True when this node holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends one session of `user`, if this node holds it.
    pub fn end(&self, user: UserId, session: SessionId, reason: ErrorCode) {
        for local in self.sessions().get(&user).into_iter().flatten() {
            if local.id == session {
                local.control.end(reason);
            }
        }
    }

    /// Ends every session of this node.
    pub fn end_all(&self, reason: ErrorCode) {
        for local in self.sessions().values().flatten() {
            local.control.end(reason);
        }
    }

    /// Hands one bus event to the sessions it concerns.
    pub fn dispatch(&self, event: BusEvent) {
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
            BusEvent::Kick { user, session } => {
                drop(sessions);
                self.end(user, session, ErrorCode::Kicked);
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

    /// Hands every event from `events` to local sessions until the bus
    /// closes or `shutdown` fires.
    pub async fn run(self, mut events: BusReceiver, shutdown: CancellationToken) {
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
