//! Friends' presence as one native session shows it: the friends its
//! client was told are online, brought up to date when the hub says some
//! may have changed. The state written is always read from presence, never
//! taken from the event that announced a change, so events that overtake
//! each other cannot leave a wrong state shown. A friend named by a change
//! is shown as they are now (a client may hear "online" twice: a newer
//! login of theirs replaced the old one, which announces nothing); a
//! recheck after a node died shows only the friends whose state differs.

use std::collections::HashSet;
use std::io;

use super::transport::Transport;
use super::writer::Writer;
use crate::hub::PresenceChanges;
use crate::model::UserId;
use crate::protocol::{Dialect, FriendEntry, ServerFrame, msgid};
use crate::service::ChatService;
use crate::telemetry;

/// The friends a client was shown online.
#[derive(Debug, Default)]
pub(super) struct ShownPresence {
    online: HashSet<UserId>,
}

impl ShownPresence {
    /// What the login reply showed.
    pub(super) fn new(friends: &[FriendEntry]) -> ShownPresence {
        ShownPresence {
            online: friends
                .iter()
                .filter(|f| f.online)
                .map(|f| f.user.id)
                .collect(),
        }
    }

    /// Reads the presence of the friends in `changes` and writes a
    /// `PRESENCE` frame for each; with `all`, also for every friend shown
    /// online who no longer is. A failed read shows nothing: the next
    /// change or login shows the truth.
    pub(super) async fn update<T: Transport>(
        &mut self,
        service: &ChatService,
        out: &mut Writer<T>,
        changes: PresenceChanges,
    ) -> io::Result<()> {
        let named = changes.friends.len();
        let mut users = changes.friends;
        if changes.all {
            let shown: Vec<UserId> = (self.online.iter())
                .filter(|u| !users.contains(u))
                .copied()
                .collect();
            users.extend(shown);
        }
        if users.is_empty() {
            return Ok(());
        }
        let online = match service.presence_of(&users).await {
            Ok(online) => online,
            Err(e) => {
                tracing::debug!(error = %e, "could not read friends' presence");
                return Ok(());
            }
        };
        let mut written = 0;
        for (i, (user, online)) in users.into_iter().zip(online).enumerate() {
            let changed = if online {
                self.online.insert(user)
            } else {
                self.online.remove(&user)
            };
            if changed || i < named {
                ServerFrame::Presence { user, online }.encode(Dialect::Native, out.buffer());
                written += 1;
            }
        }
        telemetry::frames_out(msgid::PRESENCE, written);
        out.flush(Dialect::Native).await
    }
}
