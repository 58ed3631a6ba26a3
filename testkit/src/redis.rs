//! Redis for tests: the shared server named by `CHAT_TEST_REDIS_URL`, and
//! `redis-server`s of a test's own, for tests that kill or restart it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Service;

/// The URL of the shared Redis (see [`Service::value`]).
pub fn shared_url() -> String {
    Service::Redis.value()
}

/// A `redis-server` of the test's own on a free port of 127.0.0.1,
/// without persistence, killed when dropped. Tests that run one need
/// [`Service::Redis`]: naming a Redis says `redis-server` is installed.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    _own_dir: Option<tempfile::TempDir>,
}

impl PrivateRedis {
    /// Starts one with its files in a temporary directory of its own and
    /// waits until it answers.
    pub fn start() -> PrivateRedis {
        let own_dir = tempfile::Builder::new()
            .prefix("chat-redis-")
            .tempdir()
            .expect("a temporary directory");
        let dir = own_dir.path().to_owned();
        PrivateRedis::start_with(dir, Some(own_dir))
    }

    /// Starts one with its files and its log (`redis.log`) in `dir` and
    /// waits until it answers.
    pub fn start_in(dir: &Path) -> PrivateRedis {
        PrivateRedis::start_with(dir.to_owned(), None)
    }

    fn start_with(dir: PathBuf, own_dir: Option<tempfile::TempDir>) -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: crate::free_port(),
            child: None,
            dir,
            _own_dir: own_dir,
        };
        redis.start_again();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to clients, everything forgotten).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`PrivateRedis::kill`], on the same port and
    /// empty, and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "redis-server still runs");
        let log = File::options()
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
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(self.port) {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it and starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis on `port` of 127.0.0.1 answers `PING`.
fn answers_ping(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer)?;
        Ok(&answer == b"+PONG\r\n")
    };
    attempt().unwrap_or(false)
}
