//! Wiring one node: backends in, a running [`ChatService`] out.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{Bus, BusReceiver, LocalBroker};
use crate::hub::Hub;
use crate::limit::{Counters, LocalCounters};
use crate::presence::{LocalPresence, Lost, Presence};
use crate::protocol::ErrorCode;
use crate::service::{ChatService, Passwords, ServiceConfig};
use crate::store::Store;

/// Capacity of a node's queue of incoming bus events.
pub const BUS_QUEUE: usize = 16 * 1024;

/// The backends one node runs on.
#[derive(Debug)]
pub struct Backends {
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    /// This node's bus endpoint and the events it receives.
    pub bus: Arc<dyn Bus>,
    pub bus_events: BusReceiver,
    /// Sessions presence no longer backs (Redis presence only).
    pub lost_sessions: Option<mpsc::Receiver<Lost>>,
    /// Where the login guard and the registration rate count: in this
    /// process, or shared by the cluster (`RedisCounters`).
    pub counters: Arc<dyn Counters>,
}

impl Backends {
    /// A node alone in its process: `store`, in-process presence, bus and
    /// counters.
    pub fn local(store: Arc<dyn Store>) -> Backends {
        Backends::joining(store, &LocalBroker::new(), &LocalPresence::new())
    }

    /// One of several nodes in one process, sharing `broker` and `presence`
    /// (each node joins both with an endpoint of its own); each node counts
    /// its guards' failures for itself (share a `counters` by setting it).
    pub fn joining(
        store: Arc<dyn Store>,
        broker: &LocalBroker,
        presence: &LocalPresence,
    ) -> Backends {
        let (bus, bus_events) = broker.join(BUS_QUEUE);
        Backends {
            store,
            presence: Arc::new(presence.join()),
            bus: Arc::new(bus),
            bus_events,
            lost_sessions: None,
            counters: Arc::new(LocalCounters::default()),
        }
    }
}

/// Starts a node: its service, and its background tasks on `tasks`, which
/// all end once `shutdown` is cancelled (the hub's loop, and the one that
/// ends sessions presence no longer backs).
pub fn start(
    backends: Backends,
    passwords: Passwords,
    config: ServiceConfig,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> ChatService {
    let hub = Hub::new(Arc::clone(&backends.bus), backends.presence.lease());
    if let Some(lost) = backends.lost_sessions {
        tasks.spawn(end_lost_sessions(hub.clone(), lost, shutdown.clone()));
    }
    let departures = backends.presence.departures();
    // In-process presence has no departures to watch.
    if departures.has_changed().is_ok() {
        tasks.spawn(watch_departures(hub.clone(), departures, shutdown.clone()));
    }
    tasks.spawn(hub.clone().run(backends.bus_events, shutdown));
    ChatService::new(
        backends.store,
        backends.presence,
        backends.bus,
        backends.counters,
        hub,
        passwords,
        config,
    )
}

/// Has every session look at its friends' presence again each time another
/// node dies: the dead node's users went offline without logging out.
async fn watch_departures(
    hub: Hub,
    mut departures: watch::Receiver<u64>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = departures.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        hub.presence_changed_everywhere();
    }
}

/// Ends the sessions presence reports lost; their clients reconnect and
/// resume from their cursors.
async fn end_lost_sessions(hub: Hub, mut lost: mpsc::Receiver<Lost>, shutdown: CancellationToken) {
    loop {
        let report = tokio::select! {
            _ = shutdown.cancelled() => return,
            report = lost.recv() => match report {
                Some(report) => report,
                None => return,
            },
        };
        match report {
            Lost::All => hub.end_all(ErrorCode::Unavailable),
            Lost::Sessions(sessions) => {
                for (user, session) in sessions {
                    hub.end(user, session, ErrorCode::Kicked);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::HashParams;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn a_nodes_tasks_all_end_once_shutdown_is_cancelled() {
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let mut backends = Backends::local(Arc::new(MemoryStore::new()));
        // Kept open, so that only the shutdown can end the task reading it.
        let (_report, lost) = mpsc::channel(1);
        backends.lost_sessions = Some(lost);
        let passwords = Passwords::new(HashParams::insecure_fast(), 1).expect("hash params");
        let _service = start(
            backends,
            passwords,
            ServiceConfig::default(),
            &tasks,
            shutdown.clone(),
        );
        assert_eq!(tasks.len(), 2, "the hub's loop and the lost-session loop");

        shutdown.cancel();
        tasks.close();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("every task of the node ends after the shutdown");
    }
}
