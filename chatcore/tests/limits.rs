//! The server's abuse limits over real sockets, each set small so that it
//! trips quickly: connections per node, request rate, failed logins,
//! registrations per address, groups per user and members per group, and
//! the login deadline.

mod common;

use std::time::Duration;

use chatcore::client::{Client, ClientError, Event};
use chatcore::connection::ConnectionConfig;
use chatcore::limit::{LoginGuardConfig, RateLimit};
use chatcore::model::{Seq, UserId};
use chatcore::protocol::{ErrorCode, msgid};
use chatcore::server::ServerConfig;
use chatcore::service::ServiceConfig;
use common::{RawClient, TestServer, WAIT};
use serde_json::json;
use tokio::time::{Instant, sleep};

fn errno(e: ClientError) -> u32 {
    e.errno()
        .unwrap_or_else(|| panic!("expected a server error, got {e}"))
}

fn server_config(connection: ConnectionConfig) -> ServerConfig {
    ServerConfig {
        connection,
        ..ServerConfig::default()
    }
}

/// Sends an anonymous PING; `true` when a PONG comes back.
async fn pings(raw: &mut RawClient) -> bool {
    raw.send(json!({"msgid": msgid::PING, "rid": 1})).await;
    raw.recv().await["msgid"] == msgid::PONG
}

// ---------------------------------------------------------------- server full

#[tokio::test]
async fn a_client_beyond_max_connections_is_told_the_server_is_full_and_closed() {
    let server = TestServer::start_with(
        ServerConfig {
            max_connections: 2,
            ..ServerConfig::default()
        },
        ServiceConfig::default(),
    )
    .await;
    let mut first = server.raw().await;
    let mut second = server.raw().await;
    assert!(pings(&mut first).await);
    assert!(pings(&mut second).await);

    // The raw client reads it as the seed's client would...
    let mut third = server.raw().await;
    let refusal = third.recv().await;
    assert_eq!(refusal["msgid"], msgid::ERROR);
    assert_eq!(refusal["errno"], ErrorCode::ServerFull.errno());
    assert_eq!(
        refusal["errmsg"],
        "server is full, try another node or later"
    );
    third.assert_closed().await;

    // ...and the native client as an error event before the close.
    let mut native = server.client().await;
    match native.next_event_within(WAIT).await {
        Some(Event::Error { errno, .. }) => assert_eq!(errno, ErrorCode::ServerFull.errno()),
        other => panic!("expected the server-full error, got {other:?}"),
    }

    // The two served clients are unaffected.
    assert!(pings(&mut first).await);
    assert!(pings(&mut second).await);

    // A slot freed is a slot for the next client (once the server has
    // seen the close).
    drop(first);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut next = server.raw().await;
        next.send(json!({"msgid": msgid::PING, "rid": 1})).await;
        let reply = next.recv().await;
        if reply["msgid"] == msgid::PONG {
            break;
        }
        assert_eq!(reply["errno"], ErrorCode::ServerFull.errno());
        assert!(Instant::now() < deadline, "the freed slot never came back");
        sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

// ----------------------------------------------------------------- rate limit

#[tokio::test]
async fn requests_over_the_rate_are_refused_unexecuted_and_the_rate_recovers() {
    let connection = ConnectionConfig {
        rate_limit: RateLimit {
            per_second: 4,
            burst: 10,
        },
        ..ConnectionConfig::default()
    };
    let server = TestServer::start_with(server_config(connection), ServiceConfig::default()).await;
    // Register and login take two of alice's ten tokens.
    let (alice, _) = server.user("alice").await;
    let (bob, bob_id) = server.user("bob").await;
    drop(bob);

    let texts: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let sends = texts.iter().map(|text| alice.send_to(bob_id, text));
    let results = futures::future::join_all(sends).await;
    let mut sent = 0;
    for result in results {
        match result {
            Ok(_) => sent += 1,
            Err(e) => assert_eq!(errno(e), ErrorCode::RateLimited.errno()),
        }
    }
    // Eight tokens left, plus whatever trickled in meanwhile.
    assert!((8..=20).contains(&sent), "{sent} of 40 sends got through");

    // Heartbeats are never limited, even with an empty bucket.
    let pings = futures::future::join_all((0..20).map(|_| alice.ping())).await;
    assert!(pings.iter().all(Result::is_ok), "{pings:?}");

    // Refused sends stored nothing: bob's inbox has exactly the others.
    let inbox = server
        .service
        .store()
        .inbox_after(bob_id, Seq::ZERO, 1000)
        .await
        .expect("inbox");
    assert_eq!(inbox.len(), sent);

    // After a pause the connection may send again.
    sleep(Duration::from_millis(600)).await;
    alice
        .send_to(bob_id, "after the pause")
        .await
        .expect("sent");
    server.stop().await;
}

#[tokio::test]
async fn a_refused_request_keeps_its_rid_and_msgid_for_an_anonymous_legacy_client() {
    let connection = ConnectionConfig {
        rate_limit: RateLimit {
            per_second: 1,
            burst: 3,
        },
        ..ConnectionConfig::default()
    };
    let server = TestServer::start_with(server_config(connection), ServiceConfig::default()).await;
    let mut raw = server.raw().await;
    for rid in 1..=6 {
        raw.send(json!({"msgid": msgid::LIST_FRIENDS, "rid": rid}))
            .await;
    }
    let mut codes = Vec::new();
    for rid in 1..=6 {
        let reply = raw.recv().await;
        assert_eq!(reply["msgid"], msgid::ERROR);
        assert_eq!(reply["rid"], rid);
        assert_eq!(reply["req"], msgid::LIST_FRIENDS);
        codes.push(reply["errno"].as_u64().expect("errno") as u32);
    }
    let limited = ErrorCode::RateLimited.errno();
    let not_logged_in = ErrorCode::NotLoggedIn.errno();
    assert_eq!(&codes[..3], &[not_logged_in; 3], "the burst is served");
    assert!(codes[3..].contains(&limited), "{codes:?}");
    // PING gets through an empty bucket.
    assert!(pings(&mut raw).await);
    server.stop().await;
}

// -------------------------------------------------------------- login backoff

fn guarded(per_user_address: u32, per_address: u32) -> ServiceConfig {
    ServiceConfig {
        login_guard: LoginGuardConfig {
            max_failures_per_user_address: per_user_address,
            max_failures_per_address: per_address,
            first_delay: Duration::from_millis(300),
            ..LoginGuardConfig::default()
        },
        ..ServiceConfig::default()
    }
}

/// A native client of `server` whose connection comes from the loopback
/// address `source` (all of 127.0.0.0/8 is this host's).
async fn client_from(server: &TestServer, source: [u8; 4]) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("bind a loopback source address");
    let stream = socket.connect(server.addr).await.expect("connect");
    Client::new(stream)
}

