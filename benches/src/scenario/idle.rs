//! `idle`: clients log in and stay connected, answering the server's
//! PINGs, for `--duration` seconds; counts the connections still held at
//! the end and, with `--server-pid`, the server memory they cost.

use std::sync::Arc;
use std::time::Instant;

use chatcore::protocol::msgid;
use futures::StreamExt;
use futures::stream;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{Ctx, RunError};
use crate::conn::{Conn, frame_bytes};
use crate::metrics::Counters;
use crate::report::Summary;
use crate::system::rss_kib;

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let rss_before = server_rss(&opts.server_pids);
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

    ctx.progress.phase("holding");
    tokio::time::sleep(opts.duration()).await;
    // Sampled at the end, when every connection (of this and of any other
    // instance started alongside) has been up for a while.
    let rss_after = server_rss(&opts.server_pids);
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
    if let (Some(before), Some(after)) = (rss_before, rss_after)
        && held > 0
    {
        summary.server_rss_bytes_per_connection =
            Some(after.saturating_sub(before) as f64 * 1024.0 / held as f64);
    }
    Ok(())
}

/// Summed resident memory of `pids`, if there are any and all are readable.
fn server_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut total = 0;
    for &pid in pids {
        match rss_kib(pid) {
            Ok(kib) => total += kib,
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot read server memory");
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
        Conn::Native(conn) => {
            let (mut reader, mut writer) = conn.into_parts();
            loop {
                let bytes = tokio::select! {
                    _ = stop.cancelled() => return true,
                    frame = reader.next() => match frame {
                        Some(Ok(bytes)) => bytes,
                        _ => break,
                    },
                };
                let Ok(frame) = serde_json::from_slice::<crate::conn::Frame>(&bytes) else {
                    continue;
                };
                match frame.msgid {
                    msgid::PING => {
                        let pong = frame_bytes(&json!({"msgid": msgid::PONG}));
                        if writer.write_all(&pong).await.is_err() {
                            break;
                        }
                        Counters::add(&counters.pings, 1);
                    }
                    msgid::KICKED => {
                        Counters::add(&counters.kicked, 1);
                        return false;
                    }
                    _ => {}
                }
            }
        }
        Conn::Legacy(conn) => {
            let (mut reader, _writer) = conn.into_parts();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return true,
                    frame = reader.next() => match frame {
                        Ok(Some(_)) => {}
                        _ => break,
                    },
                }
            }
        }
    }
    Counters::add(&counters.closed, 1);
    false
}
