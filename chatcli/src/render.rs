//! Text for the user: every [`Output`] as lines, the login summary in the
//! seed's layout, the help, and ANSI colours when they are wanted.

use std::fmt::Write as _;

use chatcore::client::{ChatMessage, Contact, Group, LoginInfo};
use chatcore::model::Target;

use crate::command::{SEED_COMMANDS, SLASH_COMMANDS, canonical};
use crate::output::{Label, Notice, Output, Reply, Status};

/// Whether to colour, decided once from the terminal and `NO_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

const BOLD: &str = "1";
const DIM: &str = "2";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const CYAN: &str = "36";

impl Style {
    #[cfg(test)]
    pub(crate) const PLAIN: Style = Style { color: false };

    /// `text` in the SGR colour `code`, or as is without colours.
    pub(crate) fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn user(self, label: &str) -> String {
        self.paint(CYAN, label)
    }

    fn group(self, label: &str) -> String {
        self.paint(MAGENTA, label)
    }

    fn label(self, label: &Label) -> String {
        match label {
            Label::User(..) => self.user(&label.to_string()),
            Label::Group(..) => self.group(&label.to_string()),
        }
    }
}

/// Whether colours suit this output: a terminal, and `NO_COLOR` unset or
/// empty (<https://no-color.org>).
pub(crate) fn colors_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Text from the server made safe for a terminal: control characters other
/// than newline and tab are shown escaped, so a message cannot move the
/// cursor, change colours or retitle the window.
pub(crate) fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The server's `YYYY-MM-DD HH:MM:SS`, shortened to the time when the date
/// is `today`.
pub(crate) fn short_time<'a>(time: &'a str, today: &str) -> &'a str {
    match time.split_once(' ') {
        Some((date, clock)) if date == today => clock,
        _ => time,
    }
}

/// Today's date in the server's format (both run in local time).
pub(crate) fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// Shortens `text` to about `max` characters for a one-line echo.
fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// An incoming (or listed) message: `21:40:00 [2]bob said: hi`, and for a
/// group `21:40:00 [#1]rust [2]bob said: hi`.
pub(crate) fn message(style: Style, m: &ChatMessage, group: Option<&str>, today: &str) -> String {
    let time = style.paint(DIM, short_time(&m.time, today));
    let sender = style.user(&format!("[{}]{}", m.from, sanitize(&m.name)));
    let body = sanitize(&m.msg);
    match m.groupid {
        Some(g) => {
            let group = style.group(&Label::Group(g, group.map(sanitize)).to_string());
            format!("{time} {group} {sender} said: {body}")
        }
        None => format!("{time} {sender} said: {body}"),
    }
}

fn contact_line(style: Style, c: &Contact) -> String {
    let state = if c.online() {
        style.paint(GREEN, &c.state)
    } else {
        style.paint(DIM, &c.state)
    };
    let mut line = format!("{} {} {state}", c.id, sanitize(&c.name));
    if let Some(role) = &c.role {
        let _ = write!(line, " {role}");
    }
    line
}

fn group_block(style: Style, out: &mut String, g: &Group) {
    let _ = writeln!(
        out,
        "{} {} {}",
        g.id,
        style.group(&sanitize(&g.groupname)),
        sanitize(&g.groupdesc)
    );
    for user in &g.users {
        let _ = writeln!(out, "  {}", contact_line(style, user));
    }
}

/// The seed's login summary: the user, friends with their state, groups
/// with members and roles.
pub(crate) fn login_summary(style: Style, info: &LoginInfo) -> String {
    let mut out = String::new();
    out.push_str("======================login user======================\n");
    let _ = writeln!(
        out,
        "current login user => id:{} name:{}",
        info.id,
        style.paint(BOLD, &sanitize(&info.name))
    );
    out.push_str("----------------------friend list---------------------\n");
    for friend in &info.friends {
        let _ = writeln!(out, "{}", contact_line(style, friend));
    }
    out.push_str("----------------------group list----------------------\n");
    for group in &info.groups {
        group_block(style, &mut out, group);
    }
    out.push_str("======================================================\n");
    out.push_str(&style.paint(
        DIM,
        "type help or /help for the commands; messages while you were away follow",
    ));
    out
}

