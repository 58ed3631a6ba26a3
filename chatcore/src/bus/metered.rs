//! `MeteredBus`: a decorator that records the latency and failures of the
//! publishes of the bus endpoint it wraps.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{Bus, BusError, BusEvent};
use crate::model::{Message, Seq, UserId};
use crate::telemetry::{counter, histogram, names, static_key};

/// Wraps any [`Bus`] endpoint; behaves exactly like it, and records
/// `chat_bus_publish_duration_seconds` and `chat_bus_publish_errors_total`.
#[derive(Debug)]
pub struct MeteredBus {
    inner: Arc<dyn Bus>,
}

impl MeteredBus {
    /// `inner`, measured.
    pub fn wrap(inner: Arc<dyn Bus>) -> Arc<dyn Bus> {
        Arc::new(MeteredBus { inner })
    }
}

/// Runs one publish, recording how long it took and whether it failed.
async fn measured(
    publish: impl std::future::Future<Output = Result<(), BusError>>,
) -> Result<(), BusError> {
    let started = Instant::now();
    let result = publish.await;
    histogram(static_key!(names::BUS_PUBLISH_DURATION)).record(started.elapsed());
    if result.is_err() {
        counter(static_key!(names::BUS_PUBLISH_ERRORS)).increment(1);
    }
    result
}

#[async_trait]
impl Bus for MeteredBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<(), BusError> {
        measured(self.inner.publish(events)).await
    }

    async fn publish_deliveries(
        &self,
        message: Arc<Message>,
        recipients: Vec<(UserId, Seq)>,
    ) -> Result<(), BusError> {
        measured(self.inner.publish_deliveries(message, recipients)).await
    }

    fn subscribe(&self, user: UserId) {
        self.inner.subscribe(user);
    }

    fn unsubscribe(&self, user: UserId) {
        self.inner.unsubscribe(user);
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.inner.ping().await
    }
}
