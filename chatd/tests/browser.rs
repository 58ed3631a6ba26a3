//! The web client (`chatd/web/`) in real headless Chromium against real
//! `chatd` processes: users who only ever use the page register, find and
//! befriend each other, chat with each other and with TCP users (native
//! and the seed's dialect), reload the page, live through their node's
//! restart, and meet across two nodes behind nginx.
//!
//! Needs `CHAT_TEST_CHROMEDRIVER` (Debian: `chromium-driver`); the
//! two-node test also MySQL, Redis and nginx. A failing test leaves a
//! screenshot of every browser window under `target/browser-failures/`.
//! `CHAT_WRITE_SCREENSHOT=1` makes the screenshot test write
//! `docs/img/web-client.png`.

mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chat_testkit::{Service, harness, trial};
use chatcore::client::{ChatMessage, Event};
use chatcore::model::{GroupId, Seq, Target, UserId};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use support::web::{ChatPage, Kind, RECONNECT_WAIT};
use support::{Chatd, Cluster, ClusterOptions, PASSWORD, User, WAIT};

const BROWSER: &[Service] = &[Service::Chromedriver];
const BROWSERS_ON_A_CLUSTER: &[Service] = &[
    Service::Chromedriver,
    Service::Mysql,
    Service::Redis,
    Service::Nginx,
];

fn main() -> ExitCode {
    harness::run([
        trial!(two_browser_users_befriend_chat_and_see_each_other_come_and_go).needs(BROWSER),
        trial!(a_browser_user_chats_with_native_and_seed_tcp_users_one_to_one_and_in_a_group)
            .needs(BROWSER),
        trial!(a_reload_mid_conversation_brings_history_and_unread_counts_back_once).needs(BROWSER),
        trial!(messages_sent_while_the_node_restarts_arrive_once_in_order).needs(BROWSER),
        trial!(browsers_on_two_nodes_behind_nginx_chat_and_see_presence)
            .needs(BROWSERS_ON_A_CLUSTER),
        trial!(a_conversation_with_emoji_renders_for_the_readme_screenshot).needs(BROWSER),
    ])
}

/// One node on a SQLite file of its own, with the default configuration:
/// its resume key is kept beside the database, so that a page's session
/// survives the node's restart.
async fn single_node() -> (tempfile::TempDir, Chatd) {
    let dir = tempfile::Builder::new()
        .prefix("chatd-browser-")
        .tempdir()
        .expect("tempdir");
    let args = vec![
        "--database-url".to_owned(),
        format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display()),
    ];
    let mut chatd = Chatd::spawn("chatd", dir.path(), &args);
    chatd.wait_listening().await;
    (dir, chatd)
}

fn page_url(web: &str) -> String {
    format!("http://{web}/")
}

/// The next chat message on a native TCP user's connection, presence
/// pushes aside.
async fn next_chat(user: &mut User) -> ChatMessage {
    loop {
        match user.client.next_event_within(WAIT).await {
            Some(Event::Message(m)) => return m,
            Some(Event::Presence { .. }) => {}
            other => panic!("{} expected a chat message, got {other:?}", user.name),
        }
    }
}

/// A client speaking the seed's dialect as the seed's console client does:
/// raw JSON ended by NUL, no `proto`, replies read line by line.
struct Seed {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    id: i64,
}

impl Seed {
    /// Registers `name` and logs it in.
    async fn sign_up(addr: &str, name: &str) -> Seed {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut seed = Seed {
            reader: BufReader::new(read),
            writer,
            id: 0,
        };
        seed.send(json!({"msgid": 3, "name": name, "password": PASSWORD}))
            .await;
        let registered = seed.recv().await;
        assert_eq!(registered["errno"], 0, "{registered}");
        seed.id = registered["id"].as_i64().expect("an id");
        seed.send(json!({"msgid": 1, "id": seed.id, "password": PASSWORD}))
            .await;
        let login = seed.recv().await;
        assert_eq!(
            (login["msgid"].as_u64(), login["errno"].as_u64()),
            (Some(2), Some(0)),
            "{login}"
        );
        seed
    }

