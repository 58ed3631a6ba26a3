//! `RedisPresence`: sessions recorded in Redis under a node lease.
//!
//! Keys (under a prefix, `chat` by default, so clusters can share a Redis):
//! - `<prefix>:node:<node>` = boot id, with a TTL renewed every third of it:
//!   the node's lease. A node that dies stops renewing; when the key
//!   expires, every session recorded under it counts as offline.
//! - `<prefix>:session:<user>` = `<node>|<boot>|<session>`: the user's current
//!   session. A login swaps it atomically (`SET ... GET`), so of racing
//!   logins each learns exactly the session it replaced.
//! - `<prefix>:nodes`, a hash of node → boot id: the nodes that took a
//!   lease and did not release it. Every node looks at it each second: a
//!   node listed there whose lease key is gone (or names another boot) died.
//!   Whoever takes it off the list increments `<prefix>:departures`, as
//!   does a node that restarts under its old name before anybody noticed;
//!   each node watches that counter, so that the sessions showing the dead
//!   node's users' presence look again.
//!
//! On a Redis Cluster the keys carry hash tags, so that every script
//! stays in one slot: the node-level keys (leases, the node list, the
//! departures counter) share the tag `{<prefix>}`
//! (`{<prefix>}:node:<node>`, `{<prefix>}:nodes`, `{<prefix>}:departures`),
//! and a user's session key is tagged with the user,
//! `<prefix>:session:{<user>}`, so that a claim or release touches one
//! slot. `online` reads the session records with one `MGET`, which the
//! cluster connection splits per slot, then the leases they name (one
//! slot). On one Redis the keys stay untagged, as they always were.
//!
//! When renewal finds the lease key missing while the lease still held
//! (Redis restarted and forgot everything), the node records the lease and
//! its sessions again; a session whose user logged in elsewhere meanwhile
//! is reported lost. When the lease ran out before it could be renewed
//! (the node was paused or cut off too long), every session of the node is
//! reported lost, and the node starts over under a new boot id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Lease, LiveSession, Lost, Presence, PresenceError, SessionId};
use crate::model::UserId;
use crate::redis_target::{Commands, RedisTarget};

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Takes the lease and lists the node; a previous boot still listed died
/// without anybody noticing, which counts as a departure.
const ACQUIRE: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local old = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if old and old ~= ARGV[2] then
  redis.call('INCR', KEYS[3])
end
return 1";

/// Takes a dead node off the list (unless it came back under a new boot
/// id) and counts its departure.
const FORGET_NODE: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return redis.call('INCR', KEYS[2])
end
return 0";

/// How often a node looks for nodes that died. A dead node's users are
/// offline once its lease runs out; this is how much longer sessions
/// showing their presence may take to notice.
const DEPARTURE_CHECK: Duration = Duration::from_secs(1);

/// 1: renewed; 0: the key is gone; -1: another boot id holds it.
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not v then
  return 0
end
return -1";

/// Presence settings.
#[derive(Debug, Clone)]
pub struct RedisPresenceConfig {
    /// One Redis or a Redis Cluster.
    pub target: RedisTarget,
    /// The start of every key.
    pub prefix: String,
    /// This node's name, unique in the cluster.
    pub node_id: String,
    /// How long the lease lasts without renewal: the time after which a
    /// dead node's users show offline.
    pub lease_ttl: Duration,
}

/// Presence in Redis; one per node.
#[derive(Debug, Clone)]
pub struct RedisPresence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: Commands,
    config: RedisPresenceConfig,
    lease: Lease,
    /// The current boot id: the lease's value.
    boot: Mutex<String>,
    /// Sessions this node recorded and has not released.
    mine: Mutex<HashMap<UserId, SessionId>>,
    /// Deaths of other nodes seen so far.
    departures: watch::Sender<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> PresenceError {
    PresenceError::Unavailable(e.to_string())
}

/// A fresh boot id: random, so that a restarted node never passes for its
/// previous run.
fn new_boot() -> String {
    let boot = getrandom::u64().expect("the operating system's random source failed");
    format!("{boot:016x}")
}

