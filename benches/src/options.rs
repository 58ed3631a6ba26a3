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

    /// A server process id (repeatable: one per node). Its CPU time over
    /// the load phase is reported per process and, all servers together,
    /// per delivered message (`server_cpu_us_per_msg`); in `idle`, its
    /// resident memory before and after the connections are set up gives
    /// memory per connection.
    ///
    /// How CPU is counted: user + system time of the process and all its
    /// threads (fields 14 and 15 of /proc/PID/stat, in clock ticks of
    /// 10 ms on Linux), read when the load phase starts (after set-up, and
    /// after the idle baseline if asked) and again when it ends (every ack
    /// and delivery in, or `--grace` over). Set-up (connecting,
    /// registering, hashing passwords, making groups) is not counted.
    /// `cpu_us_per_msg` divides by the deliveries counted (one per
    /// recipient); with none it is empty. A process's children are not
    /// counted: for nginx give each worker's pid. Keep runs long enough
    /// that a tick (10 ms) is small beside the figures.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,

    /// Another process whose CPU over the load phase is reported beside
    /// the servers', under NAME: the database, Redis, nginx (repeatable;
    /// counted as for `--server-pid`, but not in `server_cpu_us_per_msg`).
    #[arg(long = "service-pid", value_name = "NAME=PID", value_parser = parse_service_pid)]
    pub service_pids: Vec<ServicePid>,

    /// Account for the measured processes' idle background CPU (timers,
    /// a database's housekeeping, Redis's cron), which at light load can
    /// be a large share of the cost per message.
    ///
    /// After set-up, with every client connected and logged in but nothing
    /// sent, chat-load waits `--duration` seconds and reads each
    /// process's CPU over that wait. Reported per process as
    /// `idle_cpu_ms`: that idle CPU scaled to the length of the load phase
    /// (idle CPU / idle seconds x load-phase seconds, since the load phase
    /// lasts `--duration` plus the drain after it); `cpu_ms_net` is
    /// `cpu_ms - idle_cpu_ms` (0 where it would be negative, which is
    /// noise) and `cpu_us_per_msg_net` is that per delivered message; the
    /// raw `cpu_ms` and `cpu_us_per_msg` are reported as well, and
    /// `server_cpu_us_per_msg_net` beside `server_cpu_us_per_msg`. Needs
    /// `--server-pid` or `--service-pid`; the run takes `--duration`
    /// longer.
    #[arg(long)]
    pub idle_baseline: bool,

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

/// A `--service-pid`: a process measured beside the servers, and the
/// name it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePid {
    pub name: String,
    pub pid: u32,
}

fn parse_service_pid(text: &str) -> Result<ServicePid, String> {
    let wanted = "expected NAME=PID, a name and a process id, as in `mariadb=1234`";
    let Some((name, pid)) = text.split_once('=') else {
        return Err(wanted.into());
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{wanted}: the name is empty"));
    }
    match pid.trim().parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(ServicePid {
            name: name.to_owned(),
            pid,
        }),
        _ => Err(format!("{wanted}: `{pid}` is not a process id")),
    }
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

/// What a measured process is to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A `--server-pid`: counted in `server_cpu_us_per_msg`.
    Server,
    /// A `--service-pid`.
    Service,
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
        if self.idle_baseline && self.server_pids.is_empty() && self.service_pids.is_empty() {
            return Err(
                "--idle-baseline needs a process to measure: --server-pid or --service-pid".into(),
            );
        }
        let mut names: Vec<&str> = self.service_pids.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "--service-pid name `{}` given twice: each process needs its own name",
                twice[0]
            ));
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

    /// The processes whose CPU is measured: the servers first, named
    /// `chatd` (`chatd:PID` when there are several), then the services.
    pub fn measured_processes(&self) -> Vec<(String, u32, Role)> {
        let servers = self.server_pids.iter().map(|&pid| {
            let name = if self.server_pids.len() == 1 {
                "chatd".to_owned()
            } else {
                format!("chatd:{pid}")
            };
            (name, pid, Role::Server)
        });
        let services = self
            .service_pids
            .iter()
            .map(|s| (s.name.clone(), s.pid, Role::Service));
        servers.chain(services).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(["chat-load", "--addr", "127.0.0.1:6000"].iter().chain(args))
    }

    #[test]
    fn service_pids_are_name_equals_pid() {
        let opts = parse(&[
            "--service-pid",
            "mariadb=10",
            "--service-pid",
            "redis=11",
            "--server-pid",
            "20",
            "--server-pid",
            "21",
        ])
        .expect("valid");
        let names: Vec<(String, u32, Role)> = opts.measured_processes();
        assert_eq!(
            names,
            [
                ("chatd:20".to_owned(), 20, Role::Server),
                ("chatd:21".to_owned(), 21, Role::Server),
                ("mariadb".to_owned(), 10, Role::Service),
                ("redis".to_owned(), 11, Role::Service),
            ]
        );
        let one = parse(&["--server-pid", "20"]).expect("valid");
        assert_eq!(one.measured_processes()[0].0, "chatd");
    }

    #[test]
    fn malformed_service_pids_are_refused() {
        for bad in [
            "mariadb",
            "=12",
            "redis=",
            "redis=abc",
            "redis=0",
            "redis=-3",
        ] {
            let error = parse(&["--service-pid", bad]).expect_err(bad).to_string();
            assert!(error.contains("NAME=PID"), "{bad}: {error}");
        }
    }

    #[test]
    fn service_names_are_unique_and_a_baseline_needs_a_process() {
        let twice = parse(&["--service-pid", "db=1", "--service-pid", "db=2"]).expect("parses");
        assert!(
            twice
                .validate()
                .expect_err("twice")
                .contains("`db` given twice")
        );
        let alone = parse(&["--idle-baseline"]).expect("parses");
        assert!(
            alone
                .validate()
                .expect_err("nothing")
                .contains("--idle-baseline")
        );
    }
}
