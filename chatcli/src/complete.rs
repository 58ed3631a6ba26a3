//! Tab completion as a pure function of the line and the session's view:
//! command words, then friend and group ids or names where a command
//! expects them.

use crate::command::{SEED_COMMANDS, SLASH_COMMANDS, canonical};
use crate::session::View;

/// One completion: what the list shows and what replaces the word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) display: String,
    pub(crate) replacement: String,
}

/// What a command's argument names.
#[derive(Clone, Copy)]
enum Wants {
    Friend,
    Group,
    /// A friend, or a group written `#name`.
    Peer,
    Command,
}

/// The candidates for the word before `pos`, and where that word starts.
pub(crate) fn complete(line: &str, pos: usize, view: &View) -> (usize, Vec<Candidate>) {
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    if !before.starts_with('/') {
        if let Some((word, rest)) = before.split_once(':') {
            return seed_argument(word, rest, view);
        }
        if before.contains(char::is_whitespace) {
            return (pos, Vec::new());
        }
        return (0, command_words(before));
    }
    match before.split_once(char::is_whitespace) {
        None => (0, command_words(before)),
        Some((word, rest)) => {
            let rest = rest.trim_start();
            if rest.contains(char::is_whitespace) {
                // Past the first argument: free text.
                return (pos, Vec::new());
            }
            let start = pos - rest.len();
            let wants = match canonical(word) {
                Some("/msg" | "/to" | "/history" | "/read") => Wants::Peer,
                Some("/gmsg" | "/members" | "/leave") => Wants::Group,
                Some("/unfriend") => Wants::Friend,
                Some("/help") => Wants::Command,
                _ => return (pos, Vec::new()),
            };
            let trailing = match canonical(word) {
                Some("/msg" | "/gmsg" | "/history" | "/read") => " ",
                _ => "",
            };
            (start, names(rest, wants, trailing, view))
        }
    }
}

/// Command words that start with `prefix`: a seed word with its colon, a
/// slash command with a space when it takes arguments.
fn command_words(prefix: &str) -> Vec<Candidate> {
    let seed = SEED_COMMANDS.iter().map(|(word, usage, _)| {
        let replacement = if usage.contains(':') {
            format!("{word}:")
        } else {
            (*word).to_string()
        };
        ((*usage).to_string(), replacement)
    });
    let slash = SLASH_COMMANDS.iter().map(|(name, _, usage, _)| {
        let replacement = if usage.contains(' ') {
            format!("{name} ")
        } else {
            (*name).to_string()
        };
        ((*usage).to_string(), replacement)
    });
    seed.chain(slash)
        .filter(|(_, replacement)| replacement.starts_with(prefix))
        .map(|(display, replacement)| Candidate {
            display,
            replacement,
        })
        .collect()
}

/// `chat:` and `groupchat:` take an id, then a colon and the message.
fn seed_argument(word: &str, rest: &str, view: &View) -> (usize, Vec<Candidate>) {
    let start = word.len() + 1;
    if rest.contains(':') {
        return (start + rest.len(), Vec::new());
    }
    let candidates = match word {
        "chat" => view
            .friends
            .iter()
            .map(|f| (f.id.0, format!("{} {} {}", f.id, f.name, f.state)))
            .collect::<Vec<_>>(),
        "groupchat" => view
            .groups
            .iter()
            .map(|g| (g.id.0, format!("{} {}", g.id, g.groupname)))
            .collect(),
        _ => Vec::new(),
    };
    let candidates = candidates
        .into_iter()
        .filter(|(id, _)| id.to_string().starts_with(rest))
        .map(|(id, display)| Candidate {
            display,
            replacement: format!("{id}:"),
        })
        .collect();
    (start, candidates)
}

/// A name is offered as is when it is one word, otherwise by its id.
fn token(name: &str, id: i64) -> String {
    if name.is_empty() || name.contains(char::is_whitespace) {
        id.to_string()
    } else {
        name.to_string()
    }
}

