//! The `chatd` binary as a user runs it: the embedded default creates its
//! SQLite file in the working directory, serves the seed's protocol, and a
//! SIGTERM or SIGINT tells clients goodbye and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_testkit::free_port;
use serde_json::{Value, json};

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

/// Starts `chatd` in `dir` with only a listen address and cheap hashing,
/// and waits until it accepts connections.
fn start(dir: &std::path::Path) -> Chatd {
    let addr = format!("127.0.0.1:{}", free_port());
    let web = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--listen",
            &addr,
            "--web-addr",
            &web,
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
        ])
        .current_dir(dir)
        .env_remove("CHAT_DATABASE_URL")
        .env_remove("CHAT_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatd starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "chatd did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Chatd { child, addr }
}

struct Seed {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Seed {
    fn connect(addr: &str) -> Seed {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Seed {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn send(&mut self, value: Value) {
        let mut bytes = value.to_string().into_bytes();
        bytes.push(0);
        self.writer.write_all(&bytes).expect("write");
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

fn stop_with(chatd: &mut Chatd, signal: &str) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args([signal, &chatd.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = chatd.child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "chatd did not exit after {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_default_server_keeps_messages_in_a_sqlite_file_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut chatd = start(dir.path());
    assert!(
        dir.path().join("chat.db").exists(),
        "created in the working directory"
    );

    let mut alice = Seed::connect(&chatd.addr);
    alice.send(json!({"msgid": 3, "name": "alice", "password": "pw"}));
    let alice_id = alice.recv()["id"].clone();
    alice.send(json!({"msgid": 3, "name": "bob", "password": "pw"}));
    let bob_id = alice.recv()["id"].clone();
    alice.send(json!({"msgid": 1, "id": alice_id, "password": "pw"}));
    assert_eq!(alice.recv()["errno"], 0);
    alice.send(json!({"msgid": 5, "id": alice_id, "toid": bob_id, "msg": "kept across a restart"}));
    // The seed's chat has no ack; a PING behind it proves it was handled.
    alice.send(json!({"msgid": 27}));
    assert_eq!(alice.recv()["msgid"], 28);
    // A native user's resume token, to use after the restart.
    let mut carol = Seed::connect(&chatd.addr);
    carol.send(json!({"msgid": 3, "name": "carol", "password": "pw", "proto": 2}));
    let carol_id = carol.recv()["id"].clone();
    carol.send(json!({"msgid": 1, "id": carol_id, "password": "pw", "proto": 2}));
    let token = carol.recv()["resume"]["token"].clone();
    assert!(token.is_string(), "a native login hands out a token");
    drop(carol);

    // SIGTERM: alice hears goodbye from `system`, chatd exits 0.
    let status = stop_with(&mut chatd, "-TERM");
    let goodbye = alice.recv();
    assert_eq!(
        (goodbye["msgid"].clone(), goodbye["name"].clone()),
        (json!(5), json!("system"))
    );
    assert!(status.success(), "exit status {status}");
    let mut stderr = String::new();
    if let Some(mut e) = chatd.child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(
        stderr.contains("SIGTERM"),
        "logs say why it stopped: {stderr}"
    );
    // The store was closed: SQLite's log went into the database file.
    let wal = dir.path().join("chat.db-wal");
    let logged = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(logged, 0, "{} checkpointed at shutdown", wal.display());

    // Restarted on the same directory, bob gets the message offline, and
    // carol's token still works: the key was kept beside the database.
    let mut chatd = start(dir.path());
    let mut carol = Seed::connect(&chatd.addr);
    carol.send(json!({"msgid": 30, "token": token}));
    let resumed = carol.recv();
    assert_eq!(
        (resumed["msgid"].clone(), resumed["errno"].clone()),
        (json!(2), json!(0)),
        "{resumed}"
    );
    drop(carol);
    let mut bob = Seed::connect(&chatd.addr);
    bob.send(json!({"msgid": 1, "id": bob_id, "password": "pw"}));
    let login = bob.recv();
    let offline = login["offlinemsg"][0].as_str().expect("an offline message");
    let offline: Value = serde_json::from_str(offline).expect("json");
    assert_eq!(offline["msg"], "kept across a restart");

    let status = stop_with(&mut chatd, "-INT");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn help_explains_every_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .arg("--help")
        .output()
        .expect("chatd --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--database-url",
        "--redis-url",
        "--max-frame",
        "--max-message",
        "--max-connections",
        "--rate-limit",
        "--rate-burst",
        "--login-timeout-secs",
        "--login-max-failures",
        "--login-max-failures-per-address",
        "--max-groups-per-user",
        "--max-group-members",
        "--hash-threads",
        "--admin-addr",
        "--log",
        "--log-format",
        "--config",
        "--check-config",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}
