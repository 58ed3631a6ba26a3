//! `chatd --admin-addr`: `/health` says whether the node can serve (its
//! database and its bus answer) and `/metrics` counts what clients did, in
//! the Prometheus text format.
//!
//! ```text
//! cargo test --workspace --test admin
//! CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test --workspace --test admin
//! ```
//! The first test needs nothing (SQLite, in-process bus). The Redis one
//! runs a `redis-server` of its own on a free port; `CHAT_TEST_REDIS_URL`
//! only says that Redis is installed.

mod support;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chat_testkit::redis::PrivateRedis;
use chat_testkit::{Service, eventually, free_port, trial};
use chatcore::model::UserId;
use support::http::{self, Answer, sample};
use support::{Chatd, WAIT, new_user};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn main() -> ExitCode {
    let tests = [
        trial!(health_is_ok_and_metrics_count_logins_chats_and_deliveries),
        trial!(error_replies_are_counted_by_code_refusals_included),
        trial!(health_is_503_while_the_redis_bus_is_unreachable_and_ok_again_after)
            .needs(&[Service::Redis]),
    ];
    chat_testkit::harness::run(tests.map(|test| test.multi_thread(2)))
}

/// A `chatd` on a SQLite file in `dir` with an admin listener, and that
/// listener's address.
async fn start_with_admin(dir: &Path, extra: &[String]) -> (Chatd, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "--database-url".to_owned(),
        format!("sqlite://{}?mode=rwc", dir.join("chat.db").display()),
        "--admin-addr".to_owned(),
        admin.clone(),
    ];
    args.extend_from_slice(extra);
    let mut chatd = Chatd::spawn("chatd", dir, &args);
    chatd.wait_listening().await;
    // The admin listener opens right after the chat one.
    eventually("the admin listener accepts", WAIT, || async {
        http::get(&admin, "/health").await.is_some()
    })
    .await;
    (chatd, admin)
}

async fn health(admin: &str) -> Answer {
    http::get(admin, "/health")
        .await
        .expect("the admin listener answers")
}

async fn scrape(admin: &str) -> String {
    let answer = http::get(admin, "/metrics")
        .await
        .expect("the admin listener answers");
    assert_eq!(answer.status, 200, "GET /metrics: {}", answer.body);
    answer.body
}

/// The value of `series` in a fresh scrape, 0 when it has no sample yet.
async fn value(admin: &str, series: &str) -> f64 {
    sample(&scrape(admin).await, series).unwrap_or(0.0)
}

