//! A typed async client of the native dialect: connect, register, log in,
//! send, receive. Used by the tests, the examples, `chatcli` and the load
//! generator; it speaks the wire only through [`crate::protocol`].
//!
//! One task per connection reads and writes the socket. Every request
//! carries a request id (`rid`); the task routes each reply to its waiting
//! caller and everything else (deliveries, kicks) to the [`Events`] half.
//! PINGs are answered automatically, and a server that goes silent is
//! PINGed and then given up (see [`Client::with_silence_limit`]).
//!
//! [`Client`] holds both halves; [`Client::split`] separates them, so that
//! one task can send ([`ClientSender`] is cheap to clone) while another
//! receives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::codec::FrameCodec;
use crate::model::{ConversationSummary, GroupId, Message, MessageId, Seq, Target, UserId};
use crate::protocol::{
    AddFriend, AddGroup, AnonymousRequest, ChangePassword, Chat, ClientFrame, Conversations,
    CreateGroup, DeliveryAck, ErrorCode, ErrorReply, FindUser, FriendEntry, GroupEntry, History,
    Identity, LeaveGroup, ListMembers, Login, MemberEntry, NATIVE_PROTO, ReadMark, Register,
    RemoveFriend, Request, Resume, ResumeToken, ServerFrame, SessionRequest, SyncRequest,
    format_time, msgid,
};

/// Server frames can be large (a sync page); the client trusts its server
/// more than the server trusts clients, but not unboundedly.
const MAX_SERVER_FRAME: usize = 64 * 1024 * 1024;

/// Read buffer a connection starts with; it grows for larger frames. Small,
/// so that a load generator can hold tens of thousands of idle clients.
const READ_BUFFER: usize = 1024;

/// Requests queued for the socket before senders wait.
const SEND_QUEUE: usize = 256;

/// Unasked frames (deliveries) queued before the connection stops reading;
/// large, so that a login's backlog fits while the caller still waits for
/// other replies (a channel allocates as it fills, not up front).
const EVENT_QUEUE: usize = 64 * 1024;

/// How long a request waits for its reply by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client goes without a frame from its server before it asks
/// with a PING, and then waits for an answer before it gives the
/// connection up. An idle server PINGs its clients at its heartbeat (30 s
/// by default), so a live connection never stays silent this long twice.
pub const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(30);

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed")]
    Closed,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The server refused the request.
    #[error("server error {errno}: {errmsg}")]
    Server { errno: u32, errmsg: String },
    #[error("unexpected reply: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server's `errno`, when the server refused the request.
    pub fn errno(&self) -> Option<u32> {
        match self {
            ClientError::Server { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// One conversation of the caller, as `CONVERSATIONS` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationEntry {
    /// The other user of a one-to-one conversation, or the group.
    pub with: Target,
    /// That user's or group's name.
    pub name: String,
    /// The newest message.
    pub last: ChatMessage,
    /// Messages after `read` that the caller did not send.
    pub unread: u64,
    /// The caller's read position (0 when never set).
    pub read: MessageId,
}

impl From<ConversationSummary> for ConversationEntry {
    fn from(c: ConversationSummary) -> ConversationEntry {
        ConversationEntry {
            with: c.with,
            name: c.name,
            last: ChatMessage::new(None, &c.last),
            unread: c.unread,
            read: c.read,
        }
    }
}

/// A user with presence, as listed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: UserId,
    pub name: String,
    pub state: String,
    /// The member's role, in a group's list.
    pub role: Option<String>,
}

impl Contact {
    /// Whether the server reported the user online.
    pub fn online(&self) -> bool {
        self.state == "online"
    }

    fn state(online: bool) -> String {
        if online { "online" } else { "offline" }.to_owned()
    }
}

impl From<FriendEntry> for Contact {
    fn from(f: FriendEntry) -> Contact {
        Contact {
            id: f.user.id,
            name: f.user.name,
            state: Contact::state(f.online),
            role: None,
        }
    }
}

impl From<MemberEntry> for Contact {
    fn from(m: MemberEntry) -> Contact {
        Contact {
            id: m.member.user.id,
            name: m.member.user.name,
            state: Contact::state(m.online),
            role: Some(m.member.role.as_str().to_owned()),
        }
    }
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: GroupId,
    pub groupname: String,
    pub groupdesc: String,
    pub users: Vec<Contact>,
}

impl From<GroupEntry> for Group {
    fn from(g: GroupEntry) -> Group {
        Group {
            id: g.group.id,
            groupname: g.group.name,
            groupdesc: g.group.desc,
            users: g.users.into_iter().map(Contact::from).collect(),
        }
    }
}

/// What a successful login tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    pub id: UserId,
    pub name: String,
    pub friends: Vec<Contact>,
    pub groups: Vec<Group>,
    /// The acked cursor; the backlog after it arrives as events.
    pub cursor: Seq,
    /// Logs in again without the password ([`ClientSender::resume`]), until it
    /// expires or the user logs out or changes the password.
    pub resume: Option<ResumeToken>,
}

