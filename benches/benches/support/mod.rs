//! A node in process for the dispatch and login benchmarks: a
//! `ChatService` on an in-memory or SQLite-in-memory store with the
//! in-process bus and presence (`Backends::local`), and users who register
//! and log in through the service itself. Every logged-in connection gets
//! a task that empties its outbox, as a connection task would, counting
//! what it receives so that a benchmark can check nothing went missing.
//! A [`WireClient`] instead talks to a real connection task over an
//! in-memory pipe, bytes in and bytes out, as a client on a socket would.

// Each benchmark binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatcore::ChatService;
use chatcore::connection::{self, ConnectionConfig};
use chatcore::limit::RateLimit;
use chatcore::model::{GroupId, UserId};
use chatcore::node::{self, Backends};
use chatcore::protocol::{
    Ack, AddFriend, AddGroup, AnonymousRequest, ClientFrame, CreateGroup, Login, NATIVE_PROTO,
    Register, Request, ServerFrame, SessionRequest,
};
use chatcore::service::{Caller, HashParams, LoggedIn, Outcome, Passwords, ServiceConfig, Session};
use chatcore::store::{MemoryStore, SqlStore, SqlStoreOptions, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every bench user's password.
const PASSWORD: &str = "correct horse battery staple";
/// Outbox depth of a connection (`ConnectionConfig::outbox_capacity`).
const OUTBOX: usize = 1024;
/// Bytes an in-memory pipe holds each way: room for a window of frames,
/// as a socket's buffers have.
const PIPE: usize = 256 * 1024;

/// The store a bench node runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StoreKind {
    Memory,
    /// `sqlite::memory:` with the store's default options (group commit
    /// on, which with one sender at a time means batches of one).
    Sqlite,
}

impl StoreKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite_memory",
        }
    }

    async fn open(self) -> Arc<dyn Store> {
        match self {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
            StoreKind::Sqlite => Arc::new(
                SqlStore::connect(SqlStoreOptions::new("sqlite::memory:"))
                    .await
                    .expect("SQLite in memory"),
            ),
        }
    }
}

/// A running service and the tasks reading its connections' outboxes.
pub(crate) struct BenchNode {
    pub(crate) service: ChatService,
    shutdown: CancellationToken,
    /// Deliveries taken out of outboxes, all connections together.
    delivered: Arc<AtomicU64>,
    readers: Vec<JoinHandle<()>>,
}

/// A connection of the benchmark, as the service sees it.
pub(crate) fn caller() -> Caller {
    Caller {
        peer: None,
        outbox_capacity: OUTBOX,
    }
}

impl BenchNode {
    /// A node on a fresh `store`, hashing passwords with `params`. Must run
    /// inside the runtime that will drive the benchmark (it spawns tasks).
    pub(crate) async fn start(store: StoreKind, params: HashParams) -> BenchNode {
        let shutdown = CancellationToken::new();
        let passwords = Passwords::new(params, 2).expect("valid argon2 parameters");
        // The node's tasks end with `shutdown`; nothing needs to wait for them.
        let service = node::start(
            Backends::local(store.open().await),
            passwords,
            ServiceConfig::default(),
            &TaskTracker::new(),
            shutdown.clone(),
        );
        BenchNode {
            service,
            shutdown,
            delivered: Arc::new(AtomicU64::new(0)),
            readers: Vec::new(),
        }
    }

    /// Registers `name` through the service.
    pub(crate) async fn register(&mut self, name: &str) -> UserId {
        let register = AnonymousRequest::Register(Register {
            name: name.to_owned(),
            password: PASSWORD.to_owned(),
            proto: Some(NATIVE_PROTO),
        });
        match self
            .service
            .handle_anonymous(caller(), register.dialect(), Some(1), register)
            .await
        {
            Outcome::Reply(ServerFrame::RegisterOk { id, .. }) => id,
            other => panic!("registering {name}: {other:?}"),
        }
    }

    /// The login request of `user` (native dialect).
    pub(crate) fn login_request(user: UserId) -> AnonymousRequest {
        AnonymousRequest::Login(Login {
            id: user,
            password: PASSWORD.to_owned(),
            proto: Some(NATIVE_PROTO),
        })
    }

