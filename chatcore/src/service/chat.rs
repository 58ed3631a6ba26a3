//! One-to-one and group chat: store first, then ring the recipients'
//! doorbells, then acknowledge.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ChatService, ServiceError, Session, check_identity, now_ms};
use crate::bus::BusEvent;
use crate::model::{Message, NewMessage, Seq, UserId};
use crate::presence::NodeName;
use crate::protocol::{Chat, ChatAck, ErrorCode, ServerFrame};
use crate::telemetry;

/// Longest client message id, in bytes.
const MAX_CMID_BYTES: usize = 64;

impl ChatService {
    pub(super) async fn chat(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: Chat,
    ) -> Result<ServerFrame, ServiceError> {
        let result = self.store_and_ring(session, rid, req).await;
        telemetry::send(result.is_ok());
        result
    }

    async fn store_and_ring(
        &self,
        session: &Session,
        rid: Option<u64>,
        req: Chat,
    ) -> Result<ServerFrame, ServiceError> {
        check_identity(session, req.id)?;
        let max = self.inner.config.max_message_bytes;
        if req.msg.is_empty() || req.msg.len() > max {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!("msg must be 1 to {max} bytes"),
            ));
        }
        if req
            .cmid
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > MAX_CMID_BYTES)
        {
            return Err(ServiceError::with_detail(
                ErrorCode::InvalidValue,
                format!("cmid must be 1 to {MAX_CMID_BYTES} bytes"),
            ));
        }
        let req_msgid = req.msgid();
        let receipt = self
            .inner
            .store
            .send(NewMessage {
                sender: session.user.id,
                target: req.target,
                body: req.msg,
                client_msg_id: req.cmid,
                sent_at_ms: now_ms(),
            })
            .await?;
        let message = Arc::new(receipt.message);
        let recipients: Vec<(UserId, Seq)> =
            receipt.deliveries.iter().map(|d| (d.user, d.seq)).collect();
        self.ring(&message, recipients).await;
        Ok(ServerFrame::ChatAck(ChatAck {
            rid,
            req: req_msgid,
            mid: message.id,
            cmid: message.client_msg_id.clone(),
            sent_at_ms: message.sent_at_ms,
            duplicate: receipt.duplicate,
        }))
    }

    /// Rings the doorbells of a stored message. The message is stored: a
    /// bus failure only delays delivery until the recipients' next refill.
    ///
    /// One recipient gets an event on its own channel. For several (a
    /// group) presence says where each one's session is, and each node
    /// holding some gets one event for all of them: a publish per node,
    /// not per member. That read comes after the message was stored, so a
    /// member logging in elsewhere meanwhile is safe: either the read sees
    /// the new session's claim, or the claim came after it, and the login
    /// reads the message from the store. Members presence shows without a
    /// session still get an event on their own channels: while presence
    /// restores its records (after a Redis restart) a session can be live
    /// without one.
    async fn ring(&self, message: &Arc<Message>, mut recipients: Vec<(UserId, Seq)>) {
        if recipients.len() > 1 {
            let users: Vec<UserId> = recipients.iter().map(|(user, _)| *user).collect();
            match self.inner.presence.locate(&users).await {
                Ok(Some(nodes)) => {
                    let mut by_node: HashMap<NodeName, Vec<(UserId, Seq)>> = HashMap::new();
                    let mut elsewhere = Vec::new();
                    for (recipient, node) in recipients.into_iter().zip(nodes) {
                        match node {
                            Some(node) => by_node.entry(node).or_default().push(recipient),
                            None => elsewhere.push(recipient),
                        }
                    }
                    let bus = &self.inner.bus;
                    let published = by_node.into_iter().map(|(node, recipients)| async move {
                        bus.publish_deliveries(&node, Arc::clone(message), recipients)
                            .await
                    });
                    for result in futures::future::join_all(published).await {
                        if let Err(e) = result {
                            tracing::warn!(error = %e, mid = %message.id, "doorbells not rung");
                        }
                    }
                    recipients = elsewhere;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "presence unavailable; ringing each member");
                }
            }
        }
        if recipients.is_empty() {
            return;
        }
        let events = BusEvent::deliveries(message, recipients).collect();
        if let Err(e) = self.inner.bus.publish(events).await {
            tracing::warn!(error = %e, mid = %message.id, "doorbell not rung");
        }
    }
}