/// A command's result in words.
pub(crate) fn reply(style: Style, reply: &Reply, today: &str) -> String {
    let ok = |text: String| format!("{} {text}", style.paint(GREEN, "✓"));
    match reply {
        Reply::Queued { to } => format!(
            "{} offline: the message to {} waits and goes out once reconnected",
            style.paint(YELLOW, "…"),
            style.label(to)
        ),
        Reply::Sent { to, text, sent } => {
            let mut line = ok(format!(
                "{} to {}: {}",
                style.paint(DIM, short_time(&sent.time, today)),
                style.label(to),
                sanitize(&excerpt(text, 60))
            ));
            if sent.duplicate {
                line.push_str(&style.paint(DIM, " (the server already had it)"));
            }
            line
        }
        Reply::FriendAdded(who) => ok(format!("{} is now your friend", style.label(who))),
        Reply::FriendRemoved(who) => ok(format!("{} is no longer your friend", style.label(who))),
        Reply::GroupCreated(g) => ok(format!(
            "created group {} (you are its creator)",
            style.label(g)
        )),
        Reply::GroupJoined(g) => ok(format!("joined group {}", style.label(g))),
        Reply::GroupLeft(g) => ok(format!("left group {}", style.label(g))),
        Reply::Friends(friends) if friends.is_empty() => {
            "no friends yet: addfriend:ID or /add ID".to_string()
        }
        Reply::Friends(friends) => {
            let mut out = "----------------------friend list---------------------".to_string();
            for friend in friends {
                let _ = write!(out, "\n{}", contact_line(style, friend));
            }
            out
        }
        Reply::Groups(groups) if groups.is_empty() => {
            "no groups yet: creategroup:NAME:DESC, or addgroup:ID to join one".to_string()
        }
        Reply::Groups(groups) => {
            let mut out = "----------------------group list----------------------\n".to_string();
            for group in groups {
                group_block(style, &mut out, group);
            }
            out.trim_end().to_string()
        }
        Reply::Members { group, users } => {
            let mut out = format!("members of {}:", style.label(group));
            for user in users {
                let _ = write!(out, "\n  {}", contact_line(style, user));
            }
            out
        }
        Reply::Read { with, mid } => ok(format!("{} read up to message {mid}", style.label(with))),
        Reply::Chats { conversations, .. } if conversations.is_empty() => {
            "no conversations yet".to_string()
        }
        Reply::Chats {
            conversations,
            more,
        } => {
            let mut out = "conversations:".to_string();
            for c in conversations {
                let label = match c.with {
                    Target::User(id) => Label::User(id, Some(c.name.clone())),
                    Target::Group(id) => Label::Group(id, Some(c.name.clone())),
                };
                let unread = if c.unread > 0 {
                    style.paint(GREEN, &format!("{} unread", c.unread))
                } else {
                    style.paint(DIM, "read")
                };
                let group = matches!(c.with, Target::Group(_)).then_some(c.name.as_str());
                let _ = write!(
                    out,
                    "\n  {} {unread}: {}",
                    style.label(&label),
                    message(style, &c.last, group, today)
                );
            }
            if *more {
                let _ = write!(
                    out,
                    "\n  {}",
                    style.paint(
                        DIM,
                        "(older conversations exist: ask for more with a count)"
                    )
                );
            }
            out
        }
        Reply::Users(users) if users.is_empty() => "no such user".to_string(),
        Reply::Users(users) => {
            let mut out = "users:".to_string();
            for user in users {
                let _ = write!(out, "\n  {}", contact_line(style, user));
            }
            out
        }
        Reply::History { with, messages, .. } if messages.is_empty() => {
            format!("no messages with {} yet", style.label(with))
        }
        Reply::History {
            me,
            with,
            messages,
            more,
        } => {
            let mut out = format!("history with {}:", style.label(with));
            let group = match with {
                Label::Group(_, name) => name.as_deref(),
                Label::User(..) => None,
            };
            for m in messages {
                let mut line = message(style, m, group, today);
                if m.from == *me {
                    line = style.paint(DIM, &line);
                }
                let _ = write!(out, "\n  {line}");
            }
            if *more {
                let _ = write!(
                    out,
                    "\n  {}",
                    style.paint(DIM, "(older messages exist: ask for more with a count)")
                );
            }
            out
        }
        Reply::Focus(Some(to)) => format!(
            "plain lines now go to {} (/to alone closes the conversation)",
            style.label(to)
        ),
        Reply::Focus(None) => "no open conversation: plain lines are commands again".to_string(),
        Reply::Status(status) => status_text(style, status),
        Reply::LoggedOut => ok("logged out".to_string()),
    }
}

