//! CPU per message: the `--server-pid` and `--service-pid` processes'
//! CPU time over the load phase alone, optionally beside an idle baseline
//! of the same processes (`--idle-baseline`). How it is counted is said
//! in `--help`; this module does what it says.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::options::{Options, Role};
use crate::report::Summary;
use crate::system::{clock_ticks_per_second, cpu_ticks};

/// One measured process's CPU over the load phase, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessCpu {
    pub name: String,
    pub pid: u32,
    pub role: Role,
    /// CPU over the load phase; empty if the process could not be read at
    /// its end (it exited).
    pub cpu_ms: Option<f64>,
    /// `cpu_ms` per delivered message.
    pub cpu_us_per_msg: Option<f64>,
    /// `--idle-baseline`: the idle CPU, scaled to the load phase's length.
    pub idle_cpu_ms: Option<f64>,
    /// `cpu_ms - idle_cpu_ms`, at least 0.
    pub cpu_ms_net: Option<f64>,
    pub cpu_us_per_msg_net: Option<f64>,
}

/// Each process's CPU ticks at one moment (`None`: unreadable then).
#[derive(Debug, Clone)]
struct Snapshot {
    at: Instant,
    ticks: Vec<Option<u64>>,
}

/// An interval between two snapshots: its length and each process's
/// ticks over it.
#[derive(Debug, Clone)]
struct Interval {
    seconds: f64,
    ticks: Vec<Option<u64>>,
}

impl Interval {
    fn between(start: &Snapshot, end: &Snapshot) -> Interval {
        let ticks = start
            .ticks
            .iter()
            .zip(&end.ticks)
            .map(|(a, b)| Some(b.as_ref()?.saturating_sub(*a.as_ref()?)))
            .collect();
        Interval {
            seconds: end.at.duration_since(start.at).as_secs_f64(),
            ticks,
        }
    }
}

/// Reads the measured processes' CPU at the edges of a run's phases.
#[derive(Debug)]
pub struct CpuMeter {
    processes: Vec<(String, u32, Role)>,
    ms_per_tick: f64,
    state: Mutex<Phases>,
}

#[derive(Debug, Default)]
struct Phases {
    idle: Option<Interval>,
    load_started: Option<Snapshot>,
    load: Option<Interval>,
}

impl CpuMeter {
    /// A meter of the processes `opts` names; fails, before anything is
    /// set up, on a process that cannot be read (a mistyped pid).
    pub fn new(opts: &Options) -> Result<CpuMeter, String> {
        let processes = opts.measured_processes();
        for (name, pid, _) in &processes {
            cpu_ticks(*pid)
                .map_err(|e| format!("cannot read the CPU time of {name} (pid {pid}): {e}"))?;
        }
        Ok(CpuMeter {
            processes,
            ms_per_tick: 1000.0 / clock_ticks_per_second().max(1) as f64,
            state: Mutex::new(Phases::default()),
        })
    }

    fn snapshot(&self) -> Snapshot {
        let ticks = self
            .processes
            .iter()
            .map(|(name, pid, _)| {
                cpu_ticks(*pid)
                    .inspect_err(|e| {
                        tracing::warn!(name = %name, pid = *pid, error = %e, "cannot read CPU time");
                    })
                    .ok()
            })
            .collect();
        Snapshot {
            at: Instant::now(),
            ticks,
        }
    }

    fn phases(&self) -> std::sync::MutexGuard<'_, Phases> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// With `--idle-baseline`, waits `idle` while reading what the
    /// processes spend meanwhile; nothing otherwise. Call after set-up,
    /// just before [`CpuMeter::start_load`].
    pub async fn idle_baseline(&self, enabled: bool, idle: Duration) {
        if !enabled || self.processes.is_empty() {
            return;
        }
        tracing::info!(seconds = idle.as_secs_f64(), "measuring idle CPU");
        let start = self.snapshot();
        tokio::time::sleep(idle).await;
        let end = self.snapshot();
        self.phases().idle = Some(Interval::between(&start, &end));
    }

    /// The load phase begins.
    pub fn start_load(&self) {
        if self.processes.is_empty() {
            return;
        }
        let start = self.snapshot();
        self.phases().load_started = Some(start);
    }

    /// The load phase is over (everything owed arrived, or the grace
    /// period ended).
    pub fn end_load(&self) {
        let mut phases = self.phases();
        if let Some(start) = phases.load_started.take() {
            phases.load = Some(Interval::between(&start, &self.snapshot()));
        }
    }

    /// Fills the CPU figures into `summary`, whose `delivered` is final.
    pub fn report(&self, summary: &mut Summary) {
        let phases = self.phases();
        let Some(load) = &phases.load else {
            return;
        };
        let idle = phases.idle.as_ref();
        let delivered = summary.delivered;
        let per_msg = |ms: f64| (delivered > 0).then(|| ms * 1000.0 / delivered as f64);
        summary.cpu_load_s = Some(load.seconds);
        summary.idle_baseline_s = idle.map(|i| i.seconds);
        summary.cpu = self
            .processes
            .iter()
            .enumerate()
            .map(|(i, (name, pid, role))| {
                let cpu_ms = load.ticks[i].map(|t| t as f64 * self.ms_per_tick);
                // The idle rate over the baseline, for as long as the load
                // phase lasted.
                let idle_cpu_ms = idle.and_then(|idle| {
                    let ms = idle.ticks[i]? as f64 * self.ms_per_tick;
                    Some(ms / idle.seconds.max(1e-9) * load.seconds)
                });
                let cpu_ms_net = cpu_ms
                    .zip(idle_cpu_ms)
                    .map(|(cpu, idle)| (cpu - idle).max(0.0));
                ProcessCpu {
                    name: name.clone(),
                    pid: *pid,
                    role: *role,
                    cpu_ms,
                    cpu_us_per_msg: cpu_ms.and_then(per_msg),
                    idle_cpu_ms,
                    cpu_ms_net,
                    cpu_us_per_msg_net: cpu_ms_net.and_then(per_msg),
                }
            })
            .collect();
        let servers: Vec<&ProcessCpu> = summary
            .cpu
            .iter()
            .filter(|p| p.role == Role::Server)
            .collect();
        // All servers together, and only if every one could be read.
        let total = |field: fn(&ProcessCpu) -> Option<f64>| {
            if servers.is_empty() {
                return None;
            }
            servers.iter().map(|p| field(p)).sum::<Option<f64>>()
        };
        summary.server_cpu_us_per_msg = total(|p| p.cpu_ms).and_then(per_msg);
        summary.server_cpu_us_per_msg_net = total(|p| p.cpu_ms_net).and_then(per_msg);
    }
}
