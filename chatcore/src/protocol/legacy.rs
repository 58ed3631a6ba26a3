//! The legacy dialect: the seed client's exact shapes, server side only.
//! Lists are arrays of JSON-encoded strings, success acks and heartbeats
//! are not sent, failures of login and register are the seed's own
//! replies, and a login reply stays under the seed client's 1024-byte read.

use std::borrow::Cow;

use serde::Serialize;

use super::native::{ChatView, ErrorView, FriendView, GroupView, ListView, MemberView};
use super::time::format_time;
use super::{GroupEntry, LoginOk, ServerFrame, msgid, push_json, to_json};
use crate::model::{InboxEntry, UserId};

/// The seed client reads each reply with one 1024-byte `recv` and needs
/// room for a terminating NUL, so a legacy frame (with its `\n`) must stay
/// below this many bytes to be read whole.
pub const LEGACY_READ_LIMIT: usize = 1024;

fn strings<'a, T: 'a, V: Serialize + From<&'a T>>(items: &'a [T]) -> Vec<String> {
    items.iter().map(|i| to_json(&V::from(i))).collect()
}

/// A group as the seed shows it: a JSON string whose `users` are JSON
/// strings too.
fn group_string(g: &GroupEntry) -> String {
    to_json(&GroupView::of(g, |m| to_json(&MemberView::from(m))))
}

#[derive(Serialize)]
struct LoginView<'a> {
    msgid: u32,
    errno: u32,
    id: UserId,
    name: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    friends: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    offlinemsg: Vec<String>,
}

/// Encodes a successful login reply (with its `\n`) into `out` carrying,
/// as `offlinemsg`, as many leading entries of `backlog` as keep the frame
/// under [`LEGACY_READ_LIMIT`]; returns how many. The caller sends the
/// rest as separate frames.
pub fn encode_legacy_login(login: &LoginOk, backlog: &[InboxEntry], out: &mut Vec<u8>) -> usize {
    let mut view = LoginView {
        msgid: msgid::LOGIN_ACK,
        errno: 0,
        id: login.user.id,
        name: &login.user.name,
        friends: strings::<_, FriendView<'_>>(&login.friends),
        groups: login.groups.iter().map(group_string).collect(),
        offlinemsg: Vec::new(),
    };
    let mut encoded = to_json(&view);
    for entry in backlog {
        view.offlinemsg
            .push(to_json(&ChatView::seed(&entry.message)));
        let candidate = to_json(&view);
        if candidate.len() + 1 >= LEGACY_READ_LIMIT {
            view.offlinemsg.pop();
            break;
        }
        encoded = candidate;
    }
    out.extend_from_slice(encoded.as_bytes());
    out.push(b'\n');
    view.offlinemsg.len()
}

/// Appends `frame` as the seed client reads it; false, writing nothing,
/// for a frame the seed client never got (success acks, heartbeats, and
/// the replies of the native-only requests).
pub(super) fn encode(frame: &ServerFrame, out: &mut Vec<u8>) -> bool {
    match frame {
        ServerFrame::LoginOk(login) => {
            encode_legacy_login(login, &[], out);
        }
        ServerFrame::RegisterOk { .. }
        | ServerFrame::Sync(_)
        | ServerFrame::History { .. }
        | ServerFrame::Pong { .. } => super::native::encode(frame, out),
        ServerFrame::Push { message, .. } => push_json(out, &ChatView::seed(message)),
        ServerFrame::Error(e) => {
            // The seed client waits for a 2 or a 4 after login and
            // register, and reads errno 1 as failure.
            let (msgid, errno, req) = match e.req {
                Some(msgid::LOGIN) => (msgid::LOGIN_ACK, 1, None),
                Some(msgid::REG) => (msgid::REG_ACK, 1, None),
                req => (msgid::ERROR, e.code.errno(), req),
            };
            push_json(
                out,
                &ErrorView {
                    msgid,
                    errno,
                    errmsg: Cow::Borrowed(&e.detail),
                    req,
                    rid: e.rid,
                },
            );
        }
        // Native-only pushes and the native-only requests' replies (the
        // seed never asked for them).
        ServerFrame::Ack(_)
        | ServerFrame::ChatAck(_)
        | ServerFrame::Ping
        | ServerFrame::Presence { .. }
        | ServerFrame::Conversations { .. }
        | ServerFrame::Users { .. } => return false,
        ServerFrame::Friends { rid, friends } => {
            let mut view = ListView::new(msgid::FRIENDS_ACK, *rid);
            view.friends = Some(strings::<_, FriendView<'_>>(friends));
            push_json(out, &view);
        }
        ServerFrame::Groups { rid, groups } => {
            let mut view = ListView::new(msgid::GROUPS_ACK, *rid);
            view.groups = Some(groups.iter().map(group_string).collect());
            push_json(out, &view);
        }
        ServerFrame::Members {
            rid,
            groupid,
            users,
        } => {
            let mut view = ListView::new(msgid::MEMBERS_ACK, *rid);
            view.groupid = Some(*groupid);
            view.users = Some(strings::<_, MemberView<'_>>(users));
            push_json(out, &view);
        }
        ServerFrame::Kicked { code } => {
            // The seed client shows only chat frames; a line from a
            // system sender tells its user why the connection ends.
            #[derive(Serialize)]
            struct Notice<'a> {
                msgid: u32,
                id: i64,
                name: &'a str,
                msg: &'a str,
                time: String,
            }
            push_json(
                out,
                &Notice {
                    msgid: msgid::ONE_CHAT,
                    id: 0,
                    name: "system",
                    msg: code.message(),
                    time: format_time(chrono::Utc::now().timestamp_millis()),
                },
            );
        }
    }
    true
}
