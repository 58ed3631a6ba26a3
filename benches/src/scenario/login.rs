//! `login`: every client logs out and in again in a loop for
//! `--duration` seconds; measures logins per second (each one a password
//! hash on the server) and their latency.
//!
//! `resume`: every client drops its connection and logs in again on a new
//! one with its resume token, in a loop: what a reconnecting client costs
//! (a TCP connect and an HMAC check, no hash). Logging out would revoke
//! the token, so the connection is simply closed, as a network drop would.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatcore::client::{Client, ClientError};
use chatcore::model::UserId;
use chatcore::protocol::ResumeToken;

use super::{Conn, Ctx, RunError, open_native};
use crate::metrics::{Counters, Latency};
use crate::options::{Scenario, Transport};
use crate::report::Summary;

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let clients = ctx.set_up(summary).await?;

    ctx.begin_load().await;
    ctx.progress.phase("logins");
    let latency = Arc::new(Latency::default());
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.duration();
    let mut tasks = Vec::new();
    for (index, (conn, id)) in clients.into_iter().enumerate() {
        let latency = Arc::clone(&latency);
        let counters = Arc::clone(&ctx.counters);
        let password = opts.password.clone();
        let (addr, source, timeout, transport) = (
            opts.addr_for(index).to_owned(),
            opts.source_for(index),
            opts.timeout(),
            opts.transport,
        );
        let resume = opts.scenario == Scenario::Resume;
        tasks.push(tokio::spawn(async move {
            match conn {
                Conn::Native {
                    client,
                    resume: token,
                } if resume => {
                    let reconnect = Reconnect {
                        transport,
                        addr,
                        source,
                        timeout,
                    };
                    resume_repeatedly(client, token, &reconnect, deadline, &counters, &latency)
                        .await;
                }
                conn => log_in_repeatedly(conn, id, &password, deadline, &counters, &latency).await,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    ctx.cpu.end_load();
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
    id: UserId,
    password: &str,
    deadline: tokio::time::Instant,
    counters: &Counters,
    latency: &Latency,
) {
    while tokio::time::Instant::now() < deadline {
        if let Err(e) = conn.logout(id).await {
            tracing::warn!(%id, error = %e, "logout failed; client stops");
            Counters::add(&counters.refused, 1);
            return;
        }
        let started = Instant::now();
        if let Err(e) = conn.login(id, password).await {
            tracing::warn!(%id, error = %e, "login failed; client stops");
            Counters::add(&counters.refused, 1);
            return;
        }
        latency.record(started.elapsed());
        Counters::add(&counters.logins, 1);
    }
}

/// Where a `resume` client connects again.
struct Reconnect {
    transport: Transport,
    addr: String,
    source: Option<Ipv4Addr>,
    timeout: Duration,
}

/// Drops `client`'s connection and logs in on a new one with `token`, in
/// a loop; each login hands out the token of the next.
async fn resume_repeatedly(
    mut client: Client,
    mut token: Option<ResumeToken>,
    to: &Reconnect,
    deadline: tokio::time::Instant,
    counters: &Counters,
    latency: &Latency,
) {
    while tokio::time::Instant::now() < deadline {
        let Some(this) = token.take() else {
            tracing::warn!("the server handed out no resume token; client stops");
            Counters::add(&counters.refused, 1);
            return;
        };
        drop(client);
        let started = Instant::now();
        let resumed = async {
            let fresh = open_native(to.transport, &to.addr, to.source, to.timeout).await?;
            let login = fresh.resume(&this.token).await?;
            Ok::<_, ClientError>((fresh, login.resume))
        };
        (client, token) = match resumed.await {
            Ok(resumed) => resumed,
            Err(e) => {
                tracing::warn!(error = %e, "resume failed; client stops");
                Counters::add(&counters.refused, 1);
                return;
            }
        };
        latency.record(started.elapsed());
        Counters::add(&counters.logins, 1);
    }
}
