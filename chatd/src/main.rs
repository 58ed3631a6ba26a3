//! `chatd`: the chat server. Reads its configuration from flags and the
//! environment, opens the backends, serves TCP until SIGINT or SIGTERM,
//! then says goodbye to every client and releases only its own sessions.

mod config;

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use chatcore::node::{self, Backends};
use chatcore::server;
use chatcore::service::Passwords;
use chatcore::store::{SqlStore, Store};

use config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log).context("invalid --log filter")?,
        )
        .init();

    if config.redis_url.is_some() {
        anyhow::bail!(
            "--redis-url: the Redis bus and presence are not built yet; run without it for a single node"
        );
    }

    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(config.store_options())
            .await
            .with_context(|| format!("opening the database {}", config.redacted_database_url()))?,
    );
    let passwords =
        Passwords::new(config.hash_params(), config.hash_threads).map_err(anyhow::Error::msg)?;
    let shutdown = CancellationToken::new();
    let service = node::start(
        Backends::local(store),
        passwords,
        config.service_config(),
        shutdown.clone(),
    );

    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        database = %config.redacted_database_url(),
        "chatd ready"
    );

    tokio::spawn(stop_on_signal(shutdown.clone()));
    server::run(listener, service, config.server_config(), shutdown).await;
    tracing::info!("chatd stopped");
    Ok(())
}

/// Cancels `shutdown` at the first SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        _ => {
            tracing::error!("cannot listen for signals; stop chatd with SIGKILL");
            return;
        }
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
