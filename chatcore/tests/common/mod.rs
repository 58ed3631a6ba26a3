//! Test harness: a real server on 127.0.0.1:0 over a real store, native
//! clients from `chatcore::client`, and a raw client that speaks bytes like
//! the seed's console client.
//!
//! The store is SQLite in memory, or with `CHAT_TEST_E2E_STORE=mysql` a
//! throwaway database on the MySQL/MariaDB server of `CHAT_TEST_MYSQL_URL`,
//! so that the same end-to-end suites run on both (CI runs both).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chat_testkit::mysql::ThrowawayDatabase;
use chatcore::client::{Client, Event};
use chatcore::connection::ConnectionConfig;
use chatcore::model::UserId;
use chatcore::node::{self, Backends};
use chatcore::server::{self, ServerConfig};
use chatcore::service::{ChatService, HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions, Store};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub service: ChatService,
    task: JoinHandle<()>,
    database: Option<ThrowawayDatabase>,
}

impl TestServer {
    /// A server on SQLite in memory with default limits.
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerConfig::default(), ServiceConfig::default()).await
    }

    pub async fn start_with(server: ServerConfig, service: ServiceConfig) -> TestServer {
        if std::env::var("CHAT_TEST_E2E_STORE").as_deref() == Ok("mysql") {
            // Needs CHAT_TEST_MYSQL_URL (it panics naming it otherwise).
            let database = ThrowawayDatabase::create().await;
            let store = SqlStore::connect(SqlStoreOptions::new(database.url.clone()))
                .await
                .expect("mysql store");
            let mut server = TestServer::start_on(Arc::new(store), server, service).await;
            server.database = Some(database);
            return server;
        }
        let store = SqlStore::connect(SqlStoreOptions::new("sqlite::memory:"))
            .await
            .expect("sqlite in memory");
        TestServer::start_on(Arc::new(store), server, service).await
    }

    pub async fn start_on(
        store: Arc<dyn Store>,
        server: ServerConfig,
        service: ServiceConfig,
    ) -> TestServer {
        let passwords = Passwords::new(HashParams::insecure_fast(), 2).expect("hash params");
        TestServer::start_hashing(store, server, service, passwords).await
    }

    /// [`TestServer::start_on`] with passwords hashed by `passwords`.
    pub async fn start_hashing(
        store: Arc<dyn Store>,
        server: ServerConfig,
        service: ServiceConfig,
        passwords: Passwords,
    ) -> TestServer {
        let shutdown = CancellationToken::new();
        // The node's tasks end with `shutdown`; nothing needs to wait for them.
        let service = node::start(
            Backends::local(store),
            passwords,
            service,
            &TaskTracker::new(),
            shutdown.clone(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(server::run(
            listener,
            service.clone(),
            server,
            shutdown.clone(),
        ));
        TestServer {
            addr,
            shutdown,
            service,
            task,
            database: None,
        }
    }

    /// Stops the server and waits for it (and drops its database).
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task");
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await.expect("connect")
    }

    /// Registers `name` (password `pw-<name>`) and returns a logged-in client.
    pub async fn user(&self, name: &str) -> (Client, UserId) {
        let client = self.client().await;
        let id = client
            .register(name, &format!("pw-{name}"))
            .await
            .expect("register");
        client
            .login(id, &format!("pw-{name}"))
            .await
            .expect("login");
        (client, id)
    }

    pub async fn raw(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }
}

/// A server config whose timings suit tests.
pub fn fast_server() -> ServerConfig {
    ServerConfig {
        connection: ConnectionConfig {
            legacy_pace: Duration::from_millis(2),
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// The next chat message event, failing the test on anything else.
pub async fn next_message(client: &mut Client) -> chatcore::client::ChatMessage {
    loop {
        match client.next_event_within(WAIT).await {
            // Friends' presence is not what these tests follow.
            Some(Event::Presence { .. }) => continue,
            Some(Event::Message(m)) => return m,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Asserts nothing arrives for a short while.
pub async fn assert_quiet(client: &mut Client) {
    if let Some(event) = client.next_event_within(Duration::from_millis(200)).await {
        panic!("expected nothing, got {event:?}");
    }
}

/// Speaks raw bytes: requests as JSON + NUL (like the seed's client),
/// replies read up to each `\n`.
pub struct RawClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        RawClient {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    /// Writes bytes exactly as given.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// Sends a JSON value the seed's way: text + NUL.
    pub async fn send(&mut self, value: Value) {
        let mut bytes = value.to_string().into_bytes();
        bytes.push(0);
        self.write(&bytes).await;
    }

    /// The next frame's raw bytes (without `\n`), or `None` at close.
    pub async fn recv_bytes(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_until(b'\n', &mut line))
            .await
            .expect("a frame in time")
            .expect("read");
        if n == 0 {
            return None;
        }
        assert_eq!(line.pop(), Some(b'\n'), "frames end with a newline");
        Some(line)
    }

    /// The next frame as JSON.
    pub async fn recv(&mut self) -> Value {
        let bytes = self.recv_bytes().await.expect("a frame, not a close");
        serde_json::from_slice(&bytes).expect("frames are JSON")
    }

    /// Asserts nothing arrives for a short while.
    pub async fn assert_quiet(&mut self) {
        let mut byte = [0u8; 1];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(200), self.reader.read(&mut byte)).await
        {
            panic!("expected nothing, read {read:?} ({:?})", byte[0] as char);
        }
    }

    /// Asserts the server closes the connection.
    pub async fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        assert!(
            read.is_ok(),
            "connection ends cleanly, got {read:?} after {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// Decodes a legacy list entry, which is a JSON object inside a JSON string.
pub fn inner(value: &Value) -> Value {
    serde_json::from_str(value.as_str().expect("a JSON string")).expect("inner JSON")
}
