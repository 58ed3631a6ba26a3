//! The conversation list and what it needs: read positions, the list
//! itself with unread counts, and finding users by name.

use super::{ChatService, ServiceError, Session, page};
use crate::protocol::{
    Ack, Conversations, ErrorCode, FindUser, FriendEntry, ReadMark, ServerFrame, msgid,
};

/// Conversations per page when the client does not say, and the most.
const CONVERSATIONS_PAGE: u32 = 50;
const MAX_CONVERSATIONS_PAGE: u32 = 200;
/// Users per prefix search when the client does not say, and the most.
const USERS_PAGE: u32 = 10;
const MAX_USERS_PAGE: u32 = 50;

impl ChatService {
    /// Moves the caller's read position of one conversation forward.
    pub(super) async fn read(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: ReadMark,
    ) -> Result<ServerFrame, ServiceError> {
        let position = self
            .inner
            .store
            .mark_read(session.user.id, req.target, req.mid)
            .await?;
        Ok(ServerFrame::Ack(Ack {
            mid: Some(position),
            ..Ack::of(msgid::READ, rid)
        }))
    }

    pub(super) async fn conversations(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: Conversations,
    ) -> Result<ServerFrame, ServiceError> {
        let limit = req
            .limit
            .unwrap_or(CONVERSATIONS_PAGE)
            .clamp(1, MAX_CONVERSATIONS_PAGE);
        let conversations = self
            .inner
            .store
            .conversations(session.user.id, req.before, limit + 1)
            .await?;
        let (conversations, more) = page(conversations, limit);
        Ok(ServerFrame::Conversations {
            rid,
            conversations,
            more,
        })
    }

    pub(super) async fn find_user(
        &self,
        rid: Option<u64>,
        req: FindUser,
    ) -> Result<ServerFrame, ServiceError> {
        let max = self.inner.config.max_name_chars;
        if req.name.is_empty() || req.name.chars().count() > max {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!("name must be 1 to {max} characters"),
            ));
        }
        let limit = req.limit.unwrap_or(USERS_PAGE).clamp(1, MAX_USERS_PAGE);
        let found = self
            .inner
            .store
            .find_users(&req.name, req.prefix, limit)
            .await?;
        let ids: Vec<_> = found.iter().map(|u| u.id).collect();
        let online = self.inner.presence.online(&ids).await?;
        Ok(ServerFrame::Users {
            rid,
            users: found
                .into_iter()
                .zip(online)
                .map(|(user, online)| FriendEntry { user, online })
                .collect(),
        })
    }
}
