//! `MemoryStore`: the whole store in one process, behind one mutex.
//! Nothing survives a restart; it serves embedding, tests and benchmarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use super::{GroupCaps, PruneStep, Store, StoreError, deleted_user_name};
use crate::model::{
    Conversation, ConversationSummary, Delivery, GroupId, GroupInfo, InboxEntry, Member, Message,
    MessageId, NewMessage, Role, SendReceipt, Seq, Target, UserId, UserInfo, UserRecord,
};

/// An in-memory [`Store`]; cheap to clone, clones share the same data.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Live users; a deleted one is taken out (its id is never reused).
    users: BTreeMap<UserId, UserRecord>,
    /// The highest user id handed out.
    last_user: i64,
    names: HashMap<String, UserId>,
    friends: BTreeSet<(UserId, UserId)>,
    groups: BTreeMap<GroupId, GroupInfo>,
    group_names: HashMap<String, GroupId>,
    /// (group, user) -> role
    members: BTreeMap<(GroupId, UserId), Role>,
    messages: Vec<Message>,
    /// Messages retention deleted: their slots stay, so that a message's
    /// id keeps being its position, but nothing reads them.
    pruned: BTreeSet<MessageId>,
    by_client_id: HashMap<(UserId, String), MessageId>,
    inboxes: HashMap<UserId, Inbox>,
    /// (user, the conversation seen from it) -> read position
    read: HashMap<(UserId, Target), MessageId>,
}

#[derive(Debug, Default)]
struct Inbox {
    /// `entries[i]` holds the message index of seq `i + 1`; `None` once
    /// retention deleted it.
    entries: Vec<Option<usize>>,
    acked: Seq,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    // A poisoned lock means a panic elsewhere while holding it; the data is
    // plain values and still consistent at every statement boundary.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl State {
    fn user_info(&self, id: UserId) -> Option<UserInfo> {
        self.users.get(&id).map(|u| UserInfo {
            id,
            name: u.name.clone(),
        })
    }

    fn require_user(&self, id: UserId) -> Result<(), StoreError> {
        if self.users.contains_key(&id) {
            Ok(())
        } else {
            Err(StoreError::UnknownUser(id))
        }
    }

    fn require_group(&self, id: GroupId) -> Result<(), StoreError> {
        if self.groups.contains_key(&id) {
            Ok(())
        } else {
            Err(StoreError::UnknownGroup(id))
        }
    }

    /// Memberships of `user` (a scan: the in-memory store is for tests,
    /// embedding and benchmarks, where groups are few).
    fn group_count(&self, user: UserId) -> u64 {
        self.members.keys().filter(|&&(_, m)| m == user).count() as u64
    }

    fn member_count(&self, group: GroupId) -> u64 {
        self.members
            .range((group, UserId(i64::MIN))..=(group, UserId(i64::MAX)))
            .count() as u64
    }

    fn message_index(&self, id: MessageId) -> usize {
        // Message ids are 1-based positions in `messages`.
        (id.0 - 1) as usize
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> Result<UserId, StoreError> {
        let mut state = self.state();
        if state.names.contains_key(name) {
            return Err(StoreError::NameTaken);
        }
        state.last_user += 1;
        let id = UserId(state.last_user);
        state.users.insert(
            id,
            UserRecord {
                id,
                name: name.to_owned(),
                password_hash: password_hash.to_owned(),
                token_epoch: 0,
                banned_at_ms: None,
            },
        );
        state.names.insert(name.to_owned(), id);
        state.inboxes.insert(id, Inbox::default());
        Ok(id)
    }

    async fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn revoke_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        let mut state = self.state();
        let record = state
            .users
            .get_mut(&user)
            .ok_or(StoreError::UnknownUser(user))?;
        record.token_epoch += 1;
        Ok(record.token_epoch)
    }

    async fn set_password(&self, user: UserId, password_hash: &str) -> Result<u64, StoreError> {
        let mut state = self.state();
        let record = state
            .users
            .get_mut(&user)
            .ok_or(StoreError::UnknownUser(user))?;
        password_hash.clone_into(&mut record.password_hash);
        record.token_epoch += 1;
        Ok(record.token_epoch)
    }

