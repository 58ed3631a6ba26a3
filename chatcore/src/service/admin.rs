//! Administration: what an operator does to an account from outside any
//! session (chatd's admin API): look at it, end its session, ban it, set
//! its password, delete it. Each change is stored first and then ends the
//! user's session wherever presence says it is, with a bus `Kick` as a
//! newer login would; a login racing the change reads the account again
//! after claiming (see `auth.rs`), so it cannot outlive the change.

use super::{ChatService, ServiceError, now_ms};
use crate::bus::{BusEvent, KickReason};
use crate::model::UserId;
use crate::presence::{LiveSession, PresenceError};
use crate::protocol::ErrorCode;
use crate::store::StoreError;

/// An account as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub name: String,
    /// Since when it is banned (milliseconds since the Unix epoch).
    pub banned_at_ms: Option<i64>,
    /// Its live session, wherever in the cluster (at most one today).
    pub sessions: Vec<LiveSession>,
}

/// Why an administrative call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such user (or a deleted one).
    #[error("no such user: {0}")]
    UnknownUser(UserId),
    /// The new password is out of bounds; nothing changed.
    #[error("{0}")]
    InvalidPassword(String),
    /// A backend cannot serve now; the change may be retried (each one
    /// can be repeated safely).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt data.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownUser(id) => AdminError::UnknownUser(id),
            StoreError::Unavailable(detail) => AdminError::Unavailable(detail),
            other => AdminError::Internal(other.to_string()),
        }
    }
}

impl From<PresenceError> for AdminError {
    fn from(e: PresenceError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

impl AdminError {
    /// A refusal of the service's (the password hashing pool's).
    fn refused(e: ServiceError) -> AdminError {
        match e.code {
            ErrorCode::Unavailable => AdminError::Unavailable(e.detail),
            _ => AdminError::Internal(e.detail),
        }
    }
}

impl ChatService {
    /// The account of `user` and its live sessions across the cluster.
    pub async fn account(&self, user: UserId) -> Result<Account, AdminError> {
        let record = self
            .inner
            .store
            .user(user)
            .await?
            .ok_or(AdminError::UnknownUser(user))?;
        let sessions = self.inner.presence.session_of(user).await?;
        Ok(Account {
            id: record.id,
            name: record.name,
            banned_at_ms: record.banned_at_ms,
            sessions: sessions.into_iter().collect(),
        })
    }

    /// Ends every session of `user` in the cluster (its clients may log
    /// in again); returns the sessions it ended.
    pub async fn kick(&self, user: UserId) -> Result<Vec<LiveSession>, AdminError> {
        if self.inner.store.user(user).await?.is_none() {
            return Err(AdminError::UnknownUser(user));
        }
        self.end_sessions_of(user).await
    }

    /// Bans `user`: no login or resume on any node from now on (every
    /// node reads the account at each login; nothing caches it), its
    /// resume tokens revoked, its session ended.
    pub async fn ban(&self, user: UserId) -> Result<Vec<LiveSession>, AdminError> {
        self.inner.store.set_banned(user, Some(now_ms())).await?;
        self.end_sessions_of(user).await
    }

    /// Lifts the ban of `user`; it logs in with its password again.
    pub async fn unban(&self, user: UserId) -> Result<(), AdminError> {
        self.inner.store.set_banned(user, None).await?;
        Ok(())
    }

    /// Sets the password of `user`, revoking its resume tokens and ending
    /// its session.
    pub async fn reset_password(
        &self,
        user: UserId,
        password: &str,
    ) -> Result<Vec<LiveSession>, AdminError> {
        self.check_new_password(password)
            .map_err(|e| AdminError::InvalidPassword(e.detail))?;
        if self.inner.store.user(user).await?.is_none() {
            // Before the hash, which is what costs.
            return Err(AdminError::UnknownUser(user));
        }
        let hash = self
            .inner
            .passwords
            .hash(password)
            .await
            .map_err(AdminError::refused)?;
        self.inner.store.set_password(user, &hash).await?;
        self.end_sessions_of(user).await
    }

    /// Deletes the account of `user` (see `Store::delete_user` for what
    /// stays) and ends its session.
    pub async fn delete_account(&self, user: UserId) -> Result<Vec<LiveSession>, AdminError> {
        self.inner.store.delete_user(user).await?;
        self.end_sessions_of(user).await
    }

    /// Kicks the session presence names for `user`, with `EndedByAdmin`.
    async fn end_sessions_of(&self, user: UserId) -> Result<Vec<LiveSession>, AdminError> {
        let Some(live) = self.inner.presence.session_of(user).await? else {
            return Ok(Vec::new());
        };
        let kick = BusEvent::Kick {
            user,
            session: live.session,
            reason: KickReason::Admin,
        };
        self.inner
            .bus
            .publish(vec![kick])
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))?;
        Ok(vec![live])
    }
}
