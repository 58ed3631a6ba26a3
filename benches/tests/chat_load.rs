//! Runs the `chat-load` binary for a couple of seconds against a real
//! server in this process (SQLite in memory, in-process bus) and checks its
//! JSON summary: messages delivered, none lost, repeated or reordered;
//! and the CPU it reports per process and per message.

use std::path::PathBuf;
use std::sync::Arc;

use chatcore::connection::ConnectionConfig;
use chatcore::limit::RateLimit;
use chatcore::node::{self, Backends};
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Server {
    addr: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start_server() -> Server {
    let store = SqlStore::connect(SqlStoreOptions::new("sqlite::memory:"))
        .await
        .expect("sqlite in memory");
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    // chat-load is on trial here, not the request rate limit: with cheap
    // hashing its login clients loop faster than the default 200/s.
    let config = ServerConfig {
        connection: ConnectionConfig {
            rate_limit: RateLimit::OFF,
            ..ConnectionConfig::default()
        },
        ..ServerConfig::default()
    };
    let task = tokio::spawn(server::run(listener, service, config, shutdown.clone()));
    Server {
        addr,
        shutdown,
        task,
    }
}

/// Runs chat-load with `args` and returns its JSON summary.
async fn chat_load(name: &str, server: &Server, args: &[&str]) -> Value {
    chat_load_with_text(name, server, args).await.0
}

/// Runs chat-load with `args` and returns its JSON summary and what it
/// printed.
async fn chat_load_with_text(name: &str, server: &Server, args: &[&str]) -> (Value, String) {
    let json: PathBuf = [
        env!("CARGO_TARGET_TMPDIR"),
        &format!("chat-load-{name}-{}.json", std::process::id()),
    ]
    .iter()
    .collect();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args([
            "--addr",
            &server.addr,
            "--duration",
            "2",
            "--grace",
            "5",
            "--no-progress",
        ])
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .await
        .expect("chat-load runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{name}:\n{stdout}{stderr}");
    assert!(
        output.status.success(),
        "chat-load {name} failed: {}",
        output.status
    );
    let text = std::fs::read_to_string(&json).expect("summary written");
    let _ = std::fs::remove_file(&json);
    let summary = serde_json::from_str(&text).expect("summary is JSON");
    (summary, stdout.into_owned())
}

fn number(summary: &Value, key: &str) -> f64 {
    summary[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing from {summary}"))
}

/// The contract every chat scenario must keep.
fn assert_clean_delivery(summary: &Value) {
    assert!(number(summary, "delivered") > 0.0, "{summary}");
    assert_eq!(number(summary, "lost"), 0.0, "{summary}");
    assert_eq!(number(summary, "duplicated"), 0.0, "{summary}");
    assert_eq!(number(summary, "reordered"), 0.0, "{summary}");
    assert!(number(summary, "throughput_msgs_per_s") > 0.0, "{summary}");
    for key in ["p50", "p90", "p99", "p99.9", "max"] {
        assert!(
            summary["latency_ms"][key].as_f64().is_some(),
            "latency_ms.{key}: {summary}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_reports_clean_one_to_one_and_group_runs() {
    let server = start_server().await;

    let one_to_one = chat_load(
        "one-to-one",
        &server,
        &["--scenario", "one-to-one", "--clients", "8"],
    )
    .await;
    assert_clean_delivery(&one_to_one);
    // Every acked message was owed exactly one delivery, and all came.
    assert!(number(&one_to_one, "acked") > 0.0, "{one_to_one}");
    assert_eq!(
        number(&one_to_one, "expected_deliveries"),
        number(&one_to_one, "acked")
    );
    assert_eq!(
        number(&one_to_one, "delivered"),
        number(&one_to_one, "acked")
    );
    assert!(
        one_to_one["ack_latency_ms"]["p99"]
            .as_f64()
            .is_some_and(|p| p > 0.0)
    );

    let group = chat_load(
        "group",
        &server,
        &[
            "--scenario",
            "group",
            "--clients",
            "12",
            "--group-size",
            "6",
            "--group-senders",
            "2",
            "--rate",
            "50",
        ],
    )
    .await;
    assert_clean_delivery(&group);
    // Two groups of six: each acked message is owed to the five others.
    assert_eq!(
        number(&group, "expected_deliveries"),
        5.0 * number(&group, "acked")
    );
    assert_eq!(
        number(&group, "delivered"),
        number(&group, "expected_deliveries")
    );

    server.shutdown.cancel();
    server.task.await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_drives_the_legacy_dialect() {
    let server = start_server().await;
    // The server paces frames to legacy clients (10 ms each), so a low rate.
    let legacy = chat_load(
        "legacy",
        &server,
        &[
            "--legacy",
            "--scenario",
            "one-to-one",
            "--clients",
            "4",
            "--rate",
            "20",
        ],
    )
    .await;
    assert_clean_delivery(&legacy);
    assert_eq!(legacy["loss_basis"], "sent");
    assert_eq!(number(&legacy, "delivered"), number(&legacy, "sent"));
    server.shutdown.cancel();
    server.task.await.expect("server stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_holds_idle_connections_and_counts_logins() {
    let server = start_server().await;
    let pid = std::process::id().to_string();
    let idle = chat_load(
        "idle",
        &server,
        &[
            "--scenario",
            "idle",
            "--clients",
            "20",
            "--server-pid",
            &pid,
        ],
    )
    .await;
    assert_eq!(number(&idle, "held"), 20.0, "{idle}");
    assert_eq!(number(&idle, "setup_failed"), 0.0, "{idle}");
    assert!(idle["server_rss_kib_after"].as_f64().is_some(), "{idle}");
    // The server here shares its process with the other tests' servers,
    // so its open-file growth is only known to be positive.
    assert!(number(&idle, "server_connections_added") > 0.0, "{idle}");

    let login = chat_load("login", &server, &["--scenario", "login", "--clients", "4"]).await;
    assert!(number(&login, "logins") > 0.0, "{login}");
    assert!(number(&login, "logins_per_s") > 0.0, "{login}");
    assert_eq!(number(&login, "refused"), 0.0, "{login}");

    let resume = chat_load(
        "resume",
        &server,
        &["--scenario", "resume", "--clients", "4"],
    )
    .await;
    assert!(number(&resume, "logins") > 0.0, "{resume}");
    assert_eq!(number(&resume, "refused"), 0.0, "{resume}");

    let backlog = chat_load(
        "backlog",
        &server,
        &[
            "--scenario",
            "backlog",
            "--clients",
            "4",
            "--backlog",
            "300",
        ],
    )
    .await;
    assert_eq!(number(&backlog, "acked"), 600.0, "{backlog}");
    assert_eq!(number(&backlog, "delivered"), 600.0, "{backlog}");
    for error in ["lost", "duplicated", "reordered"] {
        assert_eq!(number(&backlog, error), 0.0, "{backlog}");
    }
    assert_eq!(backlog["backlog_sync_ms"]["count"], 2, "{backlog}");
    server.shutdown.cancel();
    server.task.await.expect("server stops");
}

/// A finite, non-negative number at `summary[key]`.
fn plausible(value: &Value, key: &str) -> f64 {
    let x = value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing from {value}"));
    assert!(x.is_finite() && x >= 0.0, "`{key}` = {x} in {value}");
    x
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_reports_cpu_per_delivered_message() {
    let server = start_server().await;
    // The server runs in this process; an idle `sleep` stands in for a
    // service (a database, Redis) beside it.
    let mut service = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("sleep runs");
    let (me, other) = (std::process::id(), service.id());
    let (summary, text) = chat_load_with_text(
        "cpu",
        &server,
        &[
            "--scenario",
            "one-to-one",
            "--clients",
            "8",
            "--server-pid",
            &me.to_string(),
            "--service-pid",
            &format!("sleeper={other}"),
            "--idle-baseline",
        ],
    )
    .await;
    let _ = service.kill();
    let _ = service.wait();
    assert_clean_delivery(&summary);
    let delivered = number(&summary, "delivered");

    // One entry per given process, servers first, named as documented.
    let cpu = summary["cpu"].as_array().expect("a `cpu` array");
    assert_eq!(cpu.len(), 2, "{summary}");
    assert_eq!(cpu[0]["name"], "chatd");
    assert_eq!(cpu[0]["pid"], me);
    assert_eq!(cpu[0]["role"], "server");
    assert_eq!(cpu[1]["name"], "sleeper");
    assert_eq!(cpu[1]["pid"], other);
    assert_eq!(cpu[1]["role"], "service");
    for entry in cpu {
        let cpu_ms = plausible(entry, "cpu_ms");
        let per_msg = plausible(entry, "cpu_us_per_msg");
        assert!(
            (per_msg - cpu_ms * 1000.0 / delivered).abs() < 1e-6,
            "{entry}"
        );
        let idle_ms = plausible(entry, "idle_cpu_ms");
        let net_ms = plausible(entry, "cpu_ms_net");
        assert!(
            (net_ms - (cpu_ms - idle_ms).max(0.0)).abs() < 1e-6,
            "{entry}"
        );
        plausible(entry, "cpu_us_per_msg_net");
    }
    // The server delivered two seconds of messages: that took CPU. The
    // sleeper took none to speak of (a tick at most).
    assert!(number(&cpu[0], "cpu_ms") > 0.0, "{summary}");
    assert!(number(&cpu[1], "cpu_ms") <= 10.0, "{summary}");

    // The servers together, per delivered message: here the one server.
    let server_us = plausible(&summary, "server_cpu_us_per_msg");
    assert!((server_us - number(&cpu[0], "cpu_us_per_msg")).abs() < 1e-6);
    assert!(server_us > 0.0);
    plausible(&summary, "server_cpu_us_per_msg_net");
    // The load phase is the run's two seconds and the drain after them,
    // and the baseline as long as `--duration`.
    let load_s = plausible(&summary, "cpu_load_s");
    assert!((2.0..7.5).contains(&load_s), "{summary}");
    let idle_s = plausible(&summary, "idle_baseline_s");
    assert!((2.0..4.0).contains(&idle_s), "{summary}");

    // The printed summary says the same.
    assert!(text.contains("load phase"), "{text}");
    for name in ["chatd", "sleeper", "servers together"] {
        assert!(text.contains(name), "{name} in {text}");
    }

    server.shutdown.cancel();
    server.task.await.expect("server stops");
}

/// Runs chat-load with `args`, expecting it to refuse them; returns what
/// it wrote to stderr.
async fn refused(args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args(["--addr", "127.0.0.1:9", "--duration", "1", "--no-progress"])
        .args(args)
        .output()
        .await
        .expect("chat-load runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?} refused: {stderr}");
    stderr
}

#[tokio::test]
async fn chat_load_refuses_bad_process_ids() {
    // Without `=`, without a name, without a number: clap's usage error
    // names the flag and the form wanted.
    for bad in ["mariadb", "=1234", "redis=12ab"] {
        let stderr = refused(&["--service-pid", bad]).await;
        assert!(stderr.contains("--service-pid"), "{bad}: {stderr}");
        assert!(stderr.contains("NAME=PID"), "{bad}: {stderr}");
    }
    // A process that does not exist is refused before anything is set up
    // (the address above has no server), naming the process.
    let stderr = refused(&["--service-pid", "redis=4000000000"]).await;
    assert!(
        stderr.contains("cannot read the CPU time of redis (pid 4000000000)"),
        "{stderr}"
    );
}
