//! The scripted front end, used when stdin is not a terminal: one command
//! per input line, each waiting for its reply; replies and incoming
//! messages on stdout, errors and notices on stderr.

use std::io::{BufRead, Write};

use crate::app::{Console, Line};
use crate::output::Output;
use crate::session::View;

/// Commands from stdin, line by line.
pub(crate) struct Script {
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

impl Script {
    pub(crate) fn new() -> Script {
        Script {
            lines: std::io::stdin().lock().lines(),
        }
    }

    fn next(&mut self) -> Line {
        match self.lines.next() {
            Some(Ok(line)) => Line::Text(line),
            Some(Err(e)) => {
                tracing::error!(error = %e, "reading stdin failed");
                Line::End
            }
            None => Line::End,
        }
    }
}

impl Console for Script {
    fn command(&mut self, _view: &View) -> Line {
        self.next()
    }

    fn answer(&mut self, _prompt: &str) -> Line {
        self.next()
    }

    /// On the controlling terminal when there is one (like ssh or sudo);
    /// without one, the next input line, as the seed's client read it.
    fn password(&mut self, prompt: &str) -> Line {
        match rpassword::prompt_password(prompt) {
            Ok(password) => Line::Text(password),
            Err(e) => {
                tracing::debug!(error = %e, "no terminal for the password; reading stdin");
                self.next()
            }
        }
    }

    fn interactive(&self) -> bool {
        false
    }
}

/// Writes an output: failures and notices to stderr, the rest to stdout.
pub(crate) fn write(output: &Output, text: String) {
    let result = match output {
        Output::Failed(_) | Output::Notice(_) => writeln!(std::io::stderr(), "{text}"),
        _ => writeln!(std::io::stdout(), "{text}"),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "output not written");
    }
}