/// A chat message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `ONE_CHAT` or `GROUP_CHAT`.
    pub kind: u32,
    /// The sender.
    pub from: UserId,
    /// The sender's name.
    pub name: String,
    pub toid: Option<UserId>,
    pub groupid: Option<GroupId>,
    pub msg: String,
    /// When the server stored it, as the seed shows times.
    pub time: String,
    /// Position in the recipient's inbox (absent in history).
    pub seq: Option<Seq>,
    pub mid: MessageId,
}

impl ChatMessage {
    fn new(seq: Option<Seq>, message: &Message) -> ChatMessage {
        let (kind, toid, groupid) = match message.target {
            Target::User(to) => (msgid::ONE_CHAT, Some(to), None),
            Target::Group(group) => (msgid::GROUP_CHAT, None, Some(group)),
        };
        ChatMessage {
            kind,
            from: message.sender.id,
            name: message.sender.name.clone(),
            toid,
            groupid,
            msg: message.body.clone(),
            time: format_time(message.sent_at_ms),
            seq,
            mid: message.id,
        }
    }

    /// Where the message was sent.
    pub fn target(&self) -> Option<Target> {
        match (self.toid, self.groupid) {
            (Some(user), _) => Some(Target::User(user)),
            (None, Some(group)) => Some(Target::Group(group)),
            _ => None,
        }
    }
}

/// The server's acknowledgement of a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub mid: MessageId,
    pub time: String,
    /// The server already had this client message id.
    pub duplicate: bool,
}

/// Something the server sent unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(ChatMessage),
    /// The session ended (`errno` says why); the connection closes.
    Kicked {
        errno: u32,
        errmsg: String,
    },
    /// An error frame that answers no request of ours.
    Error {
        errno: u32,
        errmsg: String,
    },
    /// A friend came online or went offline.
    Presence {
        user: UserId,
        online: bool,
    },
}

/// An unasked frame on its way from the connection's task to the
/// [`Events`] half, as small as it came off the wire (a delivery is an
/// `Arc`); the reader turns it into an [`Event`]. The queue allocates its
/// slots in blocks, the first when the client connects, so a small item
/// keeps an idle connection small (an `Event` is six times larger).
#[derive(Debug)]
enum Unasked {
    Push(Seq, Arc<Message>),
    Kicked(ErrorCode),
    Error(Box<ErrorReply>),
    Presence(UserId, bool),
}

impl From<Unasked> for Event {
    fn from(unasked: Unasked) -> Event {
        match unasked {
            Unasked::Push(seq, message) => Event::Message(ChatMessage::new(Some(seq), &message)),
            Unasked::Kicked(code) => Event::Kicked {
                errno: code.errno(),
                errmsg: code.message().to_owned(),
            },
            Unasked::Error(e) => Event::Error {
                errno: e.code.errno(),
                errmsg: e.detail,
            },
            Unasked::Presence(user, online) => Event::Presence { user, online },
        }
    }
}

/// Callers waiting for replies, by request id; `None` once the connection
/// is closed, so that later calls fail at once instead of timing out.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<ServerFrame>>>>>;

fn lock(pending: &Pending) -> MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<ServerFrame>>>> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sending half of a connection: every request, each awaiting its
/// reply. Cheap to clone; the connection closes when every sender is
/// dropped.
#[derive(Debug, Clone)]
pub struct ClientSender {
    out: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_rid: Arc<AtomicU64>,
    pings_answered: Arc<AtomicU64>,
    timeout: Duration,
}

/// The receiving half of a connection: what the server sends unasked.
#[derive(Debug)]
pub struct Events {
    events: mpsc::Receiver<Unasked>,
}

