//! `backlog`: how long a user who was away takes to catch up. Clients pair
//! up (0-1, 2-3, ...); the second of each pair logs out, the first sends it
//! `--backlog` numbered messages (each acked, so stored), then the second
//! logs in again and is timed from its login request until the last of
//! them has arrived. Checks that every acked message arrived once, in
//! order.

use std::time::{Duration, Instant};

use chatcore::client::{Client, ClientError, Event};
use chatcore::model::UserId;
use chatcore::protocol::{ErrorCode, msgid};
use futures::future::join_all;

use super::{Conn, Ctx, RunError};
use crate::metrics::{Counters, Latency, SeqSet};
use crate::payload::{Stamp, now_us};
use crate::report::Summary;

/// What one recipient saw while it caught up.
#[derive(Debug, Default)]
struct CatchUp {
    received: u64,
    duplicated: u64,
    reordered: u64,
}

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let clients = ctx.set_up(summary).await?;

    let mut pairs = Vec::new();
    let mut clients = clients.into_iter();
    while let (
        Some((Conn::Native { client: sender, .. }, _)),
        Some((
            Conn::Native {
                client: recipient, ..
            },
            id,
        )),
    ) = (clients.next(), clients.next())
    {
        pairs.push((sender, recipient, id));
    }

    // The load phase: filling the inboxes and catching up.
    ctx.begin_load().await;
    ctx.progress.phase("filling inboxes");
    let started = Instant::now();
    let filled = join_all(
        pairs
            .iter_mut()
            .enumerate()
            .map(|(pair, (sender, recipient, to))| fill(ctx, pair as u32, sender, recipient, *to)),
    )
    .await;
    for result in filled {
        result.map_err(|e| RunError::Setup(format!("filling an inbox: {e}")))?;
    }
    summary.load_s = started.elapsed().as_secs_f64();

    ctx.progress.phase("catching up");
    let latency = Latency::default();
    let password = &opts.password;
    let caught_up = join_all(
        pairs
            .iter_mut()
            .enumerate()
            .map(|(pair, (_, recipient, id))| {
                let latency = &latency;
                async move {
                    let started = Instant::now();
                    let seen = catch_up(ctx, pair as u32, recipient, *id, password).await;
                    latency.record(started.elapsed());
                    seen
                }
            }),
    )
    .await;
    ctx.cpu.end_load();

    let acked = Counters::get(&ctx.counters.acked);
    summary.sent = Counters::get(&ctx.counters.sent);
    summary.refused = Counters::get(&ctx.counters.refused);
    summary.acked = acked;
    summary.sent_per_s = summary.sent as f64 / summary.load_s.max(1e-9);
    summary.acked_per_s = acked as f64 / summary.load_s.max(1e-9);
    summary.expected_deliveries = acked;
    for seen in caught_up {
        let seen = seen.map_err(|e| RunError::Setup(format!("catching up: {e}")))?;
        summary.delivered += seen.received;
        summary.duplicated += seen.duplicated;
        summary.reordered += seen.reordered;
    }
    summary.lost = acked.saturating_sub(summary.delivered - summary.duplicated);
    summary.backlog_sync_ms = latency.summary();
    if summary.backlog_sync_ms.max > 0.0 {
        summary.throughput_msgs_per_s =
            summary.delivered as f64 / (summary.backlog_sync_ms.max / 1000.0);
    }
    Ok(())
}

/// Logs `recipient` out, then sends it the backlog from `sender`.
async fn fill(
    ctx: &Ctx,
    pair: u32,
    sender: &Client,
    recipient: &Client,
    to: UserId,
) -> Result<(), ClientError> {
    recipient.logout().await?;
    for seq in 1..=ctx.opts.backlog {
        let stamp = Stamp {
            sender: pair,
            seq,
            due_us: now_us(),
        };
        let text = stamp.text(ctx.opts.message_size);
        loop {
            Counters::add(&ctx.counters.sent, 1);
            match sender.send_to(to, &text).await {
                Ok(_) => break,
                // The server's request rate limit: a refused send is not
                // stored, so it is sent again after a pause, as a client
                // should. (Runs that time the fill raise the limit.)
                Err(e) if e.errno() == Some(ErrorCode::RateLimited.errno()) => {
                    Counters::add(&ctx.counters.refused, 1);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Counters::add(&ctx.counters.acked, 1);
    }
    Ok(())
}

/// Logs `recipient` in and reads until the whole backlog has arrived.
async fn catch_up(
    ctx: &Ctx,
    pair: u32,
    recipient: &mut Client,
    id: UserId,
    password: &str,
) -> Result<CatchUp, ClientError> {
    recipient.login(id, password).await?;
    let wait = ctx.opts.timeout();
    let mut seen = CatchUp::default();
    let (mut arrived, mut highest) = (SeqSet::default(), 0);
    while arrived.len() < ctx.opts.backlog {
        let event = tokio::time::timeout(wait, recipient.next_event())
            .await
            .map_err(|_| ClientError::Timeout(wait))?;
        let message = match event {
            Some(Event::Message(message)) => message,
            Some(_) => continue,
            None => return Err(ClientError::Closed),
        };
        if message.kind != msgid::ONE_CHAT {
            continue;
        }
        let Some(stamp) = Stamp::parse(&message.msg) else {
            continue;
        };
        if stamp.sender != pair {
            continue;
        }
        seen.received += 1;
        Counters::add(&ctx.counters.delivered, 1);
        if !arrived.insert(stamp.seq) {
            seen.duplicated += 1;
        } else if stamp.seq < highest {
            seen.reordered += 1;
        }
        highest = highest.max(stamp.seq);
    }
    Ok(seen)
}
