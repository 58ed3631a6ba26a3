//! `ChatService`: one handler per request kind, each returning the reply
//! frame. Handlers never see bytes or sockets; the connection driver feeds
//! them typed requests and writes what they return.
//!
//! Handlers that need a user take a [`Session`], which only exists after a
//! successful login, so an anonymous connection cannot reach them.

mod auth;
mod chat;
mod friends;
mod groups;
mod inbox;
mod password;
mod resume;

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

pub use password::{HashParams, Passwords};
pub use resume::{Claims, KEY_BYTES, ResumeConfig, ResumeKey, TokenError};

use crate::hub::{Hub, SessionControl, SessionEvent};
use crate::limit::{LoginGuard, LoginGuardConfig};
use crate::model::{InboxEntry, Seq, UserId, UserInfo};
use crate::presence::{Presence, PresenceError, SessionId};
use crate::protocol::{Dialect, ErrorCode, ErrorReply, Request, RequestFrame, ServerFrame};
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
            max_groups_per_user: 500,
            max_group_members: 1000,
        }
    }
}

/// A refused request: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub detail: String,
}

impl ServiceError {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> ServiceError {
        ServiceError {
            code,
            detail: code.message().to_owned(),
        }
    }

    /// An error with its own message.
    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> ServiceError {
        ServiceError {
            code,
            detail: detail.into(),
        }
    }

    /// A server-side failure: logged in full, reported plainly.
    pub fn internal(detail: impl Into<String>) -> ServiceError {
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

/// A logged-in user on one connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: UserInfo,
    pub id: SessionId,
    /// How the hub ends this session or asks it to refill.
    pub control: Arc<SessionControl>,
}

/// What the service knows of one connection.
#[derive(Debug)]
pub struct ConnState {
    dialect: Dialect,
    session: Option<Session>,
    outbox: mpsc::Sender<SessionEvent>,
    peer: Option<IpAddr>,
}

impl ConnState {
    /// A new anonymous connection whose live deliveries go to `outbox`.
    /// `peer` is the client's address when the transport has one; failed
    /// logins are counted per address as well as per user.
    pub fn new(outbox: mpsc::Sender<SessionEvent>, peer: Option<IpAddr>) -> ConnState {
        ConnState {
            dialect: Dialect::Legacy,
            session: None,
            outbox,
            peer,
        }
    }

    /// The client's address, if known.
    pub fn peer(&self) -> Option<IpAddr> {
        self.peer
    }

    /// The dialect chosen at the last login or register (legacy before).
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The logged-in session, if any.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
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
    hub: Hub,
    passwords: Passwords,
    login_guard: LoginGuard,
    config: ServiceConfig,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
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
    /// A service over the given backends; `hub` holds this node's sessions.
    pub fn new(
        store: Arc<dyn Store>,
        presence: Arc<dyn Presence>,
        hub: Hub,
        passwords: Passwords,
        config: ServiceConfig,
    ) -> ChatService {
        ChatService {
            inner: Arc::new(Inner {
                store,
                presence,
                hub,
                passwords,
                login_guard: LoginGuard::new(config.login_guard.clone()),
                config,
            }),
        }
    }

    /// The store behind this service.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// This node's sessions.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The service's limits.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// This node's count of failed logins.
    pub fn login_guard(&self) -> &LoginGuard {
        &self.inner.login_guard
    }

    /// Handles one request; `None` when it gets no reply (a `DELIVERED`
    /// without `rid`, a `PONG`, or a success the legacy dialect never
    /// acknowledged).
    pub async fn handle(&self, conn: &mut ConnState, frame: RequestFrame) -> Option<ServerFrame> {
        let RequestFrame { rid, request } = frame;
        let req = request.msgid();
        let result = self.dispatch(conn, rid, request).await;
        match result {
            Ok(reply) => reply,
            Err(e) => Some(ServerFrame::Error(ErrorReply {
                rid,
                req: Some(req),
                code: e.code,
                detail: e.detail,
            })),
        }
    }

    async fn dispatch(
        &self,
        conn: &mut ConnState,
        rid: Option<u64>,
        request: Request,
    ) -> Result<Option<ServerFrame>, ServiceError> {
        let session = match (&conn.session, &request) {
            (
                _,
                Request::Login(_)
                | Request::Register(_)
                | Request::Resume(_)
                | Request::Ping
                | Request::Pong,
            ) => None,
            (Some(session), _) => Some(session.clone()),
            (None, _) => return Err(ServiceError::new(ErrorCode::NotLoggedIn)),
        };
        let dialect = conn.dialect;
        let native = dialect == Dialect::Native;
        let reply = match (request, session) {
            (Request::Login(login), _) => Some(self.login(conn, rid, login).await?),
            (Request::Register(register), _) => Some(self.register(conn, rid, register).await?),
            (Request::Resume(resume), _) => Some(self.resume(conn, rid, resume).await?),
            (Request::ChangePassword(req), Some(session)) => {
                Some(self.change_password(&session, dialect, rid, req).await?)
            }
            (Request::Ping, _) => Some(ServerFrame::Pong { rid }),
            (Request::Pong, _) => None,
            (Request::Logout(identity), Some(session)) => {
                check_identity(&session, identity.id)?;
                // An explicit logout also ends the resume tokens; a dropped
                // connection keeps them, which is what they are for.
                self.inner.store.revoke_tokens(session.user.id).await?;
                self.logout(conn).await;
                Some(inbox::ack(rid, crate::protocol::msgid::LOGINOUT))
            }
            (Request::Chat(chat), Some(session)) => Some(self.chat(&session, rid, chat).await?),
            (Request::AddFriend(req), Some(session)) => {
                Some(self.add_friend(&session, rid, req).await?)
            }
            (Request::RemoveFriend(req), Some(session)) => {
                Some(self.remove_friend(&session, rid, req).await?)
            }
            (Request::ListFriends, Some(session)) => Some(self.list_friends(&session, rid).await?),
            (Request::CreateGroup(req), Some(session)) => {
                Some(self.create_group(&session, rid, req).await?)
            }
            (Request::AddGroup(req), Some(session)) => {
                Some(self.join_group(&session, rid, req).await?)
            }
            (Request::LeaveGroup(req), Some(session)) => {
                Some(self.leave_group(&session, rid, req).await?)
            }
            (Request::ListGroups, Some(session)) => Some(self.list_groups(&session, rid).await?),
            (Request::ListMembers(req), Some(session)) => {
                Some(self.list_members(&session, rid, req).await?)
            }
            (Request::DeliveryAck(req), Some(session)) => {
                self.delivery_ack(&session, rid, req).await?
            }
            (Request::Sync(req), Some(session)) => Some(self.sync(&session, rid, req).await?),
            (Request::History(req), Some(session)) => Some(self.history(&session, rid, req).await?),
            (_, None) => return Err(ServiceError::new(ErrorCode::NotLoggedIn)),
        };
        // Legacy clients never got success acks; the encoder drops them, but
        // filtering here keeps the contract visible in one place.
        Ok(reply.filter(|frame| {
            native || !matches!(frame, ServerFrame::Ack(_) | ServerFrame::ChatAck(_))
        }))
    }

    /// Ends the connection's session, if any (disconnect or shutdown).
    pub async fn end_session(&self, conn: &mut ConnState) {
        self.logout(conn).await;
    }

    /// Reads the inbox of a session after `after`, for the connection's
    /// sync and refill.
    pub async fn inbox_after(
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
    pub async fn mark_delivered(&self, session: &Session, seq: Seq) -> Result<(), ServiceError> {
        self.inner.store.ack(session.user.id, seq).await?;
        Ok(())
    }
}
