//! WebSocket connections for `chat-load --transport ws`: the handshake on
//! a connected TCP stream, then a pump between the socket's text messages
//! and a local byte pipe that a [`chatcore::client::Client`] reads and
//! writes as it would TCP (a frame per line). The pump costs the load
//! generator a task per connection; the server's side, which is what is
//! measured, is the real transport.

use std::io;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes buffered in the pipe each way.
const PIPE: usize = 64 * 1024;

/// Upgrades `stream` (connected to `addr`) to a WebSocket at `/ws` and
/// returns the client's end of the pipe.
pub async fn upgrade(addr: &str, stream: TcpStream) -> io::Result<DuplexStream> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (socket, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{addr}/ws"),
        stream,
        Some(config),
    )
    .await
    .map_err(io::Error::other)?;
    let (client_end, pump_end) = tokio::io::duplex(PIPE);
    tokio::spawn(pump(socket, pump_end));
    Ok(client_end)
}

async fn pump(
    socket: tokio_tungstenite::WebSocketStream<TcpStream>,
    pipe: DuplexStream,
) -> io::Result<()> {
    let (mut ws_out, mut ws_in) = socket.split();
    let (pipe_in, mut pipe_out) = tokio::io::split(pipe);
    let mut lines = BufReader::new(pipe_in);
    let mut line = String::new();
    loop {
        tokio::select! {
            message = ws_in.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    pipe_out.write_all(text.as_bytes()).await?;
                    pipe_out.write_all(b"\n").await?;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            read = lines.read_line(&mut line) => {
                if read? == 0 {
                    break;
                }
                let frame = line.trim_end_matches(['\n', '\0']);
                if !frame.is_empty() {
                    ws_out
                        .send(Message::text(frame.to_owned()))
                        .await
                        .map_err(io::Error::other)?;
                }
                line.clear();
            }
        }
    }
    let _ = ws_out.close().await;
    pipe_out.shutdown().await
}
