//! Sends per second on MySQL/MariaDB, group commit on and off: through
//! `SqlStore::send` alone (`store_send/...`) and end to end, acknowledged
//! one-to-one messages from native clients through an in-process server
//! over TCP (`end_to_end/...`), plus the ack latency percentiles of an
//! end-to-end load at a fixed rate (printed after the criterion groups).
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 \
//!     cargo bench --workspace --bench store_send -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `CHAT_BENCH_RATE` (default 2500 msg/s) and `CHAT_BENCH_LATENCY_SECS`
//! (default 10; 0 skips) set the latency run; `CHAT_BENCH_WRITERS` and
//! `CHAT_BENCH_WINDOW_US` the batching (`SqlStoreOptions::batch_writers`,
//! `batch_window`; defaults as there). Without `CHAT_TEST_MYSQL_URL`
//! the benchmark runs on a SQLite file instead. Method and figures:
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_testkit::Service;
use chat_testkit::mysql::ThrowawayDatabase;
use chatcore::client::{Client, Event};
use chatcore::model::{NewMessage, Target, UserId};
use chatcore::node::{self, Backends};
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions, Store};
use criterion::{BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Concurrent senders (connections) in every measurement.
const SENDERS: usize = 64;
const BODY: &str = "a chat message of a typical length, some forty to eighty bytes";
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

/// Where the benchmark's databases live.
enum Backend {
    Mysql,
    Sqlite(tempfile::TempDir),
}

/// A fresh database and what removes it.
struct Database {
    url: String,
    mysql: Option<ThrowawayDatabase>,
}

impl Backend {
    fn detect() -> Backend {
        if Service::Mysql.configured().is_some() {
            Backend::Mysql
        } else {
            eprintln!(
                "{} is not set: benchmarking a SQLite file instead",
                Service::Mysql.var()
            );
            Backend::Sqlite(tempfile::tempdir().expect("temporary directory"))
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Mysql => "mariadb",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    async fn database(&self, tag: &str) -> Database {
        match self {
            Backend::Mysql => {
                let db = ThrowawayDatabase::create().await;
                Database {
                    url: db.url.clone(),
                    mysql: Some(db),
                }
            }
            Backend::Sqlite(dir) => Database {
                url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join(format!("{tag}.db")).display()
                ),
                mysql: None,
            },
        }
    }
}

impl Database {
    async fn store(&self, batched: bool) -> SqlStore {
        let mut options = SqlStoreOptions::new(&self.url);
        options.batch_sends = batched;
        options.max_connections = 16;
        options.batch_writers =
            env_number("CHAT_BENCH_WRITERS", options.batch_writers as f64) as usize;
        options.batch_window =
            Duration::from_micros(env_number("CHAT_BENCH_WINDOW_US", 0.0) as u64);
        SqlStore::connect(options).await.expect("connect")
    }

    async fn drop_database(self) {
        if let Some(db) = self.mysql {
            db.drop_database().await;
        }
    }
}

fn mode(batched: bool) -> &'static str {
    if batched { "batched" } else { "alone" }
}

/// `total` units of work split over `SENDERS` tasks.
fn share(total: u64, i: usize) -> u64 {
    total / SENDERS as u64 + u64::from((i as u64) < total % SENDERS as u64)
}

fn bench_store(c: &mut Criterion, rt: &Runtime, target: &Backend) {
    let mut group = c.benchmark_group(format!("store_send/{}", target.name()));
    group.throughput(Throughput::Elements(1));
    for batched in [false, true] {
        let (db, store, pairs) = rt.block_on(async {
            let db = target.database(&format!("store_{}", mode(batched))).await;
            let store: Arc<dyn Store> = Arc::new(db.store(batched).await);
            let mut pairs = Vec::new();
            for i in 0..SENDERS {
                let from = store
                    .create_user(&format!("s{i}"), HASH)
                    .await
                    .expect("user");
                let to = store
                    .create_user(&format!("r{i}"), HASH)
                    .await
                    .expect("user");
                pairs.push((from, to));
            }
            (db, store, pairs)
        });
        group.bench_function(BenchmarkId::new(mode(batched), SENDERS), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let store = Arc::clone(&store);
                let pairs = pairs.clone();
                async move {
                    let started = Instant::now();
                    let mut tasks = Vec::new();
                    for (i, (from, to)) in pairs.into_iter().enumerate() {
                        let store = Arc::clone(&store);
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..share(iters, i) {
                                let receipt = store
                                    .send(NewMessage {
                                        sender: from,
                                        target: Target::User(to),
                                        body: BODY.to_owned(),
                                        client_msg_id: None,
                                        sent_at_ms: 0,
                                    })
                                    .await
                                    .expect("send");
                                black_box(receipt);
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.expect("sender");
                    }
                    started.elapsed()
                }
            });
        });
        rt.block_on(db.drop_database());
    }
    group.finish();
}