impl Events {
    /// The next unasked frame: a message, a kick, a stray error. `None`
    /// once the connection is closed.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await.map(Event::from)
    }

    /// Like [`Events::next`] but gives up after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
            .map(Event::from)
    }
}

/// A connection to a chat server, speaking the native dialect: both
/// halves together.
#[derive(Debug)]
pub struct Client {
    sender: ClientSender,
    events: Events,
}

impl std::ops::Deref for Client {
    type Target = ClientSender;

    fn deref(&self) -> &ClientSender {
        &self.sender
    }
}

impl Client {
    /// Connects over TCP.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client::new(stream))
    }

    /// A client over an established byte stream, with the
    /// [`DEFAULT_SILENCE_LIMIT`].
    pub fn new<IO>(io: IO) -> Client
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        Client::with_silence_limit(io, DEFAULT_SILENCE_LIMIT)
    }

    /// A client that PINGs its server after `silence` without a frame
    /// from it and closes the connection when another `silence` passes
    /// without one. A connection whose network died without a reset (a
    /// half-open one, or a server that stopped) thus ends within twice
    /// `silence`, like a closed one: [`Client::next_event`] returns `None`
    /// and calls fail with [`ClientError::Closed`], the cue to reconnect.
    pub fn with_silence_limit<IO>(io: IO, silence: Duration) -> Client
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (out, out_rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let pings_answered = Arc::new(AtomicU64::new(0));
        tokio::spawn(run_connection(
            io,
            silence,
            out_rx,
            events_tx,
            Arc::clone(&pending),
            Arc::clone(&pings_answered),
        ));
        Client {
            sender: ClientSender {
                out,
                pending,
                next_rid: Arc::new(AtomicU64::new(1)),
                pings_answered,
                timeout: DEFAULT_TIMEOUT,
            },
            events: Events { events },
        }
    }

    /// Separates the halves: one task may send while another receives.
    pub fn split(self) -> (ClientSender, Events) {
        (self.sender, self.events)
    }

    /// Sets how long calls wait for their reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.sender.timeout = timeout;
    }

    /// The next unasked frame: a message, a kick, a stray error. `None`
    /// once the connection is closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.next().await
    }

    /// Like [`Client::next_event`] but gives up after `wait`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<Event> {
        self.events.next_within(wait).await
    }
}

/// The connection's one task: writes queued requests, reads server frames,
/// routes replies to their callers and the rest to the events half, and
/// watches for a silent server.
async fn run_connection<IO>(
    io: IO,
    silence: Duration,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<Unasked>,
    pending: Pending,
    pings_answered: Arc<AtomicU64>,
) where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, mut writer) = tokio::io::split(io);
    let mut frames =
        FramedRead::with_capacity(reader, FrameCodec::new(MAX_SERVER_FRAME), READ_BUFFER);
    // Frames for the socket, the first partly written. Writing never holds
    // up reading: a server that stops reading until its own writes drain
    // would otherwise wait on a client waiting on it.
    let mut outgoing = Outgoing::default();
    let mut probing = false;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let bytes = tokio::select! {
            request = out_rx.recv(), if outgoing.is_empty() => {
                // Every sender gone (and so the `Client`): close.
                let Some(request) = request else { break };
                outgoing.push(request);
                continue;
            }
            written = outgoing.write_to(&mut writer) => {
                if written.is_err() {
                    break;
                }
                continue;
            }
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => bytes,
                // Closed, or a stream the codec cannot read.
                _ => break,
            },
            _ = tokio::time::sleep_until(quiet_since + silence) => {
                if probing {
                    tracing::warn!(?silence, "server silent after a PING, closing");
                    break;
                }
                probing = true;
                quiet_since = tokio::time::Instant::now();
                outgoing.push(encode(&ClientFrame { rid: None, request: Request::Ping }));
                continue;
            }
        };
        probing = false;
        quiet_since = tokio::time::Instant::now();
        let frame = match ServerFrame::decode(&bytes) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable server frame");
                continue;
            }
        };
        let waiter = frame
            .rid()
            .and_then(|rid| lock(&pending).as_mut().and_then(|w| w.remove(&rid)));
        if let Some(waiter) = waiter {
            let _ = waiter.send(frame);
            continue;
        }
        let event = match frame {
            ServerFrame::Ping => {
                // A server that PINGs faster than it reads gets no more
                // answers than fit: it will close an unanswering client.
                if outgoing.len() < MAX_OUTGOING {
                    outgoing.push(encode(&ClientFrame {
                        rid: None,
                        request: Request::Pong,
                    }));
                    pings_answered.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            ServerFrame::Push { seq, message } => Unasked::Push(seq, message),
            ServerFrame::Kicked { code } => Unasked::Kicked(code),
            ServerFrame::Error(e) => Unasked::Error(Box::new(e)),
            ServerFrame::Presence { user, online } => Unasked::Presence(user, online),
            _ => continue,
        };
        // An events half nobody reads any more is no reason to close: the
        // sender may still be in use.
        let _ = events.send(event).await;
    }
    // Waiters, present and future, learn that the connection is gone.
    lock(&pending).take();
    let _ = writer.shutdown().await;
}

