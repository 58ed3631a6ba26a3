//! Test harness: a real chat server in-process (SQLite in memory or in a
//! file, stopped and started again on the same port for a restart), the
//! `chatcli` binary driven through pipes, and a TCP proxy that can cut
//! connections and lose chosen frames (`chat_testkit::proxy`).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use chat_testkit::proxy::Proxy;
use chat_testkit::proxy::{Direction, Verdict};
use chatcore::client::Client;
use chatcore::model::UserId;
use chatcore::node::{self, Backends};
use chatcore::server::{self, ServerConfig, TrustedProxies};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a test waits for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(15);

/// A chat server on 127.0.0.1.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    /// On SQLite in memory, on a free port.
    pub async fn start() -> Server {
        Server::start_with("sqlite::memory:", "127.0.0.1:0".parse().expect("addr")).await
    }

    /// On a SQLite file, on `addr` (port 0: a free one).
    pub async fn start_file(path: &Path, addr: SocketAddr) -> Server {
        Server::start_with(&format!("sqlite://{}?mode=rwc", path.display()), addr).await
    }

    /// On SQLite in memory, on a free port, behind a proxy at `proxy`
    /// that starts each connection with a PROXY protocol header (nginx
    /// as `deploy/nginx/` configures it).
    pub async fn start_behind(proxy: std::net::IpAddr) -> Server {
        let trusted = TrustedProxies::new(vec![proxy.into()]);
        Server::start_on(
            "sqlite::memory:",
            "127.0.0.1:0".parse().expect("addr"),
            trusted,
        )
        .await
    }

    async fn start_with(url: &str, addr: SocketAddr) -> Server {
        Server::start_on(url, addr, TrustedProxies::default()).await
    }

    async fn start_on(url: &str, addr: SocketAddr, trusted_proxies: TrustedProxies) -> Server {
        let store = SqlStore::connect(SqlStoreOptions::new(url))
            .await
            .expect("open the store");
        let shutdown = CancellationToken::new();
        let passwords = Passwords::new(HashParams::insecure_fast(), 2).expect("hash params");
        // The node's tasks end with `shutdown`; nothing needs to wait for them.
        let service = node::start(
            Backends::local(Arc::new(store)),
            passwords,
            ServiceConfig::default(),
            &TaskTracker::new(),
            shutdown.clone(),
        );
        let listener = bind(addr).await;
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(server::run(
            listener,
            service,
            ServerConfig {
                shutdown_grace: Duration::from_secs(2),
                trusted_proxies,
                ..ServerConfig::default()
            },
            shutdown.clone(),
        ));
        Server {
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the server (clients are told it is shutting down) and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
    }
}

/// Binds, retrying briefly: right after a stop the port may still be held.
async fn bind(addr: SocketAddr) -> TcpListener {
    let mut last = None;
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot bind {addr}: {last:?}");
}

/// The password every test user has.
pub fn password(name: &str) -> String {
    format!("pw-{name}")
}

/// Registers `name` with a typed client and returns its id.
pub async fn register(addr: SocketAddr, name: &str) -> UserId {
    let client = Client::connect(addr).await.expect("connect");
    client
        .register(name, &password(name))
        .await
        .expect("register")
}

/// A logged-in typed client.
pub async fn login(addr: SocketAddr, id: UserId, name: &str) -> Client {
    let client = Client::connect(addr).await.expect("connect");
    client.login(id, &password(name)).await.expect("login");
    client
}

/// `chatcli` with a password and a throwaway home, and nothing else from
/// the environment that could change its behaviour.
pub fn chatcli(addr: SocketAddr, name: &str, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatcli"));
    command
        .arg("--addr")
        .arg(addr.to_string())
        .env("CHAT_PASSWORD", password(name))
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("CHAT_ADDR")
        .env_remove("CHAT_HISTORY")
        .kill_on_drop(true);
    command
}

