//! The command line of `chat-load`, parsed once in `main` and passed down.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Drives a chat server (or a cluster behind nginx) with many clients and
/// reports throughput, latency percentiles and delivery errors (lost,
/// duplicated, reordered messages). Every run registers its own users.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Options {
    /// Server address; repeat the flag to spread clients round robin over
    /// several addresses (nodes, or load balancers).
    #[arg(long = "addr", value_name = "HOST:PORT", required = true)]
    pub addrs: Vec<String>,

    /// What the clients do: `one-to-one` pairs send to each other; `group`
    /// members send to their group; `idle` clients log in and stay
    /// connected; `login` clients log in and out in a loop (a password hash
    /// each); `resume` clients drop their connection and come back with
    /// their resume token in a loop (no hash); `backlog`: in pairs, the
    /// first sends `--backlog` messages to the second while it is logged
    /// out, then the second logs in and is timed until all have arrived.
    #[arg(long, value_enum, default_value_t = Scenario::OneToOne)]
    pub scenario: Scenario,

    /// Number of clients (connections).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,

    /// Seconds of load (for `idle`: seconds to hold the connections once
    /// all are logged in). The run always ends by itself.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds after the load stops to wait for outstanding acks and
    /// deliveries (ends sooner when nothing is outstanding).
    #[arg(long, default_value_t = 5.0)]
    pub grace: f64,

    /// Messages per second per sending client, on a fixed schedule
    /// (latency counts from when a send was due); `unlimited` sends as fast
    /// as `--window` allows.
    #[arg(long, default_value = "unlimited", value_parser = parse_rate)]
    pub rate: Rate,

    /// Sends a client may have awaiting their ack at once.
    #[arg(long, default_value_t = 4)]
    pub window: usize,

    /// Messages waiting for each recipient at its login (`backlog`).
    #[arg(long, default_value_t = 10_000)]
    pub backlog: u64,

    /// Members per group (`group`); clients fill groups in order.
    #[arg(long, default_value_t = 100)]
    pub group_size: usize,

    /// Members of each group that send (`group`); the others only receive.
    #[arg(long, default_value_t = 10)]
    pub group_senders: usize,

    /// Bytes of each chat message (at least the numbered header, ~40).
    #[arg(long, default_value_t = 64)]
    pub message_size: usize,

    /// Start of the names of the users this run registers (default: one
    /// made from the time and pid, so that runs do not collide).
    #[arg(long)]
    pub user_prefix: Option<String>,

    /// Password of the users this run registers.
    #[arg(long, default_value = "load-pw")]
    pub password: String,

    /// Speak the seed's legacy dialect (no `proto`, no request ids, no
    /// acks): only `one-to-one`, `idle` and `login`; loss counts sent
    /// messages that never arrived.
    #[arg(long)]
    pub legacy: bool,

    /// How clients reach the server: `tcp` (the frame protocol on the
    /// chat port) or `ws` (WebSockets at `/ws` of the web port, which
    /// `--addr` must then name; native dialect only).
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,

    /// Spread connections over this many source addresses 127.0.0.1,
    /// 127.0.0.2, ... (each has its own ~28,000 ephemeral ports).
    #[arg(long, default_value_t = 1)]
    pub source_ips: u8,

    /// Connections set up (connect, register, log in) at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,

    /// Seconds any single request may wait for its reply during setup.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,

    /// A server process id whose resident memory is read from /proc
    /// before and after the connections are set up (repeatable: one per
    /// node); gives memory per connection.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,

    /// Write the summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Do not draw the progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Log filter, in `tracing` EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "warn")]
    pub log: String,
}

/// How `chat-load`'s clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// The frame protocol over TCP.
    Tcp,
    /// WebSockets at `/ws`.
    Ws,
}

/// The scenarios `chat-load` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    OneToOne,
    Group,
    Idle,
    Login,
    Resume,
    Backlog,
}

/// How fast each sender sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Unlimited,
    PerSecond(f64),
}

impl Rate {
    /// The pause between two sends of one client, if paced.
    pub fn interval(self) -> Option<Duration> {
        match self {
            Rate::Unlimited => None,
            Rate::PerSecond(r) => Some(Duration::from_secs_f64(1.0 / r)),
        }
    }
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    if text == "unlimited" {
        return Ok(Rate::Unlimited);
    }
    match text.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
        _ => Err("a positive number of messages per second, or `unlimited`".into()),
    }
}

impl Options {
    /// Checks what clap cannot: combinations and ranges.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if !(self.duration > 0.0 && self.duration <= 24.0 * 3600.0) {
            return Err("--duration must be between 0 and 86400 seconds".into());
        }
        if !(self.grace >= 0.0 && self.grace <= 3600.0) {
            return Err("--grace must be between 0 and 3600 seconds".into());
        }
        if !(self.timeout > 0.0 && self.timeout <= 3600.0) {
            return Err("--timeout must be between 0 and 3600 seconds".into());
        }
        if self.window == 0 || self.connect_concurrency == 0 || self.source_ips == 0 {
            return Err(
                "--window, --connect-concurrency and --source-ips must be at least 1".into(),
            );
        }
        if self.legacy && self.transport == Transport::Ws {
            return Err("--legacy cannot run over `ws`: WebSockets speak native only".into());
        }
        match self.scenario {
            Scenario::OneToOne if !self.clients.is_multiple_of(2) => {
                return Err("one-to-one needs an even number of --clients (pairs)".into());
            }
            Scenario::Group if self.legacy => {
                return Err(
                    "--legacy cannot run `group`: the seed never tells a group's id".into(),
                );
            }
            Scenario::Backlog if self.legacy || !self.clients.is_multiple_of(2) => {
                return Err(
                    "backlog needs the native dialect and an even number of --clients".into(),
                );
            }
            Scenario::Backlog if self.backlog == 0 => {
                return Err("--backlog must be at least 1".into());
            }
            Scenario::Resume if self.legacy => {
                return Err("--legacy cannot run `resume`: the seed has no resume tokens".into());
            }
            Scenario::Group if self.group_size < 2 || self.group_senders == 0 => {
                return Err("group needs --group-size >= 2 and --group-senders >= 1".into());
            }
            _ => {}
        }
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// The server address client `index` uses (round robin).
    pub fn addr_for(&self, index: usize) -> &str {
        &self.addrs[index % self.addrs.len()]
    }

    /// The source address client `index` binds to, when spreading.
    pub fn source_for(&self, index: usize) -> Option<Ipv4Addr> {
        if self.source_ips <= 1 {
            return None;
        }
        let last = 1 + (index % usize::from(self.source_ips)) as u8;
        Some(Ipv4Addr::new(127, 0, 0, last))
    }

    /// The user name prefix of this run.
    pub fn prefix(&self) -> String {
        self.user_prefix.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("ld{}p{}-", secs % 100_000_000, std::process::id())
        })
    }
}
