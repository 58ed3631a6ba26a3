//! One logged-in session as a task that owns the connection: commands in,
//! [`Output`]s out. It acks and de-duplicates incoming messages by `seq`,
//! keeps every outgoing message until the server acks it (resent with the
//! same `cmid` after a break, so it is stored once), and on a dropped
//! connection reconnects with backoff, logs in again and catches up from
//! the last `seq` it saw.

mod roster;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chatcore::client::{ChatMessage, Client, ClientError, Contact, Event, Group, LoginInfo};
use chatcore::model::{GroupId, Seq, Target, UserId};
use chatcore::protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::command::{Command, Peer, Who};
use crate::output::{Label, Notice, Output, Reply, Status};
use roster::Roster;

/// Largest `SYNC` page.
const SYNC_PAGE: u32 = 500;
/// Pages read at login before the rest is left to the server's pushes.
const CATCH_UP_PAGES: usize = 20;

/// Where to connect and how patiently.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) addr: String,
    pub(crate) connect_timeout: Duration,
    /// A ping after this much silence finds a dead connection.
    pub(crate) ping_every: Duration,
    /// The first reconnect delay, doubled per failed attempt...
    pub(crate) backoff_first: Duration,
    /// ...up to this.
    pub(crate) backoff_max: Duration,
}

impl Settings {
    pub(crate) fn new(addr: impl Into<String>) -> Settings {
        Settings {
            addr: addr.into(),
            connect_timeout: Duration::from_secs(5),
            ping_every: Duration::from_secs(30),
            backoff_first: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
        }
    }

    /// The delay before reconnect attempt `attempts + 1`, with up to 25%
    /// jitter so that clients of a restarted server do not return in step.
    fn backoff(&self, attempts: u32) -> Duration {
        let base = self
            .backoff_first
            .saturating_mul(1 << attempts.min(16))
            .min(self.backoff_max);
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
        base + base.mul_f64(f64::from(random) / 4000.0)
    }
}

/// How the session proves who it is, at login and at every re-login.
#[derive(Clone)]
pub(crate) enum Secret {
    Password(String),
    /// The server's resume token from the last login, tried first so that
    /// a reconnect costs the server no password hash, with the password to
    /// fall back on when the token is refused (expired, or another key).
    Resume {
        token: String,
        password: String,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A user and their secret.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    pub(crate) id: UserId,
    pub(crate) secret: Secret,
}

impl Credentials {
    /// Keeps the resume token a login handed out, for the next re-login.
    fn remember(&mut self, info: &LoginInfo) {
        let (Some(resume), Secret::Password(password) | Secret::Resume { password, .. }) =
            (&info.resume, &self.secret)
        else {
            return;
        };
        self.secret = Secret::Resume {
            token: resume.token.clone(),
            password: password.clone(),
        };
    }
}

async fn authenticate(client: &Client, creds: &Credentials) -> Result<LoginInfo, ClientError> {
    match &creds.secret {
        Secret::Password(password) => client.login(creds.id, password).await,
        Secret::Resume { token, password } => match client.resume(token).await {
            Err(ClientError::Server { errno, .. }) if is(errno, ErrorCode::ResumeRejected) => {
                tracing::info!("resume token refused; logging in with the password");
                client.login(creds.id, password).await
            }
            other => other,
        },
    }
}

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

/// Whether the server's `errno` is `code`.
fn is(errno: u32, code: ErrorCode) -> bool {
    ErrorCode::from_errno(errno) == Some(code)
}

/// A client error in words.
pub(crate) fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Server { errmsg, errno } if errmsg.is_empty() => {
            format!("the server refused (errno {errno})")
        }
        ClientError::Server { errmsg, .. } => errmsg.clone(),
        ClientError::Io(e) => format!("cannot reach the server: {e}"),
        ClientError::Closed => "the connection closed".to_string(),
        ClientError::Timeout(wait) => format!("no reply within {} s", wait.as_secs()),
        ClientError::Protocol(what) => format!("unexpected reply from the server: {what}"),
    }
}