fn status_text(style: Style, s: &Status) -> String {
    let link = match s.offline_attempts {
        None => style.paint(GREEN, "connected"),
        Some(n) => style.paint(YELLOW, &format!("offline, reconnecting (attempt {n})")),
    };
    let mut out = format!(
        "logged in as {} on {}, {link}\nmessages waiting for the server: {}\nlast message received: #{}",
        style.label(&s.user),
        s.addr,
        s.pending,
        s.seen
    );
    if let Some(focus) = &s.focus {
        let _ = write!(out, "\nplain lines go to {}", style.label(focus));
    }
    out
}

/// Connection news in words.
pub(crate) fn notice(style: Style, notice: &Notice) -> String {
    let text = match notice {
        Notice::Disconnected { reason } => {
            format!("connection lost ({reason}); reconnecting…")
        }
        Notice::Reconnected { attempts: 1 } => "reconnected".to_string(),
        Notice::Reconnected { attempts } => format!("reconnected after {attempts} attempts"),
        Notice::Ended { reason } => format!("session ended: {reason}"),
        Notice::ServerError { errno, errmsg } => format!("server error {errno}: {errmsg}"),
        Notice::Unsent(1) => "1 message was not sent".to_string(),
        Notice::Unsent(n) => format!("{n} messages were not sent"),
        Notice::Presence { who, online: true } => format!("{who} is online"),
        Notice::Presence { who, online: false } => format!("{who} went offline"),
    };
    style.paint(YELLOW, &format!("* {}", sanitize(&text)))
}

/// A failed command.
pub(crate) fn failure(style: Style, error: &str) -> String {
    format!("{} {}", style.paint(RED, "error:"), sanitize(error))
}

/// Any output as text (without a final newline).
pub(crate) fn output(style: Style, output: &Output, today: &str) -> String {
    match output {
        Output::LoggedIn(info) => login_summary(style, info),
        Output::Message { message: m, group } => message(style, m, group.as_deref(), today),
        Output::Reply(r) => reply(style, r, today),
        Output::Failed(error) => failure(style, error),
        Output::Notice(n) => notice(style, n),
        Output::Text(text) => text.clone(),
    }
}

/// The command list, or the help of one command.
pub(crate) fn help(style: Style, topic: Option<&str>) -> String {
    if let Some(topic) = topic {
        return help_topic(topic);
    }
    let mut out = String::from("show command list.\nthe seed's commands:\n");
    for (_, usage, what) in SEED_COMMANDS {
        let _ = writeln!(
            out,
            "  {} {what}",
            style.paint(BOLD, &format!("{usage:<34}"))
        );
    }
    out.push_str("more commands:\n");
    for (_, _, usage, what) in SLASH_COMMANDS {
        let _ = writeln!(
            out,
            "  {} {what}",
            style.paint(BOLD, &format!("{usage:<34}"))
        );
    }
    out.push_str(
        "FRIEND is a user id or a friend's name, GROUP a group id or name, #GROUP a group\n\
         where a user could be meant. Tab completes commands, friends and groups.\n\
         Ctrl-C clears the line, Ctrl-D quits.",
    );
    out
}

fn help_topic(topic: &str) -> String {
    let word = topic.trim().trim_end_matches(':');
    if let Some((_, usage, what)) = SEED_COMMANDS.iter().find(|(w, ..)| *w == word) {
        return format!("{usage}\n  {what}");
    }
    let slash = if word.starts_with('/') {
        word.to_string()
    } else {
        format!("/{word}")
    };
    match canonical(&slash).and_then(|name| SLASH_COMMANDS.iter().find(|(n, ..)| *n == name)) {
        Some((_, aliases, usage, what)) => {
            let mut out = format!("{usage}\n  {what}");
            if !aliases.is_empty() {
                let _ = write!(out, "\n  also: {}", aliases.join(", "));
            }
            out
        }
        None => format!("no command {word}; help lists them"),
    }
}

#[cfg(test)]
mod tests {
    use chatcore::client::Sent;
    use chatcore::model::{GroupId, MessageId, Seq, UserId};

    use super::*;

    const TODAY: &str = "2026-11-28";

