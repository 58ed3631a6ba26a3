//! The flow both front ends share: the seed's menu (login, register, quit),
//! then commands until `loginout` or quit. It runs on a plain thread and
//! reaches the async session through the runtime's handle; everything it
//! shows goes through one ordered channel to the printer thread.

use std::sync::Arc;
use std::time::Duration;

use chatcore::model::UserId;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::{self, Command};
use crate::output::Output;
use crate::render::{self, Style};
use crate::session::{self, Credentials, Secret, SessionHandle, Settings, View};

/// What reading a line gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Text(String),
    /// Ctrl-C: the line was dropped.
    Interrupted,
    /// Ctrl-D or the end of input.
    End,
}

/// Where lines come from: a line editor on a terminal, or plain stdin.
pub(crate) trait Console {
    /// A command line; `view` is for the prompt.
    fn command(&mut self, view: &View) -> Line;
    /// An answer to a menu prompt (kept out of the history).
    fn answer(&mut self, prompt: &str) -> Line;
    /// A password, not echoed.
    fn password(&mut self, prompt: &str) -> Line;
    /// A person at a terminal: messages do not wait for their acks (they
    /// show when they come), and an ended session leads back to the menu.
    /// A script waits for each reply and stops when its session ends.
    fn interactive(&self) -> bool;
}

/// How the program was asked to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    Menu,
    Login(UserId),
    Register(String),
}

enum Action {
    Login { id: UserId, password: String },
    Quit,
}

enum After {
    Menu,
    Quit,
}

/// The shared flow over a [`Console`].
pub(crate) struct App<C> {
    pub(crate) console: C,
    pub(crate) runtime: Handle,
    pub(crate) settings: Settings,
    pub(crate) out: mpsc::Sender<Output>,
    pub(crate) view: Arc<watch::Sender<View>>,
    pub(crate) style: Style,
    /// `--password-file` or `CHAT_PASSWORD`, which replaces every password
    /// prompt.
    pub(crate) password: Option<String>,
    /// How long a waiting command waits for its reply.
    pub(crate) reply_timeout: Duration,
    pub(crate) failed: bool,
}

impl<C: Console> App<C> {
    /// Runs until quit or the end of input. `false` when something failed
    /// that should make the exit status non-zero.
    pub(crate) fn run(mut self, start: Start) -> bool {
        let from_flags = start != Start::Menu;
        let mut start = Some(start);
        loop {
            let action = match start.take().unwrap_or(Start::Menu) {
                Start::Menu => self.menu(),
                Start::Login(id) => match self.password("userpassword: ") {
                    Some(password) => Action::Login { id, password },
                    None => Action::Quit,
                },
                Start::Register(name) => match self.register_then_login(&name) {
                    Some(action) => action,
                    None => return false,
                },
            };
            let Action::Login { id, password } = action else {
                break;
            };
            let creds = Credentials {
                id,
                secret: Secret::Password(password),
            };
            let started = self.runtime.block_on(session::start(
                self.settings.clone(),
                creds,
                self.out.clone(),
                Arc::clone(&self.view),
            ));
            let handle = match started {
                Ok(handle) => handle,
                Err(error) => {
                    self.fail(error);
                    if from_flags || !self.console.interactive() {
                        return false;
                    }
                    continue;
                }
            };
            match self.commands(handle) {
                After::Menu => {}
                After::Quit => break,
            }
        }
        // At a terminal the exit status only says whether chatcli could
        // start; a script's says whether every command worked.
        self.console.interactive() || !self.failed
    }

    fn print(&self, text: String) {
        let _ = self.out.blocking_send(Output::Text(text));
    }

    fn fail(&mut self, error: String) {
        self.failed = true;
        let _ = self.out.blocking_send(Output::Failed(error));
    }

    fn password(&mut self, prompt: &str) -> Option<String> {
        if let Some(password) = &self.password {
            return Some(password.clone());
        }
        match self.console.password(prompt) {
            Line::Text(password) => Some(password),
            Line::Interrupted | Line::End => None,
        }
    }