    async fn send(&mut self, frame: Value) {
        let mut bytes = frame.to_string().into_bytes();
        bytes.push(0);
        self.writer.write_all(&bytes).await.expect("write");
    }

    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a frame for the seed client in time")
            .expect("read");
        assert!(n > 0, "the seed client's connection closed");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Waits until the server has handled everything sent so far (the
    /// seed's requests have no reply on success; a PING behind them does).
    async fn sync(&mut self) {
        self.send(json!({"msgid": 27})).await;
        let frame = self.recv().await;
        match frame["msgid"].as_u64() {
            Some(28) => {}
            Some(11) => panic!("the seed client's request was refused: {frame}"),
            _ => panic!("the seed client expected PONG, got {frame}"),
        }
    }

    /// The next chat push, in the seed's shape.
    async fn next_chat(&mut self) -> Value {
        let frame = self.recv().await;
        assert!(
            matches!(frame["msgid"].as_u64(), Some(5 | 9)),
            "the seed client expected a chat push, got {frame}"
        );
        assert!(
            frame.get("seq").is_none() && frame.get("mid").is_none(),
            "a legacy push has the seed's shape: {frame}"
        );
        frame
    }
}

/// Two users who only use the page: register, find each other by name,
/// befriend, chat both ways, and watch each other go and come back
/// (PRESENCE pushes: a logout, a page closed, a login, a page back).
async fn two_browser_users_befriend_chat_and_see_each_other_come_and_go() {
    let (_dir, chatd) = single_node().await;
    let url = page_url(&chatd.web);
    let (mut alice, mut bob) =
        tokio::join!(ChatPage::open("alice", &url), ChatPage::open("bob", &url));
    let alice_id = alice.sign_up("alice").await;
    let bob_id = bob.sign_up("bob").await;

    alice.befriend("bo", bob_id).await;
    alice.wait_presence(bob_id, "online").await;
    alice.open_conversation(Kind::User, bob_id).await;
    alice.send("hi bob, found you by name").await;
    alice.wait_messages(&["hi bob, found you by name"]).await;

    // Bob did nothing: the friendship and the message reach his page.
    bob.open_conversation(Kind::User, alice_id).await;
    bob.wait_messages(&["hi bob, found you by name"]).await;
    bob.wait_presence(alice_id, "online").await;
    bob.send("hello alice 👋").await;
    let both = ["hi bob, found you by name", "hello alice 👋"];
    bob.wait_messages(&both).await;
    let seen_by_alice = alice.wait_messages(&both).await;
    let seen_by_bob = bob.wait_messages(&both).await;
    let mids = |shown: &[support::web::Shown]| shown.iter().map(|m| m.mid).collect::<Vec<_>>();
    assert_eq!(
        mids(&seen_by_alice),
        mids(&seen_by_bob),
        "one conversation, the same messages"
    );

    // Alice logs out: Bob sees her go; she logs in again: he sees her back.
    alice.browser.click("#logout").await;
    bob.wait_presence(alice_id, "offline").await;
    alice.login(alice_id).await;
    bob.wait_presence(alice_id, "online").await;

    // Bob closes his browser: Alice sees him go; he opens it again and
    // logs in, and she sees him back.
    drop(bob);
    alice.wait_presence(bob_id, "offline").await;
    let mut bob = ChatPage::open("bob", &url).await;
    bob.login(bob_id).await;
    alice.wait_presence(bob_id, "online").await;
    bob.wait_presence(alice_id, "online").await;
}

/// A browser user and two TCP users, one on the native client and one
/// speaking the seed's legacy JSON with NUL terminators, chat one to one
/// and in a group the browser user created; everyone gets everything.
async fn a_browser_user_chats_with_native_and_seed_tcp_users_one_to_one_and_in_a_group() {
    let (_dir, chatd) = single_node().await;
    let mut alice = ChatPage::open("alice", &page_url(&chatd.web)).await;
    let alice_id = alice.sign_up("alice").await;
    let mut carol = support::new_user(&chatd.addr, "carol").await;
    let mut dave = Seed::sign_up(&chatd.addr, "dave").await;

    alice.befriend("car", carol.id.0).await;
    alice.befriend("dav", dave.id).await;

    // One to one with the native client.
    alice.open_conversation(Kind::User, carol.id.0).await;
    alice.send("hello carol").await;
    let got = next_chat(&mut carol).await;
    assert_eq!(
        (got.from, got.toid, got.msg.as_str()),
        (UserId(alice_id), Some(carol.id), "hello carol")
    );
    carol
        .client
        .send_to(UserId(alice_id), "hi alice, carol here")
        .await
        .expect("carol sends");
    alice
        .wait_messages(&["hello carol", "hi alice, carol here"])
        .await;

    // One to one with the seed's client.
    alice.open_conversation(Kind::User, dave.id).await;
    alice.send("hello dave").await;
    let got = dave.next_chat().await;
    assert_eq!(
        (
            got["msgid"].as_u64(),
            got["id"].as_i64(),
            got["toid"].as_i64(),
            got["msg"].as_str()
        ),
        (Some(5), Some(alice_id), Some(dave.id), Some("hello dave")),
        "{got}"
    );
    dave.send(
        json!({"msgid": 5, "id": dave.id, "name": "dave", "toid": alice_id,
        "msg": "hi alice, dave here", "time": "2024-01-01 12:00:00"}),
    )
    .await;
    alice
        .wait_messages(&["hello dave", "hi alice, dave here"])
        .await;

    // A group made on the page, joined from both TCP clients.
    let group = alice.create_group("crabs").await;
    carol
        .client
        .join_group(GroupId(group))
        .await
        .expect("carol joins");
    dave.send(json!({"msgid": 8, "id": dave.id, "groupid": group}))
        .await;
    dave.sync().await;
    alice.open_conversation(Kind::Group, group).await;
    alice.send("hello crabs").await;
    let got = next_chat(&mut carol).await;
    assert_eq!(
        (got.from, got.groupid, got.msg.as_str()),
        (UserId(alice_id), Some(GroupId(group)), "hello crabs")
    );
    let got = dave.next_chat().await;
    assert_eq!(
        (
            got["msgid"].as_u64(),
            got["groupid"].as_i64(),
            got["msg"].as_str()
        ),
        (Some(9), Some(group), Some("hello crabs")),
        "{got}"
    );
    carol
        .client
        .send_group(GroupId(group), "carol to the crabs")
        .await
        .expect("carol sends to the group");
    let got = dave.next_chat().await;
    assert_eq!(got["msg"], "carol to the crabs", "{got}");
    dave.send(
        json!({"msgid": 9, "id": dave.id, "name": "dave", "groupid": group,
        "msg": "dave to the crabs", "time": "2024-01-01 12:00:00"}),
    )
    .await;
    let got = next_chat(&mut carol).await;
    assert_eq!(got.msg, "dave to the crabs");
    alice
        .wait_messages(&["hello crabs", "carol to the crabs", "dave to the crabs"])
        .await;
}

/// A reload in the middle of a conversation: the page comes back logged
/// in, with the conversation's history, the unread count of what arrived
/// while another conversation was open, and no message twice; reading it
/// clears the count for good (it survives the next reload).
async fn a_reload_mid_conversation_brings_history_and_unread_counts_back_once() {
    let (_dir, chatd) = single_node().await;
    let mut alice = ChatPage::open("alice", &page_url(&chatd.web)).await;
    let alice_id = UserId(alice.sign_up("alice").await);
    let mut bob = support::new_user(&chatd.addr, "bob").await;
    let bob_id = bob.id.0;

    alice.befriend("bo", bob_id).await;
    alice.open_conversation(Kind::User, bob_id).await;
    alice.send("one").await;
    next_chat(&mut bob).await;
    bob.client.send_to(alice_id, "two").await.expect("send");
    alice.wait_messages(&["one", "two"]).await;
    alice.send("three").await;
    alice.wait_messages(&["one", "two", "three"]).await;

    // Alice looks elsewhere while Bob writes three more.
    let notes = alice.create_group("notes").await;
    alice.open_conversation(Kind::Group, notes).await;
    for text in ["four", "five", "six"] {
        bob.client.send_to(alice_id, text).await.expect("send");
    }
    alice.wait_unread(Kind::User, bob_id, 3).await;

    alice.browser.reload().await;
    alice.wait_online().await;
    alice.wait_unread(Kind::User, bob_id, 3).await;
    alice.open_conversation(Kind::User, bob_id).await;
    let all = ["one", "two", "three", "four", "five", "six"];
    let shown = alice.wait_messages(&all).await;
    let mids: Vec<i64> = shown.iter().filter_map(|m| m.mid).collect();
    assert!(
        mids.windows(2).all(|w| w[0] < w[1]),
        "in order, each once: {shown:?}"
    );
    alice.wait_unread(Kind::User, bob_id, 0).await;

    // What she read stays read; the conversation still holds each message
    // once, and goes on.
    alice.open_conversation(Kind::Group, notes).await;
    alice.browser.reload().await;
    alice.wait_online().await;
    alice
        .browser
        .element(&support::web::conversation_css(Kind::User, bob_id))
        .await;
    // Give the page's conversation list time to arrive, then look.
    alice
        .browser
        .wait("the conversation list loaded", || async {
            let state = alice.state().await;
            let listed = state["conversations"].as_array().is_some_and(|list| {
                list.iter().any(|c| {
                    c["kind"] == "user" && c["id"] == bob_id && c["lastMid"] == json!(mids[5])
                })
            });
            Ok(listed.then_some(()))
        })
        .await;
    assert_eq!(
        alice.unread(Kind::User, bob_id).await,
        0,
        "read before the reload"
    );
    alice.open_conversation(Kind::User, bob_id).await;
    alice.wait_messages(&all).await;
    alice.send("seven").await;
    // Bob's connection got each of Alice's once: "one" was read above.
    let got = [next_chat(&mut bob).await.msg, next_chat(&mut bob).await.msg];
    assert_eq!(got, ["three", "seven"]);
    let mut and_seven = all.to_vec();
    and_seven.push("seven");
    alice.wait_messages(&and_seven).await;
}

/// The node goes away twice while the page is sending (SIGTERM, then
/// SIGKILL) and comes back on the same ports and database. Nobody clicks
/// anything: the page reconnects, resumes its session and sends what was
/// not acknowledged again with the same `cmid`; every message is stored
/// once, in the order typed.
async fn messages_sent_while_the_node_restarts_arrive_once_in_order() {
    let (_dir, mut chatd) = single_node().await;
    let mut alice = ChatPage::open("alice", &page_url(&chatd.web)).await;
    let alice_id = UserId(alice.sign_up("alice").await);
    let bob = support::new_user(&chatd.addr, "bob").await;
    let bob_id = bob.id;
    alice.befriend("bo", bob_id.0).await;
    alice.open_conversation(Kind::User, bob_id.0).await;
    alice.send("m1").await;
    alice.send("m2").await;
    alice.wait_messages(&["m1", "m2"]).await;

    // A graceful stop: typed while the node is away, the messages wait.
    chatd.signal("TERM");
    chatd.wait_exit(Duration::from_secs(15)).await;
    alice.send("m3").await;
    alice.send("m4").await;
    alice
        .browser
        .wait("m3 and m4 pending while the node is away", || async {
            let shown = alice.messages().await;
            let pending = shown
                .iter()
                .filter(|m| m.state == "pending")
                .map(|m| m.text.as_str())
                .collect::<Vec<_>>();
            Ok((pending == ["m3", "m4"]).then_some(()))
        })
        .await;
    chatd.start_again();
    chatd.wait_listening().await;
    alice
        .wait_messages_within(&["m1", "m2", "m3", "m4"], RECONNECT_WAIT)
        .await;

    // A crash in the middle of sending: some of these may be stored with
    // their acknowledgement lost; sent again, they are not stored twice.
    alice.send("m5").await;
    alice.send("m6").await;
    chatd.signal("KILL");
    chatd.wait_exit(Duration::from_secs(5)).await;
    alice.send("m7").await;
    chatd.start_again();
    chatd.wait_listening().await;
    let all = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"];
    alice.wait_messages_within(&all, RECONNECT_WAIT).await;
    alice.wait_online().await;
    drop(bob);

    // Bob, logging in after all this, gets each once, in order.
    let mut bob = support::login(&chatd.addr, bob_id, "bob").await;
    let mut got = Vec::new();
    for _ in 0..all.len() {
        let m = next_chat(&mut bob).await;
        assert_eq!(m.from, alice_id);
        got.push((m.seq.expect("a seq").0, m.mid.0, m.msg));
    }
    let texts: Vec<&str> = got.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, all, "bob's inbox: {got:?}");
    bob.client
        .ack(Seq(got[got.len() - 1].0))
        .await
        .expect("ack");
    let (history, _) = bob
        .client
        .history(Target::User(alice_id), None, 50)
        .await
        .expect("history");
    let mut stored: Vec<&str> = history.iter().map(|m| m.msg.as_str()).collect();
    stored.reverse();
    assert_eq!(stored, all, "the conversation as stored");
}