impl Inner {
    /// The start of node-level keys: `{<prefix>}` on a Cluster, so that
    /// they all share one slot.
    fn node_level(&self) -> String {
        if self.commands.is_cluster() {
            format!("{{{}}}", self.config.prefix)
        } else {
            self.config.prefix.clone()
        }
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}:node:{node}", self.node_level())
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.node_level())
    }

    fn departures_key(&self) -> String {
        format!("{}:departures", self.node_level())
    }

    fn session_key(&self, user: UserId) -> String {
        if self.commands.is_cluster() {
            format!("{}:session:{{{user}}}", self.config.prefix)
        } else {
            format!("{}:session:{user}", self.config.prefix)
        }
    }

    fn boot(&self) -> String {
        self.boot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn mine(&self) -> MutexGuard<'_, HashMap<UserId, SessionId>> {
        self.mine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, session: SessionId) -> String {
        format!("{}|{}|{session}", self.config.node_id, self.boot())
    }

    /// The session records of `users`, in order.
    async fn records(&self, users: &[UserId]) -> Result<Vec<Option<String>>, PresenceError> {
        let keys: Vec<String> = users.iter().map(|&u| self.session_key(u)).collect();
        // On a Cluster the connection splits this per slot.
        self.commands
            .query(redis::cmd("MGET").arg(&keys))
            .await
            .map_err(unavailable)
    }

    /// Takes the lease under the current boot id.
    async fn acquire(&self) -> Result<(), PresenceError> {
        let sent = Instant::now();
        let script = redis::Script::new(ACQUIRE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.node_key(&self.config.node_id))
            .key(self.nodes_key())
            .key(self.departures_key())
            .arg(&self.config.node_id)
            .arg(self.boot())
            .arg(self.config.lease_ttl.as_millis() as u64);
        let _: i64 = self
            .commands
            .script(&invocation)
            .await
            .map_err(unavailable)?;
        self.lease.extend(sent, self.config.lease_ttl);
        Ok(())
    }

    /// Takes listed nodes whose lease is gone off the list, and returns the
    /// cluster's count of departures.
    async fn departures(&self) -> Result<u64, PresenceError> {
        let (listed, count): (HashMap<String, String>, Option<u64>) = self
            .commands
            .pipe(
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(self.nodes_key())
                    .cmd("GET")
                    .arg(self.departures_key()),
            )
            .await
            .map_err(unavailable)?;
        let mut count = count.unwrap_or(0);
        let others: Vec<(String, String)> = listed
            .into_iter()
            .filter(|(node, _)| *node != self.config.node_id)
            .collect();
        if others.is_empty() {
            return Ok(count);
        }
        let mut leases = redis::pipe();
        for (node, _) in &others {
            leases.cmd("GET").arg(self.node_key(node));
        }
        let holders: Vec<Option<String>> =
            self.commands.pipe(&leases).await.map_err(unavailable)?;
        for ((node, boot), holder) in others.iter().zip(holders) {
            if holder.as_deref() == Some(boot.as_str()) {
                continue;
            }
            let script = redis::Script::new(FORGET_NODE);
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.nodes_key())
                .key(self.departures_key())
                .arg(node)
                .arg(boot);
            let counted: u64 = self
                .commands
                .script(&invocation)
                .await
                .map_err(unavailable)?;
            if counted > 0 {
                tracing::info!(%node, "a node's lease ran out: its users are offline");
                count = count.max(counted);
            }
        }
        Ok(count)
    }

    /// One renewal round; returns sessions to end.
    async fn renew(&self) -> Result<Option<Lost>, PresenceError> {
        let sent = Instant::now();
        let held = self.lease.is_valid();
        let script = redis::Script::new(RENEW);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.node_key(&self.config.node_id))
            .arg(self.boot())
            .arg(self.config.lease_ttl.as_millis() as u64);
        let renewed: i64 = self
            .commands
            .script(&invocation)
            .await
            .map_err(unavailable)?;
        if renewed == 1 && held {
            self.lease.extend(sent, self.config.lease_ttl);
            return Ok(None);
        }
        if renewed == 0 && held {
            // Redis forgot us (a restart): record the lease and the
            // sessions again, unless their users moved on meanwhile.
            tracing::warn!(node = %self.config.node_id, "lease key vanished; re-registering sessions");
            self.acquire().await?;
            return self.reclaim().await.map(|lost| {
                if lost.is_empty() {
                    None
                } else {
                    Some(Lost::Sessions(lost))
                }
            });
        }
        // The lease ran out before this renewal: other nodes may have taken
        // our users. Start over under a new boot id with no sessions.
        tracing::warn!(node = %self.config.node_id, "lease lost; ending this node's sessions");
        self.lease.revoke();
        *self.boot.lock().unwrap_or_else(|p| p.into_inner()) = new_boot();
        self.mine().clear();
        self.acquire().await?;
        Ok(Some(Lost::All))
    }

    async fn reclaim(&self) -> Result<Vec<(UserId, SessionId)>, PresenceError> {
        let sessions: Vec<(UserId, SessionId)> =
            self.mine().iter().map(|(u, s)| (*u, *s)).collect();
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        let sets = sessions
            .iter()
            .map(|(user, session)| {
                let mut set = redis::cmd("SET");
                set.arg(self.session_key(*user))
                    .arg(self.record(*session))
                    .arg("NX")
                    .arg("GET");
                set
            })
            .collect();
        let previous: Vec<Option<String>> = self.commands.each(sets).await.map_err(unavailable)?;
        let mut lost = Vec::new();
        for ((user, session), previous) in sessions.into_iter().zip(previous) {
            match previous {
                None => {}
                Some(record) if record == self.record(session) => {}
                Some(_) => {
                    self.mine().remove(&user);
                    lost.push((user, session));
                }
            }
        }
        Ok(lost)
    }
}

