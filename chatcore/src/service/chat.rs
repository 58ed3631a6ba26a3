//! One-to-one and group chat: store first, then ring the recipients'
//! doorbells, then acknowledge.

use std::sync::Arc;

use super::{ChatService, ServiceError, Session, check_identity, now_ms};
use crate::model::{Message, NewMessage, Seq, UserId};
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
    /// The bus chooses how (a publish per recipient, or per node for a
    /// group).
    async fn ring(&self, message: &Arc<Message>, recipients: Vec<(UserId, Seq)>) {
        if recipients.is_empty() {
            return;
        }
        if let Err(e) = self
            .inner
            .bus
            .publish_deliveries(Arc::clone(message), recipients)
            .await
        {
            tracing::warn!(error = %e, mid = %message.id, "doorbells not rung");
        }
    }
}
