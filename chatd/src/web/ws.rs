//! The WebSocket transport: one JSON frame per text message, the native
//! dialect only. The connection's state machine runs over it exactly as
//! over TCP; what differs is framing and how a connection is closed.

use std::io;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use bytes::BytesMut;
use futures::SinkExt;
use tokio::time::timeout;

use chatcore::connection::{FrameError, Transport};
use chatcore::protocol::Dialect;

/// How long a closing connection waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// A browser's (or any WebSocket client's) connection.
#[derive(Debug)]
pub(crate) struct WsTransport {
    socket: WebSocket,
    write_timeout: Duration,
    max_frame: usize,
    /// The close code the connection ends with: normal unless the client
    /// broke a rule of the transport.
    close_code: u16,
}

impl WsTransport {
    pub(crate) fn new(socket: WebSocket, max_frame: usize, write_timeout: Duration) -> WsTransport {
        WsTransport {
            socket,
            write_timeout,
            max_frame,
            close_code: close_code::NORMAL,
        }
    }

    /// Ends the transport with `code` after the frame the connection is
    /// about to answer with.
    fn refuse(&mut self, code: u16, why: &'static str) -> FrameError {
        self.close_code = code;
        FrameError::Io(io::Error::new(io::ErrorKind::InvalidData, why))
    }

    /// Sorts a failed read: the limits of the transport get their close
    /// codes; anything else is the connection failing.
    fn failed(&mut self, error: axum::Error) -> FrameError {
        let error = error.into_inner();
        match error.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => {
                self.close_code = close_code::SIZE;
                FrameError::TooLarge {
                    limit: self.max_frame,
                }
            }
            Some(tungstenite::Error::Utf8(_)) => {
                self.refuse(close_code::INVALID, "text message is not UTF-8")
            }
            _ => FrameError::Io(io::Error::other(error)),
        }
    }

    async fn write_all(&mut self, frames: &[u8]) -> io::Result<()> {
        // The connection hands frames over encoded, each ending in `\n`;
        // each becomes one text message, without it.
        for frame in frames.split(|&b| b == b'\n').filter(|f| !f.is_empty()) {
            let text = std::str::from_utf8(frame)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.socket
                .feed(Message::Text(Utf8Bytes::from(text)))
                .await
                .map_err(io::Error::other)?;
        }
        self.socket.flush().await.map_err(io::Error::other)
    }
}

impl Transport for WsTransport {
    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Native)
    }

    async fn recv(&mut self) -> Option<Result<BytesMut, FrameError>> {
        loop {
            let message = match self.socket.recv().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(self.failed(e))),
            };
            return Some(match message {
                Message::Text(text) => {
                    // tungstenite enforces the limit on whole messages;
                    // this keeps the rule exact whatever its framing.
                    if text.len() > self.max_frame {
                        self.close_code = close_code::SIZE;
                        Err(FrameError::TooLarge {
                            limit: self.max_frame,
                        })
                    } else {
                        Ok(BytesMut::from(text.as_bytes()))
                    }
                }
                Message::Binary(_) => {
                    Err(self.refuse(close_code::UNSUPPORTED, "binary messages are not accepted"))
                }
                // Answered by tungstenite itself.
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => return None,
            });
        }
    }

    async fn send(&mut self, frames: &[u8], _dialect: Dialect) -> io::Result<()> {
        match timeout(self.write_timeout, self.write_all(frames)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client is not reading",
            )),
        }
    }

    async fn close(mut self) {
        let frame = CloseFrame {
            code: self.close_code,
            reason: Utf8Bytes::from_static(""),
        };
        let _ = timeout(CLOSE_LINGER, async {
            self.socket.send(Message::Close(Some(frame))).await?;
            // The client answers with its own close frame; reading it lets
            // the close handshake end before the socket does.
            while let Some(message) = self.socket.recv().await {
                message?;
            }
            Ok::<(), axum::Error>(())
        })
        .await;
    }
}
