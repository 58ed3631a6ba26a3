//! A connection in the seed's legacy dialect, as the seed's own console
//! client speaks it: `chat-load --legacy` emulates that client, which
//! `chatcore::client::Client` (native only: request ids, acks) cannot be.
//! Requests are `protocol`'s own frames, written as the seed's client
//! writes them (JSON and a NUL, one per write, without `proto`); replies
//! are read as the seed's server writes them (no delimiter at all).

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chatcore::client::ClientError;
use chatcore::model::UserId;
use chatcore::protocol::{
    AnonymousRequest, ClientFrame, Identity, Login, Register, Request, SessionRequest, msgid,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Server frames can be large (a login reply with its offline messages).
const MAX_SERVER_FRAME: usize = 16 * 1024 * 1024;

/// Read buffer a connection starts with; it grows for larger frames.
const READ_BUFFER: usize = 4096;

/// The fields of the seed's replies that the load generator reads.
#[derive(Debug, Deserialize)]
pub struct LegacyReply {
    pub msgid: u32,
    #[serde(default)]
    pub errno: Option<u32>,
    #[serde(default)]
    pub errmsg: Option<String>,
    /// The new user's id (`REG_ACK`), or a chat message's sender.
    #[serde(default)]
    pub id: Option<UserId>,
    #[serde(default)]
    pub msg: Option<String>,
}

impl LegacyReply {
    /// The refusal this reply carries, if any (the seed answers a failed
    /// login or register with a non-zero `errno` in its usual reply).
    fn refusal(&self) -> Option<ClientError> {
        match self.errno {
            Some(errno) if errno != 0 => Some(ClientError::Server {
                errno,
                errmsg: self.errmsg.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }

    /// Whether this is a chat message (one-to-one or group).
    pub fn is_chat(&self) -> bool {
        self.msgid == msgid::ONE_CHAT || self.msgid == msgid::GROUP_CHAT
    }
}

/// Encodes `request` the way the seed's client writes it: the JSON of
/// the frame (no request id) and a NUL instead of the native `\n`.
pub fn request_bytes(request: Request) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    ClientFrame { rid: None, request }.encode(&mut bytes);
    if let Some(end) = bytes.last_mut() {
        *end = 0;
    }
    bytes
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
    fn new(read: OwnedReadHalf) -> LegacyReader {
        LegacyReader {
            read,
            buf: BytesMut::with_capacity(READ_BUFFER),
        }
    }

    /// The next frame; `None` when the server closed the connection.
    /// Bytes that are not JSON are skipped up to the next line.
    pub async fn next(&mut self) -> io::Result<Option<LegacyReply>> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|&b| !(b == 0 || b.is_ascii_whitespace()))
                .unwrap_or(self.buf.len());
            self.buf.advance(start);
            if !self.buf.is_empty() {
                let mut values =
                    serde_json::Deserializer::from_slice(&self.buf).into_iter::<LegacyReply>();
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
/// client writes them, replies matched by their `msgid` since the seed has
/// no request ids.
#[derive(Debug)]
pub struct LegacyConn {
    reader: LegacyReader,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

impl LegacyConn {
    /// A connection over `stream`; each call waits `timeout` for its reply.
    pub fn new(stream: TcpStream, timeout: Duration) -> LegacyConn {
        let (read, writer) = stream.into_split();
        LegacyConn {
            reader: LegacyReader::new(read),
            writer,
            timeout,
        }
    }

    /// Sends `request` and waits for the first reply of kind `reply_msgid`.
    async fn call(
        &mut self,
        request: Request,
        reply_msgid: u32,
    ) -> Result<LegacyReply, ClientError> {
        let timeout = self.timeout;
        self.writer.write_all(&request_bytes(request)).await?;
        let wait = async {
            loop {
                match self.reader.next().await? {
                    None => return Err(ClientError::Closed),
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
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    pub async fn register(&mut self, name: &str, password: &str) -> Result<UserId, ClientError> {
        let request = Request::Anonymous(AnonymousRequest::Register(Register {
            name: name.to_owned(),
            password: password.to_owned(),
            proto: None,
        }));
        self.call(request, msgid::REG_ACK)
            .await?
            .id
            .ok_or_else(|| ClientError::Protocol("REG_ACK without `id`".into()))
    }

    pub async fn login(&mut self, id: UserId, password: &str) -> Result<(), ClientError> {
        let request = Request::Anonymous(AnonymousRequest::Login(Login {
            id,
            password: password.to_owned(),
            proto: None,
        }));
        self.call(request, msgid::LOGIN_ACK).await.map(drop)
    }

    /// Logs out; the seed sends no reply, so nothing is awaited.
    pub async fn logout(&mut self, id: UserId) -> Result<(), ClientError> {
        let request = Request::Session(SessionRequest::Logout(Identity { id: Some(id) }));
        self.writer.write_all(&request_bytes(request)).await?;
        Ok(())
    }

    pub fn into_parts(self) -> (LegacyReader, OwnedWriteHalf) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use chatcore::model::Target;
    use chatcore::protocol::Chat;

    use super::*;

    #[test]
    fn requests_are_the_seed_clients_json_and_a_nul() {
        let login = request_bytes(Request::Anonymous(AnonymousRequest::Login(Login {
            id: UserId(7),
            password: "pw".into(),
            proto: None,
        })));
        assert_eq!(login, b"{\"msgid\":1,\"id\":7,\"password\":\"pw\"}\0");

        let chat = request_bytes(Request::Session(SessionRequest::Chat(Chat {
            id: Some(UserId(7)),
            target: Target::User(UserId(8)),
            msg: "hi".into(),
            cmid: None,
        })));
        assert_eq!(chat, b"{\"msgid\":5,\"id\":7,\"toid\":8,\"msg\":\"hi\"}\0");
    }
}