    /// The seed's menu. Returns what to do next.
    fn menu(&mut self) -> Action {
        loop {
            self.print(
                "========================\n1. login\n2. register\n3. quit\n========================"
                    .into(),
            );
            let choice = match self.console.answer("choice: ") {
                Line::Text(choice) => choice,
                Line::Interrupted => continue,
                Line::End => return Action::Quit,
            };
            match choice.trim() {
                "1" | "login" => {
                    let id = match self.console.answer("userid: ") {
                        Line::Text(id) => id,
                        Line::Interrupted => continue,
                        Line::End => return Action::Quit,
                    };
                    let Ok(id) = id.trim().parse::<i64>() else {
                        self.fail(format!("invalid userid {:?}: it is a number", id.trim()));
                        continue;
                    };
                    match self.password("userpassword: ") {
                        Some(password) => {
                            return Action::Login {
                                id: UserId(id),
                                password,
                            };
                        }
                        None => continue,
                    }
                }
                "2" | "register" => {
                    let name = match self.console.answer("username: ") {
                        Line::Text(name) => name,
                        Line::Interrupted => continue,
                        Line::End => return Action::Quit,
                    };
                    let Some(password) = self.password("userpassword: ") else {
                        continue;
                    };
                    let _ = self.register(name.trim(), &password);
                }
                "3" | "quit" => return Action::Quit,
                "" => {}
                _ => self.fail("invalid input.".into()),
            }
        }
    }

    fn register(&mut self, name: &str, password: &str) -> Option<UserId> {
        match self
            .runtime
            .block_on(session::register(&self.settings, name, password))
        {
            Ok(id) => {
                self.print(format!(
                    "name register success, userid is {id}, do not forget it!"
                ));
                Some(id)
            }
            Err(error) => {
                self.fail(format!("register failed: {error}"));
                None
            }
        }
    }

    /// `--register NAME`: register, then log in as the new user.
    fn register_then_login(&mut self, name: &str) -> Option<Action> {
        let password = self.password("userpassword: ")?;
        let id = self.register(name, &password)?;
        Some(Action::Login { id, password })
    }

    /// Reads and runs commands until the session ends.
    fn commands(&mut self, handle: SessionHandle) -> After {
        loop {
            if handle.is_finished() {
                return self.ended(handle);
            }
            let view = self.view.borrow().clone();
            let command = match self.console.command(&view) {
                Line::Text(line) => match command::parse(&line) {
                    Ok(Some(command)) => command,
                    Ok(None) => continue,
                    Err(error) => {
                        self.fail(error.to_string());
                        continue;
                    }
                },
                Line::Interrupted => continue,
                Line::End => Command::Quit,
            };
            if let Command::Help(topic) = &command {
                self.print(render::help(self.style, topic.as_deref()));
                continue;
            }
            // A script waits for every reply. At a terminal a message does
            // not hold up the prompt (its ack shows when it comes); other
            // commands answer at once, and may change the prompt.
            let waits = !self.console.interactive()
                || !matches!(command, Command::Say { .. } | Command::SayHere(_));
            let after = match command {
                Command::Quit => Some(After::Quit),
                Command::Logout => Some(After::Menu),
                _ => None,
            };
            let Some(done) = handle.submit_blocking(command) else {
                return self.ended(handle);
            };
            if after.is_some() || waits {
                self.wait(done);
            }
            if let Some(after) = after {
                self.runtime.block_on(handle.join());
                return after;
            }
        }
    }

    /// Waits for a command's outcome; a failure or no answer in time
    /// counts against the exit status.
    fn wait(&mut self, done: oneshot::Receiver<bool>) {
        let wait = self.reply_timeout;
        // The timer is made inside the runtime, which it needs.
        let outcome = self
            .runtime
            .block_on(async move { tokio::time::timeout(wait, done).await });
        match outcome {
            Ok(Ok(true)) => {}
            // The session reported the failure itself, or ended.
            Ok(Ok(false)) | Ok(Err(_)) => self.failed = true,
            Err(_) => self.fail(format!(
                "no reply within {} s",
                self.reply_timeout.as_secs()
            )),
        }
    }

    /// The session ended on its own (kicked, refused on re-login).
    fn ended(&mut self, handle: SessionHandle) -> After {
        self.runtime.block_on(handle.join());
        if self.console.interactive() {
            self.print("back to the menu".into());
            After::Menu
        } else {
            self.failed = true;
            After::Quit
        }
    }
}

/// Prints outputs in order on a thread of its own, through `write` (the
/// line editor's external printer, or stdout and stderr).
pub(crate) fn spawn_printer(
    mut outputs: mpsc::Receiver<Output>,
    style: Style,
    mut write: impl FnMut(&Output, String) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || {
            while let Some(output) = outputs.blocking_recv() {
                let text = render::output(style, &output, &render::today());
                write(&output, text);
            }
        })
}
