//! `RedisBus`: doorbells between nodes over Redis pub/sub.
//!
//! Channel layout: one channel per user, `<prefix>:user:<id>`, as in the
//! seed (the prefix, `chat` by default, lets clusters share a Redis).
//! A node subscribes to the channels of the users it holds, so a publisher
//! needs no lookup of where a user is, and Redis delivers each event only to
//! the node(s) that care. The cost is one SUBSCRIBE per login and one
//! subscription per online user in Redis (cheap: a dict entry each).
//! Publishing uses a pooled multiplexed connection; subscriptions live on one
//! dedicated connection per node, which is re-established with backoff. After
//! any (re)subscription the node is told to `Resync`, since events published
//! meanwhile were lost: the store has them.
//!
//! On a Redis Cluster the bus uses sharded pub/sub (`SPUBLISH` /
//! `SSUBSCRIBE`), so that each event touches only the shard of its
//! channel; the channel is tagged with the user, `<prefix>:user:{<id>}`,
//! which puts it in the slot of the user's presence record. The
//! subscriptions live on one cluster connection per node, speaking RESP3
//! (messages arrive as pushes). When a slot moves, Redis ends its
//! subscriptions (an unsolicited `sunsubscribe`); when a connection drops
//! (a master died, its replica took over) the subscriptions on it are gone:
//! either way the node subscribes again (the cluster connection follows
//! `MOVED` to the new owner) and resyncs the users concerned. Every 2 s it
//! also reads which master serves which slots (`CLUSTER SLOTS`): when that
//! changes, it subscribes every user again, whatever the pushes said.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Bus, BusError, BusEvent, BusReceiver, KickReason};
use crate::model::{Message, MessageId, Seq, Target, UserId, UserInfo};
use crate::presence::SessionId;
use crate::redis_target::{Commands, RedisTarget};
use crate::telemetry;

/// How often the subscriber checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Channels per SUBSCRIBE command.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// SSUBSCRIBEs in flight at once on a Cluster (one per channel: the
/// channels of one command must share a slot).
const SSUBSCRIBE_CONCURRENCY: usize = 64;
/// The longest one SSUBSCRIBE or SUNSUBSCRIBE waits; it is retried after.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);
/// The longest a publish waits on a Redis Cluster.
const CLUSTER_PUBLISH_WAIT: Duration = Duration::from_secs(2);
/// Pushes (messages, subscription changes) queued from the cluster
/// connection; beyond it they are dropped and every user resyncs.
const PUSH_QUEUE: usize = 4096;
/// How often a node renews its roster entry (with the subscriber's ping).
const ROSTER_RENEW: Duration = PING_EVERY;
/// Roster entries not renewed for this long belong to dead nodes.
const ROSTER_FORGET_AFTER: Duration = Duration::from_secs(60);

/// The channel of `user`'s events; tagged with the user on a Cluster.
fn channel(prefix: &str, user: UserId, tagged: bool) -> String {
    if tagged {
        format!("{prefix}:user:{{{user}}}")
    } else {
        format!("{prefix}:user:{user}")
    }
}

/// The channel of events for `node` itself (a group message's doorbells
/// for all its members there); tagged with the node on a Cluster.
fn node_channel(prefix: &str, node: &str, tagged: bool) -> String {
    if tagged {
        format!("{prefix}:node:{{{node}}}")
    } else {
        format!("{prefix}:node:{node}")
    }
}

/// The roster of nodes listening on their own channels (a sorted set of
/// node names by last renewal); tagged with the prefix on a Cluster.
fn roster_key(prefix: &str, tagged: bool) -> String {
    if tagged {
        format!("{{{prefix}}}:bus:nodes")
    } else {
        format!("{prefix}:bus:nodes")
    }
}

/// This node's place in the roster, kept by its subscriber.
#[derive(Debug)]
struct RosterEntry {
    commands: Commands,
    key: Arc<str>,
    node: Arc<str>,
    /// Whether a renewal has worked yet, so that an entry found missing
    /// later is worth a warning.
    listed: AtomicBool,
}