#[tokio::test]
async fn failed_logins_block_the_user_even_with_the_right_password_until_the_delay_ends() {
    let server = TestServer::start_with(ServerConfig::default(), guarded(3, 0)).await;
    let (_bob, bob_id) = server.user("bob").await;
    let alice = server.client().await;
    let alice_id = alice.register("alice", "pw-alice").await.expect("register");
    drop(alice);

    let client = server.client().await;
    for _ in 0..3 {
        let e = client.login(alice_id, "wrong").await.expect_err("wrong");
        assert_eq!(errno(e), ErrorCode::LoginFailed.errno());
    }
    // Blocked: the right password is not even checked.
    let e = client
        .login(alice_id, "pw-alice")
        .await
        .expect_err("blocked");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());
    // The seed's client sees its usual failed login, with the reason.
    let mut legacy = server.raw().await;
    legacy
        .send(json!({"msgid": msgid::LOGIN, "id": alice_id.0, "password": "pw-alice"}))
        .await;
    let reply = legacy.recv().await;
    assert_eq!(reply["msgid"], msgid::LOGIN_ACK);
    assert_eq!(reply["errno"], 1);
    assert!(
        reply["errmsg"].as_str().unwrap_or("").contains("too many"),
        "{reply}"
    );
    // Other users are not affected.
    let other = server.client().await;
    other.login(bob_id, "pw-bob").await.expect("bob logs in");

    // Once the delay is over the right password works again...
    let deadline = Instant::now() + WAIT;
    loop {
        match client.login(alice_id, "pw-alice").await {
            Ok(_) => break,
            Err(e) => assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno()),
        }
        assert!(Instant::now() < deadline, "still blocked");
        sleep(Duration::from_millis(50)).await;
    }
    client.logout().await.expect("logout");
    // ...and the success cleared the count: one more failure is just a
    // failure (a fourth counted failure would block for 600 ms).
    let e = client.login(alice_id, "wrong").await.expect_err("wrong");
    assert_eq!(errno(e), ErrorCode::LoginFailed.errno());
    client
        .login(alice_id, "pw-alice")
        .await
        .expect("not blocked");
    server.stop().await;
}

