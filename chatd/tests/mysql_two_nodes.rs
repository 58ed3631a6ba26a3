//! Two `chatd` processes on one MySQL/MariaDB database: both migrate the
//! fresh database at once, and many senders spread over both give one
//! recipient inbox seqs 1..N with no gap and no duplicate, each sender's
//! messages in its order, every acknowledged message stored.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test --workspace --test mysql_two_nodes
//! ```

mod support;

use std::collections::HashMap;
use std::process::ExitCode;

use chat_testkit::mysql::ThrowawayDatabase;
use chat_testkit::{Service, trial};
use chatcore::client::Client;
use chatcore::model::{MessageId, Seq, Target, UserId};
use support::Chatd;

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(senders_on_two_chatd_processes_give_one_inbox_seqs_1_to_n)
            .needs(&[Service::Mysql])
            .multi_thread(2),
    ])
}

/// A node alone (no Redis) on `database_url`, its log in `log_dir`.
fn spawn_chatd(name: &str, log_dir: &std::path::Path, database_url: &str) -> Chatd {
    Chatd::spawn(
        name,
        log_dir,
        &["--database-url".to_owned(), database_url.to_owned()],
    )
}

async fn register(addr: &str, name: &str) -> (Client, UserId) {
    let client = Client::connect(addr).await.expect("connect");
    let id = client.register(name, "pw").await.expect("register");
    client.login(id, "pw").await.expect("login");
    (client, id)
}

async fn senders_on_two_chatd_processes_give_one_inbox_seqs_1_to_n() {
    let database = ThrowawayDatabase::create().await;
    let logs = tempfile::tempdir().expect("tempdir");

    // Both start on the empty database at once: both try to migrate.
    let mut a = spawn_chatd("a", logs.path(), &database.url);
    let mut b = spawn_chatd("b", logs.path(), &database.url);
    a.wait_listening().await;
    b.wait_listening().await;

    let (recipient, recipient_id) = register(&a.addr, "recipient").await;
    const SENDERS: usize = 8;
    const EACH: usize = 50;
    let mut tasks = Vec::new();
    for i in 0..SENDERS {
        let addr = if i % 2 == 0 {
            a.addr.clone()
        } else {
            b.addr.clone()
        };
        tasks.push(tokio::spawn(async move {
            let (client, id) = register(&addr, &format!("sender{i}")).await;
            let mut mids = Vec::with_capacity(EACH);
            for n in 0..EACH {
                let text = format!("{i}/{n}");
                let sent = client
                    .send(Target::User(recipient_id), &text, Some(&text))
                    .await
                    .unwrap_or_else(|err| panic!("send {text}: {err}"));
                assert!(!sent.duplicate);
                mids.push(sent.mid);
            }
            (id, mids)
        }));
    }
    let mut acked: HashMap<UserId, Vec<MessageId>> = HashMap::new();
    for task in tasks {
        let (id, mids) = task.await.expect("sender");
        acked.insert(id, mids);
    }

    let mut inbox = Vec::new();
    loop {
        let after = inbox.last().map_or(Seq::ZERO, |(seq, _, _)| *seq);
        let (page, more) = recipient.sync(after, 500).await.expect("sync");
        inbox.extend(
            page.into_iter()
                .map(|m| (m.seq.expect("an inbox entry has a seq"), m.from, m.mid)),
        );
        if !more {
            break;
        }
    }
    let n = (SENDERS * EACH) as i64;
    let seqs: Vec<i64> = inbox.iter().map(|(seq, _, _)| seq.0).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "seqs 1..{n}");
    // Each sender's acknowledged messages, all there, in the order sent.
    for (sender, mids) in &acked {
        let stored: Vec<MessageId> = inbox
            .iter()
            .filter(|(_, from, _)| from == sender)
            .map(|(_, _, mid)| *mid)
            .collect();
        assert_eq!(&stored, mids, "messages of {sender}");
    }

    drop(recipient);
    drop(a);
    drop(b);
    drop(database);
}
