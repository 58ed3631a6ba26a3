//! What a typed line means: the seed's `name:args` commands and our `/slash`
//! commands, parsed once into [`Command`]. Pure; the session resolves names.

use std::fmt;

use chatcore::model::{GroupId, UserId};

/// Messages shown by `/history` when no count is given.
pub(crate) const DEFAULT_HISTORY: u32 = 20;
/// The most `/history` asks for (the server's page limit).
pub(crate) const MAX_HISTORY: u32 = 500;

/// Conversations listed by `/chats` when no count is given, and the most.
pub(crate) const DEFAULT_CHATS: u32 = 20;
pub(crate) const MAX_CHATS: u32 = 200;
/// Users listed by a prefix `/find`.
pub(crate) const FIND_LIMIT: u32 = 20;

/// A user or a group named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    Id(i64),
    Name(String),
}

impl Who {
    /// A number is an id, anything else a name.
    fn parse(token: &str) -> Who {
        match token.parse::<i64>() {
            Ok(id) => Who::Id(id),
            Err(_) => Who::Name(token.to_string()),
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Id(id) => write!(f, "{id}"),
            Who::Name(name) => f.write_str(name),
        }
    }
}

/// Someone to talk to: a user, or a group (written `#name` or `#id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    User(Who),
    Group(Who),
}

impl Peer {
    /// `#x` is a group, anything else a user.
    fn parse(token: &str) -> Peer {
        match token.strip_prefix('#') {
            Some(group) => Peer::Group(Who::parse(group)),
            None => Peer::User(Who::parse(token)),
        }
    }
}

/// One thing the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// The command list, or the help of one command.
    Help(Option<String>),
    /// Send `text` to a user or a group.
    Say {
        to: Peer,
        text: String,
    },
    /// A line that is no command: send it to the open conversation (`/to`).
    SayHere(String),
    /// Open (or with `None` close) the conversation bare lines go to.
    Focus(Option<Peer>),
    AddFriend(UserId),
    RemoveFriend(Who),
    CreateGroup {
        name: String,
        desc: String,
    },
    JoinGroup(GroupId),
    LeaveGroup(Who),
    Friends,
    Groups,
    Members(Who),
    History {
        with: Peer,
        limit: u32,
    },
    /// Mark a conversation read up to `mid` (`None`: its newest message).
    Read {
        with: Peer,
        mid: Option<i64>,
    },
    /// The conversations, newest first, with unread counts.
    Chats {
        limit: u32,
    },
    /// Users named `name`, or whose names start with it.
    Find {
        name: String,
        prefix: bool,
    },
    /// Connection state, user, pending messages.
    Status,
    /// End the session and go back to the menu (the seed's `loginout`).
    Logout,
    /// End the session and exit.
    Quit,
}

/// Why a line is not a command, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn usage(text: &str) -> ParseError {
    ParseError(format!("usage: {text}"))
}

/// The seed's command words, in the order `help` lists them.
pub(crate) const SEED_COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "help", "show command list"),
    ("chat", "chat:friendid:message", "one-to-one chat"),
    ("addfriend", "addfriend:friendid", "add a friend"),
    (
        "creategroup",
        "creategroup:groupname:groupdesc",
        "create a group",
    ),
    ("addgroup", "addgroup:groupid", "join a group"),
    ("groupchat", "groupchat:groupid:message", "group chat"),
    ("loginout", "loginout", "log out, back to the menu"),
];

