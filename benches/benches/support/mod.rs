//! A node in process for the dispatch and login benchmarks: a
//! `ChatService` on an in-memory or SQLite-in-memory store with the
//! in-process bus and presence (`Backends::local`), and users who register
//! and log in through the service itself. Every logged-in connection gets
//! a task that empties its outbox, as a connection task would, counting
//! what it receives so that a benchmark can check nothing went missing.

// Each benchmark binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatcore::ChatService;
use chatcore::model::{GroupId, UserId};
use chatcore::node::{self, Backends};
use chatcore::protocol::{
    AddFriend, AddGroup, CreateGroup, Login, NATIVE_PROTO, Register, Request, RequestFrame,
    ServerFrame,
};
use chatcore::service::{ConnState, HashParams, Passwords, ServiceConfig};
use chatcore::store::{MemoryStore, SqlStore, SqlStoreOptions, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every bench user's password.
const PASSWORD: &str = "correct horse battery staple";
/// Outbox depth of a connection (`ConnectionConfig::outbox_capacity`).
const OUTBOX: usize = 1024;

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

/// A request frame with a request id, as the native client sends them.
pub(crate) fn frame(request: Request) -> RequestFrame {
    RequestFrame {
        rid: Some(1),
        request,
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

    /// An anonymous connection whose outbox a reader task empties.
    pub(crate) fn connect(&mut self) -> ConnState {
        let (outbox, mut events) = mpsc::channel(OUTBOX);
        let delivered = Arc::clone(&self.delivered);
        self.readers.push(tokio::spawn(async move {
            while events.recv().await.is_some() {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }));
        ConnState::new(outbox, None)
    }

    /// Registers `name` through the service.
    pub(crate) async fn register(&mut self, name: &str) -> UserId {
        let mut conn = self.connect();
        let register = Request::Register(Register {
            name: name.to_owned(),
            password: PASSWORD.to_owned(),
            proto: Some(NATIVE_PROTO),
        });
        match self.service.handle(&mut conn, frame(register)).await {
            Some(ServerFrame::RegisterOk { id, .. }) => id,
            other => panic!("registering {name}: {other:?}"),
        }
    }

    /// The login request of `user` (native dialect).
    pub(crate) fn login_request(user: UserId) -> RequestFrame {
        frame(Request::Login(Login {
            id: user,
            password: PASSWORD.to_owned(),
            proto: Some(NATIVE_PROTO),
        }))
    }

    /// A connection logged in as `user`.
    pub(crate) async fn login(&mut self, user: UserId) -> ConnState {
        let mut conn = self.connect();
        match self
            .service
            .handle(&mut conn, BenchNode::login_request(user))
            .await
        {
            Some(ServerFrame::LoginOk(_)) => conn,
            other => panic!("logging in {user}: {other:?}"),
        }
    }

    /// Makes `a` and `b` friends, `a` logged in on `conn`.
    pub(crate) async fn befriend(&self, conn: &mut ConnState, b: UserId) {
        let request = Request::AddFriend(AddFriend {
            id: None,
            friendid: b,
        });
        match self.service.handle(conn, frame(request)).await {
            Some(ServerFrame::Ack(_)) => {}
            other => panic!("adding friend {b}: {other:?}"),
        }
    }

    /// A new group of the user logged in on `creator`.
    pub(crate) async fn create_group(&self, creator: &mut ConnState, name: &str) -> GroupId {
        let create = Request::CreateGroup(CreateGroup {
            id: None,
            groupname: name.to_owned(),
            groupdesc: "a benchmark group".to_owned(),
        });
        match self.service.handle(creator, frame(create)).await {
            Some(ServerFrame::Ack(ack)) => ack.groupid.expect("a new group's id"),
            other => panic!("creating group {name}: {other:?}"),
        }
    }

    /// The user logged in on `conn` joins `group`.
    pub(crate) async fn join_group(&self, conn: &mut ConnState, group: GroupId) {
        let join = Request::AddGroup(AddGroup {
            id: None,
            groupid: group,
        });
        match self.service.handle(conn, frame(join)).await {
            Some(ServerFrame::Ack(_)) => {}
            other => panic!("joining group {group}: {other:?}"),
        }
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
