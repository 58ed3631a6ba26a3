//! Lean client connections in both dialects, for the setup requests
//! (register, log in, groups) and then split into halves for the load.
//!
//! Why not `chatcore::client::Client`: its sends borrow the client shared
//! while its events need it exclusively, so one task cannot send while
//! another receives on the same connection; it also turns every frame into
//! a dynamic JSON map and holds two tasks and a 64Ki-event queue per
//! connection, which adds up at 35,000 idle connections. Here a frame is
//! read straight into the few fields the load generator looks at.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chatcore::codec::FrameCodec;
use chatcore::protocol::{NATIVE_PROTO, ResumeToken, msgid};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::FramedRead;

use crate::system;

/// Server frames can be large (a login reply with a sync page).
const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Request ids of setup calls start here, far above the chat sequence
/// numbers that the load phase uses as request ids.
const SETUP_RID_BASE: u64 = 1 << 48;

/// Why a connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("connection closed by the server")]
    Closed,
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("server refused: errno {errno}: {errmsg}")]
    Refused { errno: u32, errmsg: String },
    #[error("reply without `{0}`")]
    Missing(&'static str),
    #[error("unreadable server frame: {0}")]
    Unreadable(#[from] serde_json::Error),
}

/// The fields of any server frame the load generator reads.
#[derive(Debug, Deserialize)]
pub struct Frame {
    pub msgid: u32,
    #[serde(default)]
    pub rid: Option<u64>,
    #[serde(default)]
    pub errno: Option<u32>,
    #[serde(default)]
    pub errmsg: Option<String>,
    /// A user: the new id (REG_ACK), or the sender (chat frames).
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub groupid: Option<u64>,
    /// Inbox position (native pushes).
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub msg: Option<String>,
    /// The resume token of a native login reply.
    #[serde(default)]
    pub resume: Option<ResumeToken>,
}

impl Frame {
    /// The server's refusal carried by this frame, if any.
    fn refusal(&self) -> Option<SetupError> {
        match self.errno {
            Some(errno) if errno != 0 => Some(SetupError::Refused {
                errno,
                errmsg: self.errmsg.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

/// Encodes a request as one `\n`-terminated frame.
pub fn frame_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("a JSON value always serialises");
    bytes.push(b'\n');
    bytes
}

/// Reading half of a native connection.
pub type NativeReader = FramedRead<OwnedReadHalf, FrameCodec>;

/// A native-dialect connection during setup.
#[derive(Debug)]
pub struct NativeConn {
    reader: NativeReader,
    writer: OwnedWriteHalf,
    next_rid: u64,
    timeout: Duration,
    /// The token of the last login, for `resume`.
    resume: Option<ResumeToken>,
}

impl NativeConn {
    pub async fn open(
        addr: &str,
        source: Option<Ipv4Addr>,
        timeout: Duration,
    ) -> Result<NativeConn, SetupError> {
        let stream = tokio::time::timeout(timeout, system::connect(addr, source))
            .await
            .map_err(|_| SetupError::Timeout(timeout))??;
        let (read, writer) = stream.into_split();
        Ok(NativeConn {
            reader: FramedRead::new(read, FrameCodec::new(MAX_SERVER_FRAME)),
            writer,
            next_rid: SETUP_RID_BASE,
            timeout,
            resume: None,
        })
    }

    /// Sends `request` with a fresh `rid` and waits for the frame echoing
    /// it, answering PINGs meanwhile.
    async fn call(&mut self, mut request: Value) -> Result<Frame, SetupError> {
        let timeout = self.timeout;
        let rid = self.next_rid;
        self.next_rid += 1;
        request["rid"] = json!(rid);
        self.writer.write_all(&frame_bytes(&request)).await?;
        let wait = async {
            loop {
                let bytes = match self.reader.next().await {
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => return Err(SetupError::Io(io::Error::other(e))),
                    None => return Err(SetupError::Closed),
                };
                let frame: Frame = serde_json::from_slice(&bytes)?;
                if frame.msgid == msgid::PING {
                    self.writer
                        .write_all(&frame_bytes(&json!({"msgid": msgid::PONG})))
                        .await?;
                    continue;
                }
                if frame.rid == Some(rid) {
                    return match frame.refusal() {
                        Some(e) => Err(e),
                        None => Ok(frame),
                    };
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SetupError::Timeout(timeout))?
    }

    pub async fn register(&mut self, name: &str, password: &str) -> Result<u64, SetupError> {
        let reply = self
            .call(json!({"msgid": msgid::REG, "name": name, "password": password, "proto": NATIVE_PROTO}))
            .await?;
        reply.id.ok_or(SetupError::Missing("id"))
    }

    pub async fn login(&mut self, id: u64, password: &str) -> Result<(), SetupError> {
        let reply = self
            .call(
                json!({"msgid": msgid::LOGIN, "id": id, "password": password, "proto": NATIVE_PROTO}),
            )
            .await?;
        self.resume = reply.resume;
        Ok(())
    }

    /// Logs in with `token` (from an earlier login, on any connection).
    pub async fn resume(&mut self, token: &ResumeToken) -> Result<(), SetupError> {
        let reply = self
            .call(json!({"msgid": msgid::RESUME, "token": token.token}))
            .await?;
        self.resume = reply.resume;
        Ok(())
    }

    /// Sends a one-to-one chat message and waits for its ack.
    pub async fn send_chat(&mut self, to: u64, text: &str) -> Result<(), SetupError> {
        self.call(json!({"msgid": msgid::ONE_CHAT, "toid": to, "msg": text}))
            .await
            .map(drop)
    }

    /// The next frame the server writes, whatever it is.
    pub async fn next_frame(&mut self) -> Result<Frame, SetupError> {
        let read = tokio::time::timeout(self.timeout, self.reader.next())
            .await
            .map_err(|_| SetupError::Timeout(self.timeout))?;
        match read {
            Some(Ok(bytes)) => Ok(serde_json::from_slice(&bytes)?),
            Some(Err(e)) => Err(SetupError::Io(io::Error::other(e))),
            None => Err(SetupError::Closed),
        }
    }

    /// The resume token the last login handed out.
    pub fn resume_token(&self) -> Option<&ResumeToken> {
        self.resume.as_ref()
    }

    pub async fn logout(&mut self) -> Result<(), SetupError> {
        self.call(json!({"msgid": msgid::LOGINOUT})).await.map(drop)
    }

    pub async fn create_group(&mut self, name: &str) -> Result<u64, SetupError> {
        let reply = self
            .call(
                json!({"msgid": msgid::CREATE_GROUP, "groupname": name, "groupdesc": "chat-load"}),
            )
            .await?;
        reply.groupid.ok_or(SetupError::Missing("groupid"))
    }

    pub async fn join_group(&mut self, group: u64) -> Result<(), SetupError> {
        self.call(json!({"msgid": msgid::ADD_GROUP, "groupid": group}))
            .await
            .map(drop)
    }

    pub fn into_parts(self) -> (NativeReader, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}

/// Reads the legacy dialect's frames, which the seed's server writes with
/// no delimiter at all (`chatd` ends them with `\n`): one JSON value after
/// another, NULs and whitespace between them skipped.
#[derive(Debug)]
pub struct LegacyReader {
    read: OwnedReadHalf,
    buf: BytesMut,
}

impl LegacyReader {
    pub fn new(read: OwnedReadHalf) -> LegacyReader {
        LegacyReader {
            read,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// The next frame; `None` when the server closed the connection.
    /// Bytes that are not JSON are skipped up to the next line.
    pub async fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|&b| !(b == 0 || b.is_ascii_whitespace()))
                .unwrap_or(self.buf.len());
            self.buf.advance(start);
            if !self.buf.is_empty() {
                let mut values =
                    serde_json::Deserializer::from_slice(&self.buf).into_iter::<Frame>();
                match values.next() {
                    Some(Ok(frame)) => {
                        let used = values.byte_offset();
                        self.buf.advance(used);
                        return Ok(Some(frame));
                    }
                    Some(Err(e)) if e.is_eof() => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "unreadable legacy frame skipped");
                        let skip = self
                            .buf
                            .iter()
                            .position(|&b| b == b'\n' || b == 0)
                            .map_or(self.buf.len(), |p| p + 1);
                        self.buf.advance(skip);
                        continue;
                    }
                    None => {}
                }
            }
            if self.buf.len() > MAX_SERVER_FRAME {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "legacy frame too long",
                ));
            }
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// A legacy-dialect connection during setup: requests as the seed's
/// client writes them (JSON + NUL, one per write), replies matched by
/// their `msgid` since the seed has no request ids.
#[derive(Debug)]
pub struct LegacyConn {
    reader: LegacyReader,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

/// Encodes a legacy request the way the seed's client does: JSON and a NUL.
pub fn legacy_bytes(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("a JSON value always serialises");
    bytes.push(0);
    bytes
}

impl LegacyConn {
    pub async fn open(
        addr: &str,
        source: Option<Ipv4Addr>,
        timeout: Duration,
    ) -> Result<LegacyConn, SetupError> {
        let stream = tokio::time::timeout(timeout, system::connect(addr, source))
            .await
            .map_err(|_| SetupError::Timeout(timeout))??;
        let (read, writer) = stream.into_split();
        Ok(LegacyConn {
            reader: LegacyReader::new(read),
            writer,
            timeout,
        })
    }

    async fn call(&mut self, request: Value, reply_msgid: u32) -> Result<Frame, SetupError> {
        let timeout = self.timeout;
        self.writer.write_all(&legacy_bytes(&request)).await?;
        let wait = async {
            loop {
                match self.reader.next().await? {
                    None => return Err(SetupError::Closed),
                    Some(frame) if frame.msgid == reply_msgid => {
                        return match frame.refusal() {
                            Some(e) => Err(e),
                            None => Ok(frame),
                        };
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| SetupError::Timeout(timeout))?
    }

    pub async fn register(&mut self, name: &str, password: &str) -> Result<u64, SetupError> {
        let reply = self
            .call(
                json!({"msgid": msgid::REG, "name": name, "password": password}),
                msgid::REG_ACK,
            )
            .await?;
        reply.id.ok_or(SetupError::Missing("id"))
    }

    pub async fn login(&mut self, id: u64, password: &str) -> Result<(), SetupError> {
        self.call(
            json!({"msgid": msgid::LOGIN, "id": id, "password": password}),
            msgid::LOGIN_ACK,
        )
        .await
        .map(drop)
    }

    /// Logs out; the seed sends no reply, so nothing is awaited.
    pub async fn logout(&mut self, id: u64) -> Result<(), SetupError> {
        self.writer
            .write_all(&legacy_bytes(&json!({"msgid": msgid::LOGINOUT, "id": id})))
            .await?;
        Ok(())
    }

    pub fn into_parts(self) -> (LegacyReader, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}

/// A connection in either dialect.
#[derive(Debug)]
pub enum Conn {
    Native(NativeConn),
    Legacy(LegacyConn),
}

impl Conn {
    pub async fn open(
        legacy: bool,
        addr: &str,
        source: Option<Ipv4Addr>,
        timeout: Duration,
    ) -> Result<Conn, SetupError> {
        Ok(if legacy {
            Conn::Legacy(LegacyConn::open(addr, source, timeout).await?)
        } else {
            Conn::Native(NativeConn::open(addr, source, timeout).await?)
        })
    }

    pub async fn register(&mut self, name: &str, password: &str) -> Result<u64, SetupError> {
        match self {
            Conn::Native(c) => c.register(name, password).await,
            Conn::Legacy(c) => c.register(name, password).await,
        }
    }

    pub async fn login(&mut self, id: u64, password: &str) -> Result<(), SetupError> {
        match self {
            Conn::Native(c) => c.login(id, password).await,
            Conn::Legacy(c) => c.login(id, password).await,
        }
    }

    pub async fn logout(&mut self, id: u64) -> Result<(), SetupError> {
        match self {
            Conn::Native(c) => c.logout().await,
            Conn::Legacy(c) => c.logout(id).await,
        }
    }
}