impl RosterEntry {
    /// Lists the node (again) and prunes dead nodes' entries; `true` when
    /// the node's entry was missing, so that doorbells may have passed it
    /// by.
    async fn renew(&self) -> redis::RedisResult<bool> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let stale = now.saturating_sub(ROSTER_FORGET_AFTER);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&*self.key)
            .arg("-inf")
            .arg(format!("({}", stale.as_millis()))
            .ignore()
            .cmd("ZADD")
            .arg(&*self.key)
            .arg(now.as_millis() as u64)
            .arg(&*self.node);
        let (added,): (u64,) = self.commands.pipe(&pipe).await?;
        Ok(added > 0)
    }

    /// Renews the entry; `true` when every user must resync because the
    /// entry was missing (doorbells may have passed the node by). A
    /// failure is only logged: the next renewal that works finds the entry
    /// gone if it is.
    async fn renew_and_check(&self) -> bool {
        let renewed = tokio::time::timeout(ROSTER_RENEW * 2, self.renew())
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))));
        match renewed {
            Ok(added) => {
                if added && self.listed.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        node = %self.node,
                        "this node was missing from the bus roster (Redis lost it, or this \
                         node's clock lags the others' by over a minute); every user resyncs"
                    );
                }
                added
            }
            Err(e) => {
                tracing::warn!(error = %e, "bus roster not renewed");
                false
            }
        }
    }

    /// Renews the entry on the subscriber's schedule, and has every user
    /// resync when it had vanished; `false` once the node takes no more
    /// events.
    async fn keep(&self, tx: &mpsc::Sender<BusEvent>) -> bool {
        !self.renew_and_check().await || tx.send(BusEvent::Resync { user: None }).await.is_ok()
    }

    /// Takes the node off the roster (it stops listening).
    async fn leave(&self) {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(&*self.key).arg(&*self.node);
        match tokio::time::timeout(ROSTER_RENEW, self.commands.query::<()>(&zrem)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "bus roster entry left behind"),
            Err(_) => tracing::debug!("bus roster entry left behind: timed out"),
        }
    }
}

/// The user of a tagged channel of this prefix.
fn channel_user(prefix: &str, channel: &[u8]) -> Option<UserId> {
    let rest = channel.strip_prefix(prefix.as_bytes())?;
    let id = rest.strip_prefix(b":user:{")?.strip_suffix(b"}")?;
    std::str::from_utf8(id).ok()?.parse().ok().map(UserId)
}

/// A bus event as it travels through Redis.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Wire {
    #[serde(rename = "d")]
    Deliver { u: UserId, s: Seq, m: WireMessage },
    /// `why`: `"admin"` for `KickReason::Admin`, left out for `Replaced`,
    /// which is also what a node that predates it assumes.
    #[serde(rename = "k")]
    Kick {
        u: UserId,
        sid: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        why: Option<String>,
    },
    #[serde(rename = "p")]
    Presence { u: UserId, f: UserId },
    /// One message's doorbells for several users, each with its seq.
    #[serde(rename = "n")]
    Deliveries {
        to: Vec<(UserId, Seq)>,
        m: WireMessage,
    },
}

#[derive(Serialize, Deserialize)]
struct WireMessage {
    id: MessageId,
    from: UserId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    to: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    group: Option<crate::model::GroupId>,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cmid: Option<String>,
    at: i64,
}

impl From<&Message> for WireMessage {
    fn from(m: &Message) -> Self {
        let (to, group) = match m.target {
            Target::User(u) => (Some(u), None),
            Target::Group(g) => (None, Some(g)),
        };
        WireMessage {
            id: m.id,
            from: m.sender.id,
            name: m.sender.name.clone(),
            to,
            group,
            body: m.body.clone(),
            cmid: m.client_msg_id.clone(),
            at: m.sent_at_ms,
        }
    }
}

impl WireMessage {
    fn into_message(self) -> Option<Message> {
        let target = match (self.to, self.group) {
            (Some(u), None) => Target::User(u),
            (None, Some(g)) => Target::Group(g),
            _ => return None,
        };
        Some(Message {
            id: self.id,
            sender: UserInfo {
                id: self.from,
                name: self.name,
            },
            target,
            body: self.body,
            client_msg_id: self.cmid,
            sent_at_ms: self.at,
        })
    }
}

