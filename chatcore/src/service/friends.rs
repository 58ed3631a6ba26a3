//! Friendship: mutual, idempotent, and listed with presence.

use super::{ChatService, ServiceError, Session, check_identity};
use crate::protocol::{AddFriend, ErrorCode, RemoveFriend, ServerFrame, msgid};

impl ChatService {
    pub(super) async fn add_friend(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: AddFriend,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        if req.friendid == session.user.id {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                "you cannot befriend yourself",
            ));
        }
        let me = session.user.id;
        if self.inner.store.add_friend(me, req.friendid).await? {
            // Each of the two now shows the other's presence: both learn
            // it as they would a change, so that each session's view of
            // its friends includes the new one.
            self.announce(req.friendid, [me]).await;
            self.announce(me, [req.friendid]).await;
        }
        Ok(super::inbox::ack(rid, msgid::ADD_FRIEND))
    }

    pub(super) async fn remove_friend(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: RemoveFriend,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        if !self
            .inner
            .store
            .remove_friend(session.user.id, req.friendid)
            .await?
        {
            return Err(ServiceError::with_detail(
                ErrorCode::NotFriend,
                format!("{} is not your friend", req.friendid),
            ));
        }
        Ok(super::inbox::ack(rid, msgid::REMOVE_FRIEND))
    }

    pub(super) async fn list_friends(
        &self,
        session: &Session,
        rid: Option<u64>,
    ) -> Result<ServerFrame, ServiceError> {
        Ok(ServerFrame::Friends {
            rid,
            friends: self.friend_entries(session.user.id).await?,
        })
    }
}
