//! `LocalPresence`: sessions in a map, shared by the nodes of one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Presence, PresenceError, SessionId};
use crate::model::UserId;

/// In-process presence; clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct LocalPresence {
    sessions: Arc<Mutex<HashMap<UserId, SessionId>>>,
}

impl LocalPresence {
    /// Nobody online.
    pub fn new() -> LocalPresence {
        LocalPresence::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, SessionId>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn claim(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<Option<SessionId>, PresenceError> {
        Ok(self.lock().insert(user, session))
    }

    async fn release(&self, user: UserId, session: SessionId) -> Result<(), PresenceError> {
        let mut sessions = self.lock();
        if sessions.get(&user) == Some(&session) {
            sessions.remove(&user);
        }
        Ok(())
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        let sessions = self.lock();
        Ok(users.iter().map(|u| sessions.contains_key(u)).collect())
    }
}
