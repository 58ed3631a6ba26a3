//! `one-to-one` and `group`: clients send numbered messages on a schedule
//! (or as fast as their window of unacknowledged sends allows) and check
//! every delivery against what was acknowledged.
//!
//! One-to-one clients come in pairs (0 and 1, 2 and 3, ...) that send to
//! each other; with two `--addr` the two of a pair sit on different nodes.
//! Group clients fill groups of `--group-size` in order; the first
//! `--group-senders` members of each send to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chatcore::client::{Client, ClientError, ClientSender, Event, Sent};
use chatcore::model::{GroupId, Target, UserId};
use chatcore::protocol::{Chat, Request, SessionRequest};
use futures::StreamExt;
use futures::stream::{self, FuturesUnordered};
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Conn, Ctx, RunError};
use crate::legacy::{self, LegacyConn};
use crate::metrics::{Counters, Latency, Received, SeqSet};
use crate::options::{Options, Scenario};
use crate::payload::{Stamp, now_us};
use crate::report::Summary;

/// Pushes between two cumulative delivery acks.
const ACK_EVERY: u32 = 64;

/// Who sends where and who receives whom.
#[derive(Debug, Default)]
struct Plan {
    targets: Vec<Option<Target>>,
    /// The clients whose messages each client receives.
    sources: Vec<Vec<u32>>,
    /// Deliveries owed per message of each client.
    fanout: Vec<u64>,
}

/// The groups of a group run: member index ranges.
fn groups(opts: &Options) -> Vec<std::ops::Range<usize>> {
    (0..opts.clients)
        .step_by(opts.group_size)
        .map(|start| start..(start + opts.group_size).min(opts.clients))
        .collect()
}

fn one_to_one_plan(users: &[UserId]) -> Plan {
    let mut plan = Plan::default();
    for i in 0..users.len() {
        let partner = i ^ 1;
        plan.targets.push(Some(Target::User(users[partner])));
        plan.sources.push(vec![partner as u32]);
        plan.fanout.push(1);
    }
    plan
}

fn group_plan(opts: &Options, group_ids: &[GroupId]) -> Plan {
    let mut plan = Plan {
        targets: vec![None; opts.clients],
        sources: vec![Vec::new(); opts.clients],
        fanout: vec![0; opts.clients],
    };
    for (members, &group) in groups(opts).into_iter().zip(group_ids) {
        let senders = members.start..(members.start + opts.group_senders).min(members.end);
        for member in members.clone() {
            if senders.contains(&member) {
                plan.targets[member] = Some(Target::Group(group));
                plan.fanout[member] = (members.len() - 1) as u64;
            }
            plan.sources[member] = senders
                .clone()
                .filter(|&s| s != member)
                .map(|s| s as u32)
                .collect();
        }
    }
    plan
}

/// What one client saw: the messages of its own that count (acked, or
/// sent in legacy) and what it received.
#[derive(Debug, Default)]
struct ClientResult {
    basis: SeqSet,
    received: Received,
}

/// Shared by every client task of the load phase.
#[derive(Debug)]
struct Load {
    counters: Arc<Counters>,
    delivery: Latency,
    ack: Latency,
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    window: usize,
    message_size: usize,
    stop: CancellationToken,
}

impl Load {
    /// When client `index` first sends: paced clients are spread over one
    /// interval so that they do not all send at the same instant.
    fn first_due(&self, index: usize, clients: usize) -> Instant {
        match self.interval {
            Some(interval) => self.start + interval.mul_f64(index as f64 / clients as f64),
            None => self.start,
        }
    }

    /// Waits for a client's next send, on its schedule `due` (advanced by
    /// one interval) when paced; false once the load phase is over.
    async fn wait_turn(&self, due: &mut Instant) -> bool {
        match self.interval {
            Some(interval) => {
                if *due >= self.deadline {
                    return false;
                }
                sleep_until(*due).await;
                *due += interval;
                true
            }
            None => Instant::now() < self.deadline,
        }
    }

    /// Send `seq` of client `index` and when it was due: by the schedule
    /// when paced (`due` is already the next turn), so that a late send is
    /// charged its wait (no coordinated omission); now when unlimited.
    fn stamp(&self, index: u32, seq: u64, due: Instant) -> (Instant, Stamp) {
        let due_at = match self.interval {
            Some(interval) => due - interval,
            None => Instant::now(),
        };
        let due_us = now_us().saturating_sub(due_at.elapsed().as_micros() as u64);
        let stamp = Stamp {
            sender: index,
            seq,
            due_us,
        };
        (due_at, stamp)
    }

