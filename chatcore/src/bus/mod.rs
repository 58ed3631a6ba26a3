//! The `Bus` trait: doorbells between nodes. A bus event says "user U has
//! inbox entry S" or "end session X"; it is never the source of truth (the
//! store is), so a lost event delays delivery but loses nothing.
//!
//! Each node holds one endpoint of the bus, which publishes and receives.
//! Implementations: [`LocalBus`] (nodes in one process) and [`RedisBus`]
//! (a cluster, over Redis pub/sub); [`MeteredBus`] wraps either to record
//! publish latencies.

mod local;
mod metered;
#[cfg(feature = "redis")]
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

#[cfg(feature = "redis")]
pub use self::redis::RedisBus;
pub use local::{LocalBroker, LocalBus};
pub use metered::MeteredBus;

use crate::model::{Message, Seq, UserId};
use crate::presence::SessionId;

/// What travels on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusEvent {
    /// `user` has a new inbox entry at `seq` holding `message`.
    Deliver {
        user: UserId,
        seq: Seq,
        message: Arc<Message>,
    },
    /// End `session` of `user`, for `reason`.
    Kick {
        user: UserId,
        session: SessionId,
        reason: KickReason,
    },
    /// `friend`'s session started or ended: `user` shows its presence.
    /// The event carries no state: the receiver reads the current one, so
    /// that events overtaking each other cannot leave a wrong one shown.
    Presence { user: UserId, friend: UserId },
    /// Events for `user` (every user when `None`) may have been missed,
    /// e.g. while a subscription was down: refill from the store.
    Resync { user: Option<UserId> },
}

impl BusEvent {
    /// The doorbells of one stored `message` for `recipients`, each with
    /// its inbox seq.
    pub fn deliveries(
        message: &Arc<Message>,
        recipients: impl IntoIterator<Item = (UserId, Seq)>,
    ) -> impl Iterator<Item = BusEvent> {
        recipients
            .into_iter()
            .map(move |(user, seq)| BusEvent::Deliver {
                user,
                seq,
                message: Arc::clone(message),
            })
    }

    /// The user the event is about, if it is about one.
    pub fn user(&self) -> Option<UserId> {
        match self {
            BusEvent::Deliver { user, .. }
            | BusEvent::Kick { user, .. }
            | BusEvent::Presence { user, .. } => Some(*user),
            BusEvent::Resync { user } => *user,
        }
    }
}

/// Why a session is ended (its client is told which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KickReason {
    /// A newer login of the same user replaced it.
    Replaced,
    /// An administrator ended it (kick, ban, password, deletion).
    Admin,
}

/// Events a node receives from its bus endpoint.
pub type BusReceiver = mpsc::Receiver<BusEvent>;

/// Why the bus could not take an event.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus is unreachable now; the events were not sent. Recipients
    /// find the messages in the store at their next refill.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// One node's endpoint of the bus.
///
/// # Behavior
///
/// - `publish` hands each event to every node that has an interest in the
///   event's user (see `subscribe`), each node receiving the events of one
///   user in publishing order; it does not wait for them to be handled.
/// - `subscribe`/`unsubscribe` only record interest and never block; an
///   implementation that needs I/O to subscribe does it in the background
///   and sends `Resync` for the user once the subscription is live, so that
///   anything published in between is refilled from the store.
/// - Events for users this node has no interest in may still arrive; the
///   node ignores them.
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes events to the nodes interested in their users.
    async fn publish(&self, events: Vec<BusEvent>) -> Result<(), BusError>;

    /// Rings the doorbells of one stored `message` for `recipients` (each
    /// with its inbox `seq`): every node holding one of them receives its
    /// `Deliver` event, as if published with `publish`. An implementation
    /// that can address nodes rather than users does so when that costs
    /// fewer publishes (a group message of 100 members across two nodes:
    /// two, not 100); the default publishes one `Deliver` per recipient.
    ///
    /// Such an implementation must not lose a doorbell to a node it did not
    /// know of: a node whose address was missing when a publish skipped it
    /// is told to `Resync` once it is back, the same way a lost
    /// subscription is.
    async fn publish_deliveries(
        &self,
        message: Arc<Message>,
        recipients: Vec<(UserId, Seq)>,
    ) -> Result<(), BusError> {
        let events = BusEvent::deliveries(&message, recipients).collect();
        self.publish(events).await
    }

    /// Starts receiving this user's events on this endpoint.
    fn subscribe(&self, user: UserId);

    /// Stops receiving this user's events on this endpoint.
    fn unsubscribe(&self, user: UserId);

    /// Checks that this endpoint can publish and receive now, as cheaply as
    /// it can (health checks call it).
    ///
    /// # Behavior
    /// - `Ok` when events published now would reach the nodes;
    ///   `Unavailable` when the bus (or this endpoint's subscription) is
    ///   down. Changes nothing.
    /// - An in-process bus is always reachable (the default).
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}
