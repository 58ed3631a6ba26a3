//! The `Presence` trait: who is online, and the rule of one session per
//! user. Presence feeds friend-list state and kicks; message delivery never
//! depends on it (the inbox has every message).
//!
//! Implementations: [`LocalPresence`] (nodes in one process) and
//! [`RedisPresence`] (a cluster: sessions under node leases in Redis).

mod lease;
mod local;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;

use async_trait::async_trait;
use tokio::sync::watch;

#[cfg(feature = "redis")]
pub use self::redis::{RedisPresence, RedisPresenceConfig};
pub use lease::Lease;
pub use local::LocalPresence;

use crate::model::UserId;

/// One login of one user on one connection, unique across the cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// A new random session id.
    pub fn generate() -> SessionId {
        SessionId(getrandom::u64().expect("the operating system's random source failed"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:016x})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A user's session as presence records it: which node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub session: SessionId,
    /// The holding node's name (`--node-id` of a Redis cluster; `local-N`
    /// for the N-th node of an in-process presence).
    pub node: String,
}

/// Sessions a node must end because presence no longer backs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// The node's lease ran out: every session of the node.
    All,
    /// These sessions: their users logged in elsewhere while the node could
    /// not see it.
    Sessions(Vec<(crate::model::UserId, SessionId)>),
}

/// Why presence could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence unavailable: {0}")]
    Unavailable(String),
}

/// Where sessions are recorded; each node holds its own handle.
///
/// # Behavior
///
/// - `claim` atomically makes `session` the user's one session, whichever
///   node recorded the one before, and returns the session it replaced, if
///   any. Of several racing claims each gets a distinct previous session,
///   so exactly one ends up current and every other one is named as
///   replaced by exactly one claimer. A node whose lease does not hold
///   cannot claim (`Unavailable`): it may no longer hold its users.
/// - `release` removes the user's session only while it is still
///   `session`, and says whether it did: releasing a replaced session does
///   not touch the newer one, and releasing a session that is not recorded
///   changes nothing (`false`).
/// - `online` answers for each entry of `users`, in order (repeats
///   included; no users, no answers), whether the user has a session
///   recorded by a node whose lease holds. A node that stops renewing its
///   lease (it died) has its users offline within one lease TTL, without
///   anybody releasing their sessions.
/// - `session_of` names the user's current session and the node holding
///   it exactly when `online` would say the user is online, and `None`
///   otherwise.
/// - `lease` is this node's lease. It holds from start until the node can
///   no longer renew it or calls `release_node`; an in-process
///   implementation's lease never runs out otherwise.
/// - `release_node` forgets every session this node recorded and its
///   lease, so its users show offline at once; other nodes' sessions stay.
///   It is the last call of a graceful shutdown.
/// - `departures` changes each time this node learns that another node
///   died (its lease ran out without `release_node`): its users are
///   offline now, without anybody releasing them, and whoever shows their
///   presence must look again. Nodes of an in-process implementation never
///   die that way: its receiver never changes.
#[async_trait]
pub trait Presence: Send + Sync + fmt::Debug + 'static {
    /// Records `session` as the user's current session.
    async fn claim(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<Option<SessionId>, PresenceError>;

    /// Forgets `session` if it is still the user's current one; `true` if
    /// it was (the user is offline now).
    async fn release(&self, user: UserId, session: SessionId) -> Result<bool, PresenceError>;

    /// Whether each of `users` is online, in the same order.
    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError>;

    /// The user's current session and its node, while the user is online.
    async fn session_of(&self, user: UserId) -> Result<Option<LiveSession>, PresenceError>;

    /// This node's lease: while it does not hold, the node must not deliver
    /// to its sessions (another node may serve their users now).
    fn lease(&self) -> Lease;

    /// Forgets every session of this node and its lease (graceful
    /// shutdown), so its users show offline at once.
    async fn release_node(&self) -> Result<(), PresenceError>;

    /// Counts the deaths of other nodes this node has seen; it changes with
    /// each one.
    fn departures(&self) -> watch::Receiver<u64> {
        // The sender goes at once: the receiver keeps its first value.
        watch::channel(0).1
    }
}
