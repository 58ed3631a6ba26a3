//! The scenarios: each sets up its clients, drives them for the run's
//! duration and fills in its part of the [`Summary`].

mod backlog;
mod chat;
mod idle;
mod login;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatcore::client::{Client, ClientError};
use chatcore::model::UserId;
use chatcore::protocol::ResumeToken;
use futures::StreamExt;
use futures::stream;
use tokio::net::TcpStream;

use crate::cpu::CpuMeter;
use crate::legacy::LegacyConn;
use crate::metrics::Counters;
use crate::options::{Options, Scenario, Transport};
use crate::progress::Progress;
use crate::report::{Summary, load_average};
use crate::system;

/// A client of the run, in the dialect the run speaks.
#[derive(Debug)]
enum Conn {
    Native {
        client: Client,
        /// The resume token of the last login.
        resume: Option<ResumeToken>,
    },
    Legacy(LegacyConn),
}

impl Conn {
    /// Connects in the native dialect, or the legacy one, within `timeout`;
    /// each request then waits `timeout` for its reply.
    async fn open(
        legacy: bool,
        transport: Transport,
        addr: &str,
        source: Option<Ipv4Addr>,
        timeout: Duration,
    ) -> Result<Conn, ClientError> {
        if legacy {
            let stream = connect(addr, source, timeout).await?;
            return Ok(Conn::Legacy(LegacyConn::new(stream, timeout)));
        }
        Ok(Conn::Native {
            client: open_native(transport, addr, source, timeout).await?,
            resume: None,
        })
    }

    async fn register(&mut self, name: &str, password: &str) -> Result<UserId, ClientError> {
        match self {
            Conn::Native { client, .. } => client.register(name, password).await,
            Conn::Legacy(conn) => conn.register(name, password).await,
        }
    }

    async fn login(&mut self, id: UserId, password: &str) -> Result<(), ClientError> {
        match self {
            Conn::Native { client, resume } => {
                *resume = client.login(id, password).await?.resume;
                Ok(())
            }
            Conn::Legacy(conn) => conn.login(id, password).await,
        }
    }

    async fn logout(&mut self, id: UserId) -> Result<(), ClientError> {
        match self {
            Conn::Native { client, .. } => client.logout().await,
            Conn::Legacy(conn) => conn.logout(id).await,
        }
    }
}

/// A TCP connection to `addr` from `source`, within `timeout`.
async fn connect(
    addr: &str,
    source: Option<Ipv4Addr>,
    timeout: Duration,
) -> Result<TcpStream, ClientError> {
    tokio::time::timeout(timeout, system::connect(addr, source))
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
        .map_err(ClientError::Io)
}

/// A native client connected to `addr` over `transport`, whose requests
/// wait `timeout` for their reply.
async fn open_native(
    transport: Transport,
    addr: &str,
    source: Option<Ipv4Addr>,
    timeout: Duration,
) -> Result<Client, ClientError> {
    let stream = connect(addr, source, timeout).await?;
    let mut client = match transport {
        Transport::Tcp => Client::new(stream),
        Transport::Ws => {
            let pipe = tokio::time::timeout(timeout, crate::ws::upgrade(addr, stream))
                .await
                .map_err(|_| ClientError::Timeout(timeout))?
                .map_err(ClientError::Io)?;
            Client::new(pipe)
        }
    };
    client.set_timeout(timeout);
    Ok(client)
}

/// What every part of a run shares.
#[derive(Debug)]
struct Ctx {
    opts: Options,
    prefix: String,
    counters: Arc<Counters>,
    progress: Progress,
    first_error: Mutex<Option<String>>,
    /// CPU of the measured processes over the load phase.
    cpu: CpuMeter,
}

