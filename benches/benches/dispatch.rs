//! `ChatService::handle` of chat requests from a logged-in native
//! connection, in process: validation, store first, the bus publish and
//! the ack, on the in-memory store and on SQLite in memory.
//!
//! - `dispatch/<store>/one_chat_recipient_offline`: `handle()` alone; the
//!   recipient has no session, so the publish finds nobody to ring.
//! - `dispatch/<store>/one_chat_recipient_online`: the recipient is logged
//!   in on the same node; each message is also carried by the hub into
//!   the recipient's outbox and read from it (the benchmark yields after
//!   every request, as a connection task does, so that this work runs on
//!   the measured thread).
//! - `fanout/<store>/<members>`: a `GROUP_CHAT` to a group of 10 or 100
//!   members, all logged in on the node; throughput counts deliveries.
//! - `message_path/<store>/<in flight>`: one message's whole way through
//!   chatd in process, bytes to bytes: the sender's connection task reads
//!   and decodes the `ONE_CHAT` frame, dispatches it (store first, the
//!   bus publish) and writes the encoded `CHAT_ACK`; the recipient's
//!   connection task takes the delivery from the hub and writes the
//!   encoded push; the recipient acknowledges every 64th push with a
//!   `DELIVERED`, as chat-load's clients do. The connections are chatd's
//!   own (`connection::serve`) on in-memory pipes instead of sockets.
//!   `one_in_flight` sends the next message once the last one's push and
//!   ack are in (the closed loop of a light load: every wake-up is paid by
//!   one message); `window_64` writes 64 frames at once and waits for all
//!   (the batching of a busy connection).
//!
//! ```text
//! cargo bench --workspace --bench dispatch -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Method and figures: `docs/benchmarks.md`.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chatcore::model::Target;
use chatcore::protocol::{Chat, ClientFrame, DeliveryAck, Request, ServerFrame, SessionRequest};
use chatcore::service::{HashParams, Outcome, Session};
use criterion::{Criterion, Throughput};
use support::{BenchNode, StoreKind, WireClient};
use tokio::runtime::Runtime;

/// The message body (the one `store_send` uses).
const BODY: &str = "a chat message of a typical length, some forty to eighty bytes";
/// Requests cloned ahead of a timed run, so that the clone is not timed.
const CHUNK: u64 = 1024;
/// Stored messages plus deliveries after which a fresh node replaces the
/// old one between samples, so that memory stays bounded however many
/// iterations criterion asks for.
const RESET_AFTER: u64 = 2_000_000;
/// Pushes between two cumulative `DELIVERED` of a wire recipient (as
/// chat-load's clients send them).
const ACK_EVERY: usize = 64;

/// A sender logged in on a node, sending one request over and over.
struct Sender {
    node: BenchNode,
    session: Session,
    request: SessionRequest,
    /// Deliveries each request causes to live sessions.
    live_per_send: u64,
    /// Deliveries the store records per request (online or not).
    stored_per_send: u64,
    /// Yield to the scheduler after each request.
    yield_each: bool,
    sent: u64,
}

/// What a benchmark sends to.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    OneChat {
        recipient_online: bool,
    },
    /// A group of this many members (the sender included), all online.
    Group {
        members: usize,
    },
}

impl Sender {
    async fn start(store: StoreKind, scenario: Scenario) -> Sender {
        let mut node = BenchNode::start(store, HashParams::insecure_fast()).await;
        let sender = node.register("sender").await;
        match scenario {
            Scenario::OneChat { recipient_online } => {
                let recipient = node.register("recipient").await;
                if recipient_online {
                    // The connection lives on in the node's reader task.
                    drop(node.login(recipient).await);
                }
                let session = node.login(sender).await;
                Sender {
                    node,
                    session,
                    request: chat(Target::User(recipient)),
                    live_per_send: u64::from(recipient_online),
                    stored_per_send: 1,
                    yield_each: recipient_online,
                    sent: 0,
                }
            }
            Scenario::Group { members } => {
                let session = node.login(sender).await;
                let group = node.create_group(&session, "fanout").await;
                for i in 1..members {
                    let member = node.register(&format!("member{i}")).await;
                    let member_session = node.login(member).await;
                    node.join_group(&member_session, group).await;
                }
                let others = members as u64 - 1;
                Sender {
                    node,
                    session,
                    request: chat(Target::Group(group)),
                    live_per_send: others,
                    stored_per_send: others,
                    yield_each: true,
                    sent: 0,
                }
            }
        }
    }

    /// Sends `iters` requests and returns the time spent handling them.
    async fn run(&mut self, iters: u64) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK);
            let requests: Vec<(u64, SessionRequest)> = (0..n)
                .map(|i| (self.sent + i, self.request.clone()))
                .collect();
            let started = Instant::now();
            for (rid, request) in requests {
                let reply = self
                    .node
                    .service
                    .handle(&self.session, Some(rid), request)
                    .await;
                assert!(
                    matches!(reply, Outcome::Reply(ServerFrame::ChatAck(_))),
                    "a chat is stored and acked, got {reply:?}"
                );
                black_box(reply);
                if self.yield_each {
                    tokio::task::yield_now().await;
                }
            }
            elapsed += started.elapsed();
            self.sent += n;
            left -= n;
        }
        self.node.settle(self.sent * self.live_per_send).await;
        elapsed
    }

    /// True once the store holds enough to be worth starting afresh.
    fn grown(&self) -> bool {
        self.sent * (1 + self.stored_per_send) > RESET_AFTER
    }
}

fn chat(target: Target) -> SessionRequest {
    SessionRequest::Chat(Chat {
        id: None,
        target,
        msg: BODY.to_owned(),
        cmid: None,
    })
}

