//! `chatd`: the chat server. Reads its configuration from flags, the
//! environment and an optional file, checks it and binds its addresses
//! before it opens the backends, serves TCP until SIGINT or SIGTERM, then
//! says goodbye to every client and releases only its own sessions.

mod admin;
mod config;
mod import_seed;
mod listen;
mod nofile;
mod resume_key;
mod web;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use chatcore::bus::{MeteredBus, RedisBus};
use chatcore::limit::RedisCounters;
use chatcore::node::{self, Backends};
use chatcore::presence::{Presence, RedisPresence, RedisPresenceConfig};
use chatcore::redis_target::RedisTarget;
use chatcore::retention::{self, RetentionConfig};
use chatcore::server::{self, ConnectionSlots};
use chatcore::service::Passwords;
use chatcore::store::{MeteredStore, SqlStore, Store};

use admin::{Admin, Probes};
use config::{Config, LogFormat};
use listen::Bound;

fn main() -> ExitCode {
    let loaded = match Config::load_from(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(e) => match e.downcast_ref::<clap::Error>() {
            // Usage errors, --help and --version, as clap prints them.
            Some(usage) => usage.exit(),
            None => return failed(&e),
        },
    };
    if loaded.config.check_config {
        print!("{}", loaded.report());
        return check(&loaded.config);
    }
    let config = loaded.config;
    if let Some(config::Command::ImportSeed(args)) = &config.command {
        // Not a server: no listeners, no open-files needs of a node.
        let imported = init_logging(&config).and_then(|()| {
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(import_seed::run(&config, args))
        });
        return match imported {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(&e),
        };
    }
    let started = init_logging(&config)
        .and_then(|()| prepare(&config))
        .and_then(|listeners| {
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(run(config, listeners))
        });
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e),
    }
}

/// Prints `error` with its causes, one a line, and the exit code of a
/// failed start (with no backtrace: it is the operator's mistake or the
/// environment's, not a bug).
fn failed(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}

/// `--check-config`, after the report: the problems, if any, on stderr.
fn check(config: &Config) -> ExitCode {
    let mut problems = config.problems();
    let needed = config.files_needed();
    let (soft, hard) = nofile::current();
    let shown = |limit: Option<u64>| limit.map_or("unlimited".to_owned(), |n| n.to_string());
    println!(
        "# open files: up to {needed} needed; limit now {} (soft), {} (hard)",
        shown(soft),
        shown(hard)
    );
    if let Some(hard) = hard.filter(|&hard| hard < needed) {
        problems.push(nofile::too_low(needed, hard, config.max_connections));
    }
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    ExitCode::FAILURE
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log).context("invalid --log filter")?;
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // Fields beside the message, not nested: what log shippers index.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    Ok(())
}

/// The client listeners, TCP and web (when on).
#[derive(Debug)]
struct Listeners {
    tcp: Bound,
    web: Option<Bound>,
}

/// Everything that can be checked before a backend is touched: the
/// configuration, the open-files limit, and the addresses to listen on.
fn prepare(config: &Config) -> anyhow::Result<Listeners> {
    let problems = config.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid configuration: {}", problems.join("; "));
    }
    match nofile::ensure(config.files_needed(), config.max_connections)? {
        nofile::Outcome::Raised { from, to } => {
            tracing::info!(
                from,
                to,
                "raised the open-files soft limit for --max-connections"
            );
        }
        nofile::Outcome::Enough { .. } => {}
    }
    Ok(Listeners {
        tcp: Bound::new(&config.listen, "--listen")?,
        web: config
            .web_addr()
            .map(|addr| Bound::new(addr, "--web-addr"))
            .transpose()?,
    })
}

