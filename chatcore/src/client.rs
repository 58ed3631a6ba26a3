//! A typed async client of the native dialect: connect, register, log in,
//! send, receive. Used by the tests, the examples and the tools.
//!
//! Every request carries a request id (`rid`); a reader task routes each
//! reply to its waiting caller and everything else (deliveries, kicks) to
//! [`Client::next_event`]. PINGs are answered automatically, and a server
//! that goes silent is PINGed and then given up (see
//! [`Client::with_silence_limit`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::codec::FrameCodec;
use crate::model::{GroupId, MessageId, Seq, Target, UserId};
use crate::protocol::{NATIVE_PROTO, ResumeToken, msgid};

/// Server frames can be large (a sync page); the client trusts its server
/// more than the server trusts clients, but not unboundedly.
const MAX_SERVER_FRAME: usize = 64 * 1024 * 1024;

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

/// A user with presence, as listed by the server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Contact {
    pub id: UserId,
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub role: Option<String>,
}

impl Contact {
    /// Whether the server reported the user online.
    pub fn online(&self) -> bool {
        self.state == "online"
    }
}

/// A group with its members.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub groupname: String,
    pub groupdesc: String,
    pub users: Vec<Contact>,
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
    /// Logs in again without the password ([`Client::resume`]), until it
    /// expires or the user logs out or changes the password.
    pub resume: Option<ResumeToken>,
}

/// A chat message as received.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChatMessage {
    #[serde(rename = "msgid")]
    pub kind: u32,
    /// The sender.
    #[serde(rename = "id")]
    pub from: UserId,
    /// The sender's name.
    pub name: String,
    #[serde(default)]
    pub toid: Option<UserId>,
    #[serde(default)]
    pub groupid: Option<GroupId>,
    pub msg: String,
    pub time: String,
    /// Position in the recipient's inbox (absent in history).
    #[serde(default)]
    pub seq: Option<Seq>,
    pub mid: MessageId,
}

impl ChatMessage {
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
}

/// Any server frame, loosely typed: the client picks what each call needs.
#[derive(Debug, Deserialize)]
struct Frame {
    msgid: u32,
    #[serde(default)]
    rid: Option<u64>,
    #[serde(default)]
    errno: Option<u32>,
    #[serde(default)]
    errmsg: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

impl Frame {
    fn field<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<T, ClientError> {
        let value = self.rest.get(key).cloned().unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| {
            ClientError::Protocol(format!("field `{key}` of msgid {}: {e}", self.msgid))
        })
    }

    fn into_message(self) -> Result<ChatMessage, ClientError> {
        let mut object = self.rest;
        object.insert("msgid".into(), json!(self.msgid));
        serde_json::from_value(Value::Object(object))
            .map_err(|e| ClientError::Protocol(format!("chat frame: {e}")))
    }
}

/// Callers waiting for replies, by request id; `None` once the connection
/// is closed, so that later calls fail at once instead of timing out.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Frame>>>>>;

/// A connection to a chat server, speaking the native dialect.
#[derive(Debug)]
pub struct Client {
    out: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    next_rid: AtomicU64,
    events: mpsc::Receiver<Event>,
    timeout: Duration,
}