/// A node on a fresh database with `SENDERS` senders and as many online
/// recipients, each recipient reading and acking what it gets.
struct Node {
    db: Database,
    shutdown: CancellationToken,
    senders: Vec<(Arc<Client>, UserId)>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    async fn start(target: &Backend, batched: bool, tag: &str) -> Node {
        let db = target.database(tag).await;
        let store: Arc<dyn Store> = Arc::new(db.store(batched).await);
        let shutdown = CancellationToken::new();
        let passwords = Passwords::new(HashParams::insecure_fast(), 2).expect("hash params");
        // The node's tasks end with `shutdown`; nothing needs to wait for them.
        let service = node::start(
            Backends::local(store),
            passwords,
            ServiceConfig::default(),
            &TaskTracker::new(),
            shutdown.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        tokio::spawn(server::run(
            listener,
            service,
            ServerConfig::default(),
            shutdown.clone(),
        ));
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for i in 0..SENDERS {
            let (sender, _) = login(addr, &format!("s{i}")).await;
            let (mut reader, reader_id) = login(addr, &format!("r{i}")).await;
            senders.push((Arc::new(sender), reader_id));
            readers.push(tokio::spawn(async move {
                let mut read = 0u64;
                while let Some(event) = reader.next_event().await {
                    if let Event::Message(m) = event {
                        read += 1;
                        if read.is_multiple_of(32)
                            && let Some(seq) = m.seq
                        {
                            let _ = reader.ack(seq).await;
                        }
                    }
                }
            }));
        }
        Node {
            db,
            shutdown,
            senders,
            readers,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        drop(self.senders);
        for reader in self.readers {
            reader.abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.db.drop_database().await;
    }
}

async fn login(addr: SocketAddr, name: &str) -> (Client, UserId) {
    let client = Client::connect(addr).await.expect("connect");
    let id = client.register(name, "pw").await.expect("register");
    client.login(id, "pw").await.expect("login");
    (client, id)
}

fn bench_end_to_end(c: &mut Criterion, rt: &Runtime, target: &Backend) {
    let mut group = c.benchmark_group(format!("end_to_end/{}", target.name()));
    group.throughput(Throughput::Elements(1));
    for batched in [false, true] {
        let node = rt.block_on(Node::start(
            target,
            batched,
            &format!("e2e_{}", mode(batched)),
        ));
        let senders = node.senders.clone();
        group.bench_function(BenchmarkId::new(mode(batched), SENDERS), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let senders = senders.clone();
                async move {
                    let started = Instant::now();
                    let mut tasks = Vec::new();
                    for (i, (client, to)) in senders.into_iter().enumerate() {
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..share(iters, i) {
                                let sent = client.send_to(to, BODY).await.expect("send");
                                black_box(sent);
                            }
                        }));
                    }
                    for task in tasks {
                        task.await.expect("sender");
                    }
                    started.elapsed()
                }
            });
        });
        rt.block_on(node.stop());
    }
    group.finish();
}

/// Ack latency of end-to-end sends at a fixed total `rate`: every sender
/// sends on its own schedule and the latency of a send counts from when it
/// was due (so a stalled sender's backlog counts too).
async fn ack_latency(target: &Backend, batched: bool, rate: f64, secs: u64) {
    let node = Node::start(target, batched, &format!("latency_{}", mode(batched))).await;
    let period = Duration::from_secs_f64(SENDERS as f64 / rate);
    let run = Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (client, to)) in node.senders.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            // Spread the senders over one period.
            let offset = period.mul_f64(i as f64 / SENDERS as f64);
            let start = tokio::time::Instant::now() + offset;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut latencies = Vec::new();
            let end = start + run;
            loop {
                let due = ticks.tick().await;
                if due >= end {
                    break;
                }
                client.send_to(to, BODY).await.expect("send");
                latencies.push(due.elapsed());
            }
            latencies
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len().max(1)) - 1;
        all.get(i).copied().unwrap_or_default()
    };
    println!(
        "ack_latency/{}/{}: {} sends in {:.1} s ({:.0}/s, asked {rate:.0}/s), p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        target.name(),
        mode(batched),
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        pct(0.999).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    node.stop().await;
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = Backend::detect();
    let mut c = Criterion::default().configure_from_args();
    bench_store(&mut c, &rt, &target);
    bench_end_to_end(&mut c, &rt, &target);
    c.final_summary();

    let secs = env_number("CHAT_BENCH_LATENCY_SECS", 10.0) as u64;
    let rate = env_number("CHAT_BENCH_RATE", 2500.0);
    if secs > 0 {
        for batched in [false, true] {
            rt.block_on(ack_latency(&target, batched, rate, secs));
        }
    }
}
