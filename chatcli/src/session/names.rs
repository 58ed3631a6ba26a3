//! Users and groups named by id or by name, resolved to ids and labels
//! through the roster, whose lists are fetched again when a name is unknown.

use chatcore::model::{GroupId, Target, UserId};

use super::Session;
use super::error::Failure;
use crate::command::{Peer, Who};
use crate::output::Label;

impl Session {
    pub(super) async fn refresh_friends(&mut self) {
        let Ok(client) = self.client() else { return };
        match client.friends().await {
            Ok(friends) => {
                self.roster.set_friends(friends);
                self.publish();
            }
            Err(e) => tracing::debug!(error = %e, "friend list not refreshed"),
        }
    }

    pub(super) async fn refresh_groups(&mut self) {
        let Ok(client) = self.client() else { return };
        match client.groups().await {
            Ok(groups) => {
                self.roster.set_groups(groups);
                self.publish();
            }
            Err(e) => tracing::debug!(error = %e, "group list not refreshed"),
        }
    }

    /// A user by id, or a friend by name (the list is fetched again when
    /// the name is unknown: someone may have befriended us meanwhile).
    pub(super) async fn user(&mut self, who: &Who) -> Result<(UserId, Label), Failure> {
        let id = match who {
            Who::Id(id) => UserId(*id),
            Who::Name(name) => match self.roster.friend_named(name) {
                Some(id) => id,
                None => {
                    self.refresh_friends().await;
                    self.roster.friend_named(name).ok_or_else(|| {
                        Failure::Refused(format!(
                            "you have no friend named {name}; use the user id, or see /friends"
                        ))
                    })?
                }
            },
        };
        Ok((id, self.roster.user(id)))
    }

    /// A group by id, or one of ours by name.
    pub(super) async fn group(&mut self, who: &Who) -> Result<(GroupId, Label), Failure> {
        let id = match who {
            Who::Id(id) => GroupId(*id),
            Who::Name(name) => match self.roster.group_named(name) {
                Some(id) => id,
                None => {
                    self.refresh_groups().await;
                    self.roster.group_named(name).ok_or_else(|| {
                        Failure::Refused(format!(
                            "you are in no group named {name}; use the group id, or see /groups"
                        ))
                    })?
                }
            },
        };
        Ok((id, self.roster.group(id)))
    }

    pub(super) async fn peer(&mut self, peer: &Peer) -> Result<(Target, Label), Failure> {
        match peer {
            Peer::User(who) => {
                let (id, label) = self.user(who).await?;
                Ok((Target::User(id), label))
            }
            Peer::Group(who) => {
                let (id, label) = self.group(who).await?;
                Ok((Target::Group(id), label))
            }
        }
    }
}