fn encode(event: &BusEvent) -> Option<(UserId, String)> {
    let wire = match event {
        BusEvent::Deliver { user, seq, message } => Wire::Deliver {
            u: *user,
            s: *seq,
            m: WireMessage::from(message.as_ref()),
        },
        BusEvent::Kick {
            user,
            session,
            reason,
        } => Wire::Kick {
            u: *user,
            sid: session.0,
            why: match reason {
                KickReason::Replaced => None,
                KickReason::Admin => Some("admin".to_owned()),
            },
        },
        BusEvent::Presence { user, friend } => Wire::Presence {
            u: *user,
            f: *friend,
        },
        // Resync is a node's own business, never published.
        BusEvent::Resync { .. } => return None,
    };
    let user = event.user()?;
    serde_json::to_string(&wire).ok().map(|json| (user, json))
}

/// The events of one published payload: one, or a message's doorbells
/// for several users.
fn decode(payload: &[u8]) -> Option<Vec<BusEvent>> {
    let event = match serde_json::from_slice(payload).ok()? {
        Wire::Deliver { u, s, m } => BusEvent::Deliver {
            user: u,
            seq: s,
            message: Arc::new(m.into_message()?),
        },
        Wire::Kick { u, sid, why } => BusEvent::Kick {
            user: u,
            session: SessionId(sid),
            reason: match why.as_deref() {
                Some("admin") => KickReason::Admin,
                _ => KickReason::Replaced,
            },
        },
        Wire::Presence { u, f } => BusEvent::Presence { user: u, friend: f },
        Wire::Deliveries { to, m } => {
            let message = Arc::new(m.into_message()?);
            return Some(BusEvent::deliveries(&message, to).collect());
        }
    };
    Some(vec![event])
}

/// Hands `events` to the node; `false` once it takes no more. Of a
/// message's doorbells for several users (sent to every node) it keeps
/// those of the users this node holds.
async fn forward(tx: &mpsc::Sender<BusEvent>, wanted: &Wanted, mut events: Vec<BusEvent>) -> bool {
    if events.len() > 1 {
        let users = wanted.lock();
        events.retain(|event| match event {
            BusEvent::Deliver { user, .. } => users.contains(user),
            _ => true,
        });
    }
    for event in events {
        if tx.send(event).await.is_err() {
            return false;
        }
    }
    true
}

/// Observes the subscriber connection, for metrics and tests.
#[derive(Debug, Default)]
struct BusStats {
    /// Times the subscriber connection was (re)established.
    pub connects: std::sync::atomic::AtomicU64,
    /// Whether the subscriber connection is up now.
    pub subscribed: std::sync::atomic::AtomicBool,
}

/// One node's endpoint of a Redis bus.
#[derive(Debug)]
pub struct RedisBus {
    commands: Commands,
    prefix: Arc<str>,
    /// Where the publisher reads the roster of nodes.
    roster_key: Arc<str>,
    wanted: Arc<Wanted>,
    stats: Arc<BusStats>,
}

/// The users this node wants events for, and a wake-up for the subscriber.
#[derive(Debug, Default)]
struct Wanted {
    users: Mutex<HashSet<UserId>>,
    changed: Notify,
}

