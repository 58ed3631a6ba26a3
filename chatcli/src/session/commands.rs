//! Running the user's commands: each [`Request`] answered with a reply or a
//! failure in words; messages handed to the outbox, the rest asked of the
//! server.

use std::time::Duration;

use chatcore::model::{MessageId, Seq, Target};
use tokio::sync::oneshot;

use super::connection::Link;
use super::error::Failure;
use super::{Flow, Request, Session};
use crate::command::Command;
use crate::output::{Label, Output, Reply, Status};

impl Session {
    pub(super) async fn on_request(&mut self, Request { command, done }: Request) -> Flow {
        match command {
            Command::Say { to, text } => match self.peer(&to).await {
                Ok((target, label)) => self.enqueue(target, label, text, done).await,
                Err(failure) => self.refuse(failure, done).await,
            },
            Command::SayHere(text) => match self.focus.clone() {
                Some((target, label)) => self.enqueue(target, label, text, done).await,
                None => {
                    self.fail(
                        done,
                        "invalid input command. Type help for the commands, or /to NAME to \
                         choose where plain lines go"
                            .into(),
                    )
                    .await;
                }
            },
            Command::Quit => {
                self.confirm_acks().await;
                let _ = done.send(true);
                return Flow::Stop;
            }
            Command::Logout => {
                if let Ok(client) = self.client()
                    && let Err(e) = client.logout().await
                {
                    tracing::debug!(error = %e, "logout not confirmed");
                }
                self.emit(Output::Reply(Reply::LoggedOut)).await;
                let _ = done.send(true);
                return Flow::Stop;
            }
            Command::Help(_) => {
                let _ = done.send(true);
            }
            command => match self.execute(command).await {
                Ok(reply) => {
                    self.emit(Output::Reply(reply)).await;
                    let _ = done.send(true);
                }
                Err(failure) => self.refuse(failure, done).await,
            },
        }
        Flow::Continue
    }

    async fn refuse(&mut self, failure: Failure, done: oneshot::Sender<bool>) {
        match failure {
            Failure::Refused(reason) => self.fail(done, reason).await,
            Failure::Offline => {
                let attempts = match self.link {
                    Link::Down { attempts, .. } => attempts,
                    Link::Up(_) => 0,
                };
                self.fail(
                    done,
                    format!(
                        "not connected (reconnecting, attempt {}); messages still queue, other \
                         commands need the server",
                        attempts + 1
                    ),
                )
                .await;
            }
            Failure::Lost(reason) => {
                self.fail(done, format!("the connection broke: {reason}"))
                    .await;
                self.lost(reason).await;
            }
        }
    }

    /// Before quitting: the server has every ack (they are sent without a
    /// reply), so nothing shown here comes again next time.
    async fn confirm_acks(&self) {
        if let Ok(client) = self.client()
            && self.seen > Seq::ZERO
        {
            match tokio::time::timeout(Duration::from_secs(2), client.ack_confirmed(self.seen))
                .await
            {
                Ok(Ok(cursor)) => tracing::debug!(%cursor, "acks confirmed"),
                Ok(Err(e)) => tracing::debug!(error = %e, "acks not confirmed"),
                Err(_) => tracing::debug!("acks not confirmed in time"),
            }
        }
    }

    async fn execute(&mut self, command: Command) -> Result<Reply, Failure> {
        match command {
            Command::Status => Ok(Reply::Status(Status {
                user: self.me.clone(),
                addr: self.settings.addr.clone(),
                offline_attempts: match self.link {
                    Link::Up(_) => None,
                    Link::Down { attempts, .. } => Some(attempts + 1),
                },
                pending: self.outbox.len(),
                seen: self.seen,
                focus: self.focus.as_ref().map(|(_, label)| label.clone()),
            })),
            Command::Focus(None) => {
                self.focus = None;
                self.publish();
                Ok(Reply::Focus(None))
            }
            Command::Focus(Some(peer)) => {
                let (target, label) = self.peer(&peer).await?;
                self.focus = Some((target, label.clone()));
                self.publish();
                Ok(Reply::Focus(Some(label)))
            }
            Command::AddFriend(id) => {
                self.client()?.add_friend(id).await?;
                self.refresh_friends().await;
                Ok(Reply::FriendAdded(self.roster.user(id)))
            }
            Command::RemoveFriend(who) => {
                let (id, label) = self.user(&who).await?;
                self.client()?.remove_friend(id).await?;
                self.roster.remove_friend(id);
                self.publish();
                Ok(Reply::FriendRemoved(label))
            }
            Command::CreateGroup { name, desc } => {
                let id = self.client()?.create_group(&name, &desc).await?;
                self.refresh_groups().await;
                Ok(Reply::GroupCreated(Label::Group(id, Some(name))))
            }
            Command::JoinGroup(id) => {
                self.client()?.join_group(id).await?;
                self.refresh_groups().await;
                Ok(Reply::GroupJoined(self.roster.group(id)))
            }
            Command::LeaveGroup(who) => {
                let (id, label) = self.group(&who).await?;
                self.client()?.leave_group(id).await?;
                self.roster.remove_group(id);
                if matches!(self.focus, Some((Target::Group(g), _)) if g == id) {
                    self.focus = None;
                }
                self.publish();
                Ok(Reply::GroupLeft(label))
            }
            Command::Friends => {
                let friends = self.client()?.friends().await?;
                self.roster.set_friends(friends.clone());
                self.publish();
                Ok(Reply::Friends(friends))
            }
            Command::Groups => {
                let groups = self.client()?.groups().await?;
                self.roster.set_groups(groups.clone());
                self.publish();
                Ok(Reply::Groups(groups))
            }
            Command::Members(who) => {
                let (id, label) = self.group(&who).await?;
                let users = self.client()?.members(id).await?;
                for user in &users {
                    self.roster.learn(user.id, &user.name);
                }
                Ok(Reply::Members {
                    group: label,
                    users,
                })
            }
            Command::History { with, limit } => {
                let (target, label) = self.peer(&with).await?;
                let (mut messages, more) = self.client()?.history(target, None, limit).await?;
                messages.reverse();
                for m in &messages {
                    self.roster.learn(m.from, &m.name);
                }
                Ok(Reply::History {
                    me: self.me_id,
                    with: label,
                    messages,
                    more,
                })
            }
            Command::Read { with, mid } => {
                let (target, label) = self.peer(&with).await?;
                let mid = match mid {
                    Some(mid) => MessageId(mid),
                    None => {
                        let (newest, _) = self.client()?.history(target, None, 1).await?;
                        newest.first().map_or(MessageId(0), |m| m.mid)
                    }
                };
                let mid = self.client()?.read(target, mid).await?;
                Ok(Reply::Read { with: label, mid })
            }
            Command::Chats { limit } => {
                let (conversations, more) = self.client()?.conversations(None, limit).await?;
                for c in &conversations {
                    self.roster.learn(c.last.from, &c.last.name);
                }
                Ok(Reply::Chats {
                    conversations,
                    more,
                })
            }
            Command::Find { name, prefix } => {
                let limit = crate::command::FIND_LIMIT;
                let users = self.client()?.find_users(&name, prefix, limit).await?;
                for u in &users {
                    self.roster.learn(u.id, &u.name);
                }
                Ok(Reply::Users(users))
            }
            Command::Say { .. }
            | Command::SayHere(_)
            | Command::Help(_)
            | Command::Logout
            | Command::Quit => Err(Failure::Refused("not a server command".into())),
        }
    }
}
