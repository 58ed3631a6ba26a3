//! The resume key of nodes that share a Redis and were given none: the
//! first node to start makes one and keeps it in Redis (`SET NX` under the
//! key prefix); every node uses what is there. Without this, each node
//! would sign with a key of its own, and after a node's death its users'
//! tokens would be refused elsewhere: they would all need their passwords
//! at once, the argon2 storm tokens exist to prevent.
//!
//! The key is then as secret as the Redis: whoever can read it can forge
//! tokens. A Redis reachable by clients is already fatal (it holds
//! presence and the bus); a key given with `--resume-key` keeps tokens
//! safe even from Redis's readers.

use anyhow::Context;
use chatcore::service::ResumeKey;

/// The cluster's agreed resume key under `prefix` in the Redis at `url`,
/// made now if no node made one before.
pub(crate) async fn agree(url: &str, prefix: &str) -> anyhow::Result<ResumeKey> {
    let client = redis::Client::open(url).context("invalid --redis-url")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .context("connecting Redis to agree on a resume key")?;
    let key = format!("{prefix}:resume-key");
    let candidate = random_secret();
    let made: bool = redis::cmd("SET")
        .arg(&key)
        .arg(&candidate)
        .arg("NX")
        .query_async::<Option<String>>(&mut conn)
        .await
        .context("storing a resume key in Redis")?
        .is_some();
    let secret: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .context("reading the cluster's resume key")?;
    if made {
        tracing::info!(%key, "no --resume-key: made the cluster's resume key and kept it in Redis");
    } else {
        tracing::info!(%key, "no --resume-key: using the cluster's resume key from Redis");
    }
    ResumeKey::from_secret(secret.as_bytes())
        .with_context(|| format!("the resume key in Redis ({key}) is too short"))
}

/// 32 random bytes as 64 hex digits.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