impl Wanted {
    fn lock(&self) -> MutexGuard<'_, HashSet<UserId>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RedisBus {
    /// Connects to Redis at `url` and starts the subscriber on a task of
    /// `tasks` (stopped by `shutdown`). Channel names start with `prefix`;
    /// `node` is this node's name (the one its presence records). Received
    /// events go to the returned receiver, which holds at most `capacity`
    /// (the subscriber waits when it is full).
    pub async fn connect(
        url: &str,
        prefix: &str,
        node: &str,
        capacity: usize,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(RedisBus, BusReceiver), BusError> {
        let target = RedisTarget::Single(url.to_owned());
        RedisBus::connect_to(&target, prefix, node, capacity, tasks, shutdown).await
    }

    /// [`RedisBus::connect`] on one Redis or a Redis Cluster.
    pub async fn connect_to(
        target: &RedisTarget,
        prefix: &str,
        node: &str,
        capacity: usize,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(RedisBus, BusReceiver), BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(e.to_string());
        // Fails early when Redis is not there at all.
        let commands = Commands::connect(target)
            .await
            .map_err(|e| unavailable(&e))?;

        let (tx, rx) = mpsc::channel(capacity.max(1));
        let wanted = Arc::new(Wanted::default());
        let stats = Arc::new(BusStats::default());
        let prefix: Arc<str> = Arc::from(prefix);
        let own_channel: Arc<str> = node_channel(&prefix, node, target.is_cluster()).into();
        let roster_key: Arc<str> = roster_key(&prefix, target.is_cluster()).into();
        let listener = Listener {
            prefix: Arc::clone(&prefix),
            own_channel,
            roster: RosterEntry {
                commands: commands.clone(),
                key: Arc::clone(&roster_key),
                node: node.into(),
                listed: AtomicBool::new(false),
            },
            wanted: Arc::clone(&wanted),
            stats: Arc::clone(&stats),
            tx,
        };
        match target {
            RedisTarget::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| unavailable(&e))?;
                tasks.spawn(subscriber(client, listener, shutdown));
            }
            RedisTarget::Cluster(nodes) => {
                tasks.spawn(cluster_subscriber(nodes.clone(), listener, shutdown));
            }
        }
        Ok((
            RedisBus {
                commands,
                prefix,
                roster_key,
                wanted,
                stats,
            },
            rx,
        ))
    }
}

impl RedisBus {
    /// Runs a command (or several) for a publish. During a failover the
    /// cluster connection retries until the replica took over; the
    /// sender's ack does not wait that long (the recipients refill once
    /// their subscriptions are back).
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BusError> {
        let unavailable = |e: redis::RedisError| BusError::Unavailable(e.to_string());
        if !self.commands.is_cluster() {
            return command.await.map_err(unavailable);
        }
        tokio::time::timeout(CLUSTER_PUBLISH_WAIT, command)
            .await
            .map_err(|_| BusError::Unavailable("publishing timed out".to_owned()))?
            .map_err(unavailable)
    }

    /// Publishes one message's doorbells for `recipients` once to each of
    /// `nodes`' own channels.
    async fn publish_to_nodes(
        &self,
        nodes: &[String],
        message: &Message,
        recipients: Vec<(UserId, Seq)>,
    ) -> Result<(), BusError> {
        let wire = Wire::Deliveries {
            to: recipients,
            m: WireMessage::from(message),
        };
        let payload =
            serde_json::to_string(&wire).map_err(|e| BusError::Unavailable(e.to_string()))?;
        let cluster = self.commands.is_cluster();
        let publishes = nodes
            .iter()
            .map(|node| {
                let mut publish = redis::cmd(if cluster { "SPUBLISH" } else { "PUBLISH" });
                publish
                    .arg(node_channel(&self.prefix, node, cluster))
                    .arg(&payload);
                publish
            })
            .collect();
        self.bounded(self.commands.each::<redis::Value>(publishes))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<(), BusError> {
        let encoded: Vec<(UserId, String)> = events.iter().filter_map(encode).collect();
        if encoded.is_empty() {
            return Ok(());
        }
        if !self.commands.is_cluster() {
            let mut pipe = redis::pipe();
            for (user, payload) in encoded {
                pipe.cmd("PUBLISH")
                    .arg(channel(&self.prefix, user, false))
                    .arg(payload)
                    .ignore();
            }
            return self.bounded(self.commands.pipe::<()>(&pipe)).await;
        }
        // A pipeline per user (one channel, one slot) keeps each user's
        // events in order; users go side by side.
        let mut pipes: Vec<redis::Pipeline> = Vec::new();
        let mut pipe_of: HashMap<UserId, usize> = HashMap::new();
        for (user, payload) in encoded {
            let i = *pipe_of.entry(user).or_insert_with(|| {
                pipes.push(redis::pipe());
                pipes.len() - 1
            });
            pipes[i]
                .cmd("SPUBLISH")
                .arg(channel(&self.prefix, user, true))
                .arg(payload)
                .ignore();
        }
        let published =
            futures::future::try_join_all(pipes.iter().map(|pipe| self.commands.pipe::<()>(pipe)));
        self.bounded(published).await?;
        Ok(())
    }

    async fn publish_deliveries(
        &self,
        message: Arc<Message>,
        recipients: Vec<(UserId, Seq)>,
    ) -> Result<(), BusError> {
        if recipients.len() > 1 {
            let mut zrange = redis::cmd("ZRANGE");
            zrange.arg(&*self.roster_key).arg(0).arg(-1);
            match self
                .bounded(self.commands.query::<Vec<String>>(&zrange))
                .await
            {
                // An empty roster is Redis that forgot it: each node lists
                // itself again within seconds, but users' channels work now.
                Ok(nodes) if !nodes.is_empty() && nodes.len() < recipients.len() => {
                    return self.publish_to_nodes(&nodes, &message, recipients).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "bus roster unreadable; ringing each recipient");
                }
            }
        }
        let events = BusEvent::deliveries(&message, recipients).collect();
        self.publish(events).await
    }

