//! `chatcli`: the terminal client of `chatd`. A line editor on a terminal,
//! a line-by-line script runner otherwise.
//!
//! # Layout
//!
//! - `main.rs`: flags, logging, choosing the front end, wiring.
//! - [`app`]: the flow both front ends share: menu, login, commands.
//! - [`repl`]: the terminal front end (rustyline); [`script`]: stdin.
//! - [`command`]: a typed line parsed into a [`command::Command`].
//! - [`session`]: the connection: login, reconnect with backoff, the
//!   outbox of unacked messages, acks and de-duplication by `seq`; its
//!   roster knows the names of friends, groups and senders.
//! - [`output`]: what the session reports; [`render`]: that as text.
//! - [`complete`]: tab completion from the session's view.

mod app;
mod command;
mod complete;
mod output;
mod render;
mod repl;
mod script;
mod session;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chatcore::model::UserId;
use clap::{Parser, ValueEnum};
use rustyline::ExternalPrinter as _;
use tokio::sync::{mpsc, watch};

use app::{App, Start};
use render::Style;
use session::{Settings, Tls, View};

/// Terminal client of the chatd chat server.
///
/// On a terminal: a line editor with tab completion and a history file;
/// messages appear as they arrive without breaking the line being typed;
/// after a dropped connection it reconnects and logs in again by itself.
/// Without --login or --register it offers the seed client's menu.
///
/// When stdin is not a terminal it runs one command per input line, waits
/// for each reply, prints replies and incoming messages on stdout (errors
/// and notices on stderr) and exits at the end of input: with status 0 if
/// every command worked, 1 otherwise.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Environment:\n  CHAT_PASSWORD  the password (--password-file wins); without either chatcli asks, without echo\n  NO_COLOR       set and not empty: no colours (as does output that is not a terminal)\n  RUST_LOG       log filter when --log is not given\n\nType help (or /help) once logged in for the commands."
)]
struct Args {
    /// Address of the chatd server.
    #[arg(
        long,
        env = "CHAT_ADDR",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:6000"
    )]
    addr: String,

    /// Speak TLS to the server (chatd's TLS listener, the proxy in front
    /// of it), trusting the system's root certificates or --ca-file. The
    /// certificate must name the host of --addr.
    #[arg(long, env = "CHAT_TLS")]
    tls: bool,

    /// PEM file of the CA certificates to trust for --tls instead of the
    /// system's (a private CA). Implies --tls.
    #[arg(long, env = "CHAT_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,

    /// Read the password from this file (its first line, without the line
    /// end) instead of CHAT_PASSWORD or asking.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Log in as this user id, skipping the menu.
    #[arg(long, value_name = "ID", conflicts_with = "register")]
    login: Option<i64>,

    /// Register a new user with this name, then log in as it (the new id
    /// is printed; keep it for --login).
    #[arg(long, value_name = "NAME")]
    register: Option<String>,

    /// History file of the line editor [default:
    /// $XDG_STATE_HOME/chatcli/history, else ~/.local/state/chatcli/history].
    #[arg(long, env = "CHAT_HISTORY", value_name = "FILE")]
    history: Option<PathBuf>,

    /// When to colour the output: `auto` is on a terminal unless NO_COLOR
    /// is set.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    /// Seconds a scripted command waits for its reply, reconnecting
    /// included, before it counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    timeout: u64,

    /// Diagnostics on stderr, as a tracing filter (`info`, `chatcli=debug`).
    /// Off unless this or RUST_LOG is set.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

fn init_logging(filter: Option<&str>) -> anyhow::Result<()> {
    let filter = match filter {
        Some(filter) => tracing_subscriber::EnvFilter::try_new(filter)
            .with_context(|| format!("invalid --log filter {filter:?}"))?,
        None => match std::env::var("RUST_LOG") {
            Ok(filter) if !filter.is_empty() => tracing_subscriber::EnvFilter::try_new(&filter)
                .with_context(|| format!("invalid RUST_LOG filter {filter:?}"))?,
            _ => return Ok(()),
        },
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chatcli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    init_logging(args.log.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let style = Style {
        color: match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => render::colors_wanted(
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
            ),
        },
    };
    let start = match (args.login, args.register) {
        (Some(id), _) => Start::Login(UserId(id)),
        (None, Some(name)) => Start::Register(name),
        (None, None) => Start::Menu,
    };
    let mut settings = Settings::new(args.addr.clone());
    if args.tls || args.ca_file.is_some() {
        settings = settings.with_tls(Tls::new(&args.addr, args.ca_file.as_deref())?);
    }
    let password = match &args.password_file {
        Some(file) => Some(read_password(file)?),
        None => std::env::var("CHAT_PASSWORD").ok(),
    };
    let (out, outputs) = mpsc::channel(1024);
    let (view, view_rx) = watch::channel(View::default());

    let view = Arc::new(view);
    let app = |console| App {
        console,
        runtime: runtime.handle().clone(),
        settings: settings.clone(),
        out: out.clone(),
        view: Arc::clone(&view),
        style,
        password: password.clone(),
        reply_timeout: Duration::from_secs(args.timeout.max(1)),
        failed: false,
    };
    let repl = if terminal {
        let history = args.history.clone().or_else(repl::default_history_path);
        match repl::Repl::new(history, view_rx, style) {
            Ok(repl) => Some(repl),
            Err(e) => {
                tracing::warn!(error = %e, "no line editing on this terminal; reading plain lines");
                None
            }
        }
    } else {
        None
    };
    let (ok, printer) = match repl {
        Some((repl, mut external)) => {
            let printer = app::spawn_printer(outputs, style, move |_, mut text| {
                text.push('\n');
                if let Err(e) = external.print(text) {
                    tracing::debug!(error = %e, "output not printed");
                }
            })?;
            (app(Front::Terminal(Box::new(repl))).run(start), printer)
        }
        None => {
            let printer = app::spawn_printer(outputs, style, script::write)?;
            (
                app(Front::Script(script::Script::new())).run(start),
                printer,
            )
        }
    };
    drop(out);
    // Sessions have ended; what is left (a client's tasks) stops here, and
    // with the last sender gone the printer drains and ends.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if printer.join().is_err() {
        anyhow::bail!("the printer thread panicked");
    }
    Ok(ok)
}

/// The password in `file`: its first line, without the line end (as
/// `echo secret > file` leaves it).
fn read_password(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read --password-file {}", file.display()))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        anyhow::bail!("--password-file {} is empty", file.display());
    }
    Ok(password.to_owned())
}

/// The front end chosen at start.
#[derive(Debug)]
enum Front {
    Terminal(Box<repl::Repl>),
    Script(script::Script),
}

impl app::Console for Front {
    fn command(&mut self, view: &View) -> app::Line {
        match self {
            Front::Terminal(c) => c.command(view),
            Front::Script(c) => c.command(view),
        }
    }

    fn answer(&mut self, prompt: &str) -> app::Line {
        match self {
            Front::Terminal(c) => c.answer(prompt),
            Front::Script(c) => c.answer(prompt),
        }
    }

    fn password(&mut self, prompt: &str) -> app::Line {
        match self {
            Front::Terminal(c) => c.password(prompt),
            Front::Script(c) => c.password(prompt),
        }
    }

    fn interactive(&self) -> bool {
        match self {
            Front::Terminal(c) => c.interactive(),
            Front::Script(c) => c.interactive(),
        }
    }
}
