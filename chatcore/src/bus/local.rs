//! `LocalBus`: a bus between nodes of one process, through a shared
//! `LocalBroker`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{Bus, BusError, BusEvent, BusReceiver};
use crate::model::UserId;

/// The shared part of an in-process bus; every node joins it once.
#[derive(Debug, Clone, Default)]
pub struct LocalBroker {
    inner: Arc<Mutex<Broker>>,
}

#[derive(Debug, Default)]
struct Broker {
    next_endpoint: u64,
    endpoints: HashMap<u64, mpsc::Sender<BusEvent>>,
    /// user -> endpoints interested in that user
    interest: HashMap<UserId, HashSet<u64>>,
}

/// One node's endpoint of a [`LocalBroker`].
#[derive(Debug)]
pub struct LocalBus {
    id: u64,
    broker: LocalBroker,
}

impl LocalBroker {
    /// A broker with no nodes.
    pub fn new() -> LocalBroker {
        LocalBroker::default()
    }

    /// Joins a node: its endpoint and the receiver of its events, which
    /// holds at most `capacity` undelivered events (publishers wait when it
    /// is full).
    pub fn join(&self, capacity: usize) -> (LocalBus, BusReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut broker = self.lock();
        broker.next_endpoint += 1;
        let id = broker.next_endpoint;
        broker.endpoints.insert(id, tx);
        drop(broker);
        (
            LocalBus {
                id,
                broker: self.clone(),
            },
            rx,
        )
    }

    fn lock(&self) -> MutexGuard<'_, Broker> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for LocalBus {
    fn drop(&mut self) {
        let mut broker = self.broker.lock();
        broker.endpoints.remove(&self.id);
        broker.interest.retain(|_, endpoints| {
            endpoints.remove(&self.id);
            !endpoints.is_empty()
        });
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<(), BusError> {
        for event in events {
            let Some(user) = event.user() else { continue };
            // Collect senders under the lock, send after it: never hold a
            // lock across an await.
            let targets: Vec<mpsc::Sender<BusEvent>> = {
                let broker = self.broker.lock();
                broker
                    .interest
                    .get(&user)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| broker.endpoints.get(id).cloned())
                    .collect()
            };
            for tx in targets {
                // A node that has gone away just misses the event.
                let _ = tx.send(event.clone()).await;
            }
        }
        Ok(())
    }

    fn subscribe(&self, user: UserId) {
        self.broker
            .lock()
            .interest
            .entry(user)
            .or_default()
            .insert(self.id);
    }

    fn unsubscribe(&self, user: UserId) {
        let mut broker = self.broker.lock();
        if let Some(endpoints) = broker.interest.get_mut(&user) {
            endpoints.remove(&self.id);
            if endpoints.is_empty() {
                broker.interest.remove(&user);
            }
        }
    }
}