impl RedisPresence {
    /// Connects, takes this node's lease and starts renewing it on a task
    /// of `tasks` (until `shutdown`). Sessions the node must end arrive on
    /// the receiver.
    pub async fn start(
        config: RedisPresenceConfig,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(RedisPresence, mpsc::Receiver<Lost>), PresenceError> {
        let commands = Commands::connect(&config.target)
            .await
            .map_err(unavailable)?;
        let inner = Arc::new(Inner {
            commands,
            config,
            lease: Lease::expired(),
            boot: Mutex::new(new_boot()),
            mine: Mutex::new(HashMap::new()),
            departures: watch::channel(0).0,
        });
        inner.acquire().await?;
        let (tx, rx) = mpsc::channel(64);
        tasks.spawn(renew_loop(Arc::clone(&inner), tx, shutdown.clone()));
        tasks.spawn(departure_loop(Arc::clone(&inner), shutdown));
        Ok((RedisPresence { inner }, rx))
    }
}

async fn renew_loop(inner: Arc<Inner>, lost: mpsc::Sender<Lost>, shutdown: CancellationToken) {
    let every = inner.config.lease_ttl / 3;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        // A renewal stuck on an unreachable Redis must not hold up shutdown.
        let renewed = tokio::select! {
            _ = shutdown.cancelled() => return,
            renewed = inner.renew() => renewed,
        };
        match renewed {
            Ok(None) => {}
            Ok(Some(sessions)) => {
                if lost.send(sessions).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                if !inner.lease.is_valid() && lost.send(Lost::All).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Looks for dead nodes every [`DEPARTURE_CHECK`] until `shutdown`.
async fn departure_loop(inner: Arc<Inner>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DEPARTURE_CHECK) => {}
        }
        let found = tokio::select! {
            _ = shutdown.cancelled() => return,
            found = inner.departures() => found,
        };
        match found {
            Ok(count) => {
                inner.departures.send_if_modified(|seen| {
                    let changed = *seen != count;
                    *seen = count;
                    changed
                });
            }
            Err(e) => tracing::debug!(error = %e, "could not look for departed nodes"),
        }
    }
}

fn parse_record(record: &str) -> Option<(&str, &str, SessionId)> {
    let mut parts = record.splitn(3, '|');
    let node = parts.next()?;
    let boot = parts.next()?;
    let session = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some((node, boot, SessionId(session)))
}

#[async_trait]
impl Presence for RedisPresence {
    async fn claim(
        &self,
        user: UserId,
        session: SessionId,
    ) -> Result<Option<SessionId>, PresenceError> {
        if !self.inner.lease.is_valid() {
            return Err(PresenceError::Unavailable("this node has no lease".into()));
        }
        let previous: Option<String> = self
            .inner
            .commands
            .query(
                redis::cmd("SET")
                    .arg(self.inner.session_key(user))
                    .arg(self.inner.record(session))
                    .arg("GET"),
            )
            .await
            .map_err(unavailable)?;
        self.inner.mine().insert(user, session);
        Ok(previous
            .as_deref()
            .and_then(parse_record)
            .map(|(_, _, session)| session))
    }

