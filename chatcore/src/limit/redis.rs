//! `RedisCounters`: counts every node of a cluster shares, in its Redis
//! (one server or a Redis Cluster).
//!
//! Keys, under the cluster's prefix, each tagged with the counted key so
//! that a count and its lock share one slot on a Cluster:
//! - `<prefix>:count:{<key>}`: the count, expiring once forgotten;
//! - `<prefix>:count:{<key>}:lock`: present while the key is locked.
//!
//! Every expiry is a Redis TTL (`PX`, `PEXPIRE`, read back with `PTTL`),
//! so the nodes' clocks play no part; each failure and each attempt is one
//! script, so concurrent ones from any number of nodes are counted exactly.

use std::time::Duration;

use async_trait::async_trait;

use super::counters::{Backoff, CounterKey, Counters, CountersError};
use crate::redis_target::{Commands, RedisTarget};

/// KEYS: count, lock. ARGV: threshold, how long to keep the count (ms),
/// then the locks from the threshold on (ms; the last one repeats).
/// Returns the count.
const FAILED: &str = r"
local n = redis.call('INCR', KEYS[1])
local keep = tonumber(ARGV[2])
local threshold = tonumber(ARGV[1])
if n >= threshold then
  local i = math.min(n - threshold + 3, #ARGV)
  local lock = tonumber(ARGV[i])
  redis.call('SET', KEYS[2], n, 'PX', lock)
  if lock > keep then keep = lock end
end
redis.call('PEXPIRE', KEYS[1], keep)
return n";

/// KEYS: count. ARGV: limit, window (ms). Returns -1 when allowed, else
/// the time left in the window (ms).
const TAKE: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if n <= tonumber(ARGV[1]) then
  return -1
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return left";

/// Counters in Redis; one per node, cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisCounters {
    commands: Commands,
    prefix: String,
}

fn unavailable(e: impl std::fmt::Display) -> CountersError {
    CountersError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCounters {
    /// Connects to `target`; every key starts with `prefix` (the cluster's
    /// `--redis-prefix`).
    pub async fn connect(
        target: &RedisTarget,
        prefix: &str,
    ) -> Result<RedisCounters, CountersError> {
        let commands = Commands::connect(target).await.map_err(unavailable)?;
        Ok(RedisCounters {
            commands,
            prefix: prefix.to_owned(),
        })
    }

    fn count_key(&self, key: &CounterKey) -> String {
        format!("{}:count:{{{key}}}", self.prefix)
    }

    fn lock_key(&self, key: &CounterKey) -> String {
        format!("{}:count:{{{key}}}:lock", self.prefix)
    }
}

#[async_trait]
impl Counters for RedisCounters {
    async fn locked(&self, keys: &[CounterKey]) -> Result<Option<Duration>, CountersError> {
        if keys.is_empty() {
            // An empty pipeline is an error to Redis.
            return Ok(None);
        }
        let ttls: Vec<i64> = self
            .commands
            .each(
                keys.iter()
                    .map(|key| {
                        let mut cmd = redis::cmd("PTTL");
                        cmd.arg(self.lock_key(key));
                        cmd
                    })
                    .collect(),
            )
            .await
            .map_err(unavailable)?;
        // -2: no lock; -1 cannot happen (every lock is set with PX).
        Ok(ttls
            .into_iter()
            .filter_map(|ms| u64::try_from(ms).ok())
            .filter(|ms| *ms > 0)
            .max()
            .map(Duration::from_millis))
    }

    async fn failed(&self, key: &CounterKey, rule: &Backoff) -> Result<u32, CountersError> {
        let script = redis::Script::new(FAILED);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.count_key(key))
            .key(self.lock_key(key))
            .arg(rule.threshold.max(1))
            .arg(millis(rule.keep(None)));
        for lock in rule.schedule() {
            invocation.arg(millis(lock));
        }
        let count: u64 = self
            .commands
            .script(&invocation)
            .await
            .map_err(unavailable)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn clear(&self, key: &CounterKey) -> Result<(), CountersError> {
        // One slot: both keys carry the same tag.
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.count_key(key)).arg(self.lock_key(key));
        self.commands.query::<()>(&cmd).await.map_err(unavailable)
    }

    async fn take(
        &self,
        key: &CounterKey,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>, CountersError> {
        let script = redis::Script::new(TAKE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.count_key(key))
            .arg(limit)
            .arg(millis(window));
        let left: i64 = self
            .commands
            .script(&invocation)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(left).ok().map(Duration::from_millis))
    }
}