/// Two browsers on different nodes, both through nginx's http proxy: the
/// page and its WebSocket pass through (Host kept for the Origin check),
/// and friendship, chat and presence cross the nodes over Redis.
async fn browsers_on_two_nodes_behind_nginx_chat_and_see_presence() {
    let cluster = Cluster::start(ClusterOptions {
        nginx: true,
        ..ClusterOptions::default()
    })
    .await;
    let nginx = cluster.nginx.as_ref().expect("nginx");
    let web = nginx.web_addr.clone().expect("nginx's http server");
    let url = page_url(&web);
    let (mut alice, mut bob) =
        tokio::join!(ChatPage::open("alice", &url), ChatPage::open("bob", &url));
    let alice_id = alice.sign_up("alice").await;
    let bob_id = bob.sign_up("bob").await;

    // Round robin places each request; a page load is a fixed number of
    // them, so one extra request moves Bob's next socket to the other node.
    let node_of =
        |id: i64| support::redis::session_node(&cluster.redis_url, &cluster.prefix, UserId(id));
    let alice_node = node_of(alice_id).await.expect("alice's session");
    for attempt in 0.. {
        let bob_node = node_of(bob_id).await.expect("bob's session");
        if bob_node != alice_node {
            break;
        }
        assert!(attempt < 6, "bob's page never reached the other node");
        support::http::get(&web, "/").await.expect("nginx answers");
        bob.browser.reload().await;
        bob.wait_online().await;
        alice
            .browser
            .wait("bob's new session recorded", || async {
                Ok(node_of(bob_id).await.map(|_| ()))
            })
            .await;
    }

    alice.befriend("bo", bob_id).await;
    alice.wait_presence(bob_id, "online").await;
    alice.open_conversation(Kind::User, bob_id).await;
    alice.send("hello from the other node").await;
    bob.open_conversation(Kind::User, alice_id).await;
    bob.wait_messages(&["hello from the other node"]).await;
    bob.send("and back again").await;
    let both = ["hello from the other node", "and back again"];
    alice.wait_messages(&both).await;
    bob.wait_messages(&both).await;

    bob.browser.click("#logout").await;
    alice.wait_presence(bob_id, "offline").await;
    bob.login(bob_id).await;
    alice.wait_presence(bob_id, "online").await;
    bob.wait_presence(alice_id, "online").await;
}

