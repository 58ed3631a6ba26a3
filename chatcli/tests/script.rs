//! `chatcli` with stdin and stdout as pipes, against a real server: the
//! scripted mode, message round trips both ways, the backlog at login, a
//! server restart and broken connections.

mod common;

use chatcore::client::Event;
use chatcore::model::Target;
use common::{Cli, Faults, Server, WAIT, chatcli, faulty_proxy, login, register, run};

fn id_from_register_line(line: &str) -> i64 {
    line.split("userid is ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or_else(|| panic!("no id in {line:?}"))
}

#[tokio::test]
async fn a_piped_line_reaches_its_recipient() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;
    let bob = register(server.addr, "bob").await;
    let mut bob_client = login(server.addr, bob, "bob").await;

    let mut command = chatcli(server.addr, "alice", home.path());
    command.arg("--login").arg(alice.to_string());
    let done = run(command, &format!("chat:{bob}:hello bob, from a pipe\n")).await;

    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.count(&format!("to [{bob}]: hello bob, from a pipe")),
        1,
        "{done:?}"
    );
    match bob_client.next_event_within(WAIT).await {
        Some(Event::Message(m)) => {
            assert_eq!(m.msg, "hello bob, from a pipe");
            assert_eq!(m.from, alice);
        }
        other => panic!("bob expected the message, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn two_scripted_sessions_register_befriend_and_chat_both_ways() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");

    let mut command = chatcli(server.addr, "alice", home.path());
    command.arg("--register").arg("alice");
    let mut alice = Cli::spawn(command);
    let alice_id = id_from_register_line(&alice.expect("name register success").await);
    alice.expect("current login user => id:").await;

    let mut command = chatcli(server.addr, "bob", home.path());
    command.arg("--register").arg("bob");
    let mut bob = Cli::spawn(command);
    let bob_id = id_from_register_line(&bob.expect("name register success").await);
    bob.expect("current login user => id:").await;

    alice.send(&format!("addfriend:{bob_id}")).await;
    alice
        .expect(&format!("[{bob_id}]bob is now your friend"))
        .await;
    alice.send("creategroup:rustaceans:crabs only").await;
    let created = alice.expect("created group").await;
    let group: i64 = created
        .split("[#")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no group id in {created:?}"));
    bob.send(&format!("addgroup:{group}")).await;
    bob.expect(&format!("joined group [#{group}]rustaceans"))
        .await;

    // One-to-one, the seed's way and by name; then the group.
    alice.send(&format!("chat:{bob_id}:hello bob")).await;
    alice.expect(&format!("to [{bob_id}]bob: hello bob")).await;
    bob.expect(&format!("[{alice_id}]alice said: hello bob"))
        .await;

    bob.send("/msg alice hi alice").await;
    bob.expect(&format!("to [{alice_id}]alice: hi alice")).await;
    alice.expect(&format!("[{bob_id}]bob said: hi alice")).await;

    bob.send(&format!("groupchat:{group}:hi rustaceans")).await;
    alice
        .expect(&format!(
            "[#{group}]rustaceans [{bob_id}]bob said: hi rustaceans"
        ))
        .await;

    alice.send("/friends").await;
    alice.expect(&format!("{bob_id} bob online")).await;
    bob.send(&format!("/members {group}")).await;
    bob.expect(&format!("{alice_id} alice online creator"))
        .await;
    alice.send(&format!("/history {bob_id}")).await;
    alice.expect(&format!("history with [{bob_id}]bob:")).await;

    let alice = alice.finish().await;
    let bob = bob.finish().await;
    assert!(alice.status.success(), "{alice:?}");
    assert!(bob.status.success(), "{bob:?}");
    assert_eq!(bob.count("said: hello bob"), 1, "{bob:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_backlog_shows_at_login_in_order_and_only_once() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;
    let bob = register(server.addr, "bob").await;
    let alice_client = login(server.addr, alice, "alice").await;
    for n in 1..=3 {
        alice_client
            .send_to(bob, &format!("while you were out {n}"))
            .await
            .expect("send");
    }

    let mut command = chatcli(server.addr, "bob", home.path());
    command.arg("--login").arg(bob.to_string());
    let first = run(command, "").await;
    assert!(first.status.success(), "{first:?}");
    let summary = first
        .out
        .iter()
        .position(|l| l.contains("current login user"))
        .expect("login summary");
    let positions: Vec<usize> = (1..=3)
        .map(|n| {
            first
                .out
                .iter()
                .position(|l| l.contains(&format!("said: while you were out {n}")))
                .unwrap_or_else(|| panic!("message {n} missing: {first:?}"))
        })
        .collect();
    assert!(summary < positions[0], "{first:?}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first:?}");

    // Acked: the next run shows none of them again.
    let mut command = chatcli(server.addr, "bob", home.path());
    command.arg("--login").arg(bob.to_string());
    let second = run(command, "").await;
    assert!(second.status.success(), "{second:?}");
    assert_eq!(second.count("while you were out"), 0, "{second:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_command_makes_the_exit_status_non_zero() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;

    let mut command = chatcli(server.addr, "alice", home.path());
    command.arg("--login").arg(alice.to_string());
    let done = run(command, "chat:999:anyone there?\nhelp\n").await;
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr()
            .contains("could not send to [999]: no such user"),
        "{done:?}"
    );
    assert!(
        done.stdout().contains("chat:friendid:message"),
        "help still ran: {done:?}"
    );

    let mut command = chatcli(server.addr, "alice", home.path());
    command.arg("--login").arg(alice.to_string());
    let done = run(command, "/frobnicate\n").await;
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr().contains("unknown command /frobnicate"),
        "{done:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_password_or_no_server_fails_with_words() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;

    let mut command = chatcli(server.addr, "alice", home.path());
    command
        .arg("--login")
        .arg(alice.to_string())
        .env("CHAT_PASSWORD", "wrong");
    let done = run(command, "chat:1:never sent\n").await;
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr()
            .contains("login failed: User non-existent or password is wrong."),
        "{done:?}"
    );

    let addr = server.addr;
    server.stop().await;
    let mut command = chatcli(addr, "alice", home.path());
    command.arg("--login").arg(alice.to_string());
    let done = run(command, "").await;
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    assert!(
        done.stderr().contains(&format!("cannot connect to {addr}")),
        "{done:?}"
    );
}

