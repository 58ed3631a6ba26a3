//! A WebSocket client speaking raw JSON frames to chatd's `/ws`, for tests
//! that check the transport itself (close codes, the Origin rule).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame.
const WAIT: Duration = Duration::from_secs(10);

pub struct Ws {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How an upgrade went: a socket, or the HTTP status it was refused with.
pub async fn try_connect(web: &str, origin: Option<&str>) -> Result<Ws, StatusCode> {
    let mut request = format!("ws://{web}/ws")
        .into_client_request()
        .expect("a valid URL");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Ws { socket }),
        Err(tungstenite::Error::Http(response)) => Err(response.status()),
        Err(e) => panic!("WebSocket to {web} failed: {e}"),
    }
}

pub async fn connect(web: &str) -> Ws {
    try_connect(web, None)
        .await
        .unwrap_or_else(|status| panic!("upgrade refused: {status}"))
}

impl Ws {
    pub async fn send(&mut self, frame: Value) {
        self.send_message(Message::text(frame.to_string())).await;
    }

    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    /// The next message, or `None` when the socket closed.
    pub async fn next(&mut self) -> Option<Message> {
        match tokio::time::timeout(WAIT, self.socket.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("no WebSocket message within {WAIT:?}"),
        }
    }

    /// The next JSON frame (server PINGs answered and skipped).
    pub async fn frame(&mut self) -> Value {
        loop {
            match self.next().await {
                Some(Message::Text(text)) => {
                    let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                    if frame["msgid"] == 27 {
                        self.send(serde_json::json!({"msgid": 28})).await;
                        continue;
                    }
                    return frame;
                }
                Some(Message::Ping(_) | Message::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame with `msgid`, skipping others.
    pub async fn frame_with(&mut self, msgid: u64) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["msgid"] == msgid {
                return frame;
            }
        }
    }

    /// Sends a request and returns the reply with the same `rid`.
    pub async fn call(&mut self, mut request: Value, rid: u64) -> Value {
        request["rid"] = rid.into();
        self.send(request).await;
        loop {
            let frame = self.frame().await;
            if frame["rid"] == rid {
                return frame;
            }
        }
    }

    /// Reads until the server closes; the close code it sent.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Some(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }
}
