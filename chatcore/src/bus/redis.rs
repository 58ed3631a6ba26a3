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

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::{Config, Pool, Runtime};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Bus, BusError, BusEvent, BusReceiver};
use crate::model::{Message, MessageId, Seq, Target, UserId, UserInfo};
use crate::presence::SessionId;
use crate::telemetry;

/// How often the subscriber checks that its connection is alive.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Channels per SUBSCRIBE command.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

fn channel(prefix: &str, user: UserId) -> String {
    format!("{prefix}:user:{user}")
}

/// A bus event as it travels through Redis.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Wire {
    #[serde(rename = "d")]
    Deliver { u: UserId, s: Seq, m: WireMessage },
    #[serde(rename = "k")]
    Kick { u: UserId, sid: u64 },
    #[serde(rename = "p")]
    Presence { u: UserId, f: UserId },
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
        BusEvent::Kick { user, session } => Wire::Kick {
            u: *user,
            sid: session.0,
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

fn decode(payload: &[u8]) -> Option<BusEvent> {
    match serde_json::from_slice(payload).ok()? {
        Wire::Deliver { u, s, m } => Some(BusEvent::Deliver {
            user: u,
            seq: s,
            message: Arc::new(m.into_message()?),
        }),
        Wire::Kick { u, sid } => Some(BusEvent::Kick {
            user: u,
            session: SessionId(sid),
        }),
        Wire::Presence { u, f } => Some(BusEvent::Presence { user: u, friend: f }),
    }
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
    pool: Pool,
    prefix: Arc<str>,
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
    /// `tasks` (stopped by `shutdown`). Channel names start with `prefix`.
    /// Received events go to the returned receiver, which holds at most
    /// `capacity` (the subscriber waits when it is full).
    pub async fn connect(
        url: &str,
        prefix: &str,
        capacity: usize,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(RedisBus, BusReceiver), BusError> {
        let unavailable = |e: &dyn std::fmt::Display| BusError::Unavailable(e.to_string());
        let pool = Config::from_url(url)
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| unavailable(&e))?;
        let client = redis::Client::open(url).map_err(|e| unavailable(&e))?;
        // Fail early when Redis is not there at all.
        let mut conn = pool.get().await.map_err(|e| unavailable(&e))?;
        let _: () = redis::cmd("PING")
            .query_async(&mut *conn)
            .await
            .map_err(|e| unavailable(&e))?;
        drop(conn);

        let (tx, rx) = mpsc::channel(capacity.max(1));
        let wanted = Arc::new(Wanted::default());
        let stats = Arc::new(BusStats::default());
        let prefix: Arc<str> = Arc::from(prefix);
        tasks.spawn(subscriber(
            client,
            Arc::clone(&prefix),
            Arc::clone(&wanted),
            Arc::clone(&stats),
            tx,
            shutdown,
        ));
        Ok((
            RedisBus {
                pool,
                prefix,
                wanted,
                stats,
            },
            rx,
        ))
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, events: Vec<BusEvent>) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        let mut any = false;
        for (user, payload) in events.iter().filter_map(encode) {
            pipe.cmd("PUBLISH")
                .arg(channel(&self.prefix, user))
                .arg(payload)
                .ignore();
            any = true;
        }
        if !any {
            return Ok(());
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        pipe.query_async::<()>(&mut *conn)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
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
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        redis::cmd("PING")
            .query_async::<()>(&mut *conn)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }
}

/// Keeps one subscriber connection alive and its subscriptions equal to
/// `wanted`, forwarding every event to `tx`.
async fn subscriber(
    client: redis::Client,
    prefix: Arc<str>,
    wanted: Arc<Wanted>,
    stats: Arc<BusStats>,
    tx: mpsc::Sender<BusEvent>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = client.get_async_pubsub() => connected,
        };
        match connected {
            Ok(pubsub) => {
                if stats.connects.fetch_add(1, Ordering::Relaxed) > 0 {
                    telemetry::bus_reconnected();
                }
                stats.subscribed.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(50);
                // Shutdown interrupts the connection wherever it waits (a
                // SUBSCRIBE, a full queue), so the task ends promptly.
                let served = tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    served = serve(pubsub, &prefix, &wanted, &tx) => served,
                };
                stats.subscribed.store(false, Ordering::Relaxed);
                match served {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(error = %e, "bus subscriber lost; reconnecting"),
                }
            }
            Err(e) => tracing::warn!(error = %e, ?backoff, "bus subscriber cannot connect"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs one subscriber connection until it fails (`Err`) or the node stops
/// taking events (`Ok`).
async fn serve(
    pubsub: redis::aio::PubSub,
    prefix: &str,
    wanted: &Wanted,
    tx: &mpsc::Sender<BusEvent>,
) -> redis::RedisResult<()> {
    let (mut sink, mut stream) = pubsub.split();
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
            let channels: Vec<String> = chunk.iter().map(|&u| channel(prefix, u)).collect();
            sink.unsubscribe(&channels).await?;
            for user in chunk {
                subscribed.remove(user);
            }
        }
        for chunk in add.chunks(SUBSCRIBE_CHUNK) {
            let channels: Vec<String> = chunk.iter().map(|&u| channel(prefix, u)).collect();
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
            }
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscriber connection closed")));
                };
                match decode(msg.get_payload_bytes()) {
                    Some(event) => {
                        if tx.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => tracing::warn!(channel = msg.get_channel_name(), "unreadable bus event"),
                }
            }
        }
    }
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
                message,
            },
            BusEvent::Kick {
                user: UserId(2),
                session: SessionId(u64::MAX),
            },
            BusEvent::Presence {
                user: UserId(2),
                friend: UserId(3),
            },
        ] {
            let (user, json) = encode(&event).expect("encodes");
            assert_eq!(user, UserId(2));
            assert_eq!(decode(json.as_bytes()), Some(event));
        }
        assert!(encode(&BusEvent::Resync { user: None }).is_none());
        assert!(decode(b"not json").is_none());
    }
}