#[tokio::test]
async fn a_failed_login_storm_from_one_address_does_not_lock_the_user_out_from_another() {
    // Both kinds of key at their defaults, with a long first delay, so
    // that nothing unlocks during the test.
    let service = ServiceConfig {
        login_guard: LoginGuardConfig {
            first_delay: Duration::from_secs(60),
            ..LoginGuardConfig::default()
        },
        ..ServiceConfig::default()
    };
    let server = TestServer::start_with(ServerConfig::default(), service).await;
    let (alice, alice_id) = server.user("alice").await;
    drop(alice);

    let attacker = client_from(&server, [127, 0, 0, 2]).await;
    for _ in 0..20 {
        let e = attacker.login(alice_id, "guess").await.expect_err("wrong");
        let code = errno(e);
        assert!(
            code == ErrorCode::LoginFailed.errno() || code == ErrorCode::TooManyAttempts.errno(),
            "errno {code}"
        );
    }
    let e = attacker
        .login(alice_id, "pw-alice")
        .await
        .expect_err("the attacker's address is held back");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());

    // Alice, from her own address, logs in as usual.
    let own = client_from(&server, [127, 0, 0, 3]).await;
    own.login(alice_id, "pw-alice")
        .await
        .expect("the user is not locked out from elsewhere");
    server.stop().await;
}

#[tokio::test]
async fn a_valid_resume_token_logs_in_through_a_lock_and_refused_tokens_are_not_counted() {
    let server = TestServer::start_with(ServerConfig::default(), guarded(3, 3)).await;
    let alice = client_from(&server, [127, 0, 0, 2]).await;
    let alice_id = alice.register("alice", "pw-alice").await.expect("register");
    let info = alice.login(alice_id, "pw-alice").await.expect("login");
    let token = info.resume.expect("a native login gets a token").token;
    drop(alice);

    // Someone guesses alice's password from her own address: both the
    // user there and the address are held back.
    let guesser = client_from(&server, [127, 0, 0, 2]).await;
    for _ in 0..3 {
        let e = guesser.login(alice_id, "wrong").await.expect_err("wrong");
        assert_eq!(errno(e), ErrorCode::LoginFailed.errno());
    }
    let e = guesser
        .login(alice_id, "pw-alice")
        .await
        .expect_err("held back");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());
    // Her token still gets her in from there: a MAC nobody can guess.
    let resuming = client_from(&server, [127, 0, 0, 2]).await;
    let resumed = resuming
        .resume(&token)
        .await
        .expect("resumed through the lock");
    assert_eq!(resumed.id, alice_id);

    // Refused tokens are refused as such, and are no failed logins: many
    // of them from a fresh address do not hold it back.
    let forger = client_from(&server, [127, 0, 0, 4]).await;
    let forged = format!("{token}x");
    for _ in 0..10 {
        let e = forger.resume(&forged).await.expect_err("refused");
        assert_eq!(errno(e), ErrorCode::ResumeRejected.errno());
    }
    forger
        .login(alice_id, "pw-alice")
        .await
        .expect("the address is not held back");
    server.stop().await;
}

#[tokio::test]
async fn the_register_rate_refuses_the_next_registration_from_one_address_only() {
    let service = ServiceConfig {
        register_rate: 3,
        ..ServiceConfig::default()
    };
    let server = TestServer::start_with(ServerConfig::default(), service).await;
    let busy = client_from(&server, [127, 0, 0, 2]).await;
    for n in 0..3 {
        busy.register(&format!("user{n}"), "pw")
            .await
            .expect("within the rate");
    }
    let e = busy
        .register("one-too-many", "pw")
        .await
        .expect_err("over the rate");
    assert_eq!(e.errno(), Some(ErrorCode::TooManyAttempts.errno()));
    let text = e.to_string();
    assert!(text.contains("try again in"), "{text}");
    // The refused one was not stored: the name is still free elsewhere.
    let other = client_from(&server, [127, 0, 0, 3]).await;
    other
        .register("one-too-many", "pw")
        .await
        .expect("another address has a rate of its own");
    server.stop().await;
}

#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins_of_the_user() {
    let server = TestServer::start_with(ServerConfig::default(), guarded(3, 0)).await;
    let (alice, alice_id) = server.user("alice").await;
    // A session is no free password oracle: wrong guesses of the current
    // password count against the user like failed logins.
    for _ in 0..3 {
        let e = alice
            .change_password("guess", "new-password")
            .await
            .expect_err("wrong current password");
        assert_eq!(errno(e), ErrorCode::LoginFailed.errno());
    }
    let e = alice
        .change_password("pw-alice", "new-password")
        .await
        .expect_err("held back");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());
    let elsewhere = server.client().await;
    let e = elsewhere
        .login(alice_id, "pw-alice")
        .await
        .expect_err("the user is held back on every path");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());
    server.stop().await;
}