async fn run(config: Config, listeners: Listeners) -> anyhow::Result<()> {
    // Read once, before a backend is touched: a bad token file stops chatd.
    let admin_token = config
        .admin_token_file
        .as_deref()
        .map(admin::AdminToken::read)
        .transpose()?;
    // Before anything is measured.
    let admin = config
        .admin_addr
        .as_deref()
        .map(Admin::install)
        .transpose()?;

    let sql = Arc::new(
        SqlStore::connect(config.store_options())
            .await
            .with_context(|| format!("opening the database {}", config.redacted_database_url()))?,
    );
    // After the database, so that a database that cannot be opened leaves
    // no key file behind.
    let shared_key = match (&config.resume_key, config.redis_target()) {
        (None, Some(target)) => Some(resume_key::agree(&target, &config.redis_prefix).await?),
        (None, None) => resume_key::beside_sqlite(&config.database_url)?,
        (Some(_), _) => None,
    };
    let service_config = config
        .service_config(shared_key)
        .context("invalid --resume-key (CHAT_RESUME_KEY)")?;
    let store: Arc<dyn Store> = Arc::clone(&sql) as Arc<dyn Store>;
    let hash_params = config.hash_params();
    if hash_params.below_owasp_minimum() {
        tracing::warn!(
            memory_kib = hash_params.memory_kib,
            iterations = hash_params.iterations,
            "password hashing is weaker than OWASP's minimum for argon2id (19456 KiB x 2 \
             passes, or as much memory times passes); raise --argon2-memory-kib or \
             --argon2-iterations"
        );
    }
    let passwords = Passwords::new(hash_params, config.hash_threads)
        .context("invalid --argon2-memory-kib or --argon2-iterations")?;
    let shutdown = CancellationToken::new();
    // The node's background tasks (bus subscriber, lease renewal, hub).
    let tasks = TaskTracker::new();
    let store = MeteredStore::wrap(store);
    let (mut backends, presence) = match config.redis_target() {
        Some(target) => cluster_backends(&config, target, store, &tasks, &shutdown).await?,
        None => (Backends::local(store), None),
    };
    backends.bus = MeteredBus::wrap(backends.bus);
    let probes = Probes {
        store: Arc::clone(&backends.store),
        bus: Arc::clone(&backends.bus),
    };
    let service = node::start(
        backends,
        passwords,
        service_config,
        &tasks,
        shutdown.clone(),
    );

    let listener = listeners
        .tcp
        .listen()
        .with_context(|| format!("listening on {}", config.listen))?;
    let web_listener = match listeners.web {
        Some(web) => Some(web.listen().context("listening on --web-addr")?),
        None => None,
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        database = %config.redacted_database_url(),
        "chatd ready"
    );
    if let Some(web) = &web_listener {
        tracing::info!(
            "web client: open http://{}/ in a browser",
            web.local_addr()?
        );
    }

    if let Some(admin) = admin {
        let api = admin_token.map(|token| admin::Api {
            service: service.clone(),
            token,
        });
        let with_api = api.is_some();
        let admin_addr = admin.serve(probes, api, shutdown.clone()).await?;
        if with_api {
            tracing::info!(%admin_addr, "serving /health, /metrics and the /admin/ API");
        } else {
            tracing::info!(%admin_addr, "serving /health and /metrics");
        }
    }
    if config.retention_days > 0 {
        let retention = RetentionConfig::days(config.retention_days);
        tracing::info!(
            days = config.retention_days,
            "retention: acknowledged messages older than this are deleted hourly"
        );
        tasks.spawn(retention::run(
            Arc::clone(service.store()),
            retention,
            shutdown.clone(),
        ));
    }

    tokio::spawn(stop_on_signal(shutdown.clone()));
    let server_config = config.server_config();
    let grace = server_config.shutdown_grace;
    // The background tasks stop with the token and get the same grace
    // period as the connections, counted from the same moment.
    let stopped = async {
        shutdown.cancelled().await;
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                "background tasks still running after the shutdown grace period"
            );
        }
    };
    // TCP and WebSocket clients count against one `--max-connections`.
    let slots = ConnectionSlots::new(server_config.max_connections);
    let web = async {
        if let Some(web_listener) = web_listener {
            let served = web::serve(
                web_listener,
                service.clone(),
                config.web_config(),
                slots.clone(),
                shutdown.clone(),
            )
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the web listener failed");
            }
        }
    };
    tokio::join!(
        server::run_with_slots(
            listener,
            service.clone(),
            server_config,
            slots.clone(),
            shutdown.clone()
        ),
        web,
        stopped
    );
    if let Some(presence) = presence {
        // Connections released their own sessions; this takes the lease
        // away so that nothing of this node lingers until the TTL.
        if let Err(e) = presence.release_node().await {
            tracing::warn!(error = %e, "could not release this node's presence");
        }
    }
    // Last, when no connection can send any more: the batch writers store
    // what is queued, and SQLite checkpoints its log into the database file.
    if let Err(e) = sql.close().await {
        tracing::warn!(error = %e, "could not close the database cleanly");
    }
    tracing::info!("chatd stopped");
    Ok(())
}

/// Backends of a cluster node: the shared database, Redis (one or a
/// Cluster) for the bus and presence.
async fn cluster_backends(
    config: &Config,
    target: RedisTarget,
    store: Arc<dyn Store>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Backends, Option<RedisPresence>)> {
    let node_id = config.node_id();
    let (bus, bus_events) = RedisBus::connect_to(
        &target,
        &config.redis_prefix,
        &node_id,
        node::BUS_QUEUE,
        tasks,
        shutdown.clone(),
    )
    .await
    .context("connecting the Redis bus")?;
    let (presence, lost) = RedisPresence::start(
        RedisPresenceConfig {
            target: target.clone(),
            prefix: config.redis_prefix.clone(),
            node_id: node_id.clone(),
            lease_ttl: Duration::from_secs(config.lease_ttl_secs.max(1)),
        },
        tasks,
        shutdown.clone(),
    )
    .await
    .context("starting Redis presence")?;
    // The guards count in Redis, so that n nodes give an attacker no
    // more attempts than one.
    let counters = RedisCounters::connect(&target, &config.redis_prefix)
        .await
        .context("connecting the login guard's counters")?;
    tracing::info!(node = %node_id, redis_cluster = target.is_cluster(), "joined the cluster");
    let backends = Backends {
        store,
        presence: Arc::new(presence.clone()),
        bus: Arc::new(bus),
        bus_events,
        lost_sessions: Some(lost),
        counters: Arc::new(counters),
    };
    Ok((backends, Some(presence)))
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
