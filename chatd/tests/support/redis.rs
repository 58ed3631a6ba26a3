//! Redis for the process tests: a private `redis-server` on a free port for
//! tests that restart it, and a look at the presence records the nodes
//! keep.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatcore::model::UserId;

use super::free_port;

/// A `redis-server` of the test's own (no persistence), killed by pid when
/// dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Starts one on a free port, with its files in `dir`; see
    /// [`PrivateRedis::wait_ready`].
    pub fn spawn(dir: &Path) -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
            dir: dir.to_owned(),
        };
        redis.start();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("redis.log"))
            .expect("redis log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install redis-server)");
        self.child = Some(child);
    }

    /// Waits until it answers PING.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ping(&self.url()).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it (SIGKILL: no goodbye to clients, everything forgotten).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again (after [`PrivateRedis::kill`]) on the same port,
    /// empty, and waits until it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server still runs");
        self.start();
        self.wait_ready().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .is_ok()
}

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
