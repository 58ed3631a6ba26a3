//! `login`: every client logs out and in again in a loop for
//! `--duration` seconds; measures logins per second (each one a password
//! hash on the server) and their latency.

use std::sync::Arc;
use std::time::Instant;

use super::{Ctx, RunError};
use crate::conn::Conn;
use crate::metrics::{Counters, Latency};
use crate::report::Summary;

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let setup_started = Instant::now();
    ctx.progress.phase("setup");
    let clients = ctx.set_up_all(summary, setup_started).await?;
    ctx.fill_setup(summary, setup_started);

    ctx.progress.phase("logins");
    let latency = Arc::new(Latency::default());
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.duration();
    let mut tasks = Vec::new();
    for (conn, id) in clients {
        let latency = Arc::clone(&latency);
        let counters = Arc::clone(&ctx.counters);
        let password = opts.password.clone();
        tasks.push(tokio::spawn(async move {
            log_in_repeatedly(conn, id, &password, deadline, &counters, &latency).await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    summary.load_s = elapsed;
    summary.logins = Counters::get(&ctx.counters.logins);
    summary.logins_per_s = summary.logins as f64 / elapsed;
    summary.login_latency_ms = latency.summary();
    summary.refused = Counters::get(&ctx.counters.refused);
    Ok(())
}

async fn log_in_repeatedly(
    mut conn: Conn,
    id: u64,
    password: &str,
    deadline: tokio::time::Instant,
    counters: &Counters,
    latency: &Latency,
) {
    while tokio::time::Instant::now() < deadline {
        if let Err(e) = conn.logout(id).await {
            tracing::warn!(id, error = %e, "logout failed; client stops");
            Counters::add(&counters.refused, 1);
            return;
        }
        let started = Instant::now();
        if let Err(e) = conn.login(id, password).await {
            tracing::warn!(id, error = %e, "login failed; client stops");
            Counters::add(&counters.refused, 1);
            return;
        }
        latency.record(started.elapsed());
        Counters::add(&counters.logins, 1);
    }
}