/// The slash commands: name, aliases, usage, what it does.
pub(crate) const SLASH_COMMANDS: &[(&str, &[&str], &str, &str)] = &[
    (
        "/help",
        &["/?"],
        "/help [command]",
        "list commands, or explain one",
    ),
    (
        "/msg",
        &["/m"],
        "/msg FRIEND|#GROUP TEXT",
        "send a message to a user (id or friend's name) or a group",
    ),
    (
        "/gmsg",
        &["/g"],
        "/gmsg GROUP TEXT",
        "send a message to a group (id or name)",
    ),
    (
        "/to",
        &["/open"],
        "/to [FRIEND|#GROUP]",
        "open a conversation: plain lines then go there (no argument: close it)",
    ),
    (
        "/friends",
        &["/f"],
        "/friends",
        "your friends and who is online",
    ),
    ("/groups", &[], "/groups", "your groups with their members"),
    ("/members", &[], "/members GROUP", "the members of a group"),
    (
        "/history",
        &["/h"],
        "/history FRIEND|#GROUP [COUNT]",
        "the last messages of a conversation (default 20)",
    ),
    (
        "/chats",
        &["/conversations"],
        "/chats [COUNT]",
        "your conversations, newest first, with unread counts (default 20)",
    ),
    (
        "/read",
        &[],
        "/read FRIEND|#GROUP [MID]",
        "mark a conversation read (up to its newest message, or to MID)",
    ),
    (
        "/find",
        &["/whois"],
        "/find NAME|PREFIX*",
        "find a user by exact name, or by a name prefix ending in *",
    ),
    ("/add", &["/addfriend"], "/add USERID", "befriend a user"),
    ("/unfriend", &[], "/unfriend FRIEND", "end a friendship"),
    (
        "/create",
        &[],
        "/create NAME [DESCRIPTION]",
        "create a group (you become its creator)",
    ),
    ("/join", &[], "/join GROUPID", "join a group"),
    ("/leave", &[], "/leave GROUP", "leave a group"),
    (
        "/status",
        &[],
        "/status",
        "who you are, the connection, messages waiting to be sent",
    ),
    ("/logout", &[], "/logout", "log out, back to the menu"),
    ("/quit", &["/exit"], "/quit", "exit (Ctrl-D does the same)"),
];

/// Parses one input line. `Ok(None)` for a blank line.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("//") {
        // `//text` sends `/text` to the open conversation.
        return Ok(Some(Command::SayHere(format!("/{rest}"))));
    }
    if trimmed.starts_with('/') {
        return parse_slash(trimmed.trim_end()).map(Some);
    }
    match parse_seed(line) {
        Some(parsed) => parsed.map(Some),
        None => Ok(Some(Command::SayHere(line.to_string()))),
    }
}

/// The seed's syntax: `command:args`, split at the first colon. `None` when
/// the word before the colon is no seed command.
fn parse_seed(line: &str) -> Option<Result<Command, ParseError>> {
    let (word, args) = match line.split_once(':') {
        Some((word, args)) => (word, Some(args)),
        None => (line, None),
    };
    let parsed = match word.trim() {
        "help" => Ok(Command::Help(None)),
        "loginout" => Ok(Command::Logout),
        "chat" => say(args, "chat:friendid:message", |id| Peer::User(Who::Id(id))),
        "groupchat" => say(args, "groupchat:groupid:message", |id| {
            Peer::Group(Who::Id(id))
        }),
        "addfriend" => id_arg(args, "addfriend:friendid").map(|id| Command::AddFriend(UserId(id))),
        "addgroup" => id_arg(args, "addgroup:groupid").map(|id| Command::JoinGroup(GroupId(id))),
        "creategroup" => {
            let args = args.unwrap_or_default();
            let (name, desc) = args.split_once(':').unwrap_or((args, ""));
            if name.trim().is_empty() {
                Err(usage("creategroup:groupname:groupdesc"))
            } else {
                Ok(Command::CreateGroup {
                    name: name.trim().to_string(),
                    desc: desc.to_string(),
                })
            }
        }
        _ => return None,
    };
    Some(parsed)
}

fn id_arg(args: Option<&str>, usage_text: &str) -> Result<i64, ParseError> {
    args.and_then(|a| a.trim().parse::<i64>().ok())
        .ok_or_else(|| usage(usage_text))
}

fn say(
    args: Option<&str>,
    usage_text: &str,
    peer: impl FnOnce(i64) -> Peer,
) -> Result<Command, ParseError> {
    let (id, text) = args
        .and_then(|a| a.split_once(':'))
        .ok_or_else(|| usage(usage_text))?;
    let id = id.trim().parse::<i64>().map_err(|_| usage(usage_text))?;
    if text.is_empty() {
        return Err(ParseError("the message is empty".into()));
    }
    Ok(Command::Say {
        to: peer(id),
        text: text.to_string(),
    })
}

