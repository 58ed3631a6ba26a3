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
use chatcore::redis_target::RedisTarget;
use chatcore::service::ResumeKey;

/// The cluster's agreed resume key under `prefix` in the cluster's Redis
/// (one server or a Cluster), made now if no node made one before.
pub(crate) async fn agree(target: &RedisTarget, prefix: &str) -> anyhow::Result<ResumeKey> {
    let key = format!("{prefix}:resume-key");
    let (secret, made) = match target {
        RedisTarget::Single(url) => {
            let conn = redis::Client::open(url.as_str())
                .context("invalid --redis-url")?
                .get_multiplexed_async_connection()
                .await
                .context("connecting Redis to agree on a resume key")?;
            set_once(conn, &key).await?
        }
        RedisTarget::Cluster(nodes) => {
            let conn = redis::cluster::ClusterClient::new(nodes.clone())
                .context("invalid --redis-cluster-node")?
                .get_async_connection()
                .await
                .context("connecting the Redis Cluster to agree on a resume key")?;
            set_once(conn, &key).await?
        }
    };
    if made {
        tracing::info!(%key, "no --resume-key: made the cluster's resume key and kept it in Redis");
    } else {
        tracing::info!(%key, "no --resume-key: using the cluster's resume key from Redis");
    }
    ResumeKey::from_secret(secret.as_bytes())
        .with_context(|| format!("the resume key in Redis ({key}) is too short"))
}

/// `SET key <random> NX`, then what `key` holds, and whether it is ours.
async fn set_once(
    mut conn: impl redis::aio::ConnectionLike,
    key: &str,
) -> anyhow::Result<(String, bool)> {
    let made: bool = redis::cmd("SET")
        .arg(key)
        .arg(random_secret())
        .arg("NX")
        .query_async::<Option<String>>(&mut conn)
        .await
        .context("storing a resume key in Redis")?
        .is_some();
    let secret: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .context("reading the cluster's resume key")?;
    Ok((secret, made))
}

/// 32 random bytes as 64 hex digits.
fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The resume key of a node alone on a SQLite file: kept in a file beside
/// the database (`<database>.resume-key`, readable by its owner only), made
/// at the first start, so that tokens outlive a restart as the messages
/// do. `None` for any other database (and an in-memory SQLite one).
pub(crate) fn beside_sqlite(database_url: &str) -> anyhow::Result<Option<ResumeKey>> {
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.trim_start_matches("//");
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Ok(None);
    }
    let file = std::path::PathBuf::from(format!("{path}.resume-key"));
    let created = {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
        {
            Ok(mut new) => {
                new.write_all(random_secret().as_bytes())
                    .with_context(|| format!("writing {}", file.display()))?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e).with_context(|| format!("creating {}", file.display())),
        }
    };
    let secret = std::fs::read_to_string(&file)
        .with_context(|| format!("reading the resume key {}", file.display()))?;
    let key = ResumeKey::from_secret(secret.trim().as_bytes())
        .with_context(|| format!("the resume key in {} is too short", file.display()))?;
    if created {
        tracing::info!(file = %file.display(), "no --resume-key: made one beside the database");
    }
    Ok(Some(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_file_keeps_its_key_beside_it_and_memory_has_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
        let file = dir.path().join("chat.db.resume-key");
        beside_sqlite(&url).expect("made").expect("a key");
        let made = std::fs::read_to_string(&file).expect("the key file");
        assert_eq!(made.len(), 64);
        beside_sqlite(&url).expect("read").expect("a key");
        assert_eq!(std::fs::read_to_string(&file).expect("the key file"), made);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(beside_sqlite("sqlite::memory:").expect("ok").is_none());
        assert!(
            beside_sqlite("mysql://u:p@h:3306/db")
                .expect("ok")
                .is_none()
        );
    }
}