/// A running `chatcli` fed through a pipe, its output read line by line.
pub struct Cli {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Every stdout line read so far.
    pub out: Vec<String>,
    /// Every stderr line read so far.
    pub err: Vec<String>,
}

fn read_lines(reader: impl AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Cli {
    pub fn spawn(mut command: Command) -> Cli {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chatcli");
        let stdin = child.stdin.take();
        let stdout = read_lines(child.stdout.take().expect("stdout"));
        let stderr = read_lines(child.stderr.take().expect("stderr"));
        Cli {
            child,
            stdin,
            stdout,
            stderr,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Writes one input line.
    pub async fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to chatcli");
        stdin.flush().await.expect("flush");
    }

    /// Waits for a new stdout line containing `needle` and returns it.
    pub async fn expect(&mut self, needle: &str) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.stdout.recv()).await {
                Ok(Some(line)) => {
                    self.out.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                other => panic!(
                    "no stdout line with {needle:?} ({other:?});\nstdout:\n{}\nstderr:\n{}",
                    self.out.join("\n"),
                    self.drain_err().join("\n")
                ),
            }
        }
    }

    /// Waits for a new stderr line containing `needle` and returns it.
    pub async fn expect_err(&mut self, needle: &str) -> String {
        loop {
            match tokio::time::timeout(WAIT, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.err.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                other => panic!(
                    "no stderr line with {needle:?} ({other:?});\nstderr:\n{}\nstdout:\n{}",
                    self.err.join("\n"),
                    self.out.join("\n")
                ),
            }
        }
    }

    fn drain_err(&mut self) -> Vec<String> {
        while let Ok(line) = self.stderr.try_recv() {
            self.err.push(line);
        }
        self.err.clone()
    }

    /// Closes stdin and waits for the exit; returns the status with all
    /// output.
    pub async fn finish(mut self) -> Finished {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("chatcli exits after its input ends")
            .expect("wait for chatcli");
        while let Some(line) = self.stdout.recv().await {
            self.out.push(line);
        }
        while let Some(line) = self.stderr.recv().await {
            self.err.push(line);
        }
        Finished {
            status,
            out: self.out,
            err: self.err,
        }
    }
}

/// A `chatcli` run that has ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub out: Vec<String>,
    pub err: Vec<String>,
}

impl Finished {
    /// How many stdout lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.out.iter().filter(|l| l.contains(needle)).count()
    }

    pub fn stdout(&self) -> String {
        self.out.join("\n")
    }

    pub fn stderr(&self) -> String {
        self.err.join("\n")
    }
}

/// Runs `chatcli` on the given input to the end.
pub async fn run(command: Command, input: &str) -> Finished {
    let mut cli = Cli::spawn(command);
    for line in input.lines() {
        cli.send(line).await;
    }
    cli.finish().await
}

/// What the proxy does to the frames it carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Lose the client's acks (`DELIVERED` without `rid`), so the server
    /// sends everything again after a reconnect.
    pub lose_acks: bool,
    /// Lose the first `CHAT_ACK` and cut the connection at that moment:
    /// the message is stored but its sender does not know.
    pub cut_on_first_chat_ack: bool,
}

/// A proxy (`chat_testkit::proxy`) in front of `upstream` that loses the
/// frames `faults` names; its `cut` closes every connection open now.
pub async fn faulty_proxy(upstream: SocketAddr, faults: Faults) -> Proxy {
    let chat_ack_cut = AtomicBool::new(false);
    Proxy::start_filtered(
        &upstream.to_string(),
        move |direction, frame| match direction {
            Direction::Up
                if faults.lose_acks
                    && frame.contains("\"msgid\":14")
                    && !frame.contains("\"rid\"") =>
            {
                Verdict::Drop
            }
            Direction::Down
                if faults.cut_on_first_chat_ack
                    && frame.contains("\"msgid\":13")
                    && !chat_ack_cut.swap(true, Ordering::SeqCst) =>
            {
                Verdict::DropAndCut
            }
            _ => Verdict::Forward,
        },
    )
    .await
}
