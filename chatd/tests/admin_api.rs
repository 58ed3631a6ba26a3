//! The admin API (`--admin-token-file`): every `/admin/` route wants the
//! bearer token and answers in JSON; across two `chatd` processes (one
//! MariaDB, one Redis) an administrator on either node looks at, kicks,
//! bans, unbans, sets the password of and deletes users logged in on the
//! other, and every call leaves an audit line.
//!
//! ```text
//! cargo test --workspace --test admin_api
//! CHAT_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306 CHAT_TEST_REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo test --workspace --test admin_api
//! ```
//! The single-node tests need nothing (SQLite, in-process bus); the
//! cluster one needs MySQL/MariaDB and Redis.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chat_testkit::{eventually, free_port, trial};
use chatcore::model::{Target, UserId};
use serde_json::Value;
use support::http::{self, Answer};
use support::{
    Chatd, Cluster, ClusterOptions, Ending, PASSWORD, User, WAIT, connect, login, new_user,
    next_message, read_until_ended,
};

const TOKEN: &str = "test-admin-token-0123456789";

fn main() -> ExitCode {
    let tests = [
        trial!(admin_routes_want_the_bearer_token_and_answer_in_json),
        trial!(without_a_token_file_there_are_no_admin_routes),
        trial!(a_token_file_other_users_can_read_stops_chatd),
        trial!(an_admin_on_either_node_kicks_bans_resets_and_deletes_users_on_the_other)
            .needs(Cluster::NEEDS),
    ];
    chat_testkit::harness::run(tests.map(|test| test.multi_thread(2)))
}

