//! The terminal front end: a rustyline editor with completion, a prompt
//! that shows the user, the open conversation and the connection, and a
//! history file kept across runs. Output reaches the screen through
//! rustyline's external printer, so the line being typed is redrawn intact.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::history::FileHistory;
use rustyline::{
    CompletionType, Config, Context, Editor, ExternalPrinter, Helper, Hinter, Validator,
};
use tokio::sync::watch;

use crate::app::{Console, Line};
use crate::complete;
use crate::output::Label;
use crate::render::Style;
use crate::session::View;

/// Lines kept in the history file.
const HISTORY_SIZE: usize = 1000;

/// Where the history lives unless `--history` says otherwise:
/// `$XDG_STATE_HOME/chatcli/history`, else `~/.local/state/chatcli/history`.
pub(crate) fn default_history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|home| !home.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        })?;
    Some(state.join("chatcli").join("history"))
}

#[derive(Helper, Hinter, Validator)]
struct ChatHelper {
    view: watch::Receiver<View>,
    style: Style,
}

impl Completer for ChatHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let view = self.view.borrow();
        let (start, candidates) = complete::complete(line, pos, &view);
        Ok((
            start,
            candidates
                .into_iter()
                .map(|c| Pair {
                    display: c.display,
                    replacement: c.replacement,
                })
                .collect(),
        ))
    }
}

impl Highlighter for ChatHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        if self.style.color {
            let online = self.view.borrow().online;
            Cow::Owned(
                self.style
                    .paint(if online { "1;32" } else { "1;33" }, prompt),
            )
        } else {
            Cow::Borrowed(prompt)
        }
    }
}

/// `alice> `, or `alice → [2]bob> ` with an open conversation. The
/// connection shows in its colour, which follows every redraw (the text is
/// fixed while a line is read): green online, yellow while reconnecting.
pub(crate) fn prompt(view: &View) -> String {
    let mut prompt = match &view.me {
        Some(Label::User(_, Some(name))) => name.clone(),
        Some(label) => label.to_string(),
        None => "chat".to_string(),
    };
    if let Some(focus) = &view.focus {
        prompt.push_str(&format!(" → {focus}"));
    }
    prompt.push_str("> ");
    crate::render::sanitize(&prompt)
}

/// The line editor and its history file.
pub(crate) struct Repl {
    editor: Editor<ChatHelper, FileHistory>,
    history: Option<PathBuf>,
}

impl std::fmt::Debug for Repl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repl")
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl Repl {
    /// The editor and its external printer. Fails when stdin or stdout is
    /// not a terminal rustyline can drive (then use the scripted mode).
    pub(crate) fn new(
        history: Option<PathBuf>,
        view: watch::Receiver<View>,
        style: Style,
    ) -> rustyline::Result<(Repl, impl ExternalPrinter + Send + 'static)> {
        let config = Config::builder()
            .auto_add_history(false)
            .history_ignore_space(true)
            .history_ignore_dups(true)?
            .max_history_size(HISTORY_SIZE)?
            .completion_type(CompletionType::List)
            .build();
        let mut editor = Editor::with_config(config)?;
        editor.set_helper(Some(ChatHelper { view, style }));
        let printer = editor.create_external_printer()?;
        if let Some(path) = &history {
            load_history(&mut editor, path);
        }
        Ok((Repl { editor, history }, printer))
    }

    fn remember(&mut self, line: &str) {
        match self.editor.add_history_entry(line) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "history entry not added");
                return;
            }
        }
        if let Some(path) = &self.history
            && let Err(e) = self.editor.append_history(path)
        {
            tracing::warn!(path = %path.display(), error = %e, "history not saved");
        }
    }

    fn read(&mut self, prompt: &str) -> Line {
        match self.editor.readline(prompt) {
            Ok(line) => Line::Text(line),
            Err(ReadlineError::Interrupted) => Line::Interrupted,
            Err(ReadlineError::Eof) => Line::End,
            Err(e) => {
                tracing::error!(error = %e, "reading the terminal failed");
                Line::End
            }
        }
    }
}

fn load_history(editor: &mut Editor<ChatHelper, FileHistory>, path: &Path) {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        tracing::warn!(dir = %dir.display(), error = %e, "no history directory");
    }
    match editor.load_history(path) {
        Ok(()) => {}
        Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "history not loaded"),
    }
}

impl Console for Repl {
    fn command(&mut self, view: &View) -> Line {
        let line = self.read(&prompt(view));
        if let Line::Text(text) = &line
            && !text.trim().is_empty()
        {
            self.remember(text);
        }
        line
    }

    fn answer(&mut self, prompt: &str) -> Line {
        self.read(prompt)
    }

    fn password(&mut self, prompt: &str) -> Line {
        match rpassword::prompt_password(prompt) {
            Ok(password) => Line::Text(password),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Line::Interrupted,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::error!(error = %e, "reading the password failed");
                }
                Line::End
            }
        }
    }

    fn interactive(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use chatcore::model::UserId;

    use super::*;

    #[test]
    fn prompt_shows_user_conversation_and_connection() {
        let mut view = View {
            me: Some(Label::User(UserId(1), Some("alice".into()))),
            online: true,
            ..View::default()
        };
        assert_eq!(prompt(&view), "alice> ");
        view.focus = Some(Label::User(UserId(2), Some("bob".into())));
        assert_eq!(prompt(&view), "alice → [2]bob> ");
    }
}
