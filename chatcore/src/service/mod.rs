//! `ChatService`: one handler per request kind, each returning a typed
//! [`Outcome`]. Handlers never see bytes or sockets and never hold
//! connection state: the connection's state machine feeds them typed
//! requests and acts on what they return.
//!
//! Handlers that need a user take a [`Session`], which only the service
//! makes, at login, so an anonymous connection cannot reach them.

mod admin;
mod auth;
mod chat;
mod conversations;
mod friends;
mod groups;
mod inbox;
mod password;
mod resume;

use std::net::IpAddr;
use std::sync::Arc;

pub use admin::{Account, AdminError};
pub use auth::acceptable_name;
pub use password::{HashParams, Passwords, PasswordsError};
pub use resume::{ResumeConfig, ResumeKey, ResumeKeyError};

use crate::bus::{Bus, BusEvent};
use crate::hub::Hub;
pub use crate::hub::{SessionEvent, SessionFeed};
use crate::limit::{Counters, LoginGuard, LoginGuardConfig, RegisterRate};
use crate::model::{InboxEntry, Seq, UserId, UserInfo};
use crate::presence::{Presence, PresenceError, SessionId};
use crate::protocol::{
    AnonymousRequest, Dialect, ErrorCode, ErrorReply, LoginOk, ServerFrame, SessionRequest, msgid,
};
use crate::store::{CapReached, Store, StoreError};

/// Limits and page sizes of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Inbox entries read per page when syncing.
    pub sync_page: u32,
    /// The largest page a client may ask for in sync and history.
    pub max_page: u32,
    /// Longest user or group name, in characters.
    pub max_name_chars: usize,
    /// Longest password, in bytes.
    pub max_password_bytes: usize,
    /// Longest group description, in characters.
    pub max_desc_chars: usize,
    /// Longest chat message, in bytes.
    pub max_message_bytes: usize,
    /// How resume tokens are signed and how long they last.
    pub resume: ResumeConfig,
    /// When failed logins start to be refused.
    pub login_guard: LoginGuardConfig,
    /// Registrations one address (IPv6: one /64) may make per minute
    /// (errno 18 beyond); 0: no limit.
    pub register_rate: u32,
    /// Most groups one user may belong to (0: no limit).
    pub max_groups_per_user: u32,
    /// Most members one group may have (0: no limit).
    pub max_group_members: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            sync_page: 200,
            max_page: 500,
            max_name_chars: 64,
            max_password_bytes: 128,
            max_desc_chars: 255,
            // Fits a 64 KiB frame with room for the JSON around it.
            max_message_bytes: 60 * 1024,
            resume: ResumeConfig::default(),
            login_guard: LoginGuardConfig::default(),
            register_rate: 0,
            max_groups_per_user: 500,
            max_group_members: 1000,
        }
    }
}

/// A refused request: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub(crate) struct ServiceError {
    pub(crate) code: ErrorCode,
    pub(crate) detail: String,
}

impl ServiceError {
    /// An error with the code's default message.
    pub(crate) fn new(code: ErrorCode) -> ServiceError {
        ServiceError {
            code,
            detail: code.message().to_owned(),
        }
    }

    /// An error with its own message.
    pub(crate) fn with_detail(code: ErrorCode, detail: impl Into<String>) -> ServiceError {
        ServiceError {
            code,
            detail: detail.into(),
        }
    }

    /// A server-side failure: logged in full, reported plainly.
    pub(crate) fn internal(detail: impl Into<String>) -> ServiceError {
        let detail = detail.into();
        tracing::error!(%detail, "internal error");
        ServiceError::new(ErrorCode::Internal)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken => ServiceError::new(ErrorCode::NameTaken),
            StoreError::GroupNameTaken => ServiceError::new(ErrorCode::GroupNameTaken),
            StoreError::UnknownUser(id) => {
                ServiceError::with_detail(ErrorCode::UnknownUser, format!("no such user: {id}"))
            }
            StoreError::UnknownGroup(id) => {
                ServiceError::with_detail(ErrorCode::UnknownGroup, format!("no such group: {id}"))
            }
            StoreError::NotMember { group, .. } => ServiceError::with_detail(
                ErrorCode::NotMember,
                format!("not a member of group {group}"),
            ),
            StoreError::CapReached(cap) => {
                let detail = match cap {
                    CapReached::GroupsPerUser(max) => format!(
                        "you are in {max} groups, the most one user may be in; leave one first"
                    ),
                    CapReached::MembersPerGroup(max) => {
                        format!("the group has {max} members, the most a group may have")
                    }
                };
                ServiceError::with_detail(ErrorCode::LimitReached, detail)
            }
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ServiceError::new(ErrorCode::Unavailable)
            }
            StoreError::Internal(detail) => ServiceError::internal(detail),
        }
    }
}

impl From<PresenceError> for ServiceError {
    fn from(e: PresenceError) -> Self {
        tracing::warn!(error = %e, "presence unavailable");
        ServiceError::new(ErrorCode::Unavailable)
    }
}