    /// Counts the outcome of one native send; false once the connection
    /// is gone.
    fn record_send(
        &self,
        (seq, due_at, result): SendOutcome,
        fanout: u64,
        acked: &mut SeqSet,
    ) -> bool {
        match result {
            Ok(_) => {
                self.ack.record(due_at.elapsed());
                acked.insert(seq);
                Counters::add(&self.counters.acked, 1);
                Counters::add(&self.counters.owed, fanout);
            }
            Err(ClientError::Server { errno, errmsg }) => {
                tracing::debug!(errno, errmsg, "send refused");
                Counters::add(&self.counters.refused, 1);
            }
            Err(ClientError::Closed) => return false,
            // Unanswered: it stays outstanding, as a lost ack would.
            Err(e) => tracing::warn!(error = %e, "send failed"),
        }
        true
    }

    fn record_delivery(&self, received: &mut Received, text: Option<&str>) {
        Counters::add(&self.counters.delivered, 1);
        let now = now_us();
        self.counters
            .last_delivery_us
            .fetch_max(now, Ordering::Relaxed);
        if let Some(stamp) = text.and_then(Stamp::parse) {
            self.delivery.record_us(now.saturating_sub(stamp.due_us));
            received.record(stamp.sender, stamp.seq);
        }
    }
}

pub(super) async fn run(ctx: &Ctx, summary: &mut Summary) -> Result<(), RunError> {
    let opts = &ctx.opts;
    let setup_started = std::time::Instant::now();
    ctx.progress.phase("setup");
    let clients = ctx.set_up_all(summary, setup_started).await?;
    let users: Vec<UserId> = clients.iter().map(|(_, id)| *id).collect();
    let plan = match opts.scenario {
        Scenario::Group => {
            ctx.progress.phase("groups");
            let group_ids = make_groups(ctx, &clients).await?;
            group_plan(opts, &group_ids)
        }
        _ => one_to_one_plan(&users),
    };
    ctx.fill_setup(summary, setup_started);

    ctx.begin_load().await;
    ctx.progress.phase("load");
    // A moment for every task to be spawned before the first send.
    let start = Instant::now() + Duration::from_millis(100);
    let load = Arc::new(Load {
        counters: Arc::clone(&ctx.counters),
        delivery: Latency::default(),
        ack: Latency::default(),
        start,
        deadline: start + opts.duration(),
        interval: opts.rate.interval(),
        window: opts.window,
        message_size: opts.message_size,
        stop: CancellationToken::new(),
    });
    // A send waits for its ack as long as the run may: an ack that comes
    // late is late, not lost.
    let send_timeout = opts.duration() + opts.grace() + opts.timeout();
    let mut tasks = Vec::with_capacity(clients.len());
    for (index, (conn, id)) in clients.into_iter().enumerate() {
        let load = Arc::clone(&load);
        let target = plan.targets[index];
        let fanout = plan.fanout[index];
        let first_due = load.first_due(index, opts.clients);
        tasks.push(tokio::spawn(async move {
            match conn {
                Conn::Native { mut client, .. } => {
                    client.set_timeout(send_timeout);
                    native_client(index as u32, client, target, fanout, first_due, load).await
                }
                Conn::Legacy(conn) => {
                    legacy_client(index as u32, id, conn, target, fanout, first_due, load).await
                }
            }
        }));
    }

    sleep_until(load.deadline).await;
    ctx.progress.phase("draining");
    let give_up = load.deadline + opts.grace();
    let counters = &ctx.counters;
    loop {
        let get = Counters::get;
        let outstanding = if opts.legacy {
            0
        } else {
            get(&counters.sent).saturating_sub(get(&counters.acked) + get(&counters.refused))
        };
        if outstanding == 0 && get(&counters.delivered) >= get(&counters.owed) {
            break;
        }
        if Instant::now() >= give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The drain is part of the load phase: the servers are still
    // delivering what was sent.
    ctx.cpu.end_load();
    load.stop.cancel();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_default());
    }

    let get = Counters::get;
    summary.sent = get(&counters.sent);
    summary.acked = get(&counters.acked);
    summary.refused = get(&counters.refused);
    summary.delivered = get(&counters.delivered);
    summary.closed = get(&counters.closed);
    summary.kicked = get(&counters.kicked);
    summary.pings_answered = get(&counters.pings);
    for (receiver, result) in results.iter().enumerate() {
        summary.duplicated += result.received.duplicated;
        summary.reordered += result.received.reordered;
        for &sender in &plan.sources[receiver] {
            let basis = &results[sender as usize].basis;
            summary.lost += match result.received.from.get(&sender) {
                Some(seen) => basis.missing_from(seen),
                None => basis.len(),
            };
        }
    }
    summary.expected_deliveries = results
        .iter()
        .zip(&plan.fanout)
        .map(|(result, fanout)| result.basis.len() * fanout)
        .sum();
    // Rates over the time deliveries kept arriving, at least the load time.
    let load_s = opts.duration();
    let last = get(&counters.last_delivery_us);
    let start_us = now_us().saturating_sub(load.start.elapsed().as_micros() as u64);
    let active = Duration::from_micros(last.saturating_sub(start_us)).max(load_s);
    let per_s = |n: u64| n as f64 / active.as_secs_f64();
    summary.load_s = load_s.as_secs_f64();
    summary.throughput_msgs_per_s = per_s(summary.delivered);
    summary.sent_per_s = per_s(summary.sent);
    summary.acked_per_s = per_s(summary.acked);
    summary.latency_ms = load.delivery.summary();
    summary.ack_latency_ms = load.ack.summary();
    Ok(())
}