/// The canonical name of a slash command or alias (`/m` -> `/msg`).
pub(crate) fn canonical(word: &str) -> Option<&'static str> {
    SLASH_COMMANDS
        .iter()
        .find(|(name, aliases, _, _)| *name == word || aliases.contains(&word))
        .map(|(name, ..)| *name)
}

fn usage_of(name: &str) -> ParseError {
    let text = SLASH_COMMANDS
        .iter()
        .find(|(n, ..)| *n == name)
        .map_or(name, |(_, _, usage, _)| usage);
    usage(text)
}

/// Splits off the first whitespace-separated word.
fn first_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    }
}

fn parse_slash(line: &str) -> Result<Command, ParseError> {
    let (word, rest) = first_word(line);
    let Some(name) = canonical(word) else {
        return Err(ParseError(format!(
            "unknown command {word}; /help lists the commands"
        )));
    };
    let no_args = |command: Command| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(usage_of(name))
        }
    };
    let one_arg = || {
        let (arg, more) = first_word(rest);
        if arg.is_empty() || !more.is_empty() {
            Err(usage_of(name))
        } else {
            Ok(arg)
        }
    };
    let id = || one_arg().and_then(|arg| arg.parse::<i64>().map_err(|_| usage_of(name)));
    match name {
        "/help" => Ok(Command::Help(
            (!rest.is_empty()).then(|| rest.trim().to_string()),
        )),
        "/msg" | "/gmsg" => {
            let (to, text) = first_word(rest);
            if to.is_empty() || text.is_empty() {
                return Err(usage_of(name));
            }
            let to = if name == "/gmsg" {
                Peer::Group(Who::parse(to.trim_start_matches('#')))
            } else {
                Peer::parse(to)
            };
            Ok(Command::Say {
                to,
                text: text.to_string(),
            })
        }
        "/to" => {
            if rest.is_empty() {
                Ok(Command::Focus(None))
            } else {
                one_arg().map(|arg| Command::Focus(Some(Peer::parse(arg))))
            }
        }
        "/friends" => no_args(Command::Friends),
        "/groups" => no_args(Command::Groups),
        "/members" => one_arg().map(|g| Command::Members(Who::parse(g.trim_start_matches('#')))),
        "/history" => {
            let (with, count) = first_word(rest);
            if with.is_empty() {
                return Err(usage_of(name));
            }
            let limit = match count {
                "" => DEFAULT_HISTORY,
                count => match count.parse::<u32>() {
                    Ok(n) if (1..=MAX_HISTORY).contains(&n) => n,
                    _ => {
                        return Err(ParseError(format!(
                            "the count must be a number from 1 to {MAX_HISTORY}"
                        )));
                    }
                },
            };
            Ok(Command::History {
                with: Peer::parse(with),
                limit,
            })
        }
        "/read" => {
            let (with, mid) = first_word(rest);
            if with.is_empty() {
                return Err(usage_of(name));
            }
            let mid = match mid {
                "" => None,
                mid => match mid.parse::<i64>() {
                    Ok(n) if n >= 0 => Some(n),
                    _ => return Err(ParseError("MID must be a message id (0 or more)".into())),
                },
            };
            Ok(Command::Read {
                with: Peer::parse(with),
                mid,
            })
        }
        "/chats" => {
            let limit = match rest {
                "" => DEFAULT_CHATS,
                count => match count.parse::<u32>() {
                    Ok(n) if (1..=MAX_CHATS).contains(&n) => n,
                    _ => {
                        return Err(ParseError(format!(
                            "the count must be a number from 1 to {MAX_CHATS}"
                        )));
                    }
                },
            };
            Ok(Command::Chats { limit })
        }
        "/find" => one_arg().map(|arg| match arg.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => Command::Find {
                name: prefix.to_string(),
                prefix: true,
            },
            _ => Command::Find {
                name: arg.to_string(),
                prefix: false,
            },
        }),
        "/add" => id().map(|id| Command::AddFriend(UserId(id))),
        "/unfriend" => one_arg().map(|f| Command::RemoveFriend(Who::parse(f))),
        "/create" => {
            let (group, desc) = first_word(rest);
            if group.is_empty() {
                return Err(usage_of(name));
            }
            Ok(Command::CreateGroup {
                name: group.to_string(),
                desc: desc.to_string(),
            })
        }
        "/join" => id().map(|id| Command::JoinGroup(GroupId(id))),
        "/leave" => one_arg().map(|g| Command::LeaveGroup(Who::parse(g.trim_start_matches('#')))),
        "/status" => no_args(Command::Status),
        "/logout" => no_args(Command::Logout),
        "/quit" => no_args(Command::Quit),
        _ => Err(ParseError(format!("{name} is not implemented"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        match parse(line) {
            Ok(Some(command)) => command,
            other => panic!("{line:?} should parse, got {other:?}"),
        }
    }

    fn err(line: &str) -> String {
        match parse(line) {
            Err(e) => e.0,
            other => panic!("{line:?} should not parse, got {other:?}"),
        }
    }

    fn user(id: i64) -> Peer {
        Peer::User(Who::Id(id))
    }

    fn group(id: i64) -> Peer {
        Peer::Group(Who::Id(id))
    }

    #[test]
    fn blank_lines_are_no_command() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   \r\n"), Ok(None));
    }

    #[test]
    fn seed_commands_parse_as_the_seed_typed_them() {
        assert_eq!(ok("help"), Command::Help(None));
        assert_eq!(ok("loginout"), Command::Logout);
        assert_eq!(
            ok("chat:2:hello bob"),
            Command::Say {
                to: user(2),
                text: "hello bob".into()
            }
        );
        assert_eq!(ok("addfriend:7"), Command::AddFriend(UserId(7)));
        assert_eq!(
            ok("creategroup:rustaceans:crabs only"),
            Command::CreateGroup {
                name: "rustaceans".into(),
                desc: "crabs only".into()
            }
        );
        assert_eq!(ok("addgroup:3"), Command::JoinGroup(GroupId(3)));
        assert_eq!(
            ok("groupchat:3:hi all"),
            Command::Say {
                to: group(3),
                text: "hi all".into()
            }
        );
    }

    #[test]
    fn a_message_keeps_its_colons_and_spaces() {
        assert_eq!(
            ok("chat:2: see you at 10:30 :)"),
            Command::Say {
                to: user(2),
                text: " see you at 10:30 :)".into()
            }
        );
        assert_eq!(
            ok("creategroup:g:a: b"),
            Command::CreateGroup {
                name: "g".into(),
                desc: "a: b".into()
            }
        );
    }

    #[test]
    fn creategroup_without_description_is_allowed() {
        assert_eq!(
            ok("creategroup:solo"),
            Command::CreateGroup {
                name: "solo".into(),
                desc: String::new()
            }
        );
    }

    #[test]
    fn malformed_seed_commands_explain_their_usage() {
        assert_eq!(err("chat:bob:hi"), "usage: chat:friendid:message");
        assert_eq!(err("chat:2"), "usage: chat:friendid:message");
        assert_eq!(err("chat:2:"), "the message is empty");
        assert_eq!(err("addfriend:"), "usage: addfriend:friendid");
        assert_eq!(err("addgroup:x"), "usage: addgroup:groupid");
        assert_eq!(err("groupchat:1"), "usage: groupchat:groupid:message");
        assert_eq!(
            err("creategroup::x"),
            "usage: creategroup:groupname:groupdesc"
        );
    }

    #[test]
    fn other_lines_are_text_for_the_open_conversation() {
        assert_eq!(ok("hello there"), Command::SayHere("hello there".into()));
        assert_eq!(ok("note: x"), Command::SayHere("note: x".into()));
        assert_eq!(ok("//shrug"), Command::SayHere("/shrug".into()));
    }

    #[test]
    fn slash_commands_parse() {
        assert_eq!(
            ok("/msg bob hi there"),
            Command::Say {
                to: Peer::User(Who::Name("bob".into())),
                text: "hi there".into()
            }
        );
        assert_eq!(
            ok("/m 2 x"),
            Command::Say {
                to: user(2),
                text: "x".into()
            }
        );
        assert_eq!(
            ok("/msg #rust hi"),
            Command::Say {
                to: Peer::Group(Who::Name("rust".into())),
                text: "hi".into()
            }
        );
        assert_eq!(
            ok("/gmsg 4 hi"),
            Command::Say {
                to: group(4),
                text: "hi".into()
            }
        );
        assert_eq!(
            ok("/g #4 hi"),
            Command::Say {
                to: group(4),
                text: "hi".into()
            }
        );
        assert_eq!(ok("/friends"), Command::Friends);
        assert_eq!(ok("/groups"), Command::Groups);
        assert_eq!(
            ok("/members rust"),
            Command::Members(Who::Name("rust".into()))
        );
        assert_eq!(
            ok("/history bob"),
            Command::History {
                with: Peer::User(Who::Name("bob".into())),
                limit: DEFAULT_HISTORY
            }
        );
        assert_eq!(
            ok("/h #1 5"),
            Command::History {
                with: group(1),
                limit: 5
            }
        );
        assert_eq!(ok("/add 9"), Command::AddFriend(UserId(9)));
        assert_eq!(
            ok("/unfriend bob"),
            Command::RemoveFriend(Who::Name("bob".into()))
        );
        assert_eq!(
            ok("/create rust the rust group"),
            Command::CreateGroup {
                name: "rust".into(),
                desc: "the rust group".into()
            }
        );
        assert_eq!(ok("/join 3"), Command::JoinGroup(GroupId(3)));
        assert_eq!(ok("/leave #3"), Command::LeaveGroup(Who::Id(3)));
        assert_eq!(
            ok("/to bob"),
            Command::Focus(Some(Peer::User(Who::Name("bob".into()))))
        );
        assert_eq!(ok("/to"), Command::Focus(None));
        assert_eq!(ok("/status"), Command::Status);
        assert_eq!(ok("/logout"), Command::Logout);
        assert_eq!(ok("/quit"), Command::Quit);
        assert_eq!(ok("/exit"), Command::Quit);
        assert_eq!(ok("/help msg"), Command::Help(Some("msg".into())));
        assert_eq!(ok("  /friends  "), Command::Friends);
    }

    #[test]
    fn slash_commands_refuse_wrong_arguments() {
        assert_eq!(err("/msg bob"), "usage: /msg FRIEND|#GROUP TEXT");
        assert_eq!(err("/add bob"), "usage: /add USERID");
        assert_eq!(err("/join"), "usage: /join GROUPID");
        assert_eq!(err("/friends now"), "usage: /friends");
        assert_eq!(err("/members"), "usage: /members GROUP");
        assert_eq!(
            err("/history bob 0"),
            "the count must be a number from 1 to 500"
        );
        assert_eq!(
            err("/frobnicate"),
            "unknown command /frobnicate; /help lists the commands"
        );
    }

    #[test]
    fn conversation_commands_parse() {
        assert_eq!(
            ok("/read #3"),
            Command::Read {
                with: group(3),
                mid: None
            }
        );
        assert_eq!(
            ok("/read 2 17"),
            Command::Read {
                with: user(2),
                mid: Some(17)
            }
        );
        assert_eq!(err("/read"), "usage: /read FRIEND|#GROUP [MID]");
        assert_eq!(err("/read bob -1"), "MID must be a message id (0 or more)");
        assert_eq!(ok("/chats"), Command::Chats { limit: 20 });
        assert_eq!(ok("/conversations 5"), Command::Chats { limit: 5 });
        assert_eq!(err("/chats 0"), "the count must be a number from 1 to 200");
        assert_eq!(
            ok("/find bob"),
            Command::Find {
                name: "bob".into(),
                prefix: false
            }
        );
        assert_eq!(
            ok("/find bo*"),
            Command::Find {
                name: "bo".into(),
                prefix: true
            }
        );
        assert_eq!(err("/find"), "usage: /find NAME|PREFIX*");
    }

    #[test]
    fn every_slash_command_and_alias_is_known() {
        for (name, aliases, ..) in SLASH_COMMANDS {
            assert_eq!(canonical(name), Some(*name));
            for alias in *aliases {
                assert_eq!(canonical(alias), Some(*name));
            }
        }
    }
}