    fn chat(from: i64, name: &str, group: Option<i64>, msg: &str, time: &str) -> ChatMessage {
        ChatMessage {
            kind: if group.is_some() { 9 } else { 5 },
            from: UserId(from),
            name: name.into(),
            toid: if group.is_some() {
                None
            } else {
                Some(UserId(1))
            },
            groupid: group.map(GroupId),
            msg: msg.into(),
            time: time.into(),
            seq: Some(Seq(1)),
            mid: MessageId(1),
        }
    }

    fn contact(id: i64, name: &str, state: &str, role: Option<&str>) -> Contact {
        Contact {
            id: UserId(id),
            name: name.into(),
            state: state.into(),
            role: role.map(String::from),
        }
    }

    #[test]
    fn one_to_one_message_shows_time_and_sender_like_the_seed() {
        let m = chat(2, "bob", None, "hi alice", "2026-11-28 21:42:15");
        assert_eq!(
            message(Style::PLAIN, &m, None, TODAY),
            "21:42:15 [2]bob said: hi alice"
        );
    }

    #[test]
    fn a_message_from_another_day_keeps_its_date() {
        let m = chat(2, "bob", None, "old", "2026-11-27 08:00:00");
        assert_eq!(
            message(Style::PLAIN, &m, None, TODAY),
            "2026-11-27 08:00:00 [2]bob said: old"
        );
    }

    #[test]
    fn group_message_names_the_group() {
        let m = chat(3, "carol", Some(1), "group hi", "2026-11-28 21:42:18");
        assert_eq!(
            message(Style::PLAIN, &m, Some("rustaceans"), TODAY),
            "21:42:18 [#1]rustaceans [3]carol said: group hi"
        );
        assert_eq!(
            message(Style::PLAIN, &m, None, TODAY),
            "21:42:18 [#1] [3]carol said: group hi"
        );
    }

    #[test]
    fn control_characters_from_the_server_are_escaped() {
        let m = chat(2, "b\x1b[31mob", None, "x\x1b]0;pwned\x07y\nz", "t");
        let line = message(Style::PLAIN, &m, None, TODAY);
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(!line.contains('\x07'), "{line:?}");
        assert!(line.contains("\\u{1b}[31mob"), "{line:?}");
        assert!(line.ends_with("y\nz"), "newlines stay: {line:?}");
    }

    #[test]
    fn colours_only_when_asked() {
        let m = chat(2, "bob", None, "hi", "2026-11-28 21:42:15");
        let colored = message(Style { color: true }, &m, None, TODAY);
        assert!(colored.contains("\x1b[36m[2]bob\x1b[0m"), "{colored:?}");
        assert!(!message(Style::PLAIN, &m, None, TODAY).contains('\x1b'));
    }

    #[test]
    fn no_color_and_non_terminals_turn_colours_off() {
        use std::ffi::OsStr;
        assert!(colors_wanted(true, None));
        assert!(colors_wanted(true, Some(OsStr::new(""))));
        assert!(!colors_wanted(true, Some(OsStr::new("1"))));
        assert!(!colors_wanted(false, None));
    }

    #[test]
    fn login_summary_has_the_seeds_layout() {
        let info = LoginInfo {
            id: UserId(1),
            name: "alice".into(),
            friends: vec![contact(3, "carol", "online", None)],
            groups: vec![Group {
                id: GroupId(1),
                groupname: "rustaceans".into(),
                groupdesc: "crabs only".into(),
                users: vec![
                    contact(1, "alice", "online", Some("creator")),
                    contact(3, "carol", "offline", Some("normal")),
                ],
            }],
            cursor: Seq(0),
            resume: None,
        };
        let text = login_summary(Style::PLAIN, &info);
        let expected = "\
======================login user======================
current login user => id:1 name:alice
----------------------friend list---------------------
3 carol online
----------------------group list----------------------
1 rustaceans crabs only
  1 alice online creator
  3 carol offline normal
======================================================
";
        assert!(text.starts_with(expected), "{text}");
    }

