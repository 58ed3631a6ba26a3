//! A `chatd` process owned by the test: killed by pid when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chat_testkit::free_port;

/// A running `chatd`; dropping it kills it (SIGKILL, by pid).
#[derive(Debug)]
pub struct Chatd {
    child: Child,
    /// What it listens on: `127.0.0.1:PORT`.
    pub addr: String,
    /// Its web listener (the browser client and WebSockets).
    pub web: String,
    /// A name for messages, and its `--node-id` in a cluster.
    pub node_id: String,
    /// Its stderr (the log).
    pub log: PathBuf,
    /// The flags it was started with, after the addresses and hashing.
    args: Vec<String>,
}

impl Chatd {
    /// Starts `chatd --listen 127.0.0.1:<free port>` with cheap password
    /// hashing, info logs to `<log_dir>/<name>.log` and `args`. No `CHAT_*`
    /// variable of the test's environment reaches it.
    pub fn spawn(name: &str, log_dir: &Path, args: &[String]) -> Chatd {
        let addr = format!("127.0.0.1:{}", free_port());
        let web = format!("127.0.0.1:{}", free_port());
        let log = log_dir.join(format!("{name}.log"));
        let child = Chatd::command(&addr, &web, &log, args);
        Chatd {
            child,
            addr,
            web,
            node_id: name.to_owned(),
            log,
            args: args.to_vec(),
        }
    }

    /// Starts it again after it exited (or was killed), on the same
    /// addresses and with the same flags, its log appended to the old one.
    /// Call [`Chatd::wait_listening`] next.
    pub fn start_again(&mut self) {
        assert!(!self.running(), "chatd {} still runs", self.node_id);
        self.child = Chatd::command(&self.addr, &self.web, &self.log, &self.args);
    }

    fn command(addr: &str, web: &str, log: &Path, args: &[String]) -> Child {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
        command
            .args([
                "--listen",
                addr,
                "--web-addr",
                web,
                "--argon2-memory-kib",
                "64",
                "--argon2-iterations",
                "1",
                "--log",
                "info",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CHAT_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.spawn().expect("chatd starts")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`"KILL"`, `"INT"`, `"STOP"`, ...).
    pub fn signal(&self, signal: &str) {
        super::send_signal(self.pid(), signal);
    }

    /// Waits until it accepts TCP connections; panics when it exits first
    /// or takes longer than 30 s.
    pub async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok()
                && tokio::net::TcpStream::connect(&self.web).await.is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chatd {} exited before listening ({status}):\n{}",
                    self.node_id,
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chatd {} did not start listening on {}:\n{}",
                self.node_id,
                self.addr,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for it to exit; panics after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "chatd {} did not exit within {within:?}",
                self.node_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Prints the end of its log (for a failed test).
    pub fn print_log(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(80)..];
        eprintln!(
            "----- chatd {} ({}, pid {}) log, last {} lines -----\n{}",
            self.node_id,
            self.addr,
            self.pid(),
            tail.len(),
            tail.join("\n")
        );
    }
}

impl Drop for Chatd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log();
        }
        // SIGKILL works on a stopped (SIGSTOP) process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
