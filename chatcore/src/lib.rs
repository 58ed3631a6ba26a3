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
//! - [`limit`]: per-connection request rate and failed-login backoff.
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
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;

pub use service::ChatService;