/// The first member of each group creates it; the others join.
async fn make_groups(ctx: &Ctx, clients: &[(Conn, UserId)]) -> Result<Vec<GroupId>, RunError> {
    let opts = &ctx.opts;
    let mut group_ids = Vec::new();
    for (number, members) in groups(opts).into_iter().enumerate() {
        let Conn::Native {
            client: creator, ..
        } = &clients[members.start].0
        else {
            return Err(RunError::Options("groups need the native dialect".into()));
        };
        let id = creator
            .create_group(&format!("{}group{number}", ctx.prefix), "chat-load")
            .await
            .map_err(|e| RunError::Setup(format!("creating group {number}: {e}")))?;
        group_ids.push(id);
    }
    let group_size = opts.group_size;
    let joins = stream::iter(clients.iter().enumerate())
        .filter(|(index, _)| std::future::ready(index % group_size != 0))
        .map(|(index, (conn, _))| {
            let group = group_ids[index / group_size];
            async move {
                match conn {
                    Conn::Native { client, .. } => {
                        client.join_group(group).await.map_err(|e| (index, e))
                    }
                    Conn::Legacy(_) => Ok(()),
                }
            }
        })
        .buffer_unordered(opts.connect_concurrency)
        .collect::<Vec<_>>()
        .await;
    if let Some((index, e)) = joins.into_iter().find_map(Result::err) {
        return Err(RunError::Setup(format!(
            "client {index} joining its group: {e}"
        )));
    }
    Ok(group_ids)
}

/// One native send's number, when it was due, and its reply.
type SendOutcome = (u64, Instant, Result<Sent, ClientError>);

/// One native client: a sender task (if it sends) and this task reading
/// deliveries and acknowledging them.
async fn native_client(
    index: u32,
    client: Client,
    target: Option<Target>,
    fanout: u64,
    first_due: Instant,
    load: Arc<Load>,
) -> ClientResult {
    let (sender, mut events) = client.split();
    // Ends the sender with the run, or when this connection ends.
    let done = load.stop.child_token();
    let sending = target.map(|target| {
        tokio::spawn(send_native(
            index,
            target,
            fanout,
            first_due,
            sender.clone(),
            Arc::clone(&load),
            done.clone(),
        ))
    });

    let mut result = ClientResult::default();
    let mut unacked_pushes = 0;
    loop {
        let event = tokio::select! {
            _ = load.stop.cancelled() => break,
            event = events.next() => match event {
                Some(event) => event,
                None => {
                    Counters::add(&load.counters.closed, 1);
                    break;
                }
            },
        };
        match event {
            Event::Message(message) => {
                load.record_delivery(&mut result.received, Some(&message.msg));
                if let Some(seq) = message.seq {
                    unacked_pushes += 1;
                    if unacked_pushes >= ACK_EVERY {
                        unacked_pushes = 0;
                        // Best effort: a closed connection is seen above.
                        let _ = sender.ack(seq).await;
                    }
                }
            }
            Event::Kicked { errno, errmsg } => {
                tracing::debug!(errno, errmsg, "kicked");
                Counters::add(&load.counters.kicked, 1);
                break;
            }
            Event::Error { errno, errmsg } => tracing::debug!(errno, errmsg, "server error"),
            Event::Presence { .. } => {}
        }
    }
    done.cancel();
    if let Some(sending) = sending {
        result.basis = sending.await.unwrap_or_default();
    }
    Counters::add(&load.counters.pings, sender.pings_answered());
    result
}