/// A real conversation, emoji included, rendered in the browser: the text
/// comes back exactly as typed. With `CHAT_WRITE_SCREENSHOT=1` it is the
/// README's screenshot (`docs/img/web-client.png`).
async fn a_conversation_with_emoji_renders_for_the_readme_screenshot() {
    let (_dir, chatd) = single_node().await;
    let mut alice = ChatPage::open("alice", &page_url(&chatd.web)).await;
    let alice_id = UserId(alice.sign_up("alice").await);
    let mut bob = support::new_user(&chatd.addr, "bob").await;
    let carol = support::new_user(&chatd.addr, "carol").await;
    alice.befriend("bo", bob.id.0).await;
    alice.befriend("car", carol.id.0).await;
    let group = alice.create_group("rustaceans").await;
    carol
        .client
        .join_group(GroupId(group))
        .await
        .expect("carol joins");
    carol
        .client
        .send_group(GroupId(group), "Release notes are up 🦀")
        .await
        .expect("send");

    alice.open_conversation(Kind::User, bob.id.0).await;
    let lines = [
        (false, "Hi Alice! Still on for lunch today? 🍜"),
        (true, "Yes! 12:30 at the usual place 👍"),
        (false, "Great. I'll bring the slides for Friday's demo 📊"),
        (true, "Perfect, see you there 🎉"),
    ];
    let mut expected = Vec::new();
    for (mine, text) in lines {
        if mine {
            alice.send(text).await;
        } else {
            bob.client.send_to(alice_id, text).await.expect("send");
        }
        expected.push(text);
        alice.wait_messages(&expected).await;
    }
    let _ = next_chat(&mut bob).await;
    let unread = alice.unread(Kind::Group, group).await;
    carol
        .client
        .send_group(GroupId(group), "Who's reviewing #42?")
        .await
        .expect("send");
    alice.wait_unread(Kind::Group, group, unread + 1).await;

    let png = alice.browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    if std::env::var("CHAT_WRITE_SCREENSHOT").as_deref() == Ok("1") {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img/web-client.png");
        std::fs::create_dir_all(path.parent().expect("docs/img")).expect("docs/img");
        std::fs::write(&path, &png).expect("write the screenshot");
        eprintln!("screenshot written to {}", path.display());
    }
}
