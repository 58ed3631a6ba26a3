//! One logged-in session as a task that owns the connection: commands in,
//! [`Output`]s out. It acks and de-duplicates incoming messages by `seq`,
//! keeps every outgoing message until the server acks it (resent with the
//! same `cmid` after a break, so it is stored once), and on a dropped
//! connection reconnects with backoff, logs in again and catches up from
//! the last `seq` it saw.
//!
//! # Layout
//!
//! - `mod.rs`: [`start`] and [`register`], the front end's
//!   [`SessionHandle`] and [`View`], and the task's loop.
//! - `connection`: settings, credentials, connecting, logging in, the link
//!   going down and coming back up; `tls`: TLS to the server (`--tls`).
//! - `incoming`: the backlog at login, pushed messages and events, acks.
//! - `outgoing`: the outbox of messages waiting for the server's ack.
//! - `commands`: the user's commands, answered.
//! - `names`: users and groups by id or name; `roster`: what is known of
//!   them.
//! - `error`: client errors in words, and why a command failed.

mod commands;
mod connection;
mod error;
mod incoming;
mod names;
mod outgoing;
mod roster;
mod tls;

use std::collections::VecDeque;
use std::sync::Arc;

use chatcore::client::{Client, Contact, Event, Group, LoginInfo};
use chatcore::model::{Seq, Target, UserId};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::Command;
use crate::output::{Label, Output};
use connection::{Link, authenticate, connect};
use error::{Failure, describe};
use outgoing::Outgoing;
use roster::Roster;

pub(crate) use connection::{Credentials, Secret, Settings};
pub(crate) use tls::Tls;

/// What the front end shows between commands: the prompt and completion
/// read it.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub(crate) me: Option<Label>,
    pub(crate) friends: Vec<Contact>,
    pub(crate) groups: Vec<Group>,
    pub(crate) focus: Option<Label>,
    pub(crate) online: bool,
}

/// A command for the session, and where it says whether it worked. For a
/// message, `done` fires when the server has acked it.
#[derive(Debug)]
struct Request {
    command: Command,
    done: oneshot::Sender<bool>,
}

/// The front end's end of a running session.
#[derive(Debug)]
pub(crate) struct SessionHandle {
    requests: mpsc::Sender<Request>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// Hands a command to the session (from a thread outside the runtime).
    /// `None` when the session has ended.
    pub(crate) fn submit_blocking(&self, command: Command) -> Option<oneshot::Receiver<bool>> {
        let (done, result) = oneshot::channel();
        self.requests
            .blocking_send(Request { command, done })
            .ok()?;
        Some(result)
    }

    /// Whether the session is over (kicked, refused, logged out).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the session task to end.
    pub(crate) async fn join(self) {
        drop(self.requests);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "session task failed");
        }
    }
}

/// Registers `name` on its own connection and returns the new id.
pub(crate) async fn register(
    settings: &Settings,
    name: &str,
    password: &str,
) -> Result<UserId, String> {
    let client = connect(settings).await?;
    client
        .register(name, password)
        .await
        .map_err(|e| describe(&e))
}

/// Connects, logs in, queues the login summary on `out` and starts the
/// session task. Errors are in words.
pub(crate) async fn start(
    settings: Settings,
    mut creds: Credentials,
    out: mpsc::Sender<Output>,
    view: Arc<watch::Sender<View>>,
) -> Result<SessionHandle, String> {
    let client = connect(&settings).await?;
    let info = authenticate(&client, &creds)
        .await
        .map_err(|e| format!("login failed: {}", describe(&e)))?;
    creds.remember(&info);
    tracing::info!(user = %info.id, cursor = %info.cursor, "logged in");
    let (requests, requests_rx) = mpsc::channel(64);
    let mut session = Session {
        ping_at: Instant::now() + settings.ping_every,
        settings,
        creds,
        me: Label::User(info.id, Some(info.name.clone())),
        me_id: info.id,
        link: Link::Up(client),
        requests: requests_rx,
        out,
        view,
        roster: Roster::default(),
        focus: None,
        seen: info.cursor,
        outbox: VecDeque::new(),
    };
    session.apply_login(&info);
    session.emit(Output::LoggedIn(info)).await;
    let task = tokio::spawn(session.run());
    Ok(SessionHandle { requests, task })
}

enum Step {
    Event(Option<Event>),
    Request(Option<Request>),
    Ping,
    Retry,
}

/// Whether the session goes on.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

struct Session {
    settings: Settings,
    creds: Credentials,
    me: Label,
    me_id: UserId,
    link: Link,
    requests: mpsc::Receiver<Request>,
    out: mpsc::Sender<Output>,
    view: Arc<watch::Sender<View>>,
    roster: Roster,
    /// The open conversation plain lines go to.
    focus: Option<(Target, Label)>,
    /// The highest inbox `seq` shown; anything at or below is a repeat.
    seen: Seq,
    outbox: VecDeque<Outgoing>,
    ping_at: Instant,
}

impl Session {
    async fn run(mut self) {
        self.catch_up().await;
        loop {
            let step = match &mut self.link {
                Link::Up(client) => tokio::select! {
                    biased;
                    event = client.next_event() => Step::Event(event),
                    request = self.requests.recv() => Step::Request(request),
                    () = tokio::time::sleep_until(self.ping_at) => Step::Ping,
                },
                Link::Down { retry_at, .. } => tokio::select! {
                    request = self.requests.recv() => Step::Request(request),
                    () = tokio::time::sleep_until(*retry_at) => Step::Retry,
                },
            };
            let flow = match step {
                Step::Event(Some(event)) => self.on_event(event).await,
                Step::Event(None) => {
                    self.lost("the server closed the connection".into()).await;
                    Flow::Continue
                }
                Step::Request(Some(request)) => self.on_request(request).await,
                // Every handle is gone: the front end has quit.
                Step::Request(None) => Flow::Stop,
                Step::Ping => self.ping().await,
                Step::Retry => self.reconnect().await,
            };
            if flow == Flow::Stop {
                break;
            }
            self.ping_at = Instant::now() + self.settings.ping_every;
        }
        self.drop_outbox().await;
        self.view.send_modify(|view| view.online = false);
        tracing::debug!("session ended");
    }

    async fn emit(&self, output: Output) {
        // A front end that is gone reads nothing: nothing to do about it.
        let _ = self.out.send(output).await;
    }

    async fn fail(&self, done: oneshot::Sender<bool>, error: String) {
        self.emit(Output::Failed(error)).await;
        let _ = done.send(false);
    }

    /// Shows the current state to the front end.
    fn publish(&self) {
        let view = View {
            me: Some(self.me.clone()),
            friends: self.roster.friends().to_vec(),
            groups: self.roster.groups().to_vec(),
            focus: self.focus.as_ref().map(|(_, label)| label.clone()),
            online: matches!(self.link, Link::Up(_)),
        };
        self.view.send_replace(view);
    }

    fn apply_login(&mut self, info: &LoginInfo) {
        self.roster.learn(info.id, &info.name);
        self.roster.set_friends(info.friends.clone());
        self.roster.set_groups(info.groups.clone());
        self.publish();
    }

    fn client(&self) -> Result<&Client, Failure> {
        match &self.link {
            Link::Up(client) => Ok(client),
            Link::Down { .. } => Err(Failure::Offline),
        }
    }
}