/// `token` in a file of `dir` with mode `mode`.
fn token_file(dir: &Path, token: &str, mode: u32) -> PathBuf {
    let path = dir.join("admin-token");
    std::fs::write(&path, format!("{token}\n")).expect("write the token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// A `chatd` on SQLite in `dir` with an admin listener (and `extra`
/// flags), and that listener's address.
async fn single_node(dir: &Path, extra: &[String]) -> (Chatd, String) {
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
    eventually("the admin listener accepts", WAIT, || async {
        http::get(&admin, "/health").await.is_some()
    })
    .await;
    (chatd, admin)
}

async fn ask(admin: &str, method: &str, path: &str, token: Option<&str>) -> Answer {
    http::request(admin, method, path, token, None)
        .await
        .unwrap_or_else(|| panic!("{admin} answers {method} {path}"))
}

/// An admin call with the right token: its status and JSON body.
async fn call(admin: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let answer = http::request(admin, method, path, Some(TOKEN), body)
        .await
        .unwrap_or_else(|| panic!("{admin} answers {method} {path}"));
    (answer.status, json(&answer))
}

fn json(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", answer.body))
}

fn user_path(id: UserId, rest: &str) -> String {
    format!("/admin/users/{id}{rest}")
}

async fn admin_routes_want_the_bearer_token_and_answer_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = token_file(dir.path(), TOKEN, 0o600);
    let flags = ["--admin-token-file".to_owned(), file.display().to_string()];
    let (chatd, admin) = single_node(dir.path(), &flags).await;
    let alice = new_user(&chatd.addr, "alice").await;
    let path = user_path(alice.id, "");

    for token in [None, Some("wrong-token-0123456789"), Some("")] {
        let refused = ask(&admin, "GET", &path, token).await;
        assert_eq!(refused.status, 401, "token {token:?}: {}", refused.body);
        assert!(
            json(&refused)["error"].as_str().is_some(),
            "{}",
            refused.body
        );
    }
    let refused = ask(&admin, "POST", &user_path(alice.id, "/ban"), None).await;
    assert_eq!(refused.status, 401);
    let shown = call(&admin, "GET", &path, None).await;
    assert_eq!(
        shown.1["banned"], false,
        "nothing happened without the token"
    );

    for bad in ["abc", "0", "-3", "99999999999999999999"] {
        let (status, body) = call(&admin, "GET", &format!("/admin/users/{bad}"), None).await;
        assert_eq!(status, 400, "id {bad}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains("bad user id"));
    }
    let (status, body) = call(&admin, "POST", "/admin/users/4242/kick", None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (404, "no such user: 4242".into())
    );

    let (status, body) = call(&admin, "GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], alice.id.0);
    assert_eq!(body["name"], "alice");
    assert_eq!(body["online"], true);
    let node = body["sessions"][0]["node"].as_str().unwrap_or("");
    assert!(node.starts_with("local-"), "an in-process node: {body}");

    // /health and /metrics want no token.
    assert_eq!(ask(&admin, "GET", "/health", None).await.status, 200);
    assert_eq!(ask(&admin, "GET", "/metrics", None).await.status, 200);

    let log = chatd.log_text();
    assert!(
        log.contains("chatd::audit") && log.contains(r#"outcome="unauthorized""#),
        "refusals are audited:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token is never logged");
}

async fn without_a_token_file_there_are_no_admin_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (chatd, admin) = single_node(dir.path(), &[]).await;
    let alice = new_user(&chatd.addr, "alice").await;

    let absent = ask(&admin, "GET", &user_path(alice.id, ""), Some(TOKEN)).await;
    assert_eq!(absent.status, 404);
    let absent = ask(&admin, "POST", &user_path(alice.id, "/kick"), Some(TOKEN)).await;
    assert_eq!(absent.status, 404);
    assert_eq!(ask(&admin, "GET", "/health", None).await.status, 200);
}

async fn a_token_file_other_users_can_read_stops_chatd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = token_file(dir.path(), TOKEN, 0o644);
    let args = [
        "--database-url".to_owned(),
        format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display()),
        "--admin-addr".to_owned(),
        format!("127.0.0.1:{}", free_port()),
        "--admin-token-file".to_owned(),
        file.display().to_string(),
    ];
    let mut chatd = Chatd::spawn("chatd", dir.path(), &args);
    let status = chatd.wait_exit(WAIT).await;
    assert!(!status.success(), "chatd must refuse to start");
    let log = chatd.log_text();
    assert!(log.contains("readable by every user"), "{log}");
}

/// Whether `user` is shown online by the admin API at `admin`.
async fn shown_online(admin: &str, user: UserId) -> bool {
    let (status, body) = call(admin, "GET", &user_path(user, ""), None).await;
    assert_eq!(status, 200, "{body}");
    body["online"] == true
}

/// The errno of a password login of `user` over a new connection to `addr`.
async fn login_errno(addr: &str, user: UserId, password: &str) -> Option<u32> {
    let (client, _) = connect(addr).await;
    client
        .login(user, password)
        .await
        .err()
        .and_then(|e| e.errno())
}

async fn an_admin_on_either_node_kicks_bans_resets_and_deletes_users_on_the_other() {
    let cluster = Cluster::start(ClusterOptions {
        admin_token: Some(TOKEN.to_owned()),
        ..ClusterOptions::default()
    })
    .await;
    let n1 = cluster.node(0).addr.clone();
    let n2 = cluster.node(1).addr.clone();
    let (a1, a2) = (cluster.admins[0].as_str(), cluster.admins[1].as_str());
    let mut alice = new_user(&n1, "alice").await;
    let mut bob = new_user(&n2, "bob").await;
    let alice_id = alice.id;

    // Node 2 sees alice's session on node 1.
    let (status, shown) = call(a2, "GET", &user_path(alice_id, ""), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["online"], true);
    assert_eq!(shown["sessions"][0]["node"], "node1");
    assert_eq!(shown["banned"], false);

    // Kick from node 2: alice's connection on node 1 ends with errno 43,
    // and she may log in again.
    let (status, kicked) = call(a2, "POST", &user_path(alice_id, "/kick"), None).await;
    assert_eq!(status, 200, "{kicked}");
    assert_eq!(kicked["ended_sessions"][0]["node"], "node1");
    let (_, ending) = read_until_ended(&mut alice, WAIT).await;
    assert_eq!(ending, Ending::Kicked(43));
    eventually("alice shows offline", WAIT, || async {
        !shown_online(a1, alice_id).await
    })
    .await;
    let mut alice = login(&n1, alice_id, "alice").await;

    // Ban from node 2: kicked, and no login or resume on either node.
    let token_before_ban = alice.resume.clone();
    let (status, banned) = call(a2, "POST", &user_path(alice_id, "/ban"), None).await;
    assert_eq!(
        (status, banned["banned"].clone()),
        (200, true.into()),
        "{banned}"
    );
    let (_, ending) = read_until_ended(&mut alice, WAIT).await;
    assert_eq!(ending, Ending::Kicked(43));
    for node in [&n1, &n2] {
        assert_eq!(login_errno(node, alice_id, PASSWORD).await, Some(19));
        assert_eq!(
            login_errno(node, alice_id, "wrong").await,
            Some(1),
            "a wrong password does not learn of the ban"
        );
        let (client, _) = connect(node).await;
        let resumed = client.resume(&token_before_ban).await;
        assert!(resumed.is_err(), "a banned user's token is refused");
    }
    let (_, shown) = call(a1, "GET", &user_path(alice_id, ""), None).await;
    assert_eq!(shown["banned"], true);
    assert!(shown["banned_at_ms"].as_i64().is_some(), "{shown}");

    // Unban from node 1: she logs in on node 2.
    let (status, lifted) = call(a1, "DELETE", &user_path(alice_id, "/ban"), None).await;
    assert_eq!((status, lifted["banned"].clone()), (200, false.into()));
    let mut alice = login(&n2, alice_id, "alice").await;

    // A new password from node 1 ends her session on node 2 and her
    // tokens; the old password is refused, the new one works.
    let path = user_path(alice_id, "/password");
    for bad in [r#"{"password":""}"#, r#"{"pasword":"x"}"#, "not json"] {
        let (status, body) = call(a1, "POST", &path, Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, set) = call(a1, "POST", &path, Some(r#"{"password":"brand-new-pw"}"#)).await;
    assert_eq!(
        (status, set["password_set"].clone()),
        (200, true.into()),
        "{set}"
    );
    let (_, ending) = read_until_ended(&mut alice, WAIT).await;
    assert_eq!(ending, Ending::Kicked(43));
    assert_eq!(login_errno(&n2, alice_id, PASSWORD).await, Some(1));
    let (client, _) = connect(&n1).await;
    assert_eq!(
        client
            .resume(&alice.resume)
            .await
            .err()
            .and_then(|e| e.errno()),
        Some(17)
    );
    let mut alice = login_with(&n1, alice_id, "alice", "brand-new-pw").await;

    // Deleting bob (on node 2) from node 1: his session ends, he is gone,
    // and what he sent alice stays with her.
    bob.client
        .send_to(alice_id, "from bob")
        .await
        .expect("bob's message is stored");
    assert_eq!(next_message(&mut alice).await.msg, "from bob");
    let (status, deleted) = call(a1, "DELETE", &user_path(bob.id, ""), None).await;
    assert_eq!(
        (status, deleted["deleted"].clone()),
        (200, true.into()),
        "{deleted}"
    );
    let (_, ending) = read_until_ended(&mut bob, WAIT).await;
    assert_eq!(ending, Ending::Kicked(43));
    assert_eq!(login_errno(&n2, bob.id, PASSWORD).await, Some(1));
    let (status, gone) = call(a2, "GET", &user_path(bob.id, ""), None).await;
    assert_eq!(
        (status, gone["error"].clone()),
        (404, format!("no such user: {}", bob.id).into())
    );
    let refused = alice.client.send_to(bob.id, "hello?").await;
    assert_eq!(refused.err().and_then(|e| e.errno()), Some(22));
    let (history, _) = alice
        .client
        .history(Target::User(bob.id), None, 10)
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|m| m.msg.as_str()).collect::<Vec<_>>(),
        ["from bob"]
    );

    // Every call is audited where it was made, without the password.
    let log1 = cluster.node(0).log_text();
    let log2 = cluster.node(1).log_text();
    for (log, action) in [
        (&log2, "show"),
        (&log2, "kick"),
        (&log2, "ban"),
        (&log1, "unban"),
        (&log1, "set_password"),
        (&log1, "delete"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("chatd::audit") && l.contains(&format!("action=\"{action}\"")))
            .unwrap_or_else(|| panic!("no audit line for {action}:\n{log}"));
        assert!(line.contains("caller=127.0.0.1:"), "{line}");
        assert!(line.contains("user="), "{line}");
    }
    assert!(!log1.contains("brand-new-pw"), "no password in the log");
}

/// `user` logged in with `password` over a new connection to `addr`.
async fn login_with(addr: &str, user: UserId, name: &str, password: &str) -> User {
    let (client, port) = connect(addr).await;
    let info = client
        .login(user, password)
        .await
        .unwrap_or_else(|e| panic!("login {name} with its new password: {e}"));
    User::logged_in(client, port, name, info)
}