    fn subscribe(&self, user: UserId) {
        if self.wanted.lock().insert(user) {
            self.wanted.changed.notify_one();
        }
    }

    fn unsubscribe(&self, user: UserId) {
        if self.wanted.lock().remove(&user) {
            self.wanted.changed.notify_one();
        }
    }

    async fn ping(&self) -> Result<(), BusError> {
        if !self.stats.subscribed.load(Ordering::Relaxed) {
            return Err(BusError::Unavailable(
                "the subscriber connection is down".to_owned(),
            ));
        }
        self.commands
            .query::<()>(&redis::cmd("PING"))
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }
}

/// What a node's subscriber task works with, on either deployment.
struct Listener {
    /// Users' channels start with it.
    prefix: Arc<str>,
    /// The node's own channel.
    own_channel: Arc<str>,
    roster: RosterEntry,
    /// The users whose channels the node listens on.
    wanted: Arc<Wanted>,
    stats: Arc<BusStats>,
    /// Where received events go.
    tx: mpsc::Sender<BusEvent>,
}

/// Serves each connection `connect` makes with `serve` until the node
/// stops (`shutdown`, or `serve` returns `Ok`: the node takes no more
/// events), reconnecting with backoff when a connection fails; then takes
/// the node off the roster.
async fn keep_connected<C, Connect, Serve>(
    listener: &Listener,
    shutdown: &CancellationToken,
    mut connect: impl FnMut() -> Connect,
    mut serve: impl FnMut(C) -> Serve,
) where
    Connect: Future<Output = redis::RedisResult<C>>,
    Serve: Future<Output = redis::RedisResult<()>>,
{
    let stats = &listener.stats;
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => break,
            connected = connect() => connected,
        };
        match connected {
            Ok(conn) => {
                if stats.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                    telemetry::bus_reconnected();
                }
                backoff = Duration::from_millis(50);
                // Shutdown interrupts the connection wherever it waits (a
                // SUBSCRIBE, a full queue), so the task ends promptly.
                let served = tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    served = serve(conn) => served,
                };
                stats.subscribed.store(false, Ordering::Relaxed);
                match served {
                    Ok(()) => break,
                    Err(e) => tracing::warn!(error = %e, "bus subscriber lost; reconnecting"),
                }
            }
            Err(e) => tracing::warn!(error = %e, ?backoff, "bus subscriber cannot connect"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    listener.roster.leave().await;
}

/// Keeps one subscriber connection alive and its subscriptions equal to
/// `wanted`, forwarding every event to `tx`.
async fn subscriber(client: redis::Client, listener: Listener, shutdown: CancellationToken) {
    keep_connected(
        &listener,
        &shutdown,
        || client.get_async_pubsub(),
        |pubsub| serve(pubsub, &listener),
    )
    .await;
}