impl Ctx {
    fn setup_failed(&self, index: usize, error: &ClientError) {
        Counters::add(&self.counters.setup_failed, 1);
        tracing::debug!(index, %error, "setup failed");
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("client {index}: {error}"));
    }

    /// Opens client `index`'s connection, registers its user and logs in.
    async fn open_and_log_in(&self, index: usize) -> Result<(Conn, UserId), ClientError> {
        let opts = &self.opts;
        let mut conn = Conn::open(
            opts.legacy,
            opts.transport,
            opts.addr_for(index),
            opts.source_for(index),
            opts.timeout(),
        )
        .await?;
        Counters::add(&self.counters.connected, 1);
        let id = conn
            .register(&format!("{}{index}", self.prefix), &opts.password)
            .await?;
        conn.login(id, &opts.password).await?;
        Counters::add(&self.counters.logged_in, 1);
        Ok((conn, id))
    }

    /// Sets up every client, `--connect-concurrency` at a time, started in
    /// index order (so that a round-robin balancer alternates consecutive
    /// clients between its nodes); results in index order.
    /// Opens and logs in every client; when any fails, the setup figures
    /// go into `summary` and the run ends with the first error.
    async fn set_up_all(
        &self,
        summary: &mut Summary,
        started: Instant,
    ) -> Result<Vec<(Conn, UserId)>, RunError> {
        let results: Vec<Result<(Conn, UserId), ClientError>> = stream::iter(0..self.opts.clients)
            .map(|index| async move {
                let result = self.open_and_log_in(index).await;
                if let Err(e) = &result {
                    self.setup_failed(index, e);
                }
                result
            })
            .buffered(self.opts.connect_concurrency)
            .collect()
            .await;
        match results.into_iter().collect() {
            Ok(clients) => Ok(clients),
            Err(_) => {
                self.fill_setup(summary, started);
                Err(RunError::Setup(
                    summary.first_setup_error.clone().unwrap_or_default(),
                ))
            }
        }
    }

    /// Sets up every client and records the setup in `summary`, for the
    /// scenarios whose setup is nothing more.
    async fn set_up(&self, summary: &mut Summary) -> Result<Vec<(Conn, UserId)>, RunError> {
        let started = Instant::now();
        self.progress.phase("setup");
        let clients = self.set_up_all(summary, started).await?;
        self.fill_setup(summary, started);
        Ok(clients)
    }

    /// Starts the load phase's CPU accounting, after the idle baseline
    /// when one was asked for. Call once set-up is over.
    async fn begin_load(&self) {
        if self.opts.idle_baseline {
            self.progress.phase("idle baseline");
        }
        self.cpu
            .idle_baseline(self.opts.idle_baseline, self.opts.duration())
            .await;
        self.cpu.start_load();
    }

    fn fill_setup(&self, summary: &mut Summary, started: Instant) {
        let get = Counters::get;
        summary.connected = get(&self.counters.connected);
        summary.logged_in = get(&self.counters.logged_in);
        summary.setup_failed = get(&self.counters.setup_failed);
        summary.first_setup_error = self
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        summary.setup_s = started.elapsed().as_secs_f64();
    }
}

/// Why a run could not produce a summary.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("setting up the clients failed: {0}")]
    Setup(String),
}

/// Runs the scenario `opts` describes and returns what it measured.
pub async fn run(opts: Options) -> Result<Summary, RunError> {
    opts.validate().map_err(RunError::Options)?;
    let cpu = CpuMeter::new(&opts).map_err(RunError::Options)?;
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(Arc::clone(&counters), opts.no_progress);
    let ctx = Ctx {
        prefix: opts.prefix(),
        opts,
        counters,
        progress,
        first_error: Mutex::new(None),
        cpu,
    };
    let mut summary = Summary {
        scenario: Some(ctx.opts.scenario),
        legacy: ctx.opts.legacy,
        transport: Some(ctx.opts.transport),
        clients: ctx.opts.clients,
        addrs: ctx.opts.addrs.clone(),
        load_average_start: load_average(),
        loss_basis: if ctx.opts.legacy { "sent" } else { "acked" },
        ..Summary::default()
    };
    tracing::info!(prefix = %ctx.prefix, "users of this run");
    let result = match ctx.opts.scenario {
        Scenario::OneToOne | Scenario::Group => chat::run(&ctx, &mut summary).await,
        Scenario::Idle => idle::run(&ctx, &mut summary).await,
        Scenario::Login | Scenario::Resume => login::run(&ctx, &mut summary).await,
        Scenario::Backlog => backlog::run(&ctx, &mut summary).await,
    };
    ctx.progress.finish();
    ctx.cpu.report(&mut summary);
    summary.load_average_end = load_average();
    result.map(|()| summary)
}
