//! The inbox seen from the client: acks of what it received, sync of what
//! it missed, and the history of a conversation.

use super::{ChatService, ServiceError, Session, page};
use crate::model::{Conversation, Seq, Target};
use crate::protocol::{Ack, DeliveryAck, History, MessagePage, ServerFrame, SyncRequest, msgid};

/// A plain success acknowledgement of request `req`.
pub(super) fn ack(rid: Option<u64>, req: u32) -> ServerFrame {
    ServerFrame::Ack(Ack {
        rid,
        req,
        groupid: None,
        seq: None,
        resume: None,
        mid: None,
    })
}

impl ChatService {
    fn page_limit(&self, asked: Option<u32>) -> u32 {
        let config = &self.inner.config;
        asked.unwrap_or(config.sync_page).clamp(1, config.max_page)
    }

    /// Moves the acked cursor; answered only when the client gave a `rid`
    /// (acks flow with every message, and acking acks would double traffic).
    pub(super) async fn delivery_ack(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: DeliveryAck,
    ) -> Result<Option<ServerFrame>, ServiceError> {
        let cursor = self.inner.store.ack(session.user.id, req.seq).await?;
        Ok(rid.map(|rid| {
            ServerFrame::Ack(Ack {
                rid: Some(rid),
                req: msgid::DELIVERED,
                groupid: None,
                seq: Some(cursor),
                resume: None,
                mid: None,
            })
        }))
    }

    pub(super) async fn sync(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: SyncRequest,
    ) -> Result<ServerFrame, ServiceError> {
        let limit = self.page_limit(req.limit);
        let entries = self
            .inner
            .store
            .inbox_after(session.user.id, req.after.max(Seq::ZERO), limit + 1)
            .await?;
        let (entries, more) = page(entries, limit);
        Ok(ServerFrame::Sync(MessagePage { rid, entries, more }))
    }

    pub(super) async fn history(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: History,
    ) -> Result<ServerFrame, ServiceError> {
        let me = session.user.id;
        let conversation = match req.target {
            Target::User(peer) => Conversation::Direct(me, peer),
            Target::Group(group) => {
                // Only members read a group's history.
                let members = self.inner.store.members(group).await?;
                if !members.iter().any(|m| m.user.id == me) {
                    return Err(ServiceError::with_detail(
                        crate::protocol::ErrorCode::NotMember,
                        format!("not a member of group {group}"),
                    ));
                }
                Conversation::Group(group)
            }
        };
        let limit = self.page_limit(req.limit);
        let messages = self
            .inner
            .store
            .history(conversation, req.before, limit + 1)
            .await?;
        let (messages, more) = page(messages, limit);
        Ok(ServerFrame::History {
            rid,
            messages,
            more,
        })
    }
}