fn lock(pending: &Pending) -> MutexGuard<'_, Option<HashMap<u64, oneshot::Sender<Frame>>>> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
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
        let (reader, mut writer) = tokio::io::split(io);
        let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(1024);
        let (events_tx, events) = mpsc::channel(64 * 1024);
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        // Dropped by the reader when it stops, which stops the writer too:
        // both halves go, and the connection closes.
        let (reader_done, mut reader_gone) = oneshot::channel::<()>();

        tokio::spawn(async move {
            loop {
                let bytes = tokio::select! {
                    bytes = out_rx.recv() => bytes,
                    _ = &mut reader_gone => None,
                };
                let Some(bytes) = bytes else { break };
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });

        let reader_pending = Arc::clone(&pending);
        // Weak, so that dropping the `Client` closes the connection.
        let pong = out.downgrade();
        tokio::spawn(async move {
            let _reader_done = reader_done;
            let mut frames = FramedRead::new(reader, FrameCodec::new(MAX_SERVER_FRAME));
            let mut probing = false;
            loop {
                let bytes = match tokio::time::timeout(silence, frames.next()).await {
                    Ok(Some(Ok(bytes))) => bytes,
                    // Closed, or a stream the codec cannot read.
                    Ok(_) => break,
                    Err(_) if !probing => {
                        probing = true;
                        let Some(out) = pong.upgrade() else { break };
                        // Without waiting: when even the queue to the
                        // socket is full, the answer will not come either.
                        let _ = out.try_send(frame_bytes(&json!({ "msgid": msgid::PING })));
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(?silence, "server silent after a PING, closing");
                        break;
                    }
                };
                probing = false;
                let frame: Frame = match serde_json::from_slice(&bytes) {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::warn!(error = %e, "unreadable server frame");
                        continue;
                    }
                };
                let waiter = frame.rid.and_then(|rid| {
                    lock(&reader_pending)
                        .as_mut()
                        .and_then(|waiting| waiting.remove(&rid))
                });
                if let Some(waiter) = waiter {
                    let _ = waiter.send(frame);
                    continue;
                }
                let event = match frame.msgid {
                    msgid::PING => {
                        if let Some(out) = pong.upgrade() {
                            let _ = out
                                .send(frame_bytes(&json!({ "msgid": msgid::PONG })))
                                .await;
                        }
                        continue;
                    }
                    msgid::ONE_CHAT | msgid::GROUP_CHAT => match frame.into_message() {
                        Ok(message) => Event::Message(message),
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable chat frame");
                            continue;
                        }
                    },
                    msgid::KICKED => Event::Kicked {
                        errno: frame.errno.unwrap_or(0),
                        errmsg: frame.errmsg.unwrap_or_default(),
                    },
                    msgid::ERROR => Event::Error {
                        errno: frame.errno.unwrap_or(0),
                        errmsg: frame.errmsg.unwrap_or_default(),
                    },
                    _ => continue,
                };
                if events_tx.send(event).await.is_err() {
                    break;
                }
            }
            // Waiters, present and future, learn that the connection is gone.
            lock(&reader_pending).take();
        });

        Client {
            out,
            pending,
            next_rid: AtomicU64::new(1),
            events,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets how long calls wait for their reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The next unasked frame: a message, a kick, a stray error. `None`
    /// once the connection is closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Like [`Client::next_event`] but gives up after `wait`.
    pub async fn next_event_within(&mut self, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Sends a raw request object and waits for the reply carrying its rid.
    /// Error frames become `ClientError::Server`.
    async fn call(&self, mut request: Value) -> Result<Frame, ClientError> {
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        request["rid"] = json!(rid);
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(waiting) => waiting.insert(rid, tx),
            None => return Err(ClientError::Closed),
        };
        if self.out.send(frame_bytes(&request)).await.is_err() {
            if let Some(waiting) = lock(&self.pending).as_mut() {
                waiting.remove(&rid);
            }
            return Err(ClientError::Closed);
        }
        let frame = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => {
                if let Some(waiting) = lock(&self.pending).as_mut() {
                    waiting.remove(&rid);
                }
                return Err(ClientError::Timeout(self.timeout));
            }
        };
        match frame.errno {
            Some(errno) if errno != 0 => Err(ClientError::Server {
                errno,
                errmsg: frame.errmsg.unwrap_or_default(),
            }),
            _ => Ok(frame),
        }
    }

    /// Sends a request that expects no reply.
    async fn cast(&self, request: Value) -> Result<(), ClientError> {
        self.out
            .send(frame_bytes(&request))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Registers a user and returns its id.
    pub async fn register(&self, name: &str, password: &str) -> Result<UserId, ClientError> {
        let reply = self
            .call(json!({"msgid": msgid::REG, "name": name, "password": password, "proto": NATIVE_PROTO}))
            .await?;
        reply.field("id")
    }

    /// Logs in; the backlog after the cursor follows as events.
    pub async fn login(&self, id: UserId, password: &str) -> Result<LoginInfo, ClientError> {
        let reply = self
            .call(json!({"msgid": msgid::LOGIN, "id": id, "password": password, "proto": NATIVE_PROTO}))
            .await?;
        login_info(&reply)
    }

    /// Logs in with the resume token of an earlier login, without the
    /// password; the reply carries a fresh token.
    pub async fn resume(&self, token: &str) -> Result<LoginInfo, ClientError> {
        let reply = self
            .call(json!({"msgid": msgid::RESUME, "token": token}))
            .await?;
        login_info(&reply)
    }

    /// Changes the password; every resume token issued before is revoked
    /// and the new one is returned.
    pub async fn change_password(
        &self,
        old: &str,
        new: &str,
    ) -> Result<Option<ResumeToken>, ClientError> {
        let reply = self
            .call(json!({"msgid": msgid::CHANGE_PASSWORD, "old": old, "new": new}))
            .await?;
        reply.field("resume")
    }

    /// Ends the session; the connection stays open for another login.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::LOGINOUT})).await.map(drop)
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
        let mut request = match target {
            Target::User(to) => json!({"msgid": msgid::ONE_CHAT, "toid": to, "msg": text}),
            Target::Group(g) => json!({"msgid": msgid::GROUP_CHAT, "groupid": g, "msg": text}),
        };
        if let Some(cmid) = cmid {
            request["cmid"] = json!(cmid);
        }
        let reply = self.call(request).await?;
        if reply.msgid != msgid::CHAT_ACK {
            return Err(ClientError::Protocol(format!(
                "expected CHAT_ACK, got {}",
                reply.msgid
            )));
        }
        Ok(Sent {
            mid: reply.field("mid")?,
            time: reply.field("time")?,
            duplicate: reply.field("dup")?,
        })
    }

    /// Acknowledges everything received up to `seq` (no reply awaited).
    pub async fn ack(&self, seq: Seq) -> Result<(), ClientError> {
        self.cast(json!({"msgid": msgid::DELIVERED, "seq": seq}))
            .await
    }

    /// Acknowledges up to `seq` and returns the server's cursor.
    pub async fn ack_confirmed(&self, seq: Seq) -> Result<Seq, ClientError> {
        self.call(json!({"msgid": msgid::DELIVERED, "seq": seq}))
            .await?
            .field("seq")
    }

    /// Befriends `friend` (mutual, idempotent).
    pub async fn add_friend(&self, friend: UserId) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::ADD_FRIEND, "friendid": friend}))
            .await
            .map(drop)
    }

    /// Ends a friendship.
    pub async fn remove_friend(&self, friend: UserId) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::REMOVE_FRIEND, "friendid": friend}))
            .await
            .map(drop)
    }

    /// Creates a group and returns its id.
    pub async fn create_group(&self, name: &str, desc: &str) -> Result<GroupId, ClientError> {
        self.call(json!({"msgid": msgid::CREATE_GROUP, "groupname": name, "groupdesc": desc}))
            .await?
            .field("groupid")
    }

    /// Joins a group.
    pub async fn join_group(&self, group: GroupId) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::ADD_GROUP, "groupid": group}))
            .await
            .map(drop)
    }

    /// Leaves a group.
    pub async fn leave_group(&self, group: GroupId) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::LEAVE_GROUP, "groupid": group}))
            .await
            .map(drop)
    }

    /// Friends with presence.
    pub async fn friends(&self) -> Result<Vec<Contact>, ClientError> {
        self.call(json!({"msgid": msgid::LIST_FRIENDS}))
            .await?
            .field("friends")
    }

    /// Groups with members.
    pub async fn groups(&self) -> Result<Vec<Group>, ClientError> {
        self.call(json!({"msgid": msgid::LIST_GROUPS}))
            .await?
            .field("groups")
    }

    /// Members of a group, with presence and role.
    pub async fn members(&self, group: GroupId) -> Result<Vec<Contact>, ClientError> {
        self.call(json!({"msgid": msgid::LIST_MEMBERS, "groupid": group}))
            .await?
            .field("users")
    }

    /// Inbox entries after `after` (at most `limit`) and whether more follow.
    pub async fn sync(
        &self,
        after: Seq,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool), ClientError> {
        let reply = self
            .call(json!({"msgid": msgid::SYNC, "after": after, "limit": limit}))
            .await?;
        Ok((reply.field("msgs")?, reply.field("more")?))
    }

    /// A conversation's messages before `before`, newest first, and whether
    /// older ones exist.
    pub async fn history(
        &self,
        target: Target,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<(Vec<ChatMessage>, bool), ClientError> {
        let mut request = json!({"msgid": msgid::HISTORY, "limit": limit});
        match target {
            Target::User(u) => request["toid"] = json!(u),
            Target::Group(g) => request["groupid"] = json!(g),
        }
        if let Some(before) = before {
            request["before"] = json!(before);
        }
        let reply = self.call(request).await?;
        Ok((reply.field("msgs")?, reply.field("more")?))
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.call(json!({"msgid": msgid::PING})).await.map(drop)
    }
}

/// The body of a `LOGIN_ACK`, after a login or a resume.
fn login_info(reply: &Frame) -> Result<LoginInfo, ClientError> {
    Ok(LoginInfo {
        id: reply.field("id")?,
        name: reply.field("name")?,
        friends: reply.field("friends")?,
        groups: reply.field("groups")?,
        cursor: reply.field("cursor")?,
        resume: reply.field("resume")?,
    })
}

fn frame_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    use super::*;

    const SILENCE: Duration = Duration::from_secs(30);

    /// The server's end of a client's connection, reading its frames.
    fn connected() -> (Client, BufReader<DuplexStream>) {
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let client = Client::with_silence_limit(client_end, SILENCE);
        (client, BufReader::new(server_end))
    }

    async fn next_frame(server: &mut BufReader<DuplexStream>) -> Option<Value> {
        let mut line = String::new();
        match server.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("a JSON frame")),
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
        assert_eq!(ping["msgid"], msgid::PING);
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
                let frame: Value = serde_json::from_str(&line).expect("a JSON frame");
                line.clear();
                if frame["msgid"] == msgid::PING {
                    pings += 1;
                    let pong = frame_bytes(&json!({ "msgid": msgid::PONG, "rid": frame["rid"] }));
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
