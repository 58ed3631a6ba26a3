//! Two `chatd` processes on one MySQL/MariaDB database: both migrate the
//! fresh database at once, and many senders spread over both give one
//! recipient inbox seqs 1..N with no gap and no duplicate, each sender's
//! messages in its order, every acknowledged message stored.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 cargo test -p chatd --test mysql_two_nodes
//! ```
//!
//! The throwaway database is made and dropped with the `mariadb` (or
//! `mysql`) command-line client, which must be on the PATH.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatcore::client::Client;
use chatcore::model::{MessageId, Seq, Target, UserId};

const MYSQL_URL_VAR: &str = "CHAT_TEST_MYSQL_URL";

struct Chatd {
    child: Child,
    addr: String,
}

impl Drop for Chatd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn_chatd(database_url: &str) -> Chatd {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--listen",
            &addr,
            "--database-url",
            database_url,
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
        ])
        .env_remove("CHAT_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("chatd starts");
    Chatd { child, addr }
}

fn wait_listening(node: &mut Chatd) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&node.addr).is_err() {
        if let Ok(Some(status)) = node.child.try_wait() {
            panic!("chatd exited early: {status}");
        }
        assert!(Instant::now() < deadline, "chatd did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The parts of `mysql://user:password@host:port[/...]` the command-line
/// client needs.
struct Server {
    user: String,
    password: Option<String>,
    host: String,
    port: String,
    url: String,
}

impl Server {
    fn parse(url: &str) -> Server {
        let rest = url.strip_prefix("mysql://").expect("a mysql:// URL");
        let (userinfo, hostpart) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (userinfo.to_owned(), None),
        };
        let hostport = hostpart.split(['/', '?']).next().unwrap_or("127.0.0.1");
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
        Server {
            user,
            password,
            host: host.to_owned(),
            port: port.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    /// Runs one statement with the command-line client.
    fn sql(&self, statement: &str) {
        let mut last_error = String::new();
        for client in ["mariadb", "mysql"] {
            let mut command = Command::new(client);
            command.args([
                "--protocol=TCP",
                "-h",
                &self.host,
                "-P",
                &self.port,
                "-u",
                &self.user,
                "-e",
                statement,
            ]);
            if let Some(password) = &self.password {
                command.env("MYSQL_PWD", password);
            }
            match command.output() {
                Ok(out) if out.status.success() => return,
                Ok(out) => panic!(
                    "{client} -e {statement:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(err) => last_error = format!("{client}: {err}"),
            }
        }
        panic!("no mariadb or mysql command-line client to run {statement:?}: {last_error}");
    }
}

async fn register(addr: &str, name: &str) -> (Client, UserId) {
    let client = Client::connect(addr).await.expect("connect");
    let id = client.register(name, "pw").await.expect("register");
    client.login(id, "pw").await.expect("login");
    (client, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_on_two_chatd_processes_give_one_inbox_seqs_1_to_n() {
    let Ok(server_url) = std::env::var(MYSQL_URL_VAR) else {
        assert!(
            std::env::var_os("CHAT_TEST_REQUIRE_SERVICES").is_none(),
            "{MYSQL_URL_VAR} is not set but CHAT_TEST_REQUIRE_SERVICES is"
        );
        eprintln!("skipping two chatd processes on MySQL: {MYSQL_URL_VAR} is not set");
        return;
    };
    let server = Server::parse(&server_url);
    let name = format!(
        "chat_test_nodes_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    );
    server.sql(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"));
    let database_url = format!("{}/{name}", server.url);

    // Both start on the empty database at once: both try to migrate.
    let mut a = spawn_chatd(&database_url);
    let mut b = spawn_chatd(&database_url);
    wait_listening(&mut a);
    wait_listening(&mut b);

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
    server.sql(&format!("DROP DATABASE IF EXISTS `{name}`"));
}
