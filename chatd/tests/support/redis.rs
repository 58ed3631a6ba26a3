//! A look at the presence records the nodes keep in Redis, and the
//! clean-up of a test's keys (`redis-server`s of a test's own are
//! `chat_testkit::redis::PrivateRedis`).

use std::time::Duration;

use chatcore::model::UserId;

/// The node id of `user`'s current session as recorded by presence:
/// `<prefix>:session:<user>` = `<node>|<boot>|<session>` (docs/cluster.md).
pub async fn session_node(url: &str, prefix: &str, user: UserId) -> Option<String> {
    let client = redis::Client::open(url).expect("a redis:// URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let record: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:session:{user}"))
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("GET a session record: {e}"));
    record.map(|r| r.split('|').next().unwrap_or_default().to_owned())
}

/// Deletes every key under `<prefix>:` (best effort: a cluster that ran on
/// a shared Redis leaves nothing behind).
pub fn delete_prefix(url: &str, prefix: &str) {
    let result = (|| -> redis::RedisResult<()> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).exec(&mut conn)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        eprintln!("could not delete the test's Redis keys {prefix}:*: {e}");
    }
}

/// [`session_node`] on a Redis Cluster, where the record is
/// `<prefix>:session:{<user>}` (docs/cluster.md).
pub async fn cluster_session_node(nodes: &[String], prefix: &str, user: UserId) -> Option<String> {
    let client = redis::cluster::ClusterClient::new(nodes.to_vec()).expect("redis:// URLs");
    let mut conn = client
        .get_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect to the Redis Cluster {nodes:?}: {e}"));
    let record: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:session:{{{user}}}"))
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("GET a session record: {e}"));
    record.map(|r| r.split('|').next().unwrap_or_default().to_owned())
}

/// [`delete_prefix`] on every master of a Redis Cluster: keys under
/// `<prefix>:` and `{<prefix>}:`, one by one (they lie in many slots).
pub fn delete_cluster_prefix(nodes: &[String], prefix: &str) {
    for url in nodes {
        let result = (|| -> redis::RedisResult<()> {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
            for pattern in [format!("{prefix}:*"), format!("{{{prefix}}}:*")] {
                let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn)?;
                for key in keys {
                    // A replica refuses: its master deletes the key.
                    let _ = redis::cmd("DEL").arg(key).exec(&mut conn);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("could not delete the test's Redis Cluster keys {prefix}:* on {url}: {e}");
        }
    }
}