    #[test]
    fn sent_reply_shows_the_ack_time_and_target() {
        let sent = Sent {
            mid: MessageId(7),
            time: "2026-11-28 21:42:12".into(),
            duplicate: false,
        };
        let to = Label::User(UserId(2), Some("bob".into()));
        let text = reply(
            Style::PLAIN,
            &Reply::Sent {
                to: to.clone(),
                text: "hello bob".into(),
                sent: sent.clone(),
            },
            TODAY,
        );
        assert_eq!(text, "✓ 21:42:12 to [2]bob: hello bob");
        let dup = reply(
            Style::PLAIN,
            &Reply::Sent {
                to,
                text: "hello bob".into(),
                sent: Sent {
                    duplicate: true,
                    ..sent
                },
            },
            TODAY,
        );
        assert!(dup.ends_with("(the server already had it)"), "{dup}");
    }

    #[test]
    fn long_messages_are_shortened_in_the_ack() {
        let sent = Sent {
            mid: MessageId(7),
            time: "t".into(),
            duplicate: false,
        };
        let text = reply(
            Style::PLAIN,
            &Reply::Sent {
                to: Label::Group(GroupId(1), None),
                text: "x".repeat(200),
                sent,
            },
            TODAY,
        );
        assert!(text.ends_with('…'), "{text}");
        assert!(text.chars().count() < 100, "{text}");
    }

    #[test]
    fn replies_are_in_words() {
        let bob = Label::User(UserId(2), Some("bob".into()));
        let rust = Label::Group(GroupId(3), Some("rust".into()));
        let plain = |r: Reply| reply(Style::PLAIN, &r, TODAY);
        assert_eq!(
            plain(Reply::FriendAdded(bob.clone())),
            "✓ [2]bob is now your friend"
        );
        assert_eq!(
            plain(Reply::GroupCreated(rust.clone())),
            "✓ created group [#3]rust (you are its creator)"
        );
        assert_eq!(
            plain(Reply::GroupLeft(rust.clone())),
            "✓ left group [#3]rust"
        );
        assert_eq!(
            plain(Reply::Friends(vec![contact(2, "bob", "offline", None)])),
            "----------------------friend list---------------------\n2 bob offline"
        );
        assert_eq!(
            plain(Reply::Members {
                group: rust,
                users: vec![contact(1, "alice", "online", Some("creator"))]
            }),
            "members of [#3]rust:\n  1 alice online creator"
        );
        assert!(plain(Reply::Queued { to: bob }).contains("goes out once reconnected"));
        assert_eq!(plain(Reply::LoggedOut), "✓ logged out");
    }

    #[test]
    fn history_lists_oldest_first_as_given() {
        let messages = vec![
            chat(2, "bob", None, "first", "2026-11-28 10:00:00"),
            chat(1, "alice", None, "second", "2026-11-28 10:01:00"),
        ];
        let text = reply(
            Style::PLAIN,
            &Reply::History {
                me: UserId(1),
                with: Label::User(UserId(2), Some("bob".into())),
                messages,
                more: false,
            },
            TODAY,
        );
        assert_eq!(
            text,
            "history with [2]bob:\n  10:00:00 [2]bob said: first\n  10:01:00 [1]alice said: second"
        );
    }

    #[test]
    fn notices_and_failures_read_as_sentences() {
        assert_eq!(
            notice(
                Style::PLAIN,
                &Notice::Disconnected {
                    reason: "the server closed the connection".into()
                }
            ),
            "* connection lost (the server closed the connection); reconnecting…"
        );
        assert_eq!(
            notice(Style::PLAIN, &Notice::Reconnected { attempts: 1 }),
            "* reconnected"
        );
        assert_eq!(
            failure(Style::PLAIN, "no such user: 99"),
            "error: no such user: 99"
        );
    }

    #[test]
    fn help_lists_every_command_and_explains_one() {
        let text = help(Style::PLAIN, None);
        for (_, usage, _) in SEED_COMMANDS {
            assert!(text.contains(usage), "{usage} missing");
        }
        for (_, _, usage, _) in SLASH_COMMANDS {
            assert!(text.contains(usage), "{usage} missing");
        }
        assert!(help(Style::PLAIN, Some("msg")).starts_with("/msg FRIEND|#GROUP TEXT"));
        assert!(help(Style::PLAIN, Some("/m")).starts_with("/msg FRIEND|#GROUP TEXT"));
        assert!(help(Style::PLAIN, Some("chat")).starts_with("chat:friendid:message"));
        assert_eq!(
            help(Style::PLAIN, Some("nope")),
            "no command nope; help lists them"
        );
    }
}
