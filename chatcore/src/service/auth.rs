//! Register, login (by password or resume token), logout and password
//! change: the only handlers that change who a connection is or how it
//! proves it.

use std::net::IpAddr;
use std::time::Duration;

use super::{Caller, ChatService, LoggedIn, Outcome, ServiceError, Session, now_secs};
use crate::bus::{BusEvent, KickReason};
use crate::limit::LoginKeys;
use crate::model::{InboxEntry, UserId, UserInfo, UserRecord};
use crate::presence::SessionId;
use crate::protocol::{Ack, ChangePassword, FriendEntry, Login, Resume, msgid};
use crate::protocol::{Dialect, ErrorCode, LoginOk, Register, ServerFrame};

/// Whether `name` may name a user or a group: 1 to `max_chars`
/// characters, no surrounding blanks, no control characters. Surrounding
/// blanks are refused rather than trimmed: MySQL's PAD SPACE collations
/// would treat "bob " as "bob" anyway.
pub fn acceptable_name(name: &str, max_chars: usize) -> bool {
    name.trim().len() == name.len()
        && !name.is_empty()
        && name.chars().count() <= max_chars
        && !name.chars().any(char::is_control)
}

impl ChatService {
    pub(super) fn check_name(&self, what: &str, name: &str) -> Result<(), ServiceError> {
        let max = self.inner.config.max_name_chars;
        if !acceptable_name(name, max) {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!(
                    "{what} must be 1 to {max} characters, without surrounding blanks or control characters"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn check_new_password(&self, password: &str) -> Result<(), ServiceError> {
        let max = self.inner.config.max_password_bytes;
        if password.is_empty() || password.len() > max {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!("password must be 1 to {max} bytes"),
            ));
        }
        Ok(())
    }

    pub(super) async fn register(
        &self,
        caller: Caller,
        rid: Option<u64>,
        req: Register,
    ) -> Result<ServerFrame, ServiceError> {
        self.check_name("name", &req.name)?;
        self.check_new_password(&req.password)?;
        // Before the hash, which is what a registration storm would cost.
        if let Err(wait) = self.inner.register_rate.take(caller.peer).await {
            tracing::debug!(address = ?caller.peer, "registration refused by the rate");
            return Err(ServiceError::with_detail(
                ErrorCode::TooManyAttempts,
                format!(
                    "too many registrations from this address; try again in {} s",
                    whole_seconds(wait)
                ),
            ));
        }
        let hash = self.inner.passwords.hash(&req.password).await?;
        let id = self.inner.store.create_user(&req.name, &hash).await?;
        tracing::info!(user = %id, "registered");
        Ok(ServerFrame::RegisterOk { rid, id })
    }

    pub(super) async fn login(
        &self,
        caller: Caller,
        dialect: Dialect,
        rid: Option<u64>,
        req: Login,
    ) -> Result<Outcome, ServiceError> {
        let Some(record) = self
            .authenticate(req.id, caller.peer, &req.password)
            .await?
        else {
            return Err(ServiceError::new(ErrorCode::LoginFailed));
        };
        // After the password, so that only who knows it learns of the ban.
        refuse_banned(&record)?;
        if self.inner.passwords.outdated(&record.password_hash) {
            self.rehash(&record, &req.password).await;
        }
        self.start_session(caller, dialect, rid, record, ErrorCode::LoginFailed)
            .await
    }

    /// Refuses a login attempt for `keys` while the guard holds them back.
    async fn check_guard(&self, keys: LoginKeys) -> Result<(), ServiceError> {
        self.inner
            .login_guard
            .check(keys)
            .await
            .map_err(|wait| {
                tracing::debug!(user = ?keys.user, address = ?keys.address, "login refused by the guard");
                ServiceError::with_detail(
                    ErrorCode::TooManyAttempts,
                    format!(
                        "too many failed logins; try again in {} s",
                        whole_seconds(wait)
                    ),
                )
            })
    }

    /// The record of `user` when `password` is theirs; `None` for a wrong
    /// password or an unknown user, which take the same time (the hash of
    /// an unknown user is checked against a dummy). Every password check
    /// goes through the login guard: refused while `user` from `address`
    /// (or `address` itself) is held back, counted when it fails; without
    /// an address, `user` alone is.
    async fn authenticate(
        &self,
        user: UserId,
        address: Option<IpAddr>,
        password: &str,
    ) -> Result<Option<UserRecord>, ServiceError> {
        let keys = LoginKeys {
            user: Some(user),
            address,
        };
        // Before the hash: a refusal must cost next to nothing, or the
        // guard would not protect the hashing pool.
        self.check_guard(keys).await?;
        let record = self.inner.store.user(user).await?;
        let hash = record.as_ref().map(|r| r.password_hash.as_str());
        let matches = self.inner.passwords.verify(password, hash).await?;
        let record = record.filter(|_| matches);
        if record.is_some() {
            self.inner.login_guard.succeeded(keys).await;
        } else {
            self.inner.login_guard.failed(keys).await;
        }
        Ok(record)
    }

    /// Hashes `password` again with the current parameters, in place of
    /// the outdated hash of `record` (raising `--argon2-*` reaches every
    /// account at its next login). The login goes on whatever happens.
    async fn rehash(&self, record: &UserRecord, password: &str) {
        let user = record.id;
        let rehashed = match self.inner.passwords.hash(password).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(error = %e, %user, "password not rehashed");
                return;
            }
        };
        match self
            .inner
            .store
            .rehash_password(user, &record.password_hash, &rehashed)
            .await
        {
            Ok(true) => tracing::info!(%user, "password hash upgraded to the current parameters"),
            Ok(false) => tracing::debug!(%user, "password changed meanwhile; not rehashed"),
            Err(e) => tracing::warn!(error = %e, %user, "password not rehashed"),
        }
    }

    /// Login with a resume token: no password hash to check, so a whole
    /// node's users can come back at once. The login guard plays no part:
    /// a valid token is a MAC nobody can guess and costs no hash, so it
    /// goes through any lock (a user whose password is being guessed
    /// still gets back in with it), and a refused one is not counted
    /// (clients holding a revoked token are normal).
    pub(super) async fn resume(
        &self,
        caller: Caller,
        rid: Option<u64>,
        req: Resume,
    ) -> Result<Outcome, ServiceError> {
        let rejected = || ServiceError::new(ErrorCode::ResumeRejected);
        let claims = self
            .inner
            .config
            .resume
            .verify(&req.token, now_secs())
            .map_err(|reason| {
                tracing::debug!(%reason, "resume token refused");
                rejected()
            })?;
        // A logout or password change since the token was issued moved the
        // epoch on: the token is revoked.
        let record = self
            .inner
            .store
            .user(claims.user)
            .await?
            .filter(|r| r.token_epoch == claims.epoch)
            .ok_or_else(rejected)?;
        refuse_banned(&record)?;
        // Only native clients ever get a token.
        self.start_session(
            caller,
            Dialect::Native,
            rid,
            record,
            ErrorCode::ResumeRejected,
        )
        .await
    }

    /// Makes the caller the session of the user in `record`, whose
    /// credentials the caller checked; `stale` is the refusal when the
    /// credentials were revoked meanwhile.
    async fn start_session(
        &self,
        caller: Caller,
        dialect: Dialect,
        rid: Option<u64>,
        record: UserRecord,
        stale: ErrorCode,
    ) -> Result<Outcome, ServiceError> {
        let token_epoch = record.token_epoch;
        let user = UserInfo {
            id: record.id,
            name: record.name,
        };
        let session = Session {
            user: user.clone(),
            id: SessionId::generate(),
            dialect,
            peer: caller.peer,
        };
        // Register locally before claiming, so a kick aimed at this session
        // by a later login always finds it.
        let feed = self
            .inner
            .hub
            .register(user.id, session.id, caller.outbox_capacity);
        let claimed = self
            .claim_and_describe(&session, rid, token_epoch, stale)
            .await;
        let (mut reply, backlog) = match claimed {
            Ok(described) => described,
            Err(e) => {
                self.inner.hub.unregister(user.id, session.id);
                let _ = self.inner.presence.release(user.id, session.id).await;
                return Err(e);
            }
        };
        let online_friends = reply.friends.iter().filter(|f| f.online);
        self.announce(user.id, online_friends.map(|f| f.user.id))
            .await;
        if dialect == Dialect::Native {
            let resume = &self.inner.config.resume;
            reply.resume = Some(resume.issue(user.id, token_epoch, now_secs()));
        }
        tracing::info!(user = %user.id, session = %session.id, ?dialect, "logged in");
        Ok(Outcome::LoggedIn(Box::new(LoggedIn {
            session,
            feed,
            reply,
            backlog,
        })))
    }

    /// Makes `session` the user's one session (kicking the one it replaces)
    /// and gathers what the login reply shows.
    ///
    /// The account is read once more after the claim: an administrator
    /// who bans, deletes or resets the user stores that first and then
    /// ends whatever session presence names, so a login that read the
    /// account before the change either claimed in time to be ended, or
    /// sees the change here. `token_epoch` is the epoch the login's
    /// credentials were checked at; `stale` the refusal when it moved on.
    async fn claim_and_describe(
        &self,
        session: &Session,
        rid: Option<u64>,
        token_epoch: u64,
        stale: ErrorCode,
    ) -> Result<(LoginOk, Vec<InboxEntry>), ServiceError> {
        let user = session.user.id;
        if let Some(previous) = self.inner.presence.claim(user, session.id).await? {
            let kick = BusEvent::Kick {
                user,
                session: previous,
                reason: KickReason::Replaced,
            };
            if let Err(e) = self.inner.bus.publish(vec![kick]).await {
                tracing::warn!(error = %e, %user, "could not kick the previous session");
            }
        }
        match self.inner.store.user(user).await? {
            None => return Err(ServiceError::new(stale)),
            Some(current) => {
                refuse_banned(&current)?;
                if current.token_epoch != token_epoch {
                    return Err(ServiceError::new(stale));
                }
            }
        }
        let friends = self.friend_entries(user).await?;
        let groups = self.group_entries(user).await?;
        let store = &self.inner.store;
        let cursor = store.cursor(user).await?;
        let backlog = store
            .inbox_after(user, cursor, self.inner.config.sync_page)
            .await?;
        let reply = LoginOk {
            rid,
            user: session.user.clone(),
            friends,
            groups,
            cursor,
            resume: None,
        };
        Ok((reply, backlog))
    }

    /// Replaces the password after checking the current one, and revokes
    /// every resume token; native clients get a fresh one in the ack.
    pub(super) async fn change_password(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: ChangePassword,
    ) -> Result<ServerFrame, ServiceError> {
        self.check_new_password(&req.new)?;
        let user = session.user.id;
        // Through the guard, as a login from the session's address, so
        // that a stolen session is no free password oracle.
        if self
            .authenticate(user, session.peer, &req.old)
            .await?
            .is_none()
        {
            return Err(ServiceError::with_detail(
                ErrorCode::LoginFailed,
                "the current password is wrong",
            ));
        }
        let hash = self.inner.passwords.hash(&req.new).await?;
        let epoch = self.inner.store.set_password(user, &hash).await?;
        tracing::info!(%user, "password changed");
        let resume = (session.dialect == Dialect::Native)
            .then(|| self.inner.config.resume.issue(user, epoch, now_secs()));
        Ok(ServerFrame::Ack(Ack {
            rid,
            req: msgid::CHANGE_PASSWORD,
            groupid: None,
            seq: None,
            resume,
            mid: None,
        }))
    }

    /// Friends of `user` with their presence.
    pub(super) async fn friend_entries(
        &self,
        user: UserId,
    ) -> Result<Vec<FriendEntry>, ServiceError> {
        let friends = self.inner.store.friends(user).await?;
        let ids: Vec<_> = friends.iter().map(|f| f.id).collect();
        let online = self.inner.presence.online(&ids).await?;
        Ok(friends
            .into_iter()
            .zip(online)
            .map(|(user, online)| FriendEntry { user, online })
            .collect())
    }
}

/// Refuses a banned account's login.
fn refuse_banned(record: &UserRecord) -> Result<(), ServiceError> {
    if record.banned_at_ms.is_some() {
        tracing::info!(user = %record.id, "login of a banned account refused");
        return Err(ServiceError::new(ErrorCode::Banned));
    }
    Ok(())
}

/// `wait` in seconds, rounded up so that a client waiting that long is not
/// refused again.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