/// Frames queued for the socket beside the requests' own queue: the
/// connection's PINGs and PONGs.
const MAX_OUTGOING: usize = 16;

/// Frames waiting for the socket, in order; `written` bytes of the first
/// are already out.
#[derive(Debug, Default)]
struct Outgoing {
    frames: std::collections::VecDeque<Vec<u8>>,
    written: usize,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn len(&self) -> usize {
        self.frames.len()
    }

    fn push(&mut self, frame: Vec<u8>) {
        self.frames.push_back(frame);
    }

    /// Writes some of the first frame; never resolves while none waits.
    /// Cancelling it loses nothing: what was written is counted.
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> std::io::Result<()> {
        let Some(frame) = self.frames.front() else {
            return std::future::pending().await;
        };
        let n = writer.write(&frame[self.written..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.written += n;
        if self.written == frame.len() {
            self.frames.pop_front();
            self.written = 0;
        }
        Ok(())
    }
}

fn encode(frame: &ClientFrame) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    frame.encode(&mut bytes);
    bytes
}

/// A reply that is not the one the call expects.
fn unexpected(frame: &ServerFrame) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {frame:?}"))
}

impl ClientSender {
    /// Sends a request and waits for the reply carrying its rid. Error
    /// frames become [`ClientError::Server`].
    async fn call(&self, request: Request) -> Result<ServerFrame, ClientError> {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(waiting) => waiting.insert(rid, tx),
            None => return Err(ClientError::Closed),
        };
        let forget = || {
            if let Some(waiting) = lock(&self.pending).as_mut() {
                waiting.remove(&rid);
            }
        };
        let bytes = encode(&ClientFrame {
            rid: Some(rid),
            request,
        });
        if self.out.send(bytes).await.is_err() {
            forget();
            return Err(ClientError::Closed);
        }
        let frame = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => {
                forget();
                return Err(ClientError::Timeout(self.timeout));
            }
        };
        match frame {
            ServerFrame::Error(e) => Err(ClientError::Server {
                errno: e.code.errno(),
                errmsg: e.detail,
            }),
            frame => Ok(frame),
        }
    }

    /// A session request and its reply.
    async fn session(&self, request: SessionRequest) -> Result<ServerFrame, ClientError> {
        self.call(Request::Session(request)).await
    }

    /// A session request whose reply is a plain `ACK`.
    async fn acked(&self, request: SessionRequest) -> Result<crate::protocol::Ack, ClientError> {
        match self.session(request).await? {
            ServerFrame::Ack(ack) => Ok(ack),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends a request that expects no reply.
    async fn cast(&self, request: Request) -> Result<(), ClientError> {
        let bytes = encode(&ClientFrame { rid: None, request });
        self.out.send(bytes).await.map_err(|_| ClientError::Closed)
    }

    /// Registers a user and returns its id.
    pub async fn register(&self, name: &str, password: &str) -> Result<UserId, ClientError> {
        let request = AnonymousRequest::Register(Register {
            name: name.to_owned(),
            password: password.to_owned(),
            proto: Some(NATIVE_PROTO),
        });
        match self.call(Request::Anonymous(request)).await? {
            ServerFrame::RegisterOk { id, .. } => Ok(id),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in; the backlog after the cursor follows as events.
    pub async fn login(&self, id: UserId, password: &str) -> Result<LoginInfo, ClientError> {
        let request = AnonymousRequest::Login(Login {
            id,
            password: password.to_owned(),
            proto: Some(NATIVE_PROTO),
        });
        login_info(self.call(Request::Anonymous(request)).await?)
    }

    /// Logs in with the resume token of an earlier login, without the
    /// password; the reply carries a fresh token.
    pub async fn resume(&self, token: &str) -> Result<LoginInfo, ClientError> {
        let request = AnonymousRequest::Resume(Resume {
            token: token.to_owned(),
        });
        login_info(self.call(Request::Anonymous(request)).await?)
    }

    /// Changes the password; every resume token issued before is revoked
    /// and the new one is returned.
    pub async fn change_password(
        &self,
        old: &str,
        new: &str,
    ) -> Result<Option<ResumeToken>, ClientError> {
        let request = SessionRequest::ChangePassword(ChangePassword {
            old: old.to_owned(),
            new: new.to_owned(),
        });
        Ok(self.acked(request).await?.resume)
    }

    /// Ends the session; the connection stays open for another login.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.acked(SessionRequest::Logout(Identity::default()))
            .await
            .map(drop)
    }

    /// Sends a one-to-one message.
    pub async fn send_to(&self, to: UserId, text: &str) -> Result<Sent, ClientError> {
        self.send(Target::User(to), text, None).await
    }

    /// Sends a group message.
    pub async fn send_group(&self, group: GroupId, text: &str) -> Result<Sent, ClientError> {
        self.send(Target::Group(group), text, None).await
    }

    /// Sends a message with an optional client message id, which makes a
    /// resend idempotent.
    pub async fn send(
        &self,
        target: Target,
        text: &str,
        cmid: Option<&str>,
    ) -> Result<Sent, ClientError> {
        let request = SessionRequest::Chat(Chat {
            id: None,
            target,
            msg: text.to_owned(),
            cmid: cmid.map(str::to_owned),
        });
        match self.session(request).await? {
            ServerFrame::ChatAck(ack) => Ok(Sent {
                mid: ack.mid,
                time: format_time(ack.sent_at_ms),
                duplicate: ack.duplicate,
            }),
            other => Err(ClientError::Protocol(format!(
                "expected CHAT_ACK, got {other:?}"
            ))),
        }
    }

    /// Acknowledges everything received up to `seq` (no reply awaited).
    pub async fn ack(&self, seq: Seq) -> Result<(), ClientError> {
        self.cast(Request::Session(SessionRequest::DeliveryAck(DeliveryAck {
            seq,
        })))
        .await
    }

    /// Acknowledges up to `seq` and returns the server's cursor.
    pub async fn ack_confirmed(&self, seq: Seq) -> Result<Seq, ClientError> {
        self.acked(SessionRequest::DeliveryAck(DeliveryAck { seq }))
            .await?
            .seq
            .ok_or_else(|| ClientError::Protocol("ack without `seq`".into()))
    }

    /// Befriends `friend` (mutual, idempotent).
    pub async fn add_friend(&self, friend: UserId) -> Result<(), ClientError> {
        let request = SessionRequest::AddFriend(AddFriend {
            id: None,
            friendid: friend,
        });
        self.acked(request).await.map(drop)
    }

    /// Ends a friendship.
    pub async fn remove_friend(&self, friend: UserId) -> Result<(), ClientError> {
        let request = SessionRequest::RemoveFriend(RemoveFriend {
            id: None,
            friendid: friend,
        });
        self.acked(request).await.map(drop)
    }

    /// Creates a group and returns its id.
    pub async fn create_group(&self, name: &str, desc: &str) -> Result<GroupId, ClientError> {
        let request = SessionRequest::CreateGroup(CreateGroup {
            id: None,
            groupname: name.to_owned(),
            groupdesc: desc.to_owned(),
        });
        self.acked(request)
            .await?
            .groupid
            .ok_or_else(|| ClientError::Protocol("ack without `groupid`".into()))
    }

    /// Joins a group.
    pub async fn join_group(&self, group: GroupId) -> Result<(), ClientError> {
        let request = SessionRequest::AddGroup(AddGroup {
            id: None,
            groupid: group,
        });
        self.acked(request).await.map(drop)
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group: GroupId) -> Result<(), ClientError> {
        let request = SessionRequest::LeaveGroup(LeaveGroup {
            id: None,
            groupid: group,
        });
        self.acked(request).await.map(drop)
    }

    /// Friends with presence.
    pub async fn friends(&self) -> Result<Vec<Contact>, ClientError> {
        match self.session(SessionRequest::ListFriends).await? {
            ServerFrame::Friends { friends, .. } => {
                Ok(friends.into_iter().map(Contact::from).collect())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Groups with members.
    pub async fn groups(&self) -> Result<Vec<Group>, ClientError> {
        match self.session(SessionRequest::ListGroups).await? {
            ServerFrame::Groups { groups, .. } => Ok(groups.into_iter().map(Group::from).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Members of a group, with presence and role.
    pub async fn members(&self, group: GroupId) -> Result<Vec<Contact>, ClientError> {
        let request = SessionRequest::ListMembers(ListMembers { groupid: group });
        match self.session(request).await? {
            ServerFrame::Members { users, .. } => {
                Ok(users.into_iter().map(Contact::from).collect())
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Inbox entries after `after` (at most `limit`) and whether more follow.
    pub async fn sync(
        &self,
        after: Seq,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool), ClientError> {
        let request = SessionRequest::Sync(SyncRequest {
            after,
            limit: Some(limit),
        });
        match self.session(request).await? {
            ServerFrame::Sync(page) => Ok((
                page.entries
                    .iter()
                    .map(|e| ChatMessage::new(Some(e.seq), &e.message))
                    .collect(),
                page.more,
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// A conversation's messages before `before`, newest first, and whether
    /// older ones exist.
    pub async fn history(
        &self,
        target: Target,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool), ClientError> {
        let request = SessionRequest::History(History {
            target,
            before,
            limit: Some(limit),
        });
        match self.session(request).await? {
            ServerFrame::History { messages, more, .. } => Ok((
                messages.iter().map(|m| ChatMessage::new(None, m)).collect(),
                more,
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the read position of the conversation with `target` to `mid`
    /// (it only moves forward); returns the position after the update.
    pub async fn read(&self, target: Target, mid: MessageId) -> Result<MessageId, ClientError> {
        let ack = self
            .acked(SessionRequest::Read(ReadMark { target, mid }))
            .await?;
        ack.mid
            .ok_or_else(|| ClientError::Protocol("READ acknowledged without `mid`".into()))
    }

    /// The caller's conversations whose last message is before `before`,
    /// newest first, and whether older ones exist.
    pub async fn conversations(
        &self,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<ConversationEntry>, bool), ClientError> {
        let request = SessionRequest::Conversations(Conversations {
            before,
            limit: Some(limit),
        });
        match self.session(request).await? {
            ServerFrame::Conversations {
                conversations,
                more,
                ..
            } => Ok((
                conversations
                    .into_iter()
                    .map(ConversationEntry::from)
                    .collect(),
                more,
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// The user named `name` (none or one), or with `prefix` up to `limit`
    /// users whose names start with it, ascending by name, with presence.
    pub async fn find_users(
        &self,
        name: &str,
        prefix: bool,
        limit: u32,
    ) -> Result<Vec<Contact>, ClientError> {
        let request = SessionRequest::FindUser(FindUser {
            name: name.to_owned(),
            prefix,
            limit: Some(limit),
        });
        match self.session(request).await? {
            ServerFrame::Users { users, .. } => Ok(users.into_iter().map(Contact::from).collect()),
            other => Err(unexpected(&other)),
        }
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.call(Request::Ping).await? {
            ServerFrame::Pong { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// How many of the server's PINGs this connection has answered (the
    /// connection answers them itself): what a load generator reports to
    /// show that idle connections were kept alive.
    pub fn pings_answered(&self) -> u64 {
        self.pings_answered.load(Ordering::Relaxed)
    }
}

/// The body of a `LOGIN_ACK`, after a login or a resume.
fn login_info(reply: ServerFrame) -> Result<LoginInfo, ClientError> {
    let ServerFrame::LoginOk(login) = reply else {
        return Err(unexpected(&reply));
    };
    let login = *login;
    Ok(LoginInfo {
        id: login.user.id,
        name: login.user.name,
        friends: login.friends.into_iter().map(Contact::from).collect(),
        groups: login.groups.into_iter().map(Group::from).collect(),
        cursor: login.cursor,
        resume: login.resume,
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    use super::*;
    use crate::protocol::Dialect;

    const SILENCE: Duration = Duration::from_secs(30);

    /// The server's end of a client's connection, reading its frames.
    fn connected() -> (Client, BufReader<DuplexStream>) {
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let client = Client::with_silence_limit(client_end, SILENCE);
        (client, BufReader::new(server_end))
    }

    async fn next_frame(server: &mut BufReader<DuplexStream>) -> Option<ClientFrame> {
        let mut line = String::new();
        match server.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(ClientFrame::decode(line.trim_end().as_bytes()).expect("a frame")),
        }
    }

    // Paused time: the runtime jumps ahead whenever every task waits.
    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_pinged_then_given_up() {
        let (mut client, mut server) = connected();
        let start = tokio::time::Instant::now();

        // Bounded, so that a client without the timer fails the test
        // instead of hanging it.
        let within = SILENCE * 4;
        let ping = tokio::time::timeout(within, next_frame(&mut server))
            .await
            .expect("a PING in time")
            .expect("a PING");
        assert_eq!(ping.request, Request::Ping);
        assert_eq!(start.elapsed(), SILENCE, "asked after one silence");

        let event = tokio::time::timeout(within, client.next_event())
            .await
            .expect("the connection ends in time");
        assert!(event.is_none(), "the connection ended");
        assert_eq!(start.elapsed(), SILENCE * 2, "given up after two");
        assert!(matches!(client.ping().await, Err(ClientError::Closed)));
        assert!(
            next_frame(&mut server).await.is_none(),
            "the client closed its side"
        );
    }

    #[test]
    fn queued_events_stay_small() {
        // 32 of them are allocated per connection up front (tokio's first
        // block): 768 bytes, where `Event`s would take 4.5 KiB.
        assert!(std::mem::size_of::<Unasked>() <= 24);
    }

    #[tokio::test]
    async fn the_servers_pings_are_answered_and_counted() {
        let (client, server) = connected();
        let (read, mut write) = tokio::io::split(server);
        let mut read = BufReader::new(read);
        assert_eq!(client.pings_answered(), 0);
        for answered in 1..=2 {
            let mut ping = Vec::new();
            ServerFrame::Ping.encode(Dialect::Native, &mut ping);
            write.write_all(&ping).await.expect("ping");
            let mut line = String::new();
            read.read_line(&mut line).await.expect("an answer");
            let pong = ClientFrame::decode(line.trim_end().as_bytes()).expect("a frame");
            assert_eq!(pong.request, Request::Pong);
            // One thread: the client's task counted the answer in the
            // same step that wrote it, before this task could read it.
            assert_eq!(client.pings_answered(), answered);
        }
    }

    #[tokio::test]
    async fn a_server_that_writes_without_reading_is_still_read() {
        // A pipe that holds little: a client that stopped reading while
        // its answers cannot be written would block the server for good.
        let (client_end, server_end) = tokio::io::duplex(64);
        let client = Client::new(client_end);
        let (mut read, mut write) = tokio::io::split(server_end);
        let mut pings = Vec::new();
        for _ in 0..1000 {
            ServerFrame::Ping.encode(Dialect::Native, &mut pings);
        }
        tokio::time::timeout(Duration::from_secs(10), write.write_all(&pings))
            .await
            .expect("the client kept reading while its PONGs waited")
            .expect("written");
        // It answered what it could hold, and still serves calls.
        let mut answers = vec![0u8; 4096];
        let n = tokio::io::AsyncReadExt::read(&mut read, &mut answers)
            .await
            .expect("read");
        assert!(n > 0, "some PINGs were answered");
        assert!(client.pings_answered() >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_answers_keeps_the_connection() {
        let (mut client, server) = connected();
        let (read, mut write) = tokio::io::split(server);
        let mut read = BufReader::new(read);
        // A server that answers every PING, and otherwise says nothing.
        let answering = tokio::spawn(async move {
            let mut pings = 0;
            let mut line = String::new();
            while read.read_line(&mut line).await.is_ok_and(|n| n > 0) {
                let frame = ClientFrame::decode(line.trim_end().as_bytes()).expect("a frame");
                line.clear();
                if frame.request == Request::Ping {
                    pings += 1;
                    let mut pong = Vec::new();
                    ServerFrame::Pong { rid: frame.rid }.encode(Dialect::Native, &mut pong);
                    write.write_all(&pong).await.expect("answer");
                }
            }
            pings
        });

        let quiet_for = SILENCE * 10;
        assert!(
            client.next_event_within(quiet_for).await.is_none(),
            "no event in a quiet while"
        );
        client
            .ping()
            .await
            .expect("still connected after a quiet while");
        drop(client);
        let pings = answering.await.expect("server task");
        assert!(
            pings >= 10,
            "probed about once per silence, answered each time: {pings}"
        );
    }
}