#[tokio::test]
async fn the_seed_menu_works_over_stdin() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    // Register through the menu, log in, log out, quit; the password comes
    // from CHAT_PASSWORD.
    let done = run(
        chatcli(server.addr, "carol", home.path()),
        "2\ncarol\n1\n1\n/status\nloginout\n3\n",
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    let out = done.stdout();
    assert!(out.contains("1. login\n2. register\n3. quit"), "{out}");
    assert!(
        out.contains("name register success, userid is 1, do not forget it!"),
        "{out}"
    );
    assert!(
        out.contains("current login user => id:1 name:carol"),
        "{out}"
    );
    assert!(out.contains("logged in as [1]carol"), "{out}");
    assert!(out.contains("✓ logged out"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn a_server_restart_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chat.db");
    let server = Server::start_file(&db, "127.0.0.1:0".parse().expect("addr")).await;
    let addr = server.addr;
    let alice_id = register(addr, "alice").await;
    let bob_id = register(addr, "bob").await;

    let mut command = chatcli(addr, "alice", dir.path());
    command.arg("--login").arg(alice_id.to_string());
    let mut alice = Cli::spawn(command);
    alice.expect("current login user").await;
    let mut command = chatcli(addr, "bob", dir.path());
    command.arg("--login").arg(bob_id.to_string());
    let mut bob = Cli::spawn(command);
    bob.expect("current login user").await;

    alice
        .send(&format!("chat:{bob_id}:before the restart"))
        .await;
    bob.expect("said: before the restart").await;

    server.stop().await;
    alice
        .expect_err("connection lost (server is shutting down)")
        .await;
    bob.expect_err("connection lost (server is shutting down)")
        .await;

    // Sent while the server is down: it waits, then goes out once.
    alice
        .send(&format!("chat:{bob_id}:while the server was down"))
        .await;
    alice.expect("waits and goes out once reconnected").await;

    let server = Server::start_file(&db, addr).await;
    alice
        .expect(&format!("to [{bob_id}]: while the server was down"))
        .await;
    bob.expect("said: while the server was down").await;
    bob.send(&format!("chat:{alice_id}:after the restart"))
        .await;
    alice.expect("said: after the restart").await;

    let alice = alice.finish().await;
    let bob = bob.finish().await;
    assert!(alice.status.success(), "{alice:?}");
    assert!(bob.status.success(), "{bob:?}");
    assert!(alice.stderr().contains("reconnected"), "{alice:?}");
    assert_eq!(bob.count("said: before the restart"), 1, "{bob:?}");
    assert_eq!(bob.count("said: while the server was down"), 1, "{bob:?}");
    assert_eq!(alice.count("said: after the restart"), 1, "{alice:?}");

    let client = login(addr, bob_id, "bob").await;
    let (history, _) = client
        .history(Target::User(alice_id), None, 50)
        .await
        .expect("history");
    let texts: Vec<&str> = history.iter().map(|m| m.msg.as_str()).collect();
    assert_eq!(
        texts,
        [
            "after the restart",
            "while the server was down",
            "before the restart"
        ],
        "each message stored once"
    );
    server.stop().await;
}

#[tokio::test]
async fn messages_sent_again_after_a_reconnect_are_shown_once() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;
    let bob = register(server.addr, "bob").await;
    let alice_client = login(server.addr, alice, "alice").await;
    // Bob's acks never arrive, so the server sends everything again.
    let proxy = faulty_proxy(
        server.addr,
        Faults {
            lose_acks: true,
            ..Faults::default()
        },
    )
    .await;

    let mut command = chatcli(proxy.socket_addr(), "bob", home.path());
    command
        .arg("--login")
        .arg(bob.to_string())
        .arg("--log")
        .arg("chatcli=debug");
    let mut bob_cli = Cli::spawn(command);
    bob_cli.expect("current login user").await;
    alice_client.send_to(bob, "one").await.expect("send");
    alice_client.send_to(bob, "two").await.expect("send");
    bob_cli.expect("said: two").await;

    proxy.cut();
    bob_cli.expect_err("connection lost").await;
    bob_cli.expect_err("reconnected").await;
    // The server did send them again, and they were dropped.
    bob_cli.expect_err("dropping a repeated message").await;
    alice_client.send_to(bob, "three").await.expect("send");
    bob_cli.expect("said: three").await;

    let done = bob_cli.finish().await;
    assert!(done.status.success(), "{done:?}");
    for text in ["said: one", "said: two", "said: three"] {
        assert_eq!(done.count(text), 1, "{text}: {done:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_message_whose_ack_was_lost_is_resent_and_stored_once() {
    let server = Server::start().await;
    let home = tempfile::tempdir().expect("tempdir");
    let alice = register(server.addr, "alice").await;
    let bob = register(server.addr, "bob").await;
    let mut bob_client = login(server.addr, bob, "bob").await;
    // The server stores the message, but the connection breaks before the
    // ack reaches alice: she sends it again with the same cmid.
    let proxy = faulty_proxy(
        server.addr,
        Faults {
            cut_on_first_chat_ack: true,
            ..Faults::default()
        },
    )
    .await;

    let mut command = chatcli(proxy.socket_addr(), "alice", home.path());
    command.arg("--login").arg(alice.to_string());
    let done = run(command, &format!("chat:{bob}:exactly once\n")).await;
    assert!(done.status.success(), "{done:?}");
    assert!(
        done.stdout().contains(&format!(
            "to [{bob}]: exactly once (the server already had it)"
        )),
        "{done:?}"
    );
    assert!(done.stderr().contains("connection lost"), "{done:?}");

    match bob_client.next_event_within(WAIT).await {
        Some(Event::Message(m)) => assert_eq!(m.msg, "exactly once"),
        other => panic!("expected the message, got {other:?}"),
    }
    let (history, _) = bob_client
        .history(Target::User(alice), None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "stored once: {history:?}");
    server.stop().await;
}
