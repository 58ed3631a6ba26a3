//! Resume tokens end to end: issued at native login, accepted instead of the
//! password, revoked by logout and password change, refused when forged,
//! expired or signed by another key.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use chatcore::client::{Client, ClientError, Event};
use chatcore::model::UserId;
use chatcore::protocol::ErrorCode;
use chatcore::server::ServerConfig;
use chatcore::service::{HashParams, Passwords, ResumeConfig, ResumeKey, ServiceConfig};
use chatcore::store::{SqlStore, SqlStoreOptions, Store};
use common::{TestServer, WAIT, assert_quiet, next_message};

fn errno(e: ClientError) -> u32 {
    e.errno()
        .unwrap_or_else(|| panic!("expected a server error, got {e}"))
}

/// Registers `name` with password `pw-<name>`, logs in and returns the
/// client, the id and the resume token.
async fn login(server: &TestServer, name: &str) -> (Client, UserId, String) {
    let client = server.client().await;
    let id = client
        .register(name, &format!("pw-{name}"))
        .await
        .expect("register");
    let info = client
        .login(id, &format!("pw-{name}"))
        .await
        .expect("login");
    let token = info.resume.expect("a native login gets a resume token");
    (client, id, token.token)
}

#[tokio::test]
async fn a_token_logs_in_again_without_the_password_and_the_backlog_follows() {
    let server = TestServer::start().await;
    let (alice, alice_id, token) = login(&server, "alice").await;
    let (bob, _) = server.user("bob").await;
    drop(alice);
    bob.send_to(alice_id, "while you were away")
        .await
        .expect("sent");

    let mut again = server.client().await;
    let info = again.resume(&token).await.expect("resume");

    assert_eq!((info.id, info.name.as_str()), (alice_id, "alice"));
    let fresh = info.resume.expect("a resume hands out a fresh token");
    let now = chrono::Utc::now().timestamp();
    let day = 24 * 3600;
    assert!(
        (now + day - 60..=now + day).contains(&fresh.expires),
        "the default lifetime is a day: expires {} at {now}",
        fresh.expires
    );
    assert_eq!(next_message(&mut again).await.msg, "while you were away");
    // A token is not single-use: it stays valid until it expires or is
    // revoked, so a client that lost the reply can try again.
    drop(again);
    let third = server.client().await;
    assert_eq!(third.resume(&token).await.expect("resume").id, alice_id);
    server.stop().await;
}

#[tokio::test]
async fn a_resume_kicks_the_older_session_like_a_login() {
    let server = TestServer::start().await;
    let (mut first, alice_id, token) = login(&server, "alice").await;

    let second = server.client().await;
    second.resume(&token).await.expect("resume");

    match first.next_event_within(WAIT).await {
        Some(Event::Kicked { errno, .. }) => assert_eq!(errno, ErrorCode::Kicked.errno()),
        other => panic!("expected a kick, got {other:?}"),
    }
    let (bob, _) = server.user("bob").await;
    bob.add_friend(alice_id).await.expect("add friend");
    assert!(bob.friends().await.expect("friends")[0].online());
    server.stop().await;
}

