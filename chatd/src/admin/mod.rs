//! The admin HTTP listener (`--admin-addr`): `GET /health` for load
//! balancers and orchestrators, `GET /metrics` for Prometheus, and with
//! `--admin-token-file` the `/admin/` API (`api.rs`) behind its token
//! (`token.rs`). It holds the Prometheus recorder that `chatcore`'s
//! metrics go to.

mod api;
mod token;

pub(crate) use api::Api;
pub(crate) use token::AdminToken;

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use chatcore::bus::Bus;
use chatcore::store::Store;

/// Upper bounds of the latency histogram buckets, in seconds: from a fast
/// in-memory call to the default 5 s database timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Longest a health probe may take: a backend that hangs is as unready as
/// one that refuses, and the caller (a load balancer) must get an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often histograms are compacted between scrapes, so that an unscraped
/// node's memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The backends whose reachability makes this node ready.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
}

/// The installed Prometheus recorder, ready to be served.
#[derive(Debug)]
pub(crate) struct Admin {
    addr: String,
    metrics: PrometheusHandle,
}

#[derive(Debug)]
struct AppState {
    metrics: PrometheusHandle,
    probes: Probes,
    shutdown: CancellationToken,
}

impl Admin {
    /// Installs the process-wide Prometheus recorder, for an admin listener
    /// on `addr`; call it before the node starts, so that no early
    /// measurement goes to the no-op recorder.
    pub(crate) fn install(addr: &str) -> anyhow::Result<Admin> {
        let metrics = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
            .context("histogram buckets")?
            .install_recorder()
            .context("installing the metrics recorder")?;
        chatcore::telemetry::describe();
        Ok(Admin {
            addr: addr.to_owned(),
            metrics,
        })
    }

    /// Binds the admin address and serves `/health` and `/metrics` there,
    /// and the `/admin/` API when given one, until the process exits;
    /// returns the bound address. Once `shutdown` is cancelled `/health`
    /// says 503, so that load balancers stop sending clients here.
    pub(crate) async fn serve(
        self,
        probes: Probes,
        api: Option<Api>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind(&self.addr)
            .await
            .with_context(|| format!("binding the admin listener {}", self.addr))?;
        let local = listener.local_addr()?;
        let state = Arc::new(AppState {
            metrics: self.metrics.clone(),
            probes,
            shutdown,
        });
        let mut app = Router::new()
            .route("/health", get(health))
            .route("/metrics", get(render_metrics))
            .with_state(state);
        if let Some(api) = api {
            app = app.merge(api::routes(api));
        }
        // The peer's address, for the audit log.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        let handle = self.metrics;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
        Ok(local)
    }
}

/// 200 `ready` when the store and the bus answer; 503 `not ready` with one
/// line per failed check otherwise.
async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, String) {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\nshutting down\n".to_owned(),
        );
    }
    let (store, bus) = tokio::join!(
        probe(state.probes.store.ping()),
        probe(state.probes.bus.ping()),
    );
    let ready = store.is_ok() && bus.is_ok();
    let line = |name: &str, result: Result<(), String>| match result {
        Ok(()) => format!("{name}: ok\n"),
        Err(reason) => format!("{name}: {reason}\n"),
    };
    let body = format!(
        "{}\n{}{}",
        if ready { "ready" } else { "not ready" },
        line("store", store),
        line("bus", bus)
    );
    if ready {
        (StatusCode::OK, body)
    } else {
        tracing::debug!(reason = %body.replace('\n', "; "), "health check failed");
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

async fn probe<E: Display>(check: impl Future<Output = Result<(), E>>) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// Every metric in the Prometheus text exposition format.
async fn render_metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