/// A logged-in user on one connection. Only the service makes one (at
/// login), so holding one proves the login.
#[derive(Debug, Clone)]
pub struct Session {
    user: UserInfo,
    id: SessionId,
    dialect: Dialect,
    /// The client's address at login, which a wrong current password is
    /// counted under.
    peer: Option<IpAddr>,
}

impl Session {
    /// The logged-in user.
    pub fn user(&self) -> &UserInfo {
        &self.user
    }

    /// This session's id, unique in the cluster.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The dialect chosen at login.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// What the service knows of a connection that is not logged in.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// The client's address, when the transport has one; failed logins are
    /// counted per user and address and per address, registrations per
    /// address.
    pub peer: Option<IpAddr>,
    /// Deliveries queued for the session a login starts, before it must
    /// refill from the store instead.
    pub outbox_capacity: usize,
}

/// A login that succeeded: the connection is now this session.
#[derive(Debug)]
pub struct LoggedIn {
    pub session: Session,
    /// The session's live deliveries and the hub's orders to it.
    pub feed: SessionFeed,
    /// The login reply.
    pub reply: LoginOk,
    /// The first page of the inbox after `reply.cursor`.
    pub backlog: Vec<InboxEntry>,
}

/// What a request came to; the connection acts on it.
#[derive(Debug)]
pub enum Outcome {
    /// Write this frame: a reply, or an error.
    Reply(ServerFrame),
    /// Nothing to write (an ack nobody waits for).
    Silent,
    /// The connection is now a user's session.
    LoggedIn(Box<LoggedIn>),
    /// The session ended at its client's request: write this, and the
    /// connection is anonymous again.
    LoggedOut(ServerFrame),
}

impl Outcome {
    fn refused(e: ServiceError, req: u32, rid: Option<u64>) -> Outcome {
        // A client reads docs/protocol.md to know what to expect: an error
        // it does not list is a bug in the table or in the service. Tests
        // run debug builds, so any test that provokes one fails here.
        debug_assert!(
            crate::protocol::is_documented_error(req, e.code),
            "errno {} ({:?}) for request {req} is not in protocol::REQUEST_ERRORS \
             (docs/protocol.md §8.1): add it to both",
            e.code.errno(),
            e.code,
        );
        Outcome::Reply(ServerFrame::Error(ErrorReply::with_detail(
            e.code,
            Some(req),
            rid,
            e.detail,
        )))
    }
}

