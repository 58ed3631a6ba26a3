//! The accept loop: TCP listener in, one tracked connection task per
//! client, bounded in number, stopped by a token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{ConnectionConfig, serve};
use crate::protocol::{Dialect, ErrorCode, ErrorReply, ServerFrame};
use crate::service::ChatService;
use crate::telemetry;

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub connection: ConnectionConfig,
    /// Connections served at once; a client beyond them is told the server
    /// is full (errno 33) and closed, so that it can try another node.
    pub max_connections: usize,
    /// How long shutdown waits for connections to say goodbye.
    pub shutdown_grace: Duration,
    /// TCP keepalive idle time, which finds dead peers that never
    /// heartbeat (the seed's client).
    pub keepalive: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            connection: ConnectionConfig::default(),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(5),
            keepalive: Duration::from_secs(60),
        }
    }
}

/// What every accepted client socket gets, whichever listener took it:
/// frames go out at once (no Nagle delay, which with the client's delayed
/// acks costs tens of milliseconds a reply), and keepalive probes after
/// `keepalive` of silence find peers that died without a word.
pub fn tune(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let params = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive / 4)
        .with_retries(4);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!(error = %e, "could not set keepalive");
    }
}

/// The connections a node serves at once, shared by all its listeners (TCP,
/// WebSocket): `max_connections` counts them together.
#[derive(Debug, Clone)]
pub struct ConnectionSlots(Arc<Semaphore>);

/// One connection's place among the [`ConnectionSlots`]; freed on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

impl ConnectionSlots {
    /// Room for `max` connections (at least one).
    pub fn new(max: usize) -> ConnectionSlots {
        ConnectionSlots(Arc::new(Semaphore::new(max.max(1))))
    }

    /// A slot for a new connection, unless the node is full.
    pub fn try_take(&self) -> Option<ConnectionSlot> {
        Arc::clone(&self.0)
            .try_acquire_owned()
            .ok()
            .map(|permit| ConnectionSlot { _permit: permit })
    }
}

/// The frame a client gets, unasked, from a node that is full: errno 33.
/// An anonymous connection has no dialect yet, and an error without a
/// request reads the same in both.
pub fn server_full_frame() -> Vec<u8> {
    let mut buf = Vec::new();
    ServerFrame::Error(ErrorReply::new(ErrorCode::ServerFull, None, None))
        .encode(Dialect::Legacy, &mut buf);
    buf
}

/// Clients being turned away at once; beyond it a refused socket is closed
/// without waiting for the client to read the reason.
const MAX_REFUSING: usize = 64;

/// How long a refused client gets to read why before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Tells a client that the node is full and closes the connection.
async fn refuse(mut stream: TcpStream, frame: Arc<[u8]>) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&frame).await?;
        stream.shutdown().await?;
        // Closing with unread input would reset the connection, and a
        // reset can discard the reply before the client reads it; so read
        // until the client closes (or the linger ends).
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Serves clients from `listener` until `shutdown` fires, then tells every
/// connection goodbye, ends their sessions and waits for them (at most
/// `shutdown_grace`).
pub async fn run(
    listener: TcpListener,
    service: ChatService,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    let slots = ConnectionSlots::new(config.max_connections);
    run_with_slots(listener, service, config, slots, shutdown).await;
}

/// [`run`], with connection slots shared with other listeners of the node;
/// `config.max_connections` is then the slots' business.
pub async fn run_with_slots(
    listener: TcpListener,
    service: ChatService,
    config: ServerConfig,
    slots: ConnectionSlots,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let full_frame: Arc<[u8]> = server_full_frame().into();
    loop {
        let accepted: std::io::Result<(TcpStream, SocketAddr)> = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Accept first and refuse with a reason: a client left in the
        // backlog cannot tell a full node from a dead one.
        let Some(slot) = slots.try_take() else {
            tracing::debug!(%peer, "server full, refusing");
            telemetry::error_sent(ErrorCode::ServerFull);
            match Arc::clone(&refusing).try_acquire_owned() {
                Ok(refusal) => {
                    let frame = Arc::clone(&full_frame);
                    tracker.spawn(async move {
                        refuse(stream, frame).await;
                        drop(refusal);
                    });
                }
                // A flood of refusals: best effort without a task.
                Err(_) => {
                    let _ = stream.try_write(&full_frame);
                }
            }
            continue;
        };
        tune(&stream, config.keepalive);
        let service = service.clone();
        let connection = config.connection.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tracing::debug!(%peer, "connected");
            serve(stream, Some(peer.ip()), service, connection, shutdown).await;
            tracing::debug!(%peer, "disconnected");
            drop(slot);
        });
    }
    tracker.close();
    if tokio::time::timeout(config.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "connections still open after the shutdown grace period"
        );
    }
}