async fn health_is_ok_and_metrics_count_logins_chats_and_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (chatd, admin) = start_with_admin(dir.path(), &[]).await;

    let ok = health(&admin).await;
    assert_eq!(
        ok.status, 200,
        "a fresh node on SQLite is ready: {}",
        ok.body
    );
    assert_eq!(ok.body, "ready\nstore: ok\nbus: ok\n");

    assert_eq!(value(&admin, "chat_logged_in_users").await, 0.0);
    assert_eq!(
        value(&admin, r#"chat_sends_total{outcome="ok"}"#).await,
        0.0,
        "nothing sent yet"
    );

    let alice = new_user(&chatd.addr, "alice").await;
    let mut bob = new_user(&chatd.addr, "bob").await;
    alice
        .client
        .send_to(bob.id, "hello bob")
        .await
        .expect("alice's message is stored");
    let got = support::next_message(&mut bob).await;
    assert_eq!(got.msg, "hello bob");
    let refused = alice.client.send_to(UserId(999_999), "nobody").await;
    assert!(refused.is_err(), "a message to an unknown user is refused");

    let text = scrape(&admin).await;
    let at = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    };
    assert_eq!(at(r#"chat_frames_in_total{kind="reg"}"#), 2.0);
    assert_eq!(at(r#"chat_frames_in_total{kind="login"}"#), 2.0);
    assert_eq!(at(r#"chat_frames_in_total{kind="one_chat"}"#), 2.0);
    assert_eq!(at(r#"chat_frames_out_total{kind="login_ack"}"#), 2.0);
    assert_eq!(at(r#"chat_frames_out_total{kind="chat_ack"}"#), 1.0);
    assert_eq!(at(r#"chat_frames_out_total{kind="one_chat"}"#), 1.0);
    assert_eq!(at(r#"chat_frames_out_total{kind="error"}"#), 1.0);
    assert_eq!(at(r#"chat_sends_total{outcome="ok"}"#), 1.0);
    assert_eq!(at(r#"chat_sends_total{outcome="error"}"#), 1.0);
    let live = sample(&text, r#"chat_deliveries_total{path="live"}"#).unwrap_or(0.0);
    let from_store = sample(&text, r#"chat_deliveries_total{path="store"}"#).unwrap_or(0.0);
    assert_eq!(live + from_store, 1.0, "bob got one message:\n{text}");
    assert_eq!(at("chat_logged_in_users"), 2.0);
    assert_eq!(at("chat_connections"), 2.0);
    assert!(
        text.contains("# TYPE chat_store_duration_seconds histogram"),
        "store latency is a histogram:\n{text}"
    );
    assert_eq!(at(r#"chat_store_duration_seconds_count{op="send"}"#), 2.0);
    assert_eq!(
        sample(&text, r#"chat_store_errors_total{op="send"}"#),
        None,
        "an unknown recipient is an answer of the store, not a failure"
    );
    assert!(at("chat_bus_publish_duration_seconds_count") >= 1.0);

    // Gauges come down when clients leave.
    drop(bob);
    eventually("bob's session is gone from the gauges", WAIT, || async {
        value(&admin, "chat_logged_in_users").await == 1.0
            && value(&admin, "chat_connections").await == 1.0
    })
    .await;
    drop(alice);

    let missing = http::get(&admin, "/nothing-here")
        .await
        .expect("the admin listener answers");
    assert_eq!(missing.status, 404);
}

/// Reads one newline-ended frame from `reader` as JSON.
async fn read_frame(reader: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    let n = tokio::time::timeout(WAIT, reader.read_line(&mut line))
        .await
        .expect("a reply in time")
        .expect("read a reply");
    assert!(n > 0, "the connection closed before a reply");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

async fn error_replies_are_counted_by_code_refusals_included() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = [
        "--max-connections",
        "1",
        "--rate-limit",
        "1",
        "--rate-burst",
        "3",
    ]
    .map(String::from);
    let (chatd, admin) = start_with_admin(dir.path(), &limits).await;
    assert_eq!(
        value(&admin, r#"chat_errors_total{code="rate_limited"}"#).await,
        0.0
    );

    // Five frames at once on a bucket of three: three are read (and are
    // not JSON), two are refused unread. The start-up check's connection
    // may hold the node's one slot for a moment yet, so connect again
    // until served, counting the refusals.
    let mut refused_at_start = 0.0;
    let (_served, errnos) = loop {
        let stream = TcpStream::connect(&chatd.addr).await.expect("connect");
        let mut reader = BufReader::new(stream);
        reader
            .get_mut()
            .write_all(b"garbage\n".repeat(5).as_slice())
            .await
            .expect("write");
        let first = read_frame(&mut reader).await["errno"].clone();
        if first == 33 {
            refused_at_start += 1.0;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut errnos = vec![first];
        for _ in 1..5 {
            errnos.push(read_frame(&mut reader).await["errno"].clone());
        }
        break (reader, errnos);
    };
    assert_eq!(errnos, [10, 10, 10, 32, 32].map(serde_json::Value::from));

    // The node's one connection is taken: the next is turned away.
    let mut second = BufReader::new(TcpStream::connect(&chatd.addr).await.expect("connect"));
    assert_eq!(read_frame(&mut second).await["errno"], 33);

    let text = scrape(&admin).await;
    let at = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    };
    assert_eq!(at(r#"chat_errors_total{code="bad_frame"}"#), 3.0);
    assert_eq!(at(r#"chat_errors_total{code="rate_limited"}"#), 2.0);
    assert_eq!(
        at(r#"chat_errors_total{code="server_full"}"#),
        1.0 + refused_at_start
    );
    assert_eq!(at(r#"chat_frames_out_total{kind="error"}"#), 5.0);
    assert!(
        text.contains("# HELP chat_errors_total"),
        "the counter is described:\n{text}"
    );
}

async fn health_is_503_while_the_redis_bus_is_unreachable_and_ok_again_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = PrivateRedis::start_in(dir.path());
    let args = ["--redis-url".to_owned(), redis.url()];
    let (_chatd, admin) = start_with_admin(dir.path(), &args).await;

    eventually("the node is ready", WAIT, || async {
        health(&admin).await.status == 200
    })
    .await;
    assert_eq!(value(&admin, "chat_bus_reconnects_total").await, 0.0);

    redis.kill();
    eventually("/health reports the bus down", WAIT, || async {
        let answer = health(&admin).await;
        answer.status == 503
            && answer.body.starts_with("not ready\n")
            && answer.body.contains("store: ok\n")
            && answer.body.contains("bus: bus unavailable")
    })
    .await;

    redis.start_again();
    eventually("/health is ok again", WAIT, || async {
        health(&admin).await.status == 200
    })
    .await;
    assert!(
        value(&admin, "chat_bus_reconnects_total").await >= 1.0,
        "the subscriber reconnection is counted"
    );
}
