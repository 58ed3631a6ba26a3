//! Database trouble is not a crash: a server on MySQL/MariaDB reached
//! through a TCP proxy of the test's own (`chat_testkit::proxy`), which
//! cuts every connection (and refuses new ones) or freezes them, then
//! restores them. Meanwhile requests
//! get errno 30 ("temporarily unavailable"), client connections stay open,
//! nothing acknowledged is lost, and service resumes by itself.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test --workspace --test mysql_outage
//! ```

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_testkit::mysql::ThrowawayDatabase;
use chat_testkit::proxy::{Mode, Proxy};
use chat_testkit::{Service, trial};
use chatcore::client::{Client, ClientError};
use chatcore::model::{MessageId, Seq, Target, UserId};
use chatcore::service::ServiceConfig;
use chatcore::store::{SqlStore, SqlStoreOptions};
use common::{TestServer, fast_server};

fn main() -> ExitCode {
    let tests = [
        trial!(a_cut_database_gets_errno_30_keeps_connections_and_recovers),
        trial!(a_hung_database_gets_errno_30_keeps_connections_and_recovers),
    ];
    chat_testkit::harness::run(tests.map(|test| test.needs(&[Service::Mysql]).multi_thread(2)))
}

/// errno of "service temporarily unavailable".
const UNAVAILABLE: u32 = 30;

/// A server whose store reaches the database through a proxy, with short
/// time limits so that trouble shows in seconds.
async fn server_behind_proxy(db: &ThrowawayDatabase) -> (Proxy, TestServer) {
    let proxy = Proxy::start(&db.server.addr).await;
    let mut options = SqlStoreOptions::new(db.url_via(&proxy.addr));
    options.acquire_timeout = Duration::from_secs(1);
    options.request_timeout = Duration::from_secs(2);
    let store = SqlStore::connect(options).await.expect("store via proxy");
    let server =
        TestServer::start_on(Arc::new(store), fast_server(), ServiceConfig::default()).await;
    (proxy, server)
}

/// Sends `text` until it is acknowledged, for at most `within`.
async fn send_until_acked(client: &Client, to: UserId, text: &str, within: Duration) -> MessageId {
    let deadline = Instant::now() + within;
    loop {
        match client.send(Target::User(to), text, Some(text)).await {
            Ok(sent) => return sent.mid,
            Err(err) => {
                assert_eq!(err.errno(), Some(UNAVAILABLE), "while recovering: {err}");
                assert!(Instant::now() < deadline, "no recovery within {within:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Sends during trouble: each is either refused with errno 30 or (a race
/// with the switch) acknowledged; the acknowledged ones are returned.
async fn send_during_trouble(client: &Client, to: UserId, tag: &str) -> (usize, Vec<MessageId>) {
    let mut refused = 0;
    let mut acked = Vec::new();
    for n in 0..3 {
        let text = format!("{tag} {n}");
        let started = Instant::now();
        match client.send(Target::User(to), &text, Some(&text)).await {
            Ok(sent) => acked.push(sent.mid),
            Err(ClientError::Server { errno, errmsg }) => {
                assert_eq!(errno, UNAVAILABLE, "{errmsg}");
                refused += 1;
            }
            Err(other) => panic!("the connection must stay usable: {other}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the refusal comes within the store's time limits"
        );
    }
    // The client connection is still open and served.
    client.ping().await.expect("ping during trouble");
    (refused, acked)
}

/// Every acknowledged message is in the recipient's inbox, seqs 1..N.
async fn assert_inbox_holds(client: &Client, acked: &[MessageId]) {
    let (messages, more) = client.sync(Seq::ZERO, 500).await.expect("sync");
    assert!(!more);
    let seqs: Vec<i64> = messages.iter().map(|m| m.seq.expect("seq").0).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gap");
    let stored: Vec<MessageId> = messages.iter().map(|m| m.mid).collect();
    for mid in acked {
        assert!(stored.contains(mid), "acknowledged message {mid} lost");
    }
}

async fn outage(mode: Mode) {
    let db = ThrowawayDatabase::create().await;
    let (proxy, server) = server_behind_proxy(&db).await;
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;

    let mut acked = Vec::new();
    for n in 0..5 {
        let text = format!("before {n}");
        acked.push(
            alice
                .send(Target::User(bob_id), &text, Some(&text))
                .await
                .expect("send")
                .mid,
        );
    }

    proxy.set(mode);
    let (refused, during) = send_during_trouble(&alice, bob_id, "during").await;
    acked.extend(during);
    assert!(
        refused > 0,
        "sends are refused with errno 30 while the database is away"
    );
    let err = bob.friends().await.expect_err("reads fail too");
    assert_eq!(err.errno(), Some(UNAVAILABLE), "{err}");

    proxy.set(Mode::Pass);
    acked.push(send_until_acked(&alice, bob_id, "after 0", Duration::from_secs(20)).await);
    for n in 1..5 {
        let text = format!("after {n}");
        acked.push(
            alice
                .send(Target::User(bob_id), &text, Some(&text))
                .await
                .expect("send")
                .mid,
        );
    }
    assert_inbox_holds(&bob, &acked).await;

    server.stop().await;
    drop(proxy);
    db.drop_database().await;
}

async fn a_cut_database_gets_errno_30_keeps_connections_and_recovers() {
    outage(Mode::Cut).await;
}

async fn a_hung_database_gets_errno_30_keeps_connections_and_recovers() {
    outage(Mode::Freeze).await;
}
