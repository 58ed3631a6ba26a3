//! The accept loop: TCP listener in, one tracked connection task per
//! client, bounded in number, stopped by a token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{ConnectionConfig, serve};
use crate::service::ChatService;

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub connection: ConnectionConfig,
    /// Connections served at once; further clients wait in the backlog.
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

fn tune(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let params = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive / 4)
        .with_retries(4);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!(error = %e, "could not set keepalive");
    }
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
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
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
        tune(&stream, config.keepalive);
        let service = service.clone();
        let connection = config.connection.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tracing::debug!(%peer, "connected");
            serve(stream, service, connection, shutdown).await;
            tracing::debug!(%peer, "disconnected");
            drop(permit);
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