/// Runs one subscriber connection until it fails (`Err`) or the node stops
/// taking events (`Ok`).
async fn serve(pubsub: redis::aio::PubSub, listener: &Listener) -> redis::RedisResult<()> {
    let Listener {
        prefix,
        own_channel,
        roster,
        wanted,
        stats,
        tx,
    } = listener;
    stats.subscribed.store(true, Ordering::Relaxed);
    let (mut sink, mut stream) = pubsub.split();
    // The node's own channel first, then its roster entry: every user is
    // then subscribed (and resynced) after both, so nothing sent to the
    // node before they took is missed.
    sink.subscribe(&**own_channel).await?;
    roster.renew_and_check().await;
    let mut subscribed: HashSet<UserId> = HashSet::new();
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        // Bring the subscriptions in line with what the hub wants.
        let (add, remove): (Vec<UserId>, Vec<UserId>) = {
            let users = wanted.lock();
            (
                users.difference(&subscribed).copied().collect(),
                subscribed.difference(&users).copied().collect(),
            )
        };
        for chunk in remove.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(|&u| channel(prefix, u, false)).collect();
            sink.unsubscribe(&channels).await?;
            for user in chunk {
                subscribed.remove(user);
            }
        }
        for chunk in add.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(|&u| channel(prefix, u, false)).collect();
            sink.subscribe(&channels).await?;
            subscribed.extend(chunk.iter().copied());
            // Events published before the subscription took (or while no
            // connection listened, after a reconnect) are in the store; the
            // sessions refill from there.
            for &user in chunk {
                if tx
                    .send(BusEvent::Resync { user: Some(user) })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        }
        tokio::select! {
            _ = wanted.changed.notified() => {}
            _ = ping.tick() => {
                // A subscribed connection answers PING with an array, so
                // take whatever value comes back.
                tokio::time::timeout(PING_EVERY * 2, sink.ping::<redis::Value>())
                    .await
                    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "ping timed out")))??;
                if !roster.keep(tx).await {
                    return Ok(());
                }
            }
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscriber connection closed")));
                };
                match decode(msg.get_payload_bytes()) {
                    Some(events) => {
                        if !forward(tx, wanted, events).await {
                            return Ok(());
                        }
                    }
                    None => tracing::warn!(channel = msg.get_channel_name(), "unreadable bus event"),
                }
            }
        }
    }
}

/// Hands the cluster connection's pushes to the subscriber without ever
/// blocking the connection: when the queue is full a push is dropped and
/// `overflowed` set, so that every user resyncs.
struct Pushes {
    tx: mpsc::Sender<PushInfo>,
    overflowed: Arc<AtomicBool>,
}

impl redis::aio::AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        match self.tx.try_send(info) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(redis::aio::SendError),
        }
    }
}