    async fn rehash_password(
        &self,
        user: UserId,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        match state.users.get_mut(&user) {
            Some(record) if record.password_hash == old => {
                new.clone_into(&mut record.password_hash);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_banned(&self, user: UserId, at_ms: Option<i64>) -> Result<(), StoreError> {
        let mut state = self.state();
        let record = state
            .users
            .get_mut(&user)
            .ok_or(StoreError::UnknownUser(user))?;
        match at_ms {
            Some(at) => {
                record.banned_at_ms = record.banned_at_ms.or(Some(at));
                record.token_epoch += 1;
            }
            None => record.banned_at_ms = None,
        }
        Ok(())
    }

    async fn delete_user(&self, user: UserId) -> Result<(), StoreError> {
        let mut state = self.state();
        let record = state
            .users
            .remove(&user)
            .ok_or(StoreError::UnknownUser(user))?;
        state.names.remove(&record.name);
        state.friends.retain(|&(a, b)| a != user && b != user);
        state.members.retain(|&(_, member), _| member != user);
        state.read.retain(|&(reader, _), _| reader != user);
        state.inboxes.remove(&user);
        let tombstone = deleted_user_name(user);
        for message in state.messages.iter_mut().filter(|m| m.sender.id == user) {
            message.sender.name.clone_from(&tombstone);
        }
        Ok(())
    }

    async fn prune(
        &self,
        older_than_ms: i64,
        after: MessageId,
        max_rows: u32,
    ) -> Result<PruneStep, StoreError> {
        let mut state = self.state();
        let mut step = PruneStep::default();
        let start = after.0.clamp(0, state.messages.len() as i64) as usize;
        let window = state.messages.len().min(start + max_rows as usize);
        let mut reached_new = false;
        let mut last_seen = None;
        for index in start..window {
            let message = &state.messages[index];
            if message.sent_at_ms >= older_than_ms {
                reached_new = true;
                break;
            }
            let id = message.id;
            if state.pruned.contains(&id) {
                last_seen = Some(id);
                continue;
            }
            // (user, entry position) of every entry holding the message
            // (a scan: see `group_count`).
            let mut holders = Vec::new();
            let mut acked = true;
            for (&user, inbox) in &state.inboxes {
                for (position, entry) in inbox.entries.iter().enumerate() {
                    if *entry == Some(index) {
                        // The entry at `position` has seq `position + 1`.
                        acked &= (position as i64) < inbox.acked.0;
                        holders.push((user, position));
                    }
                }
            }
            if !acked {
                last_seen = Some(id);
                continue;
            }
            let rows = 1 + holders.len() as u64;
            if step.messages > 0 && step.messages + step.entries + rows > u64::from(max_rows) {
                break;
            }
            for (user, position) in &holders {
                if let Some(inbox) = state.inboxes.get_mut(user) {
                    inbox.entries[*position] = None;
                }
            }
            let message = &state.messages[index];
            if let Some(cmid) = message.client_msg_id.clone() {
                let sender = message.sender.id;
                state.by_client_id.remove(&(sender, cmid));
            }
            state.pruned.insert(id);
            step.messages += 1;
            step.entries += holders.len() as u64;
            last_seen = Some(id);
        }
        let at_end = last_seen.is_none_or(|id| id.0 as usize >= state.messages.len());
        step.next = if reached_new || at_end {
            None
        } else {
            last_seen
        };
        Ok(step)
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<UserInfo>, StoreError> {
        let state = self.state();
        let wanted: BTreeSet<UserId> = ids.iter().copied().collect();
        Ok(wanted
            .into_iter()
            .filter_map(|id| state.user_info(id))
            .collect())
    }

    async fn add_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.require_user(a)?;
        state.require_user(b)?;
        let new = state.friends.insert((a, b));
        state.friends.insert((b, a));
        Ok(new)
    }

    async fn remove_friend(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let mut state = self.state();
        let existed = state.friends.remove(&(a, b));
        state.friends.remove(&(b, a));
        Ok(existed)
    }

    async fn friends(&self, user: UserId) -> Result<Vec<UserInfo>, StoreError> {
        let state = self.state();
        Ok(state
            .friends
            .range((user, UserId(i64::MIN))..=(user, UserId(i64::MAX)))
            .filter_map(|&(_, friend)| state.user_info(friend))
            .collect())
    }

    async fn create_group(
        &self,
        creator: UserId,
        name: &str,
        desc: &str,
        caps: GroupCaps,
    ) -> Result<GroupId, StoreError> {
        let mut state = self.state();
        state.require_user(creator)?;
        if state.group_names.contains_key(name) {
            return Err(StoreError::GroupNameTaken);
        }
        caps.check(state.group_count(creator), 0)
            .map_err(StoreError::CapReached)?;
        let id = GroupId(state.groups.len() as i64 + 1);
        state.groups.insert(
            id,
            GroupInfo {
                id,
                name: name.to_owned(),
                desc: desc.to_owned(),
            },
        );
        state.group_names.insert(name.to_owned(), id);
        state.members.insert((id, creator), Role::Creator);
        Ok(id)
    }

    async fn join_group(
        &self,
        group: GroupId,
        user: UserId,
        caps: GroupCaps,
    ) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.require_group(group)?;
        state.require_user(user)?;
        if state.members.contains_key(&(group, user)) {
            return Ok(false);
        }
        caps.check(state.group_count(user), state.member_count(group))
            .map_err(StoreError::CapReached)?;
        state.members.insert((group, user), Role::Normal);
        Ok(true)
    }

    async fn leave_group(&self, group: GroupId, user: UserId) -> Result<bool, StoreError> {
        let mut state = self.state();
        state.require_group(group)?;
        Ok(state.members.remove(&(group, user)).is_some())
    }

    async fn group(&self, group: GroupId) -> Result<Option<GroupInfo>, StoreError> {
        Ok(self.state().groups.get(&group).cloned())
    }

    async fn groups_of(&self, user: UserId) -> Result<Vec<GroupInfo>, StoreError> {
        let state = self.state();
        Ok(state
            .members
            .keys()
            .filter(|(_, member)| *member == user)
            .filter_map(|(group, _)| state.groups.get(group).cloned())
            .collect())
    }

    async fn members(&self, group: GroupId) -> Result<Vec<Member>, StoreError> {
        let state = self.state();
        state.require_group(group)?;
        Ok(state
            .members
            .range((group, UserId(i64::MIN))..=(group, UserId(i64::MAX)))
            .filter_map(|(&(_, user), &role)| {
                state.user_info(user).map(|user| Member { user, role })
            })
            .collect())
    }

    async fn send(&self, new: NewMessage) -> Result<SendReceipt, StoreError> {
        let mut state = self.state();
        let sender = state
            .user_info(new.sender)
            .ok_or(StoreError::UnknownUser(new.sender))?;
        if let Some(cmid) = &new.client_msg_id
            && let Some(&id) = state.by_client_id.get(&(new.sender, cmid.clone()))
        {
            let message = state.messages[state.message_index(id)].clone();
            return Ok(SendReceipt {
                message,
                deliveries: Vec::new(),
                duplicate: true,
            });
        }
        let recipients: Vec<UserId> = match new.target {
            Target::User(to) => {
                state.require_user(to)?;
                vec![to]
            }
            Target::Group(group) => {
                state.require_group(group)?;
                if !state.members.contains_key(&(group, new.sender)) {
                    return Err(StoreError::NotMember {
                        user: new.sender,
                        group,
                    });
                }
                state
                    .members
                    .range((group, UserId(i64::MIN))..=(group, UserId(i64::MAX)))
                    .map(|(&(_, user), _)| user)
                    .filter(|&user| user != new.sender)
                    .collect()
            }
        };
        let index = state.messages.len();
        let message = Message {
            id: MessageId(index as i64 + 1),
            sender,
            target: new.target,
            body: new.body,
            client_msg_id: new.client_msg_id,
            sent_at_ms: new.sent_at_ms,
        };
        if let Some(cmid) = &message.client_msg_id {
            state
                .by_client_id
                .insert((new.sender, cmid.clone()), message.id);
        }
        state.messages.push(message.clone());
        let deliveries = recipients
            .into_iter()
            .map(|user| {
                let inbox = state.inboxes.entry(user).or_default();
                inbox.entries.push(Some(index));
                Delivery {
                    user,
                    seq: Seq(inbox.entries.len() as i64),
                }
            })
            .collect();
        Ok(SendReceipt {
            message,
            deliveries,
            duplicate: false,
        })
    }

    async fn inbox_after(
        &self,
        user: UserId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let state = self.state();
        let Some(inbox) = state.inboxes.get(&user) else {
            return Ok(Vec::new());
        };
        let start = after.0.max(0) as usize;
        Ok(inbox
            .entries
            .iter()
            .enumerate()
            .skip(start)
            .filter_map(|(i, &index)| {
                index.map(|index| InboxEntry {
                    seq: Seq(i as i64 + 1),
                    message: state.messages[index].clone(),
                })
            })
            .take(limit as usize)
            .collect())
    }

    async fn ack(&self, user: UserId, seq: Seq) -> Result<Seq, StoreError> {
        let mut state = self.state();
        let Some(inbox) = state.inboxes.get_mut(&user) else {
            return Ok(Seq::ZERO);
        };
        let last = Seq(inbox.entries.len() as i64);
        inbox.acked = inbox.acked.max(seq.min(last));
        Ok(inbox.acked)
    }

    async fn cursor(&self, user: UserId) -> Result<Seq, StoreError> {
        Ok(self
            .state()
            .inboxes
            .get(&user)
            .map_or(Seq::ZERO, |inbox| inbox.acked))
    }

    async fn history(
        &self,
        conversation: Conversation,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let state = self.state();
        let wanted = conversation.normalized();
        // `before` comes from the client: any i64, so no plain `- 1`.
        let end = before.map_or(state.messages.len(), |id| {
            id.0.saturating_sub(1).clamp(0, state.messages.len() as i64) as usize
        });
        Ok(state.messages[..end]
            .iter()
            .rev()
            .filter(|m| !state.pruned.contains(&m.id))
            .filter(|m| Conversation::of(m.sender.id, m.target).normalized() == wanted)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn mark_read(
        &self,
        user: UserId,
        with: Target,
        mid: MessageId,
    ) -> Result<MessageId, StoreError> {
        let mut state = self.state();
        match with {
            Target::User(peer) => state.require_user(peer)?,
            Target::Group(group) => {
                state.require_group(group)?;
                if !state.members.contains_key(&(group, user)) {
                    return Err(StoreError::NotMember { user, group });
                }
            }
        }
        let position = state.read.entry((user, with)).or_default();
        *position = (*position).max(mid);
        Ok(*position)
    }

    async fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let state = self.state();
        // Newest first, the first message seen of each conversation is
        // its last (a scan: see `group_count`).
        let mut seen: HashMap<Target, ConversationSummary> = HashMap::new();
        let mut order = Vec::new();
        let kept = state
            .messages
            .iter()
            .filter(|m| !state.pruned.contains(&m.id));
        for message in kept.rev() {
            let with = match message.target {
                Target::User(to) if message.sender.id == user => Target::User(to),
                Target::User(to) if to == user => Target::User(message.sender.id),
                Target::Group(group) if state.members.contains_key(&(group, user)) => {
                    Target::Group(group)
                }
                _ => continue,
            };
            let read = state.read.get(&(user, with)).copied().unwrap_or_default();
            let entry = seen.entry(with).or_insert_with(|| {
                order.push(with);
                let name = match with {
                    Target::User(peer) => state.user_info(peer).map(|u| u.name),
                    Target::Group(group) => state.groups.get(&group).map(|g| g.name.clone()),
                };
                ConversationSummary {
                    with,
                    name: name.unwrap_or_default(),
                    last: message.clone(),
                    unread: 0,
                    read,
                }
            });
            if message.id > read && message.sender.id != user {
                entry.unread += 1;
            }
        }
        Ok(order
            .into_iter()
            .filter_map(|with| seen.remove(&with))
            .filter(|c| before.is_none_or(|before| c.last.id < before))
            .take(limit as usize)
            .collect())
    }

    async fn find_users(
        &self,
        name: &str,
        prefix: bool,
        limit: u32,
    ) -> Result<Vec<UserInfo>, StoreError> {
        let state = self.state();
        if !prefix {
            return Ok(state
                .names
                .get(name)
                .and_then(|&id| state.user_info(id))
                .into_iter()
                .collect());
        }
        let mut found: Vec<UserInfo> = state
            .names
            .iter()
            .filter(|(n, _)| n.starts_with(name))
            .map(|(n, &id)| UserInfo {
                id,
                name: n.clone(),
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.truncate(limit as usize);
        Ok(found)
    }
}
