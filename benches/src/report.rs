//! The summary of a run: what is written as JSON (`--json`) and printed.

use serde::Serialize;

use crate::cpu::ProcessCpu;
use crate::metrics::Percentiles;
use crate::options::{Role, Scenario, Transport};

/// Everything a run measured. Rates are per second of load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub scenario: Option<Scenario>,
    pub legacy: bool,
    pub transport: Option<Transport>,
    pub clients: usize,
    pub addrs: Vec<String>,
    /// `/proc/loadavg` (1, 5, 15 minutes) at the start and at the end.
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],

    /// Connections set up: connected, logged in, failed (with the first
    /// error), and how long it took.
    pub connected: u64,
    pub logged_in: u64,
    pub setup_failed: u64,
    pub first_setup_error: Option<String>,
    pub setup_s: f64,
    /// Seconds of load (from the first send to the end of sending).
    pub load_s: f64,

    /// Chat messages written, acknowledged by the server (stored), refused.
    pub sent: u64,
    pub acked: u64,
    pub refused: u64,
    /// Deliveries received (a group message counts once per recipient),
    /// and how many were owed for the acked (legacy: sent) messages.
    pub delivered: u64,
    pub expected_deliveries: u64,
    /// Owed deliveries that never arrived, repeats, and arrivals after a
    /// later message of the same sender.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// What `lost` is counted against: `acked` (native) or `sent` (legacy,
    /// which has no acks).
    pub loss_basis: &'static str,
    /// Deliveries per second.
    pub throughput_msgs_per_s: f64,
    pub sent_per_s: f64,
    pub acked_per_s: f64,
    /// From when a message was due to its delivery (wall clock).
    pub latency_ms: Percentiles,
    /// From when a message was due to its ack.
    pub ack_latency_ms: Percentiles,

    /// `idle`: connections still open and logged in at the end, PINGs
    /// answered, connections the server closed or ended.
    pub held: u64,
    pub pings_answered: u64,
    pub closed: u64,
    pub kicked: u64,
    /// Resident memory of the `--server-pid` processes (summed), before
    /// setup and once every client was logged in.
    pub server_rss_kib_before: Option<u64>,
    pub server_rss_kib_after: Option<u64>,
    /// Connections the `--server-pid` processes gained meanwhile (their
    /// open files), from this and any other instance; `held` when they
    /// cannot be read. The memory growth is divided by it.
    pub server_connections_added: u64,
    pub server_rss_bytes_per_connection: Option<f64>,

    /// CPU of the `--server-pid` processes together per delivered
    /// message over the load phase, raw and (`--idle-baseline`) less
    /// their idle CPU; empty without servers or deliveries.
    pub server_cpu_us_per_msg: Option<f64>,
    pub server_cpu_us_per_msg_net: Option<f64>,
    /// Seconds of the load phase over which CPU was read (`--duration`
    /// plus the drain after it), and of the idle baseline.
    pub cpu_load_s: Option<f64>,
    pub idle_baseline_s: Option<f64>,
    /// One entry per `--server-pid` and `--service-pid`, in that order.
    pub cpu: Vec<ProcessCpu>,

    /// `login`: logins done and their rate and latency.
    pub logins: u64,
    pub logins_per_s: f64,
    pub login_latency_ms: Percentiles,

    /// `backlog`: per recipient, from its login request to the last of its
    /// waiting messages.
    pub backlog_sync_ms: Percentiles,
}

impl Summary {
    /// Whether the run saw the one failure that fails it: an acknowledged
    /// message that never arrived (or arrived twice, or out of order).
    pub fn broke_delivery_contract(&self) -> bool {
        self.loss_basis == "acked" && (self.lost > 0 || self.duplicated > 0 || self.reordered > 0)
    }