fn names(prefix: &str, wants: Wants, trailing: &str, view: &View) -> Vec<Candidate> {
    let mut all: Vec<(String, String)> = Vec::new();
    let friends = || {
        view.friends.iter().map(|f| {
            (
                token(&f.name, f.id.0),
                format!("{} [{}] {}", f.name, f.id, f.state),
            )
        })
    };
    let groups = |hash: &'static str| {
        view.groups.iter().map(move |g| {
            (
                format!("{hash}{}", token(&g.groupname, g.id.0)),
                format!("{hash}{} [#{}]", g.groupname, g.id),
            )
        })
    };
    match wants {
        Wants::Friend => all.extend(friends()),
        Wants::Group => all.extend(groups("")),
        Wants::Peer => {
            all.extend(friends());
            all.extend(groups("#"));
        }
        Wants::Command => all.extend(SLASH_COMMANDS.iter().map(|(name, _, usage, _)| {
            let word = name.trim_start_matches('/').to_string();
            (word, (*usage).to_string())
        })),
    }
    let folded = prefix.to_lowercase();
    all.into_iter()
        .filter(|(word, _)| word.to_lowercase().starts_with(&folded))
        .map(|(word, display)| Candidate {
            display,
            replacement: format!("{word}{trailing}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chatcore::client::{Contact, Group};
    use chatcore::model::{GroupId, UserId};

    use super::*;

    fn view() -> View {
        let contact = |id, name: &str| Contact {
            id: UserId(id),
            name: name.into(),
            state: "online".into(),
            role: None,
        };
        View {
            friends: vec![
                contact(2, "bob"),
                contact(3, "carol"),
                contact(12, "big bird"),
            ],
            groups: vec![Group {
                id: GroupId(1),
                groupname: "rustaceans".into(),
                groupdesc: String::new(),
                users: Vec::new(),
            }],
            ..View::default()
        }
    }

    fn replacements(line: &str) -> (usize, Vec<String>) {
        let (start, candidates) = complete(line, line.len(), &view());
        (
            start,
            candidates.into_iter().map(|c| c.replacement).collect(),
        )
    }

    #[test]
    fn command_words_complete_with_their_separator() {
        assert_eq!(replacements("ch"), (0, vec!["chat:".to_string()]));
        assert_eq!(replacements("lo"), (0, vec!["loginout".to_string()]));
        assert_eq!(replacements("/fr"), (0, vec!["/friends".to_string()]));
        assert_eq!(replacements("/ms"), (0, vec!["/msg ".to_string()]));
        let (_, all_slash) = replacements("/");
        assert_eq!(all_slash.len(), SLASH_COMMANDS.len());
    }

    #[test]
    fn seed_chat_completes_friend_ids() {
        assert_eq!(
            replacements("chat:"),
            (5, vec!["2:".into(), "3:".into(), "12:".into()])
        );
        assert_eq!(replacements("chat:1"), (5, vec!["12:".into()]));
        assert_eq!(replacements("groupchat:"), (10, vec!["1:".into()]));
        assert_eq!(replacements("chat:2:hel"), (10, vec![]));
    }

    #[test]
    fn slash_commands_complete_names_of_friends_and_groups() {
        assert_eq!(replacements("/msg b"), (5, vec!["bob ".into()]));
        assert_eq!(replacements("/msg #r"), (5, vec!["#rustaceans ".into()]));
        assert_eq!(replacements("/to C"), (4, vec!["carol".into()]));
        assert_eq!(replacements("/members "), (9, vec!["rustaceans".into()]));
        assert_eq!(replacements("/gmsg ru"), (6, vec!["rustaceans ".into()]));
        assert_eq!(replacements("/help ms"), (6, vec!["msg".into()]));
        assert_eq!(replacements("/msg bob hel"), (12, vec![]));
    }

    #[test]
    fn names_with_spaces_are_offered_by_id() {
        assert_eq!(replacements("/unfriend 1"), (10, vec!["12".into()]));
    }
}