#[tokio::test]
async fn failed_logins_from_one_address_block_it_for_every_user() {
    let server = TestServer::start_with(ServerConfig::default(), guarded(100, 3)).await;
    let (_alice, alice_id) = server.user("alice").await;
    let client = server.client().await;
    for unknown in 1000..1003 {
        let e = client
            .login(UserId(unknown), "guess")
            .await
            .expect_err("no such user");
        assert_eq!(errno(e), ErrorCode::LoginFailed.errno());
    }
    // Every test client connects from 127.0.0.1.
    let elsewhere = server.client().await;
    let e = elsewhere
        .login(alice_id, "pw-alice")
        .await
        .expect_err("address blocked");
    assert_eq!(errno(e), ErrorCode::TooManyAttempts.errno());
    server.stop().await;
}

// ---------------------------------------------------------------- group caps

#[tokio::test]
async fn groups_per_user_and_members_per_group_are_capped() {
    let service = ServiceConfig {
        max_groups_per_user: 2,
        max_group_members: 3,
        ..ServiceConfig::default()
    };
    let server = TestServer::start_with(ServerConfig::default(), service).await;
    let (alice, _) = server.user("alice").await;
    let (bob, _) = server.user("bob").await;
    let (carol, _) = server.user("carol").await;
    let (dave, _) = server.user("dave").await;

    let first = alice.create_group("first", "").await.expect("create");
    let second = alice.create_group("second", "").await.expect("create");
    let e = alice.create_group("third", "").await.expect_err("capped");
    assert_eq!(errno(e), ErrorCode::LimitReached.errno());

    bob.join_group(first).await.expect("join");
    carol.join_group(first).await.expect("join");
    let e = dave.join_group(first).await.expect_err("group full");
    assert_eq!(errno(e), ErrorCode::LimitReached.errno());
    // Joining again what one is in stays a success at either cap.
    carol.join_group(first).await.expect("already a member");
    alice.join_group(second).await.expect("already a member");

    let bobs = bob.create_group("bobs", "").await.expect("create");
    let e = alice.join_group(bobs).await.expect_err("alice is in two");
    assert_eq!(errno(e), ErrorCode::LimitReached.errno());

    // Leaving makes room again.
    alice.leave_group(second).await.expect("leave");
    alice.join_group(bobs).await.expect("join");
    server.stop().await;
}

// ------------------------------------------------------------- login timeout

fn login_timeout(timeout: Duration) -> ServerConfig {
    server_config(ConnectionConfig {
        login_timeout: Some(timeout),
        ..ConnectionConfig::default()
    })
}

#[tokio::test]
async fn a_connection_that_does_not_log_in_in_time_is_closed_with_errno_42() {
    let timeout = Duration::from_millis(300);
    let server = TestServer::start_with(login_timeout(timeout), ServiceConfig::default()).await;
    let started = Instant::now();
    let mut raw = server.raw().await;
    // Registering is not logging in.
    raw.send(json!({"msgid": msgid::REG, "name": "idler", "password": "pw"}))
        .await;
    assert_eq!(raw.recv().await["msgid"], msgid::REG_ACK);
    let notice = raw.recv().await;
    assert!(started.elapsed() >= timeout, "closed early");
    assert_eq!(notice["msgid"], msgid::ERROR);
    assert_eq!(notice["errno"], ErrorCode::IdleTimeout.errno());
    raw.assert_closed().await;
    server.stop().await;
}

#[tokio::test]
async fn a_logged_in_connection_outlives_the_login_timeout_and_logout_restarts_it() {
    let timeout = Duration::from_millis(300);
    let server = TestServer::start_with(login_timeout(timeout), ServiceConfig::default()).await;
    let (mut alice, _) = server.user("alice").await;
    sleep(timeout * 3).await;
    alice.ping().await.expect("still served");

    alice.logout().await.expect("logout");
    match alice.next_event_within(WAIT).await {
        Some(Event::Error { errno, .. }) => assert_eq!(errno, ErrorCode::IdleTimeout.errno()),
        other => panic!("expected the login timeout, got {other:?}"),
    }
    server.stop().await;
}
