//! `idle`: clients log in and stay connected, answering the server's
//! PINGs, for `--duration` seconds; counts the connections still held at
//! the end and, with `--server-pid`, the server memory they cost.

use std::sync::Arc;
use std::time::Instant;

use chatcore::client::Event;
use futures::StreamExt;
use futures::stream;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{Conn, Ctx, RunError};
use crate::metrics::Counters;
use crate::report::Summary;
use crate::system::{open_fds, rss_kib};

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let rss_before = sum_over(&opts.server_pids, "memory", rss_kib);
    let fds_before = sum_over(&opts.server_pids, "open files", open_fds);
    let stop = CancellationToken::new();
    let holders = Mutex::new(Vec::with_capacity(opts.clients));
    let setup_started = Instant::now();
    ctx.progress.phase("setup");
    // Each connection is held (PINGs answered) from the moment it is
    // logged in, so that a long setup does not time out the first ones.
    stream::iter(0..opts.clients)
        .for_each_concurrent(opts.connect_concurrency, |index| {
            let stop = stop.clone();
            let holders = &holders;
            async move {
                match ctx.open_and_log_in(index).await {
                    Ok((conn, _)) => {
                        let counters = Arc::clone(&ctx.counters);
                        let holder = tokio::spawn(hold(conn, counters, stop));
                        holders.lock().await.push(holder);
                    }
                    Err(e) => ctx.setup_failed(index, &e),
                }
            }
        })
        .await;
    ctx.fill_setup(summary, setup_started);

    ctx.begin_load().await;
    ctx.progress.phase("holding");
    tokio::time::sleep(opts.duration()).await;
    ctx.cpu.end_load();
    // Sampled at the end, when every connection (of this and of any other
    // instance started alongside) has been up for a while.
    let rss_after = sum_over(&opts.server_pids, "memory", rss_kib);
    let fds_after = sum_over(&opts.server_pids, "open files", open_fds);
    stop.cancel();
    let mut held = 0;
    for holder in holders.into_inner() {
        if holder.await.unwrap_or(false) {
            held += 1;
        }
    }
    let get = Counters::get;
    summary.held = held;
    summary.load_s = opts.duration;
    summary.pings_answered = get(&ctx.counters.pings);
    summary.closed = get(&ctx.counters.closed);
    summary.kicked = get(&ctx.counters.kicked);
    summary.server_rss_kib_before = rss_before;
    summary.server_rss_kib_after = rss_after;
    // The servers' own count of new connections, when it can be read: it
    // includes those of any other instance started alongside, whose
    // memory the growth includes too.
    let connections = match (fds_before, fds_after) {
        (Some(before), Some(after)) if after > before => after - before,
        _ => held,
    };
    summary.server_connections_added = connections;
    if let (Some(before), Some(after)) = (rss_before, rss_after)
        && connections > 0
    {
        summary.server_rss_bytes_per_connection =
            Some(after.saturating_sub(before) as f64 * 1024.0 / connections as f64);
    }
    Ok(())
}

/// `read` summed over `pids`, if there are any and all are readable.
fn sum_over(pids: &[u32], what: &str, read: fn(u32) -> std::io::Result<u64>) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0;
    for &pid in pids {
        match read(pid) {
            Ok(value) => total += value,
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot read the server's {what}");
                return None;
            }
        }
    }
    Some(total)
}

/// Keeps one logged-in connection open until `stop`; true if it was still
/// open then.
async fn hold(conn: Conn, counters: Arc<Counters>, stop: CancellationToken) -> bool {
    match conn {
        // The client answers PINGs itself; this task only watches for the
        // end of the session.
        Conn::Native { client, .. } => {
            let (sender, mut events) = client.split();
            let held = loop {
                tokio::select! {
                    _ = stop.cancelled() => break true,
                    event = events.next() => match event {
                        Some(Event::Kicked { .. }) => {
                            Counters::add(&counters.kicked, 1);
                            break false;
                        }
                        Some(_) => {}
                        None => {
                            Counters::add(&counters.closed, 1);
                            break false;
                        }
                    },
                }
            };
            Counters::add(&counters.pings, sender.pings_answered());
            held
        }
        Conn::Legacy(conn) => {
            let (mut reader, _writer) = conn.into_parts();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return true,
                    frame = reader.next() => match frame {
                        Ok(Some(_)) => {}
                        _ => {
                            Counters::add(&counters.closed, 1);
                            return false;
                        }
                    },
                }
            }
        }
    }
}