#[tokio::test]
async fn logout_revokes_every_token_of_the_user() {
    let server = TestServer::start().await;
    let (alice, alice_id, older) = login(&server, "alice").await;
    drop(alice);
    let again = server.client().await;
    let newer = again
        .login(alice_id, "pw-alice")
        .await
        .expect("login")
        .resume
        .expect("token")
        .token;

    again.logout().await.expect("logout");

    for token in [&older, &newer] {
        let client = server.client().await;
        let refused = client.resume(token).await.expect_err("revoked");
        assert_eq!(errno(refused), ErrorCode::ResumeRejected.errno());
    }
    // The password still works, and hands out a token that does too.
    let info = again.login(alice_id, "pw-alice").await.expect("login");
    let token = info.resume.expect("token").token;
    drop(again);
    let client = server.client().await;
    client
        .resume(&token)
        .await
        .expect("a token issued after the logout");
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_keeps_the_token_valid() {
    let server = TestServer::start().await;
    let (alice, alice_id, token) = login(&server, "alice").await;

    // No logout: the node died or the network broke.
    drop(alice);

    let client = server.client().await;
    assert_eq!(client.resume(&token).await.expect("resume").id, alice_id);
    server.stop().await;
}

#[tokio::test]
async fn changing_the_password_revokes_old_tokens_and_returns_a_new_one() {
    let server = TestServer::start().await;
    let (alice, alice_id, old_token) = login(&server, "alice").await;

    let wrong = alice
        .change_password("not-my-password", "new-pw")
        .await
        .expect_err("the current password is checked");
    assert_eq!(errno(wrong), ErrorCode::LoginFailed.errno());
    let empty = alice
        .change_password("pw-alice", "")
        .await
        .expect_err("the new password is checked");
    assert_eq!(errno(empty), ErrorCode::InvalidValue.errno());

    let new_token = alice
        .change_password("pw-alice", "new-pw")
        .await
        .expect("change password")
        .expect("native clients get a new token")
        .token;
    drop(alice);

    let client = server.client().await;
    let refused = client.resume(&old_token).await.expect_err("revoked");
    assert_eq!(errno(refused), ErrorCode::ResumeRejected.errno());
    let old_password = client
        .login(alice_id, "pw-alice")
        .await
        .expect_err("old password");
    assert_eq!(errno(old_password), ErrorCode::LoginFailed.errno());
    client
        .login(alice_id, "new-pw")
        .await
        .expect("new password");
    drop(client);
    let client = server.client().await;
    client.resume(&new_token).await.expect("the new token");
    server.stop().await;
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let secret = b"a shared secret of thirty-two bytes or more";
    let config = |ttl| ServiceConfig {
        resume: ResumeConfig {
            key: ResumeKey::from_secret(secret).expect("key"),
            ttl,
        },
        ..ServiceConfig::default()
    };
    let server = TestServer::start_with(ServerConfig::default(), config(WAIT)).await;
    let (_alice, alice_id, token) = login(&server, "alice").await;
    let other = TestServer::start().await;
    let (_, other_alice, _) = login(&other, "alice").await;
    assert_eq!(other_alice, alice_id, "the same id exists on both servers");
    let expiring = TestServer::start_with(ServerConfig::default(), config(Duration::ZERO)).await;
    let (_, _, expired) = login(&expiring, "alice").await;

    let (payload, _tag) = token.rsplit_once('.').expect("dotted token");
    let cases = [
        (&other, token.clone(), "signed with another key"),
        (&server, format!("{payload}.AAAA"), "wrong signature"),
        (&server, token.replacen('.', ".9", 1), "edited payload"),
        (&server, "garbage".to_owned(), "not a token"),
        (&expiring, expired, "expired"),
    ];
    for (target, token, what) in cases {
        let client = target.client().await;
        let refused = client.resume(&token).await.expect_err(what);
        assert_eq!(errno(refused), ErrorCode::ResumeRejected.errno(), "{what}");
    }
    for s in [server, other, expiring] {
        s.stop().await;
    }
}

#[tokio::test]
async fn resume_on_a_logged_in_connection_is_refused() {
    let server = TestServer::start().await;
    let (alice, _, token) = login(&server, "alice").await;

    let refused = alice.resume(&token).await.expect_err("already logged in");

    assert_eq!(errno(refused), ErrorCode::AlreadyLoggedIn.errno());
    server.stop().await;
}

#[tokio::test]
async fn legacy_logins_get_no_token_and_change_password_needs_a_session() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let id = client.register("alice", "pw").await.expect("register");
    drop(client);
    let mut raw = server.raw().await;

    raw.send(json!({"msgid": 31, "old": "pw", "new": "other"}))
        .await;
    let refused = raw.recv().await;
    assert_eq!(refused["errno"], json!(ErrorCode::NotLoggedIn.errno()));
    raw.send(json!({"msgid": 1, "id": id, "password": "pw"}))
        .await;
    let reply = raw.recv().await;

    assert_eq!(reply["msgid"], json!(2));
    assert_eq!(reply["errno"], json!(0));
    assert!(
        reply.get("resume").is_none(),
        "the seed's login reply is unchanged: {reply}"
    );
    raw.assert_quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_resumed_session_is_quiet_when_nothing_waits() {
    let server = TestServer::start().await;
    let (alice, _, token) = login(&server, "alice").await;
    drop(alice);

    let mut again = server.client().await;
    again.resume(&token).await.expect("resume");

    assert_quiet(&mut again).await;
    server.stop().await;
}

#[tokio::test]
async fn a_dearer_hash_setting_reaches_an_account_at_its_next_login_and_keeps_its_tokens() {
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(SqlStoreOptions::new("sqlite::memory:"))
            .await
            .expect("sqlite in memory"),
    );
    // Two servers on one store and one key, as a node before and after
    // its hash cost was raised.
    let config = || ServiceConfig {
        resume: ResumeConfig {
            key: ResumeKey::from_secret(b"a shared secret of thirty-two bytes or more")
                .expect("key"),
            ttl: WAIT,
        },
        ..ServiceConfig::default()
    };
    let cheap = TestServer::start_on(Arc::clone(&store), ServerConfig::default(), config()).await;
    let client = cheap.client().await;
    let id = client
        .register("rehash", "pw-rehash")
        .await
        .expect("register");
    let info = client.login(id, "pw-rehash").await.expect("login");
    let token = info.resume.expect("a native login gets a token").token;
    let before = store.user(id).await.expect("user").expect("record");

    let memory_kib = HashParams::insecure_fast().memory_kib * 2;
    let dearer = Passwords::new(
        HashParams {
            memory_kib,
            ..HashParams::insecure_fast()
        },
        2,
    )
    .expect("hash params");
    let server = TestServer::start_hashing(
        Arc::clone(&store),
        ServerConfig::default(),
        config(),
        dearer,
    )
    .await;
    server
        .client()
        .await
        .login(id, "pw-rehash")
        .await
        .expect("the old hash still lets the password in");
    let after = store.user(id).await.expect("user").expect("record");
    assert_ne!(after.password_hash, before.password_hash, "hashed again");
    assert!(
        after.password_hash.contains(&format!("m={memory_kib},")),
        "with the new cost: {}",
        after.password_hash
    );
    assert_eq!(after.token_epoch, before.token_epoch, "no token revoked");
    server
        .client()
        .await
        .resume(&token)
        .await
        .expect("the token from before still resumes");
    server
        .client()
        .await
        .login(id, "pw-rehash")
        .await
        .expect("the new hash lets the password in");
    server.stop().await;
    cheap.stop().await;
}