    /// A few readable lines for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let scenario = self.scenario.map(|s| format!("{s:?}")).unwrap_or_default();
        out.push_str(&format!(
            "scenario {scenario}{}{} with {} clients on {}\n",
            if self.legacy { " (legacy)" } else { "" },
            if self.transport == Some(Transport::Ws) {
                " over WebSockets"
            } else {
                ""
            },
            self.clients,
            self.addrs.join(", ")
        ));
        out.push_str(&format!(
            "setup: {} connected, {} logged in, {} failed in {:.1} s{}\n",
            self.connected,
            self.logged_in,
            self.setup_failed,
            self.setup_s,
            self.first_setup_error
                .as_ref()
                .map(|e| format!(" (first error: {e})"))
                .unwrap_or_default()
        ));
        if self.sent > 0 {
            out.push_str(&format!(
                "messages: sent {} ({:.0}/s), acked {} ({:.0}/s), refused {}; delivered {} of {} owed ({:.0}/s)\n",
                self.sent,
                self.sent_per_s,
                self.acked,
                self.acked_per_s,
                self.refused,
                self.delivered,
                self.expected_deliveries,
                self.throughput_msgs_per_s
            ));
            out.push_str(&format!(
                "errors: lost {} (of {}), duplicated {}, reordered {}\n",
                self.lost, self.loss_basis, self.duplicated, self.reordered
            ));
            if self.latency_ms.count > 0 {
                out.push_str(&format!(
                    "delivery latency ms: {}\n",
                    percentiles(&self.latency_ms)
                ));
            }
            if self.ack_latency_ms.count > 0 {
                out.push_str(&format!(
                    "ack latency ms:      {}\n",
                    percentiles(&self.ack_latency_ms)
                ));
            }
        }
        if self.held > 0 || self.scenario == Some(Scenario::Idle) {
            out.push_str(&format!(
                "held {} connections for {:.0} s; {} PINGs answered; {} closed, {} ended by the server\n",
                self.held, self.load_s, self.pings_answered, self.closed, self.kicked
            ));
        }
        if let (Some(before), Some(after)) = (self.server_rss_kib_before, self.server_rss_kib_after)
        {
            out.push_str(&format!(
                "server RSS {before} KiB -> {after} KiB over {} new connections: {:.0} bytes per connection\n",
                self.server_connections_added,
                self.server_rss_bytes_per_connection.unwrap_or(0.0)
            ));
        }
        out.push_str(&self.cpu_text());
        if self.logins > 0 {
            out.push_str(&format!(
                "logins: {} ({:.1}/s), latency ms: {}\n",
                self.logins,
                self.logins_per_s,
                percentiles(&self.login_latency_ms)
            ));
        }
        if self.backlog_sync_ms.count > 0 {
            out.push_str(&format!(
                "backlog synced at login, ms: {}\n",
                percentiles(&self.backlog_sync_ms)
            ));
        }
        out.push_str(&format!(
            "load average {:?} -> {:?}\n",
            self.load_average_start, self.load_average_end
        ));
        out
    }
}

impl Summary {
    /// The CPU lines: one per measured process, then the servers together.
    fn cpu_text(&self) -> String {
        let Some(load_s) = self.cpu_load_s else {
            return String::new();
        };
        let mut out = format!("CPU (user + system) over the {load_s:.1} s load phase");
        match self.idle_baseline_s {
            Some(idle_s) => out.push_str(&format!(
                ", and net of idle CPU (measured over {idle_s:.1} s, scaled to the load phase):\n"
            )),
            None => out.push_str(":\n"),
        }
        let width = self.cpu.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &self.cpu {
            let Some(cpu_ms) = p.cpu_ms else {
                out.push_str(&format!("  {:width$}  unreadable at the end\n", p.name));
                continue;
            };
            out.push_str(&format!(
                "  {:width$}  {cpu_ms:9.0} ms  {} per message",
                p.name,
                micros(p.cpu_us_per_msg)
            ));
            if let (Some(idle), Some(net)) = (p.idle_cpu_ms, p.cpu_ms_net) {
                out.push_str(&format!(
                    "; idle {idle:.0} ms, net {net:.0} ms, {} per message",
                    micros(p.cpu_us_per_msg_net)
                ));
            }
            out.push('\n');
        }
        if self.cpu.iter().any(|p| p.role == Role::Server) {
            out.push_str(&format!(
                "  servers together: {} per delivered message",
                micros(self.server_cpu_us_per_msg)
            ));
            if self.idle_baseline_s.is_some() {
                out.push_str(&format!(", net {}", micros(self.server_cpu_us_per_msg_net)));
            }
            out.push('\n');
        }
        out
    }
}

/// A per-message figure in µs, or why there is none.
fn micros(value: Option<f64>) -> String {
    match value {
        Some(us) => format!("{us:.1} µs"),
        None => "- (nothing delivered)".to_owned(),
    }
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} (n={})",
        p.p50, p.p90, p.p99, p.p99_9, p.max, p.count
    )
}

/// The machine's load average, or zeros where /proc is missing.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
        values.next().unwrap_or(0.0),
    ]
}