    async fn release(&self, user: UserId, session: SessionId) -> Result<bool, PresenceError> {
        {
            let mut mine = self.inner.mine();
            if mine.get(&user) == Some(&session) {
                mine.remove(&user);
            }
        }
        let script = redis::Script::new(RELEASE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.inner.session_key(user))
            .arg(self.inner.record(session));
        let removed: i64 = self
            .inner
            .commands
            .script(&invocation)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>, PresenceError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let records = self.inner.records(users).await?;
        let parsed: Vec<Option<(&str, &str, SessionId)>> = records
            .iter()
            .map(|r| r.as_deref().and_then(parse_record))
            .collect();
        let nodes: Vec<&str> = parsed
            .iter()
            .flatten()
            .map(|(node, _, _)| *node)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if nodes.is_empty() {
            return Ok(vec![false; users.len()]);
        }
        let node_keys: Vec<String> = nodes.iter().map(|n| self.inner.node_key(n)).collect();
        let boots: Vec<Option<String>> = self
            .inner
            .commands
            .query(redis::cmd("MGET").arg(&node_keys))
            .await
            .map_err(unavailable)?;
        let live: HashMap<&str, Option<String>> = nodes.into_iter().zip(boots).collect();
        Ok(parsed
            .into_iter()
            .map(|record| match record {
                Some((node, boot, _)) => live.get(node).and_then(|b| b.as_deref()) == Some(boot),
                None => false,
            })
            .collect())
    }

    async fn session_of(&self, user: UserId) -> Result<Option<LiveSession>, PresenceError> {
        let records = self.inner.records(&[user]).await?;
        let Some((node, boot, session)) = records
            .first()
            .and_then(|r| r.as_deref())
            .and_then(parse_record)
        else {
            return Ok(None);
        };
        let holder: Option<String> = self
            .inner
            .commands
            .query(redis::cmd("GET").arg(self.inner.node_key(node)))
            .await
            .map_err(unavailable)?;
        Ok((holder.as_deref() == Some(boot)).then(|| LiveSession {
            session,
            node: node.to_owned(),
        }))
    }

    fn lease(&self) -> Lease {
        self.inner.lease.clone()
    }

    /// Removes this node's lease and sessions: its users show offline at
    /// once instead of after the lease TTL.
    async fn release_node(&self) -> Result<(), PresenceError> {
        let sessions: Vec<(UserId, SessionId)> = self.inner.mine().drain().collect();
        let script = redis::Script::new(RELEASE);
        for (user, session) in sessions {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.inner.session_key(user))
                .arg(self.inner.record(session));
            let _: i64 = self
                .inner
                .commands
                .script(&invocation)
                .await
                .map_err(unavailable)?;
        }
        let _: () = self
            .inner
            .commands
            .pipe(
                redis::pipe()
                    .cmd("HDEL")
                    .arg(self.inner.nodes_key())
                    .arg(&self.inner.config.node_id)
                    .ignore()
                    .cmd("DEL")
                    .arg(self.inner.node_key(&self.inner.config.node_id))
                    .ignore(),
            )
            .await
            .map_err(unavailable)?;
        self.inner.lease.revoke();
        Ok(())
    }

    fn departures(&self) -> watch::Receiver<u64> {
        self.inner.departures.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_records_parse_back() {
        let record = format!("node-1|{}|{}", "b00t", SessionId(0xabc));
        assert_eq!(
            parse_record(&record),
            Some(("node-1", "b00t", SessionId(0xabc)))
        );
        assert_eq!(parse_record("garbage"), None);
    }
}
