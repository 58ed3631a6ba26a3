//! `LocalPresence`: sessions in a map, shared by the nodes of one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Lease, LiveSession, Presence, PresenceError, SessionId};
use crate::model::UserId;

/// One node's handle on an in-process presence. Clones are the same node;
/// [`LocalPresence::join`] gives another node a handle on the same map.
#[derive(Debug, Clone)]
pub struct LocalPresence {
    shared: Arc<Mutex<Shared>>,
    node: u64,
    /// Never runs out until `release_node`.
    lease: Lease,
}

#[derive(Debug, Default)]
struct Shared {
    next_node: u64,
    /// user -> (node that recorded it, session)
    sessions: HashMap<UserId, (u64, SessionId)>,
}

impl Default for LocalPresence {
    fn default() -> Self {
        LocalPresence::new()
    }
}

impl LocalPresence {
    /// Nobody online; the handle of a first node.
    pub fn new() -> LocalPresence {
        LocalPresence::on(Arc::new(Mutex::new(Shared::default())))
    }

    /// A handle for another node on the same presence.
    pub fn join(&self) -> LocalPresence {
        LocalPresence::on(Arc::clone(&self.shared))
    }

    fn on(shared: Arc<Mutex<Shared>>) -> LocalPresence {
        let node = {
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            guard.next_node += 1;
            guard.next_node
        };
        LocalPresence {
            shared,
            node,
            lease: Lease::forever(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn claim(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<Option<SessionId>, PresenceError> {
        if !self.lease.is_valid() {
            return Err(PresenceError::Unavailable("this node has no lease".into()));
        }
        Ok(self
            .lock()
            .sessions
            .insert(user, (self.node, session))
            .map(|(_, previous)| previous))
    }

    async fn release(&self, user: UserId, session: SessionId) -> Result<bool, PresenceError> {
        let mut shared = self.lock();
        let current = shared.sessions.get(&user).map(|&(_, s)| s) == Some(session);
        if current {
            shared.sessions.remove(&user);
        }
        Ok(current)
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        let shared = self.lock();
        Ok(users
            .iter()
            .map(|u| shared.sessions.contains_key(u))
            .collect())
    }

    async fn session_of(&self, user: UserId) -> Result<Option<LiveSession>, PresenceError> {
        Ok(self
            .lock()
            .sessions
            .get(&user)
            .map(|&(node, session)| LiveSession {
                session,
                node: format!("local-{node}"),
            }))
    }

    fn lease(&self) -> Lease {
        self.lease.clone()
    }

    async fn release_node(&self) -> Result<(), PresenceError> {
        self.lease.revoke();
        self.lock()
            .sessions
            .retain(|_, &mut (node, _)| node != self.node);
        Ok(())
    }
}
