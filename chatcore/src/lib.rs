//! `chatcore`: the protocol, dispatcher and backends of a cluster chat
//! server that speaks the ZJP-ChatServer protocol (JSON frames over TCP),
//! embeddable in any tokio program.
//!
//! # Layout
//!
//! Layers from the socket down; each depends only on those below it.
//!
//! - [`server`]: the TCP accept loop (bounded, stopped by a token).
//! - [`connection`]: one task per client owning its state machine
//!   (anonymous, then a user's session), replies, deliveries, heartbeats,
//!   over a transport of whole frames (TCP with the legacy pacing).
//! - [`codec`]: bytes to frames (`\n` or NUL terminated, bounded length).
//! - [`protocol`]: the wire, both ways: client and server frames as typed
//!   values, in both dialects.
//! - [`service`]: [`ChatService`], one handler per request kind; returns
//!   typed outcomes, never touches sockets or connection state.
//! - `hub` (internal): this node's sessions and the loop feeding them bus
//!   events.
//! - [`store`], [`bus`], [`presence`]: the backend traits with their
//!   implementations; [`node`] wires them into a running service.
//! - `redis_target` (feature `redis`): one Redis or a Redis Cluster under
//!   the bus, presence and guard counters, and the command connection over
//!   either.
//! - [`retention`]: the job deleting old, acknowledged messages.
//! - [`limit`]: per-connection request rate; the failed-login guard and
//!   the registration rate, with their counts in process or in Redis.
//! - [`model`]: the domain types every layer shares.
//! - [`client`]: a typed async client (tests, examples, tools).
//! - [`telemetry`]: the metrics every layer records (no-ops until the
//!   embedding program installs a `metrics` recorder).
//!
//! # Delivery contract
//!
//! A chat message is stored with one inbox entry per recipient before the
//! sender's ack; the bus only rings doorbells; each connection writes its
//! user's inbox in `seq` order and refills from the store on any gap.
//!
//! # Example
//!
//! A node on the in-memory store with the in-process bus and presence,
//! serving TCP, and a client that registers, logs in and writes to itself:
//!
//! ```
//! use std::sync::Arc;
//!
//! use chatcore::client::{Client, Event};
//! use chatcore::node::{self, Backends};
//! use chatcore::server::{self, ServerConfig};
//! use chatcore::service::{HashParams, Passwords, ServiceConfig};
//! use chatcore::store::MemoryStore;
//! use tokio_util::{sync::CancellationToken, task::TaskTracker};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Every task of the node runs on `tasks` and ends with `shutdown`.
//!     let (tasks, shutdown) = (TaskTracker::new(), CancellationToken::new());
//!     let service = node::start(
//!         Backends::local(Arc::new(MemoryStore::new())),
//!         Passwords::new(HashParams::default(), 2)?,
//!         ServiceConfig::default(),
//!         &tasks,
//!         shutdown.clone(),
//!     );
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     tasks.spawn(server::run(listener, service, ServerConfig::default(), shutdown.clone()));
//!
//!     let mut alice = Client::connect(addr).await?;
//!     let id = alice.register("alice", "correct horse").await?;
//!     alice.login(id, "correct horse").await?;
//!     alice.send_to(id, "a note to myself").await?;
//!     match alice.next_event().await {
//!         Some(Event::Message(m)) => assert_eq!(m.msg, "a note to myself"),
//!         other => panic!("expected the note, got {other:?}"),
//!     }
//!
//!     shutdown.cancel();
//!     tasks.close();
//!     tasks.wait().await;
//!     Ok(())
//! }
//! ```
//!
//! # Cargo features
//!
//! The backends that need a database driver or a service are features,
//! all on by default:
//!
//! - `sqlite`: [`SqlStore`](store::SqlStore) on SQLite, with the schema's
//!   migrations.
//! - `mysql`: `SqlStore` on MySQL/MariaDB, with the migrations.
//! - `redis`: [`RedisBus`](bus::RedisBus) and
//!   [`RedisPresence`](presence::RedisPresence), for a cluster of nodes.
//!
//! Without them (`default-features = false`) the crate builds neither sqlx
//! nor redis and still has everything else: the protocol, the service,
//! [`node`], [`server`] and [`client`], on
//! [`MemoryStore`](store::MemoryStore), [`LocalBus`](bus::LocalBus) and
//! [`LocalPresence`](presence::LocalPresence). Of tokio it asks for `rt`,
//! `sync`, `time`, `macros`, `net` and `io-util`; the embedding program
//! chooses its runtime.

pub mod bus;
pub mod client;
pub mod codec;
pub mod connection;
mod hub;
pub mod limit;
pub mod model;
pub mod node;
pub mod presence;
pub mod protocol;
#[cfg(feature = "redis")]
pub mod redis_target;
pub mod retention;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;

pub use service::ChatService;