/// The chat service of one node; cheap to clone.
#[derive(Debug, Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    bus: Arc<dyn Bus>,
    hub: Hub,
    passwords: Passwords,
    login_guard: LoginGuard,
    register_rate: RegisterRate,
    config: ServiceConfig,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The first `limit` of `items`, read from the store as `limit + 1` (one
/// more than asked tells whether more follow), and whether more do.
fn page<T>(mut items: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    (items, more)
}

/// Refuses a request whose `id` names someone else: identity comes from the
/// session, never from the request.
fn check_identity(session: &Session, claimed: Option<UserId>) -> Result<(), ServiceError> {
    match claimed {
        Some(id) if id != session.user.id => Err(ServiceError::with_detail(
            ErrorCode::IdentityMismatch,
            format!("id {id} is not the logged-in user {}", session.user.id),
        )),
        _ => Ok(()),
    }
}

impl ChatService {
    /// A service over the given backends; `hub` holds this node's sessions
    /// and hands them what arrives on `bus`; the guards count in
    /// `counters`.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        presence: Arc<dyn Presence>,
        bus: Arc<dyn Bus>,
        counters: Arc<dyn Counters>,
        hub: Hub,
        passwords: Passwords,
        config: ServiceConfig,
    ) -> ChatService {
        ChatService {
            inner: Arc::new(Inner {
                store,
                presence,
                bus,
                hub,
                passwords,
                login_guard: LoginGuard::new(config.login_guard.clone(), Arc::clone(&counters)),
                register_rate: RegisterRate::new(config.register_rate, counters),
                config,
            }),
        }
    }

    /// The store behind this service.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// How many sessions this node holds now: logged-in connections that
    /// have not ended yet (a user may have several).
    pub fn session_count(&self) -> usize {
        self.inner.hub.len()
    }

    /// The service's limits.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Handles a request of a connection that is not logged in. `dialect`
    /// is the one the connection speaks from now on: the one the request
    /// announced, unless its transport fixes one.
    pub async fn handle_anonymous(
        &self,
        caller: Caller,
        dialect: Dialect,
        rid: Option<u64>,
        request: AnonymousRequest,
    ) -> Outcome {
        let req = request.msgid();
        let result = match request {
            AnonymousRequest::Login(login) => self.login(caller, dialect, rid, login).await,
            AnonymousRequest::Register(register) => self
                .register(caller, rid, register)
                .await
                .map(Outcome::Reply),
            AnonymousRequest::Resume(resume) => self.resume(caller, rid, resume).await,
        };
        result.unwrap_or_else(|e| Outcome::refused(e, req, rid))
    }

    /// Handles a request of a logged-in session.
    pub async fn handle(
        &self,
        session: &Session,
        rid: Option<u64>,
        request: SessionRequest,
    ) -> Outcome {
        let req = request.msgid();
        let result = self.dispatch(session, rid, request).await;
        match result {
            // Legacy clients never got success acks; the encoder drops
            // them too, but keeping them out here makes the contract
            // visible in one place.
            Ok(Outcome::Reply(ServerFrame::Ack(_) | ServerFrame::ChatAck(_)))
                if session.dialect == Dialect::Legacy =>
            {
                Outcome::Silent
            }
            Ok(outcome) => outcome,
            Err(e) => Outcome::refused(e, req, rid),
        }
    }

    async fn dispatch(
        &self,
        session: &Session,
        rid: Option<u64>,
        request: SessionRequest,
    ) -> Result<Outcome, ServiceError> {
        use SessionRequest as R;
        let reply = match request {
            R::ChangePassword(req) => self.change_password(session, rid, req).await?,
            R::Logout(identity) => {
                check_identity(session, identity.id)?;
                // An explicit logout also ends the resume tokens; a dropped
                // connection keeps them, which is what they are for.
                self.inner.store.revoke_tokens(session.user.id).await?;
                self.end_session(session).await;
                return Ok(Outcome::LoggedOut(inbox::ack(rid, msgid::LOGINOUT)));
            }
            R::Chat(chat) => self.chat(session, rid, chat).await?,
            R::AddFriend(req) => self.add_friend(session, rid, req).await?,
            R::RemoveFriend(req) => self.remove_friend(session, rid, req).await?,
            R::ListFriends => self.list_friends(session, rid).await?,
            R::CreateGroup(req) => self.create_group(session, rid, req).await?,
            R::AddGroup(req) => self.join_group(session, rid, req).await?,
            R::LeaveGroup(req) => self.leave_group(session, rid, req).await?,
            R::ListGroups => self.list_groups(session, rid).await?,
            R::ListMembers(req) => self.list_members(session, rid, req).await?,
            R::DeliveryAck(req) => match self.delivery_ack(session, rid, req).await? {
                Some(reply) => reply,
                None => return Ok(Outcome::Silent),
            },
            R::Sync(req) => self.sync(session, rid, req).await?,
            R::History(req) => self.history(session, rid, req).await?,
            R::Read(req) => self.read(session, rid, req).await?,
            R::Conversations(req) => self.conversations(session, rid, req).await?,
            R::FindUser(req) => self.find_user(rid, req).await?,
        };
        Ok(Outcome::Reply(reply))
    }

    /// Ends a session: on logout, disconnect or shutdown. Its feed stops.
    pub async fn end_session(&self, session: &Session) {
        let user = session.user.id;
        self.inner.hub.unregister(user, session.id);
        match self.inner.presence.release(user, session.id).await {
            // The user is offline now; a session a newer login replaced
            // leaves the user online, and its friends see no blip.
            Ok(true) => self.announce_offline(user).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, %user, "could not release presence"),
        }
        tracing::info!(%user, session = %session.id, "session ended");
    }

    /// Whether each of `users` is online, in order.
    pub(crate) async fn presence_of(&self, users: &[UserId]) -> Result<Vec<bool>, ServiceError> {
        Ok(self.inner.presence.online(users).await?)
    }

    /// Tells the online ones of `friends` that `user`'s presence changed.
    /// A lost announcement is not retried: presence is shown, never relied
    /// on, and the next change shows the truth.
    pub(super) async fn announce(&self, user: UserId, friends: impl IntoIterator<Item = UserId>) {
        let events: Vec<BusEvent> = friends
            .into_iter()
            .map(|friend| BusEvent::Presence {
                user: friend,
                friend: user,
            })
            .collect();
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.inner.bus.publish(events).await {
            tracing::debug!(error = %e, %user, "could not announce a presence change");
        }
    }

    async fn announce_offline(&self, user: UserId) {
        match self.friend_entries(user).await {
            Ok(friends) => {
                let online = friends.iter().filter(|f| f.online).map(|f| f.user.id);
                self.announce(user, online).await;
            }
            Err(e) => tracing::debug!(error = %e, %user, "could not read friends to announce"),
        }
    }

    /// Reads the inbox of a session after `after`, for the connection's
    /// sync and refill.
    pub(crate) async fn inbox_after(
        &self,
        session: &Session,
        after: Seq,
    ) -> Result<Vec<InboxEntry>, ServiceError> {
        Ok(self
            .inner
            .store
            .inbox_after(session.user.id, after, self.inner.config.sync_page)
            .await?)
    }

    /// Records that a legacy session's inbox up to `seq` was written to its
    /// socket (legacy clients never ack).
    pub(crate) async fn mark_delivered(
        &self,
        session: &Session,
        seq: Seq,
    ) -> Result<(), ServiceError> {
        self.inner.store.ack(session.user.id, seq).await?;
        Ok(())
    }
}