async fn connect(settings: &Settings) -> Result<Client, String> {
    match tokio::time::timeout(settings.connect_timeout, Client::connect(&settings.addr)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!(
            "cannot connect to {}: {} (is chatd running there?)",
            settings.addr,
            match &e {
                ClientError::Io(io) => io.to_string(),
                other => describe(other),
            }
        )),
        Err(_) => Err(format!(
            "cannot connect to {}: no answer within {} s",
            settings.addr,
            settings.connect_timeout.as_secs()
        )),
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

/// A message waiting for the server's ack.
#[derive(Debug)]
struct Outgoing {
    /// Client message id: a resend with it is stored once.
    cmid: String,
    target: Target,
    to: Label,
    text: String,
    done: oneshot::Sender<bool>,
}

#[derive(Debug)]
enum Link {
    Up(Client),
    /// Reconnecting: `attempts` failed so far, the next at `retry_at`.
    Down {
        attempts: u32,
        retry_at: Instant,
    },
}

/// Why a command did not work.
enum Failure {
    /// The server (or the session's own checks) said no.
    Refused(String),
    /// Not connected at the moment.
    Offline,
    /// The connection broke during the command.
    Lost(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        match error {
            ClientError::Server { .. } | ClientError::Protocol(_) => {
                Failure::Refused(describe(&error))
            }
            ClientError::Io(_) | ClientError::Closed | ClientError::Timeout(_) => {
                Failure::Lost(describe(&error))
            }
        }
    }
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

    // --- incoming ----------------------------------------------------------

    /// Keeps a message unless it is a repeat; returns what to show.
    fn accept(&mut self, message: ChatMessage) -> Option<Output> {
        if let Some(seq) = message.seq {
            if seq <= self.seen {
                tracing::debug!(%seq, seen = %self.seen, "dropping a repeated message");
                return None;
            }
            self.seen = seq;
        }
        self.roster.learn(message.from, &message.name);
        let group = message.groupid.and_then(|g| self.roster.group_name(g));
        Some(Output::Message { message, group })
    }

    /// Reads the inbox after the last `seq` seen and shows it, so that the
    /// backlog is complete before the first command. The server pushes the
    /// same entries too; they are dropped as repeats.
    async fn catch_up(&mut self) {
        for _ in 0..CATCH_UP_PAGES {
            let Ok(client) = self.client() else { return };
            match client.sync(self.seen, SYNC_PAGE).await {
                Ok((messages, more)) => {
                    for message in messages {
                        if let Some(output) = self.accept(message) {
                            self.emit(output).await;
                        }
                    }
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "catching up failed; the server's pushes follow");
                    break;
                }
            }
        }
        self.ack().await;
    }

    async fn ack(&self) {
        if let Ok(client) = self.client()
            && self.seen > Seq::ZERO
            && let Err(e) = client.ack(self.seen).await
        {
            tracing::debug!(error = %e, "ack not sent");
        }
    }

    async fn on_event(&mut self, event: Event) -> Flow {
        match event {
            Event::Message(message) => {
                if let Some(output) = self.accept(message) {
                    self.emit(output).await;
                    self.ack().await;
                }
            }
            // Logged in elsewhere: reconnecting would kick that session in
            // turn.
            Event::Kicked { errno, errmsg } if is(errno, ErrorCode::Kicked) => {
                self.emit(Output::Notice(Notice::Ended {
                    reason: format!("{errmsg} (not reconnecting, so the two do not take turns)"),
                }))
                .await;
                return Flow::Stop;
            }
            Event::Kicked { errmsg, .. } => self.lost(errmsg).await,
            Event::Error { errno, errmsg } => {
                self.emit(Output::Notice(Notice::ServerError { errno, errmsg }))
                    .await;
            }
        }
        Flow::Continue
    }

    // --- the connection ----------------------------------------------------

    async fn lost(&mut self, reason: String) {
        if matches!(self.link, Link::Down { .. }) {
            return;
        }
        tracing::info!(%reason, "connection lost");
        self.link = Link::Down {
            attempts: 0,
            retry_at: Instant::now() + self.settings.backoff(0),
        };
        self.publish();
        self.emit(Output::Notice(Notice::Disconnected { reason }))
            .await;
    }

    async fn ping(&mut self) -> Flow {
        if let Ok(client) = self.client()
            && let Err(e) = client.ping().await
        {
            self.lost(describe(&e)).await;
        }
        Flow::Continue
    }

    async fn reconnect(&mut self) -> Flow {
        let Link::Down { attempts, .. } = self.link else {
            return Flow::Continue;
        };
        let attempts = attempts + 1;
        let client = match connect(&self.settings).await {
            Ok(client) => client,
            Err(e) => {
                let delay = self.settings.backoff(attempts);
                tracing::info!(attempts, error = %e, ?delay, "reconnect failed");
                self.link = Link::Down {
                    attempts,
                    retry_at: Instant::now() + delay,
                };
                return Flow::Continue;
            }
        };
        let info = match authenticate(&client, &self.creds).await {
            Ok(info) => info,
            Err(ClientError::Server { errno, errmsg }) if is(errno, ErrorCode::LoginFailed) => {
                self.emit(Output::Notice(Notice::Ended {
                    reason: format!("logging in again was refused: {errmsg}"),
                }))
                .await;
                return Flow::Stop;
            }
            Err(e) => {
                let delay = self.settings.backoff(attempts);
                tracing::info!(attempts, error = %e, ?delay, "login after reconnect failed");
                self.link = Link::Down {
                    attempts,
                    retry_at: Instant::now() + delay,
                };
                return Flow::Continue;
            }
        };
        self.creds.remember(&info);
        tracing::info!(attempts, cursor = %info.cursor, seen = %self.seen, "reconnected");
        self.link = Link::Up(client);
        self.apply_login(&info);
        self.emit(Output::Notice(Notice::Reconnected { attempts }))
            .await;
        self.catch_up().await;
        self.flush().await;
        Flow::Continue
    }

    // --- outgoing ----------------------------------------------------------

    /// Queues a message and sends what the queue holds, oldest first.
    async fn enqueue(
        &mut self,
        target: Target,
        to: Label,
        text: String,
        done: oneshot::Sender<bool>,
    ) {
        self.outbox.push_back(Outgoing {
            cmid: uuid::Uuid::new_v4().to_string(),
            target,
            to: to.clone(),
            text,
            done,
        });
        if matches!(self.link, Link::Up(_)) {
            self.flush().await;
        } else {
            self.emit(Output::Reply(Reply::Queued { to })).await;
        }
    }

    /// Sends queued messages until the queue is empty or the link breaks;
    /// what is not acked stays queued, with its `cmid`, for the next try.
    async fn flush(&mut self) {
        loop {
            let (Link::Up(client), Some(next)) = (&self.link, self.outbox.front()) else {
                return;
            };
            let result = client.send(next.target, &next.text, Some(&next.cmid)).await;
            match result {
                Ok(sent) => {
                    let Some(item) = self.outbox.pop_front() else {
                        return;
                    };
                    tracing::debug!(cmid = %item.cmid, mid = %sent.mid, dup = sent.duplicate, "sent");
                    self.emit(Output::Reply(Reply::Sent {
                        to: item.to,
                        text: item.text,
                        sent,
                    }))
                    .await;
                    let _ = item.done.send(true);
                }
                Err(e) => match Failure::from(e) {
                    Failure::Lost(reason) => {
                        self.lost(reason).await;
                        return;
                    }
                    Failure::Refused(reason) => {
                        let Some(item) = self.outbox.pop_front() else {
                            return;
                        };
                        self.fail(
                            item.done,
                            format!("could not send to {}: {reason}", item.to),
                        )
                        .await;
                    }
                    Failure::Offline => return,
                },
            }
        }
    }

    /// Tells about messages that never reached the server.
    async fn drop_outbox(&mut self) {
        let unsent = self.outbox.len();
        if unsent > 0 {
            self.emit(Output::Notice(Notice::Unsent(unsent))).await;
        }
        self.outbox.clear();
    }

    // --- commands ----------------------------------------------------------

    async fn on_request(&mut self, Request { command, done }: Request) -> Flow {
        match command {
            Command::Say { to, text } => match self.peer(&to).await {
                Ok((target, label)) => self.enqueue(target, label, text, done).await,
                Err(failure) => self.refuse(failure, done).await,
            },
            Command::SayHere(text) => match self.focus.clone() {
                Some((target, label)) => self.enqueue(target, label, text, done).await,
                None => {
                    self.fail(
                        done,
                        "invalid input command. Type help for the commands, or /to NAME to \
                         choose where plain lines go"
                            .into(),
                    )
                    .await;
                }
            },
            Command::Quit => {
                self.confirm_acks().await;
                let _ = done.send(true);
                return Flow::Stop;
            }
            Command::Logout => {
                if let Ok(client) = self.client()
                    && let Err(e) = client.logout().await
                {
                    tracing::debug!(error = %e, "logout not confirmed");
                }
                self.emit(Output::Reply(Reply::LoggedOut)).await;
                let _ = done.send(true);
                return Flow::Stop;
            }
            Command::Help(_) => {
                let _ = done.send(true);
            }
            command => match self.execute(command).await {
                Ok(reply) => {
                    self.emit(Output::Reply(reply)).await;
                    let _ = done.send(true);
                }
                Err(failure) => self.refuse(failure, done).await,
            },
        }
        Flow::Continue
    }

    async fn refuse(&mut self, failure: Failure, done: oneshot::Sender<bool>) {
        match failure {
            Failure::Refused(reason) => self.fail(done, reason).await,
            Failure::Offline => {
                let attempts = match self.link {
                    Link::Down { attempts, .. } => attempts,
                    Link::Up(_) => 0,
                };
                self.fail(
                    done,
                    format!(
                        "not connected (reconnecting, attempt {}); messages still queue, other \
                         commands need the server",
                        attempts + 1
                    ),
                )
                .await;
            }
            Failure::Lost(reason) => {
                self.fail(done, format!("the connection broke: {reason}"))
                    .await;
                self.lost(reason).await;
            }
        }
    }

    /// Before quitting: the server has every ack (they are sent without a
    /// reply), so nothing shown here comes again next time.
    async fn confirm_acks(&self) {
        if let Ok(client) = self.client()
            && self.seen > Seq::ZERO
        {
            match tokio::time::timeout(Duration::from_secs(2), client.ack_confirmed(self.seen))
                .await
            {
                Ok(Ok(cursor)) => tracing::debug!(%cursor, "acks confirmed"),
                Ok(Err(e)) => tracing::debug!(error = %e, "acks not confirmed"),
                Err(_) => tracing::debug!("acks not confirmed in time"),
            }
        }
    }

    async fn execute(&mut self, command: Command) -> Result<Reply, Failure> {
        match command {
            Command::Status => Ok(Reply::Status(Status {
                user: self.me.clone(),
                addr: self.settings.addr.clone(),
                offline_attempts: match self.link {
                    Link::Up(_) => None,
                    Link::Down { attempts, .. } => Some(attempts + 1),
                },
                pending: self.outbox.len(),
                seen: self.seen,
                focus: self.focus.as_ref().map(|(_, label)| label.clone()),
            })),
            Command::Focus(None) => {
                self.focus = None;
                self.publish();
                Ok(Reply::Focus(None))
            }
            Command::Focus(Some(peer)) => {
                let (target, label) = self.peer(&peer).await?;
                self.focus = Some((target, label.clone()));
                self.publish();
                Ok(Reply::Focus(Some(label)))
            }
            Command::AddFriend(id) => {
                self.client()?.add_friend(id).await?;
                self.refresh_friends().await;
                Ok(Reply::FriendAdded(self.roster.user(id)))
            }
            Command::RemoveFriend(who) => {
                let (id, label) = self.user(&who).await?;
                self.client()?.remove_friend(id).await?;
                self.roster.remove_friend(id);
                self.publish();
                Ok(Reply::FriendRemoved(label))
            }
            Command::CreateGroup { name, desc } => {
                let id = self.client()?.create_group(&name, &desc).await?;
                self.refresh_groups().await;
                Ok(Reply::GroupCreated(Label::Group(id, Some(name))))
            }
            Command::JoinGroup(id) => {
                self.client()?.join_group(id).await?;
                self.refresh_groups().await;
                Ok(Reply::GroupJoined(self.roster.group(id)))
            }
            Command::LeaveGroup(who) => {
                let (id, label) = self.group(&who).await?;
                self.client()?.leave_group(id).await?;
                self.roster.remove_group(id);
                if matches!(self.focus, Some((Target::Group(g), _)) if g == id) {
                    self.focus = None;
                }
                self.publish();
                Ok(Reply::GroupLeft(label))
            }
            Command::Friends => {
                let friends = self.client()?.friends().await?;
                self.roster.set_friends(friends.clone());
                self.publish();
                Ok(Reply::Friends(friends))
            }
            Command::Groups => {
                let groups = self.client()?.groups().await?;
                self.roster.set_groups(groups.clone());
                self.publish();
                Ok(Reply::Groups(groups))
            }
            Command::Members(who) => {
                let (id, label) = self.group(&who).await?;
                let users = self.client()?.members(id).await?;
                for user in &users {
                    self.roster.learn(user.id, &user.name);
                }
                Ok(Reply::Members {
                    group: label,
                    users,
                })
            }
            Command::History { with, limit } => {
                let (target, label) = self.peer(&with).await?;
                let (mut messages, more) = self.client()?.history(target, None, limit).await?;
                messages.reverse();
                for m in &messages {
                    self.roster.learn(m.from, &m.name);
                }
                Ok(Reply::History {
                    me: self.me_id,
                    with: label,
                    messages,
                    more,
                })
            }
            Command::Say { .. }
            | Command::SayHere(_)
            | Command::Help(_)
            | Command::Logout
            | Command::Quit => Err(Failure::Refused("not a server command".into())),
        }
    }

    // --- names -------------------------------------------------------------

    async fn refresh_friends(&mut self) {
        let Ok(client) = self.client() else { return };
        match client.friends().await {
            Ok(friends) => {
                self.roster.set_friends(friends);
                self.publish();
            }
            Err(e) => tracing::debug!(error = %e, "friend list not refreshed"),
        }
    }

    async fn refresh_groups(&mut self) {
        let Ok(client) = self.client() else { return };
        match client.groups().await {
            Ok(groups) => {
                self.roster.set_groups(groups);
                self.publish();
            }
            Err(e) => tracing::debug!(error = %e, "group list not refreshed"),
        }
    }

    /// A user by id, or a friend by name (the list is fetched again when
    /// the name is unknown: someone may have befriended us meanwhile).
    async fn user(&mut self, who: &Who) -> Result<(UserId, Label), Failure> {
        let id = match who {
            Who::Id(id) => UserId(*id),
            Who::Name(name) => match self.roster.friend_named(name) {
                Some(id) => id,
                None => {
                    self.refresh_friends().await;
                    self.roster.friend_named(name).ok_or_else(|| {
                        Failure::Refused(format!(
                            "you have no friend named {name}; use the user id, or see /friends"
                        ))
                    })?
                }
            },
        };
        Ok((id, self.roster.user(id)))
    }

    /// A group by id, or one of ours by name.
    async fn group(&mut self, who: &Who) -> Result<(GroupId, Label), Failure> {
        let id = match who {
            Who::Id(id) => GroupId(*id),
            Who::Name(name) => match self.roster.group_named(name) {
                Some(id) => id,
                None => {
                    self.refresh_groups().await;
                    self.roster.group_named(name).ok_or_else(|| {
                        Failure::Refused(format!(
                            "you are in no group named {name}; use the group id, or see /groups"
                        ))
                    })?
                }
            },
        };
        Ok((id, self.roster.group(id)))
    }

    async fn peer(&mut self, peer: &Peer) -> Result<(Target, Label), Failure> {
        match peer {
            Peer::User(who) => {
                let (id, label) = self.user(who).await?;
                Ok((Target::User(id), label))
            }
            Peer::Group(who) => {
                let (id, label) = self.group(who).await?;
                Ok((Target::Group(id), label))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let settings = Settings::new("127.0.0.1:1");
        for (attempts, base_ms) in [
            (0, 250),
            (1, 500),
            (2, 1000),
            (3, 2000),
            (5, 8000),
            (30, 8000),
        ] {
            let delay = settings.backoff(attempts);
            let base = Duration::from_millis(base_ms);
            assert!(
                delay >= base && delay <= base + base / 4,
                "attempt {attempts}: {delay:?} not within 25% above {base:?}"
            );
        }
    }
}