/// Sends numbered messages to `target` on the client's schedule, each
/// awaiting its ack while the next go out, at most `window` at once;
/// returns the numbers acked before `done`.
async fn send_native(
    index: u32,
    target: Target,
    fanout: u64,
    first_due: Instant,
    sender: ClientSender,
    load: Arc<Load>,
    done: CancellationToken,
) -> SeqSet {
    let mut acked = SeqSet::default();
    let mut in_flight = FuturesUnordered::new();
    let mut due = first_due;
    'sending: for seq in 1.. {
        // Its turn; acks are counted meanwhile.
        {
            let turn = load.wait_turn(&mut due);
            tokio::pin!(turn);
            loop {
                tokio::select! {
                    go = &mut turn => if go { break } else { break 'sending },
                    Some(outcome) = in_flight.next() => {
                        if !load.record_send(outcome, fanout, &mut acked) {
                            break 'sending;
                        }
                    }
                    _ = done.cancelled() => return acked,
                }
            }
        }
        // A place in the window of unacknowledged sends, until the load
        // phase ends.
        while in_flight.len() >= load.window {
            tokio::select! {
                Some(outcome) = in_flight.next() => {
                    if !load.record_send(outcome, fanout, &mut acked) {
                        break 'sending;
                    }
                }
                _ = sleep_until(load.deadline) => break 'sending,
                _ = done.cancelled() => return acked,
            }
        }
        // Open loop: a send held up by a full window is charged from when
        // it was due; unlimited: from now.
        let (due_at, stamp) = load.stamp(index, seq, due);
        let text = stamp.text(load.message_size);
        let sender = &sender;
        in_flight.push(async move { (seq, due_at, sender.send(target, &text, None).await) });
        Counters::add(&load.counters.sent, 1);
    }
    // The acks of the last sends, until the run or the connection ends.
    loop {
        tokio::select! {
            outcome = in_flight.next() => match outcome {
                Some(outcome) => {
                    if !load.record_send(outcome, fanout, &mut acked) {
                        break;
                    }
                }
                None => break,
            },
            _ = done.cancelled() => break,
        }
    }
    acked
}

/// One legacy client: no acks, so what counts is what was written; every
/// request is its own write, as the seed's client does.
async fn legacy_client(
    index: u32,
    id: UserId,
    conn: LegacyConn,
    target: Option<Target>,
    fanout: u64,
    first_due: Instant,
    load: Arc<Load>,
) -> ClientResult {
    let (mut reader, mut writer) = conn.into_parts();
    let sender_load = Arc::clone(&load);
    // The sender hands its half back: dropping it would shut the socket's
    // write side, and the server would end the session before the last
    // deliveries to this client arrive.
    let sending = tokio::spawn(async move {
        let mut sent = SeqSet::default();
        let Some(target @ Target::User(_)) = target else {
            return (sent, Some(writer));
        };
        let load = sender_load;
        let mut due = first_due;
        for seq in 1.. {
            if !load.wait_turn(&mut due).await {
                break;
            }
            let (_, stamp) = load.stamp(index, seq, due);
            let bytes = legacy::request_bytes(Request::Session(SessionRequest::Chat(Chat {
                id: Some(id),
                target,
                msg: stamp.text(load.message_size),
                cmid: None,
            })));
            let written = tokio::select! {
                written = writer.write_all(&bytes) => written,
                _ = sleep_until(load.deadline) => break,
            };
            if written.is_err() {
                break;
            }
            sent.insert(seq);
            Counters::add(&load.counters.sent, 1);
            Counters::add(&load.counters.owed, fanout);
        }
        (sent, Some(writer))
    });

    let mut result = ClientResult::default();
    loop {
        let frame = tokio::select! {
            _ = load.stop.cancelled() => break,
            frame = reader.next() => match frame {
                Ok(Some(frame)) => frame,
                _ => {
                    Counters::add(&load.counters.closed, 1);
                    break;
                }
            },
        };
        if frame.is_chat() {
            load.record_delivery(&mut result.received, frame.msg.as_deref());
        }
    }
    if !sending.is_finished() && load.stop.is_cancelled() {
        // Past the grace period a sender stuck on a write gives up.
        sending.abort();
    }
    let (sent, writer) = sending.await.unwrap_or_default();
    result.basis = sent;
    drop(writer);
    result
}
