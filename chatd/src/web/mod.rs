//! The web listener: the browser client at `/` and the WebSocket at `/ws`.
//! A WebSocket connection runs the same connection state machine and
//! service as a TCP one, counted in the same `--max-connections`.

mod assets;
mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use chatcore::ChatService;
use chatcore::connection::{ConnectionConfig, serve_transport};
use chatcore::server::{self, ConnectionSlots, server_full_frame};

use ws::WsTransport;

/// Bytes a WebSocket reads at a time, its read buffer's first size.
/// tungstenite's default, 128 KiB, would be nearly all of an idle
/// connection's memory; most frames are a few hundred bytes, and the
/// buffer grows for a larger message.
const READ_BUFFER: usize = 1024;

/// What the web listener needs to know.
#[derive(Debug, Clone)]
pub(crate) struct WebConfig {
    pub(crate) connection: ConnectionConfig,
    /// Origins besides the page's own whose pages may open a WebSocket.
    pub(crate) allowed_origins: Vec<String>,
    /// How long shutdown waits for WebSocket clients to be told goodbye.
    pub(crate) shutdown_grace: Duration,
    /// TCP keepalive idle time, as on the TCP listener.
    pub(crate) keepalive: Duration,
}

#[derive(Debug)]
struct Web {
    service: ChatService,
    config: WebConfig,
    slots: ConnectionSlots,
    connections: TaskTracker,
    shutdown: CancellationToken,
}

/// Serves the web client and WebSockets on `listener` until `shutdown`,
/// then waits (at most the grace period) for the WebSockets to close.
pub(crate) async fn serve(
    listener: TcpListener,
    service: ChatService,
    config: WebConfig,
    slots: ConnectionSlots,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let grace = config.shutdown_grace;
    let keepalive = config.keepalive;
    let web = Arc::new(Web {
        service,
        config,
        slots,
        connections: TaskTracker::new(),
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .route("/ws", get(upgrade))
        .fallback(get(assets::serve))
        .with_state(Arc::clone(&web));
    let listener = listener.tap_io(move |stream| server::tune(stream, keepalive));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await?;
    web.connections.close();
    if tokio::time::timeout(grace, web.connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = web.connections.len(),
            "WebSockets still open after the shutdown grace period"
        );
    }
    Ok(())
}

/// `GET /ws`: checks the page's origin, then upgrades.
async fn upgrade(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &web.config.allowed_origins) {
        tracing::debug!(%peer, origin = ?headers.get(header::ORIGIN), "refused a WebSocket from another site");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    let client = client_address(peer.ip(), &headers);
    let max_frame = web.config.connection.max_frame;
    upgrade
        .read_buffer_size(READ_BUFFER)
        // Frames are flushed as the connection writes them.
        .write_buffer_size(0)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let web = Arc::clone(&web);
            web.connections.clone().track_future(async move {
                let Some(slot) = web.slots.try_take() else {
                    tracing::debug!(%client, "server full, refusing a WebSocket");
                    chatcore::telemetry::error_sent(chatcore::protocol::ErrorCode::ServerFull);
                    refuse(socket).await;
                    return;
                };
                tracing::debug!(%client, "WebSocket connected");
                let transport =
                    WsTransport::new(socket, max_frame, web.config.connection.write_timeout);
                serve_transport(
                    transport,
                    Some(client),
                    web.service.clone(),
                    web.config.connection.clone(),
                    web.shutdown.clone(),
                )
                .await;
                tracing::debug!(%client, "WebSocket disconnected");
                drop(slot);
            })
        })
}

/// Tells a WebSocket client that the node is full (errno 33) and closes
/// with "try again later".
async fn refuse(mut socket: WebSocket) {
    let frame = server_full_frame();
    let text = String::from_utf8_lossy(frame.strip_suffix(b"\n").unwrap_or(&frame)).into_owned();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        socket.send(Message::Text(text.into())).await?;
        socket
            .send(Message::Close(Some(CloseFrame {
                code: close_code::AGAIN,
                reason: Utf8Bytes::from_static("server is full"),
            })))
            .await
    })
    .await;
}

/// Whether a page of the request's `Origin` may open a WebSocket here: its
/// own origin (the `Host` it asked for), one of `allowed`, or no `Origin`
/// at all (not a browser, so no page whose user could be impersonated).
/// Anything else is cross-site WebSocket hijacking: a page elsewhere using
/// the visitor's browser.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The client's address: the peer's, or, when the peer is a proxy we
/// trust (loopback: nginx on the same host), the last address of
/// `X-Forwarded-For`, the one that proxy saw. A header from anyone else
/// is ignored: clients could write anything there.
fn client_address(peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !peer.is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origins() {
        let none: &[String] = &[];
        let listed = ["https://chat.example.org".to_owned()];
        // Not a browser.
        assert!(origin_allowed(&headers(&[("host", "h:6080")]), none));
        // The page's own origin, either scheme.
        let own = headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "http://127.0.0.1:6080"),
        ]);
        assert!(origin_allowed(&own, none));
        let own_tls = headers(&[
            ("host", "Chat.Example.org"),
            ("origin", "https://chat.example.org"),
        ]);
        assert!(origin_allowed(&own_tls, none));
        // Another site, unless listed.
        let other = headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "https://chat.example.org"),
        ]);
        assert!(!origin_allowed(&other, none));
        assert!(origin_allowed(&other, &listed));
        let evil = headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!origin_allowed(&evil, &listed));
        // Same host, another port: another origin.
        let port = headers(&[
            ("host", "127.0.0.1:6080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(!origin_allowed(&port, none));
        assert!(!origin_allowed(
            &headers(&[("host", "h"), ("origin", "null")]),
            none
        ));
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        let forwarded = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        let loopback: IpAddr = "127.0.0.1".parse().expect("an address");
        let remote: IpAddr = "192.0.2.1".parse().expect("an address");
        assert_eq!(
            client_address(loopback, &forwarded),
            "198.51.100.7".parse::<IpAddr>().expect("an address")
        );
        assert_eq!(client_address(remote, &forwarded), remote);
        assert_eq!(client_address(loopback, &headers(&[])), loopback);
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(client_address(loopback, &garbage), loopback);
    }
}
