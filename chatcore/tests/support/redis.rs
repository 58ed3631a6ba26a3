//! Redis for tests: the shared server named by `CHAT_TEST_REDIS_URL`, or a
//! private `redis-server` on a free port for tests that restart or cut it.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis URL, or `None` (after saying so) when tests should
/// skip. With `CHAT_TEST_REQUIRE_SERVICES` set, a missing URL fails.
pub fn shared_url() -> Option<String> {
    match std::env::var("CHAT_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("CHAT_TEST_REQUIRE_SERVICES").is_none(),
                "CHAT_TEST_REDIS_URL is not set but CHAT_TEST_REQUIRE_SERVICES is"
            );
            eprintln!("skipping: CHAT_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A `redis-server` of the test's own, stopped when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateRedis {
    /// Starts one, or returns `None` (after saying so) when the shared
    /// Redis is not configured either: then no Redis is expected here.
    pub fn start() -> Option<PrivateRedis> {
        shared_url()?;
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        redis.spawn();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