/// [`subscriber`] on a Redis Cluster: one cluster connection (RESP3)
/// holding this node's sharded subscriptions, kept equal to `wanted`.
async fn cluster_subscriber(nodes: Vec<String>, listener: Listener, shutdown: CancellationToken) {
    keep_connected(
        &listener,
        &shutdown,
        || {
            // Each connection queues its own pushes.
            let (push_tx, push_rx) = mpsc::channel(PUSH_QUEUE);
            let overflowed = Arc::new(AtomicBool::new(false));
            let pushes = Pushes {
                tx: push_tx,
                overflowed: Arc::clone(&overflowed),
            };
            let client = RedisTarget::cluster_builder(&nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(pushes)
                .build();
            async move {
                let conn = client?.get_async_connection().await?;
                Ok((conn, push_rx, overflowed))
            }
        },
        |(conn, push_rx, overflowed)| {
            let listener = &listener;
            async move { serve_cluster(conn, push_rx, &overflowed, listener).await }
        },
    )
    .await;
}

/// Runs one cluster connection's subscriptions until the node stops taking
/// events (`Ok`) or the connection is gone for good (`Err`). Failed
/// (un)subscriptions are retried with backoff on the same connection,
/// which repairs itself (reconnects, follows failovers and `MOVED`).
async fn serve_cluster(
    conn: ClusterConnection,
    mut pushes: mpsc::Receiver<PushInfo>,
    overflowed: &AtomicBool,
    listener: &Listener,
) -> redis::RedisResult<()> {
    let Listener {
        prefix,
        own_channel,
        roster,
        wanted,
        stats,
        tx,
    } = listener;
    let mut subscribed = ClusterSubscriptions::default();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut backoff = Duration::from_millis(50);
    let mut topology: Option<Vec<String>> = None;
    loop {
        if overflowed.swap(false, Ordering::Relaxed) {
            tracing::warn!("bus pushes overflowed; every user resyncs");
            if tx.send(BusEvent::Resync { user: None }).await.is_err() {
                return Ok(());
            }
        }
        if retry_at.is_none_or(|at| tokio::time::Instant::now() >= at) {
            match sync_cluster(&conn, listener, &mut subscribed).await {
                Ok(true) => {
                    retry_at = None;
                    backoff = Duration::from_millis(50);
                    stats.subscribed.store(true, Ordering::Relaxed);
                }
                Ok(false) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, ?backoff, "bus subscriptions failed; retrying");
                    stats.subscribed.store(false, Ordering::Relaxed);
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wanted.changed.notified() => {}
            _ = retry => {}
            _ = ping.tick() => {
                // Which master serves which slots: when that changes (a
                // failover, a slot moved), every subscription is made
                // again, whatever the pushes said.
                let slots = tokio::time::timeout(
                    PING_EVERY * 2,
                    redis::cmd("CLUSTER").arg("SLOTS").query_async::<redis::Value>(&mut conn.clone()),
                )
                .await;
                let up = match slots.ok().and_then(Result::ok).as_ref().and_then(masters) {
                    Some(now) => {
                        if topology.as_ref().is_some_and(|before| *before != now) {
                            tracing::info!("the Redis Cluster's masters changed; subscribing again");
                            subscribed = ClusterSubscriptions::default();
                        }
                        topology = Some(now);
                        retry_at.is_none()
                    }
                    None => false,
                };
                stats.subscribed.store(up, Ordering::Relaxed);
                if subscribed.own && !roster.keep(tx).await {
                    return Ok(());
                }
            }
            push = pushes.recv() => {
                let Some(push) = push else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "cluster connection closed")));
                };
                match push.kind {
                    PushKind::SMessage => {
                        let payload = push.data.get(1).and_then(|v| match v {
                            redis::Value::BulkString(bytes) => Some(bytes.as_slice()),
                            _ => None,
                        });
                        match payload.and_then(decode) {
                            Some(events) => {
                                if !forward(tx, wanted, events).await {
                                    return Ok(());
                                }
                            }
                            None => tracing::warn!("unreadable bus event"),
                        }
                    }
                    PushKind::SUnsubscribe => {
                        // Unasked (a slot moved away) or the echo of our
                        // own: either way, subscribe again if wanted.
                        let name = push.data.first().and_then(|v| match v {
                            redis::Value::BulkString(bytes) => Some(bytes.as_slice()),
                            _ => None,
                        });
                        if name == Some(own_channel.as_bytes()) {
                            tracing::debug!("the node's bus subscription ended by Redis; subscribing again");
                            subscribed.own = false;
                        } else if let Some(user) = name.and_then(|n| channel_user(prefix, n))
                            && subscribed.users.remove(&user)
                        {
                            tracing::debug!(%user, "bus subscription ended by Redis; subscribing again");
                        }
                    }
                    PushKind::Disconnection => {
                        // A node's connection dropped, and the
                        // subscriptions on it; we cannot tell which.
                        tracing::warn!("a bus cluster connection dropped; subscribing again");
                        subscribed = ClusterSubscriptions::default();
                        stats.subscribed.store(false, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The masters of a `CLUSTER SLOTS` answer, as sorted `start-end@addr`
/// entries.
fn masters(slots: &redis::Value) -> Option<Vec<String>> {
    let redis::Value::Array(ranges) = slots else {
        return None;
    };
    let mut out: Vec<String> = ranges
        .iter()
        .filter_map(|range| match range {
            redis::Value::Array(parts) => match parts.get(..3)? {
                [start, end, redis::Value::Array(master)] => {
                    Some(format!("{start:?}-{end:?}@{:?}", master.get(..2)?))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    out.sort();
    Some(out)
}

/// What a cluster connection is subscribed to.
#[derive(Debug, Default)]
struct ClusterSubscriptions {
    /// The node's own channel.
    own: bool,
    users: HashSet<UserId>,
}

/// Brings the cluster subscriptions in line with `wanted` (and the node's
/// own channel), sending a `Resync` for each user newly subscribed, and
/// for every user when the node's own channel is. `Ok(false)` when the
/// node takes no more events; `Err` when some (un)subscription failed
/// (those stay to do).
async fn sync_cluster(
    conn: &ClusterConnection,
    listener: &Listener,
    subscriptions: &mut ClusterSubscriptions,
) -> redis::RedisResult<bool> {
    let Listener {
        prefix,
        own_channel,
        roster,
        wanted,
        tx,
        ..
    } = listener;
    if !subscriptions.own {
        tokio::time::timeout(SUBSCRIBE_WAIT, conn.clone().ssubscribe(&**own_channel))
            .await
            .map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Io, "subscription change timed out"))
            })??;
        subscriptions.own = true;
        roster.renew_and_check().await;
        // Doorbells for this node's users sent while it was down (or while
        // it was missing from the roster) are in the store; its users' own
        // channels do not cover them.
        if tx.send(BusEvent::Resync { user: None }).await.is_err() {
            return Ok(false);
        }
    }
    let subscribed = &mut subscriptions.users;
    let (add, remove): (Vec<UserId>, Vec<UserId>) = {
        let users = wanted.lock();
        (
            users.difference(subscribed).copied().collect(),
            subscribed.difference(&users).copied().collect(),
        )
    };
    let mut failed = None;
    let mut results = futures::stream::iter(remove.into_iter().map(|user| (user, false)))
        .chain(futures::stream::iter(
            add.into_iter().map(|user| (user, true)),
        ))
        .map(|(user, subscribe)| {
            let mut conn = conn.clone();
            let name = channel(prefix, user, true);
            async move {
                let change = async {
                    if subscribe {
                        conn.ssubscribe(name).await
                    } else {
                        conn.sunsubscribe(name).await
                    }
                };
                // A change stuck on a node that went away must not hold
                // up the others (nor the messages queued behind them).
                let done = tokio::time::timeout(SUBSCRIBE_WAIT, change)
                    .await
                    .unwrap_or_else(|_| {
                        Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "subscription change timed out",
                        )))
                    });
                (user, subscribe, done)
            }
        })
        .buffer_unordered(SSUBSCRIBE_CONCURRENCY);
    while let Some((user, subscribe, done)) = results.next().await {
        match done {
            Err(e) => failed = Some(e),
            Ok(()) if !subscribe => {
                subscribed.remove(&user);
            }
            Ok(()) => {
                subscribed.insert(user);
                // Whatever was published before the subscription took is
                // in the store.
                if tx
                    .send(BusEvent::Resync { user: Some(user) })
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }
    }
    failed.map_or(Ok(true), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let message = Arc::new(Message {
            id: MessageId(9),
            sender: UserInfo {
                id: UserId(1),
                name: "ä \"q\"".into(),
            },
            target: Target::Group(crate::model::GroupId(4)),
            body: "hi 👋\n".into(),
            client_msg_id: Some("c".into()),
            sent_at_ms: 123,
        });
        for event in [
            BusEvent::Deliver {
                user: UserId(2),
                seq: Seq(7),
                message: Arc::clone(&message),
            },
            BusEvent::Kick {
                user: UserId(2),
                session: SessionId(u64::MAX),
                reason: KickReason::Replaced,
            },
            BusEvent::Kick {
                user: UserId(2),
                session: SessionId(1),
                reason: KickReason::Admin,
            },
            BusEvent::Presence {
                user: UserId(2),
                friend: UserId(3),
            },
        ] {
            let (user, json) = encode(&event).expect("encodes");
            assert_eq!(user, UserId(2));
            assert_eq!(decode(json.as_bytes()), Some(vec![event]));
        }
        // A message's doorbells for one node: one payload, one copy of it.
        let deliveries = Wire::Deliveries {
            to: vec![(UserId(2), Seq(7)), (UserId(5), Seq(1))],
            m: WireMessage::from(message.as_ref()),
        };
        let json = serde_json::to_string(&deliveries).expect("encodes");
        assert_eq!(json.matches("hi 👋").count(), 1, "{json}");
        let events = decode(json.as_bytes()).expect("decodes");
        assert_eq!(
            events,
            vec![
                BusEvent::Deliver {
                    user: UserId(2),
                    seq: Seq(7),
                    message: Arc::clone(&message),
                },
                BusEvent::Deliver {
                    user: UserId(5),
                    seq: Seq(1),
                    message,
                },
            ]
        );
        assert!(encode(&BusEvent::Resync { user: None }).is_none());
        assert_eq!(
            channel_user("chat", channel("chat", UserId(42), true).as_bytes()),
            Some(UserId(42))
        );
        assert_eq!(channel_user("chat", b"other:user:{42}"), None);
        assert!(decode(b"not json").is_none());
    }
}