/// A sender and its recipient, each on a connection served over an
/// in-memory pipe, and the bytes the sender writes.
struct MessagePath {
    node: BenchNode,
    sender: WireClient,
    recipient: WireClient,
    /// `in_flight` one-to-one chat frames, encoded once.
    burst: Vec<u8>,
    in_flight: usize,
    /// Pushes the recipient has not acknowledged yet.
    unacked: usize,
    sent: u64,
}

impl MessagePath {
    async fn start(store: StoreKind, in_flight: usize) -> MessagePath {
        let mut node = BenchNode::start(store, HashParams::insecure_fast()).await;
        let sender = node.register("sender").await;
        let recipient = node.register("recipient").await;
        let mut burst = Vec::new();
        for rid in 0..in_flight as u64 {
            let frame = ClientFrame {
                // Request ids after the login's (1); the ack echoes them.
                rid: Some(2 + rid),
                request: Request::Session(chat(Target::User(recipient))),
            };
            frame.encode(&mut burst);
        }
        let mut path = MessagePath {
            sender: node.connect_wire(sender).await,
            recipient: node.connect_wire(recipient).await,
            node,
            burst,
            in_flight,
            unacked: 0,
            sent: 0,
        };
        path.check().await;
        path
    }

    /// One untimed round whose frames are decoded: what the timed rounds
    /// only count must be a push and a chat ack.
    async fn check(&mut self) {
        self.sender.send_bytes(&self.burst).await;
        let push = ServerFrame::decode(self.recipient.frames(self.in_flight).await);
        assert!(
            matches!(&push, Ok(ServerFrame::Push { message, .. }) if message.body == BODY),
            "the recipient's last frame is the push: {push:?}"
        );
        let ack = ServerFrame::decode(self.sender.frames(self.in_flight).await);
        assert!(
            matches!(ack, Ok(ServerFrame::ChatAck(_))),
            "the sender's last frame is a chat ack: {ack:?}"
        );
        self.unacked += self.in_flight;
        self.sent += self.in_flight as u64;
    }

    /// Sends `iters` bursts and returns the time until each one's pushes
    /// and acks were all read.
    async fn run(&mut self, iters: u64) -> Duration {
        let started = Instant::now();
        for _ in 0..iters {
            self.sender.send_bytes(&self.burst).await;
            let last = self.recipient.frames(self.in_flight).await;
            self.unacked += self.in_flight;
            if self.unacked >= ACK_EVERY {
                // The one push decoded: the recipient needs its `seq`.
                let Ok(ServerFrame::Push { seq, .. }) = ServerFrame::decode(last) else {
                    panic!("a push, got {:?}", String::from_utf8_lossy(last));
                };
                self.unacked = 0;
                let ack = ClientFrame {
                    rid: None,
                    request: Request::Session(SessionRequest::DeliveryAck(DeliveryAck { seq })),
                };
                self.recipient.send(&ack).await;
            }
            black_box(self.sender.frames(self.in_flight).await);
        }
        self.sent += iters * self.in_flight as u64;
        started.elapsed()
    }

    /// True once the store holds enough to be worth starting afresh.
    fn grown(&self) -> bool {
        self.sent * 2 > RESET_AFTER
    }
}

/// Benchmarks the message path with `in_flight` messages at once.
fn bench_message_path(c: &mut Criterion, rt: &Runtime, store: StoreKind, in_flight: usize) {
    let mut path = rt.block_on(MessagePath::start(store, in_flight));
    let id = match in_flight {
        1 => "one_in_flight".to_owned(),
        n => format!("window_{n}"),
    };
    let mut bench = c.benchmark_group(format!("message_path/{}", store.name()));
    bench.throughput(Throughput::Elements(in_flight as u64));
    bench.bench_function(id, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                if path.grown() {
                    let fresh = MessagePath::start(store, in_flight).await;
                    std::mem::replace(&mut path, fresh).node.stop();
                }
                path.run(iters).await
            })
        });
    });
    bench.finish();
    path.node.stop();
}

/// Benchmarks `scenario` on `store` as `group/id`.
fn bench_sender(
    c: &mut Criterion,
    rt: &Runtime,
    group: &str,
    id: &str,
    store: StoreKind,
    scenario: Scenario,
) {
    let mut sender = rt.block_on(Sender::start(store, scenario));
    let mut bench = c.benchmark_group(format!("{group}/{}", store.name()));
    bench.throughput(Throughput::Elements(sender.stored_per_send));
    bench.bench_function(id, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                if sender.grown() {
                    let fresh = Sender::start(store, scenario).await;
                    std::mem::replace(&mut sender, fresh).node.stop();
                }
                sender.run(iters).await
            })
        });
    });
    bench.finish();
    sender.node.stop();
}

fn main() {
    let rt = support::runtime();
    let mut c = Criterion::default().configure_from_args();
    for store in [StoreKind::Memory, StoreKind::Sqlite] {
        for recipient_online in [false, true] {
            let id = if recipient_online {
                "one_chat_recipient_online"
            } else {
                "one_chat_recipient_offline"
            };
            let scenario = Scenario::OneChat { recipient_online };
            bench_sender(&mut c, &rt, "dispatch", id, store, scenario);
        }
        for members in [10, 100] {
            let scenario = Scenario::Group { members };
            bench_sender(&mut c, &rt, "fanout", &members.to_string(), store, scenario);
        }
        for in_flight in [1, ACK_EVERY] {
            bench_message_path(&mut c, &rt, store, in_flight);
        }
    }
    c.final_summary();
}
