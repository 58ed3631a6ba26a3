//! What a session knows about people and groups: the friend and group
//! lists as the server last gave them, and every user name seen (friends,
//! members, senders), for labels and for finding a friend or group by name.

use std::collections::HashMap;

use chatcore::client::{Contact, Group};
use chatcore::model::{GroupId, UserId};

use crate::output::Label;

#[derive(Debug, Default)]
pub(super) struct Roster {
    friends: Vec<Contact>,
    groups: Vec<Group>,
    names: HashMap<UserId, String>,
}

impl Roster {
    pub(super) fn friends(&self) -> &[Contact] {
        &self.friends
    }

    pub(super) fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub(super) fn set_friends(&mut self, friends: Vec<Contact>) {
        for friend in &friends {
            self.learn(friend.id, &friend.name);
        }
        self.friends = friends;
    }

    pub(super) fn set_groups(&mut self, groups: Vec<Group>) {
        for user in groups.iter().flat_map(|g| &g.users) {
            self.learn(user.id, &user.name);
        }
        self.groups = groups;
    }

    pub(super) fn is_friend(&self, id: UserId) -> bool {
        self.friends.iter().any(|f| f.id == id)
    }

    /// Records a friend's presence as the server pushed it.
    pub(super) fn set_online(&mut self, id: UserId, online: bool) {
        for friend in self.friends.iter_mut().filter(|f| f.id == id) {
            friend.state = if online { "online" } else { "offline" }.to_string();
        }
    }

    pub(super) fn remove_friend(&mut self, id: UserId) {
        self.friends.retain(|f| f.id != id);
    }

    pub(super) fn remove_group(&mut self, id: GroupId) {
        self.groups.retain(|g| g.id != id);
    }

    /// Remembers a user's name.
    pub(super) fn learn(&mut self, id: UserId, name: &str) {
        if self.names.get(&id).is_none_or(|known| known != name) {
            self.names.insert(id, name.to_string());
        }
    }

    /// `[2]bob`, or `[2]` for a user never seen.
    pub(super) fn user(&self, id: UserId) -> Label {
        Label::User(id, self.names.get(&id).cloned())
    }

    /// `[#1]rust`, or `[#1]` for a group we are not in.
    pub(super) fn group(&self, id: GroupId) -> Label {
        Label::Group(id, self.group_name(id))
    }

    pub(super) fn group_name(&self, id: GroupId) -> Option<String> {
        self.groups
            .iter()
            .find(|g| g.id == id)
            .map(|g| g.groupname.clone())
    }

    pub(super) fn friend_named(&self, name: &str) -> Option<UserId> {
        find_by_name(&self.friends, name, |f| f.name.as_str()).map(|f| f.id)
    }

    pub(super) fn group_named(&self, name: &str) -> Option<GroupId> {
        find_by_name(&self.groups, name, |g| g.groupname.as_str()).map(|g| g.id)
    }
}

/// The entry whose name is `name` exactly, or else the only one whose name
/// matches ignoring case.
fn find_by_name<'a, T>(items: &'a [T], name: &str, name_of: impl Fn(&T) -> &str) -> Option<&'a T> {
    if let Some(exact) = items.iter().find(|item| name_of(item) == name) {
        return Some(exact);
    }
    let mut folded = items
        .iter()
        .filter(|item| name_of(item).eq_ignore_ascii_case(name));
    match (folded.next(), folded.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(id: i64, name: &str) -> Contact {
        Contact {
            id: UserId(id),
            name: name.into(),
            state: "online".into(),
            role: None,
        }
    }

    #[test]
    fn names_match_exactly_first_then_case_insensitively_if_unambiguous() {
        let names = ["bob", "Bob", "carol"];
        let find = |n: &str| find_by_name(&names, n, |s| s).copied();
        assert_eq!(find("Bob"), Some("Bob"));
        assert_eq!(find("bob"), Some("bob"));
        assert_eq!(find("BOB"), None, "two candidates");
        assert_eq!(find("CAROL"), Some("carol"));
        assert_eq!(find("dave"), None);
    }

    #[test]
    fn labels_use_every_name_seen() {
        let mut roster = Roster::default();
        assert_eq!(roster.user(UserId(2)), Label::User(UserId(2), None));
        roster.set_groups(vec![Group {
            id: GroupId(1),
            groupname: "rust".into(),
            groupdesc: String::new(),
            users: vec![contact(3, "carol")],
        }]);
        roster.learn(UserId(2), "bob");
        assert_eq!(
            roster.user(UserId(2)),
            Label::User(UserId(2), Some("bob".into()))
        );
        assert_eq!(
            roster.user(UserId(3)),
            Label::User(UserId(3), Some("carol".into()))
        );
        assert_eq!(
            roster.group(GroupId(1)),
            Label::Group(GroupId(1), Some("rust".into()))
        );
        assert_eq!(roster.group(GroupId(9)), Label::Group(GroupId(9), None));
    }

    #[test]
    fn friends_and_groups_are_found_by_name_until_removed() {
        let mut roster = Roster::default();
        roster.set_friends(vec![contact(2, "bob")]);
        assert_eq!(roster.friend_named("bob"), Some(UserId(2)));
        roster.remove_friend(UserId(2));
        assert_eq!(roster.friend_named("bob"), None);
        assert_eq!(
            roster.user(UserId(2)),
            Label::User(UserId(2), Some("bob".into())),
            "the name is still known"
        );
    }
}