    /// A session of `user`, whose deliveries a reader task takes out of
    /// its outbox.
    pub(crate) async fn login(&mut self, user: UserId) -> Session {
        let request = BenchNode::login_request(user);
        let outcome = self
            .service
            .handle_anonymous(caller(), request.dialect(), Some(1), request)
            .await;
        let Outcome::LoggedIn(login) = outcome else {
            panic!("logging in {user}: {outcome:?}");
        };
        let LoggedIn {
            session, mut feed, ..
        } = *login;
        let delivered = Arc::clone(&self.delivered);
        self.readers.push(tokio::spawn(async move {
            while feed.recv().await.is_some() {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }));
        session
    }

    /// A request of the session that must come back as a plain `ACK`.
    async fn acked(&self, session: &Session, request: SessionRequest) -> Ack {
        let what = format!("{request:?}");
        match self.service.handle(session, Some(1), request).await {
            Outcome::Reply(ServerFrame::Ack(ack)) => ack,
            other => panic!("{what}: {other:?}"),
        }
    }

    /// Makes the user of `session` and `b` friends.
    pub(crate) async fn befriend(&self, session: &Session, b: UserId) {
        let request = SessionRequest::AddFriend(AddFriend {
            id: None,
            friendid: b,
        });
        self.acked(session, request).await;
    }

    /// A new group of the user of `creator`.
    pub(crate) async fn create_group(&self, creator: &Session, name: &str) -> GroupId {
        let create = SessionRequest::CreateGroup(CreateGroup {
            id: None,
            groupname: name.to_owned(),
            groupdesc: "a benchmark group".to_owned(),
        });
        let ack = self.acked(creator, create).await;
        ack.groupid.expect("a new group's id")
    }

    /// The user of `session` joins `group`.
    pub(crate) async fn join_group(&self, session: &Session, group: GroupId) {
        let join = SessionRequest::AddGroup(AddGroup {
            id: None,
            groupid: group,
        });
        self.acked(session, join).await;
    }

    /// Deliveries taken out of outboxes so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Waits until `expected` deliveries have been read from outboxes;
    /// panics after a few seconds: then the benchmark measured a path on
    /// which deliveries get lost or go to refills.
    pub(crate) async fn settle(&self, expected: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.delivered() < expected {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {expected} deliveries reached their outboxes",
                self.delivered()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(self.delivered(), expected, "no delivery more than sent");
    }

    /// A connection task serving `user` over an in-memory pipe, logged in
    /// through it; the other end is returned. The connection is chatd's
    /// (`connection::serve`) with the request rate limit off and no
    /// heartbeat or login timeout to interrupt a long measurement.
    pub(crate) async fn connect_wire(&self, user: UserId) -> WireClient {
        let (ours, theirs) = tokio::io::duplex(PIPE);
        let config = ConnectionConfig {
            outbox_capacity: OUTBOX,
            rate_limit: RateLimit::OFF,
            heartbeat: Duration::from_secs(24 * 3600),
            login_timeout: None,
            ..ConnectionConfig::default()
        };
        tokio::spawn(connection::serve(
            theirs,
            None,
            self.service.clone(),
            config,
            self.shutdown.clone(),
        ));
        let (read, write) = tokio::io::split(ours);
        let mut client = WireClient {
            read,
            write,
            buf: Vec::new(),
            last: Vec::new(),
        };
        let login = ClientFrame {
            rid: Some(1),
            request: Request::Anonymous(BenchNode::login_request(user)),
        };
        client.send(&login).await;
        let reply = client.frames(1).await;
        match ServerFrame::decode(reply) {
            Ok(ServerFrame::LoginOk(_)) => client,
            other => panic!("logging in {user} over the pipe: {other:?}"),
        }
    }

    /// Stops the node's tasks.
    pub(crate) fn stop(self) {
        self.shutdown.cancel();
        for reader in self.readers {
            reader.abort();
        }
    }
}

/// A runtime on the benchmark's own thread: every task the measured
/// requests cause (hub, outbox readers, the store's batch writer) runs on
/// the measured thread, so its time counts; SQLite's own worker thread
/// is the exception.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The client's end of a connection served over an in-memory pipe: it
/// writes request bytes and counts reply frames (one per `\n`), decoding
/// only the ones a benchmark asks for.
pub(crate) struct WireClient {
    read: ReadHalf<DuplexStream>,
    write: WriteHalf<DuplexStream>,
    /// Bytes read and not yet taken: whole frames, then part of one.
    buf: Vec<u8>,
    /// The last frame [`WireClient::frames`] took, without its `\n`.
    last: Vec<u8>,
}

impl WireClient {
    /// Writes `frame` as a native client encodes it.
    pub(crate) async fn send(&mut self, frame: &ClientFrame) {
        let mut bytes = Vec::new();
        frame.encode(&mut bytes);
        self.send_bytes(&bytes).await;
    }

    /// Writes bytes already encoded (one or more whole frames).
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.write
            .write_all(bytes)
            .await
            .expect("the connection reads its pipe");
    }

    /// Reads until `count` more frames have come and returns the last of
    /// them, without its `\n`; panics if the connection closes first.
    pub(crate) async fn frames(&mut self, count: usize) -> &[u8] {
        assert!(count > 0, "a frame to wait for");
        let (mut seen, mut scanned, mut start) = (0, 0, 0);
        let mut last = 0..0;
        loop {
            for (i, &b) in self.buf[scanned..].iter().enumerate() {
                if b == b'\n' && seen < count {
                    let end = scanned + i;
                    last = start..end;
                    start = end + 1;
                    seen += 1;
                }
            }
            scanned = self.buf.len();
            if seen == count {
                break;
            }
            self.buf.reserve(16 * 1024);
            let n = self
                .read
                .read_buf(&mut self.buf)
                .await
                .expect("the connection writes its pipe");
            assert!(
                n > 0,
                "the connection closed after {seen} of {count} frames"
            );
        }
        self.last.clear();
        self.last.extend_from_slice(&self.buf[last]);
        // What follows stays for the next call (normally nothing).
        self.buf.drain(..start);
        &self.last
    }
}
