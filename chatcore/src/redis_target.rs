//! Where the bus, presence and guard counters of a cluster live: one Redis
//! or a Redis Cluster ([`RedisTarget`]), and the one command connection
//! those backends use over either (pooled on one Redis, the multiplexed
//! cluster connection on a Cluster, which routes each command to its
//! slot).

use std::time::Duration;

use deadpool_redis::{Config, Pool, Runtime};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, ScriptInvocation};

/// How long a cluster command waits for a node to connect or answer before
/// the cluster connection retries it (on another node after a failover).
const CLUSTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const CLUSTER_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis deployment a cluster of chat nodes shares.
///
/// Nodes on one Redis and nodes on a Redis Cluster keep their keys and
/// channels apart (the Cluster's carry hash tags): they cannot serve the
/// same users at once (see `docs/cluster.md` for the switch-over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server, `redis://HOST:PORT`.
    Single(String),
    /// A Redis Cluster (7 or later), reached through any of these nodes
    /// (`redis://HOST:PORT` each); the rest of the cluster is discovered.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// Whether keys and channels must carry hash tags (a Redis Cluster).
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }

    /// A client builder for the cluster's nodes, with the timeouts every
    /// cluster connection of ours uses.
    pub(crate) fn cluster_builder(nodes: &[String]) -> ClusterClientBuilder {
        ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(CLUSTER_CONNECT_TIMEOUT)
            .response_timeout(CLUSTER_RESPONSE_TIMEOUT)
    }
}

/// A cheap-to-clone handle for commands, over either deployment.
#[derive(Clone)]
pub(crate) enum Commands {
    Single(Pool),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Commands::Single(_) => f.write_str("Commands::Single"),
            Commands::Cluster(_) => f.write_str("Commands::Cluster"),
        }
    }
}

fn pool_error(e: impl std::fmt::Display) -> RedisError {
    RedisError::from((redis::ErrorKind::Io, "no Redis connection", e.to_string()))
}

impl Commands {
    /// Connects and checks that the target answers `PING`.
    pub(crate) async fn connect(target: &RedisTarget) -> RedisResult<Commands> {
        let commands = match target {
            RedisTarget::Single(url) => Commands::Single(
                Config::from_url(url.as_str())
                    .create_pool(Some(Runtime::Tokio1))
                    .map_err(pool_error)?,
            ),
            RedisTarget::Cluster(nodes) => Commands::Cluster(
                RedisTarget::cluster_builder(nodes)
                    .build()?
                    .get_async_connection()
                    .await?,
            ),
        };
        commands.query::<()>(&redis::cmd("PING")).await?;
        Ok(commands)
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Commands::Cluster(_))
    }

    /// Runs one command (on a Cluster: on the node of its key's slot; a
    /// multi-key `MGET` is split per slot by the cluster connection).
    pub(crate) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Commands::Single(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                cmd.query_async(&mut *conn).await
            }
            Commands::Cluster(conn) => cmd.query_async(&mut conn.clone()).await,
        }
    }

    /// Runs a pipeline whose keys share one slot (on a Cluster every key
    /// must carry the same hash tag).
    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Commands::Single(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                pipe.query_async(&mut *conn).await
            }
            Commands::Cluster(conn) => pipe.query_async(&mut conn.clone()).await,
        }
    }

    /// Runs single-key commands whose keys may lie in different slots, and
    /// returns their answers in order: one pipeline on one Redis, the
    /// commands side by side on a Cluster.
    pub(crate) async fn each<T: FromRedisValue>(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<T>> {
        match self {
            Commands::Single(_) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                self.pipe(&pipe).await
            }
            Commands::Cluster(conn) => {
                futures::future::try_join_all(cmds.into_iter().map(|cmd| {
                    let mut conn = conn.clone();
                    async move { cmd.query_async::<T>(&mut conn).await }
                }))
                .await
            }
        }
    }

    /// Runs a Lua script; on a Cluster every key it touches must share its
    /// first key's slot.
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Commands::Single(pool) => {
                let mut conn = pool.get().await.map_err(pool_error)?;
                script.invoke_async(&mut *conn).await
            }
            Commands::Cluster(conn) => script.invoke_async(&mut conn.clone()).await,
        }
    }
}
