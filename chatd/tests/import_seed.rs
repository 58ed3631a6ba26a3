//! `chatd import-seed` against a seed database made the way the seed made
//! it: the seed's own tables (docs/import-seed.md), rows written over a
//! connection that ran `SET NAMES gbk` while sending UTF-8, as the seed's
//! server did for its UTF-8 clients, with the awkward rows a real seed
//! holds. Then chatd serves the import and the seed's own dialect logs in.
//!
//! ```text
//! CHAT_TEST_MYSQL_URL=mysql://chat_ci:chat_ci@127.0.0.1:3306 cargo test --workspace --test import_seed
//! ```

mod support;

use std::process::{Command, ExitCode, Output};
use std::time::Duration;

use chat_testkit::mysql::ThrowawayDatabase;
use chat_testkit::{Service, trial};
use sea_orm::sqlx::{self, Connection as _, MySqlConnection};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use support::Chatd;

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(an_imported_seed_serves_the_seed_dialect_and_a_second_import_changes_nothing)
            .needs(&[Service::Mysql]),
        trial!(an_interrupted_import_resumes_to_what_one_run_imports).needs(&[Service::Mysql]),
        trial!(a_target_holding_a_seed_users_name_is_refused_and_left_untouched)
            .needs(&[Service::Mysql]),
        trial!(a_dry_run_on_the_course_schema_reports_and_writes_nothing).needs(&[Service::Mysql]),
        trial!(a_seed_imports_into_the_embedded_sqlite_default_too).needs(&[Service::Mysql]),
    ])
}

/// The course's DDL (reference: the seed's `chat.sql`), `user` starting
/// at id 22 as in its dump.
const SEED_TABLES: [&str; 5] = [
    "CREATE TABLE user (id INT(11) NOT NULL AUTO_INCREMENT, name VARCHAR(50) DEFAULT NULL, \
     password VARCHAR(50) DEFAULT NULL, state ENUM('online','offline') CHARACTER SET latin1 \
     DEFAULT 'offline', PRIMARY KEY (id), UNIQUE KEY name (name)) ENGINE=InnoDB \
     AUTO_INCREMENT=22 DEFAULT CHARSET=utf8",
    "CREATE TABLE friend (userid INT(11) NOT NULL, friendid INT(11) NOT NULL, \
     KEY userid (userid, friendid)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE allgroup (id INT(11) NOT NULL AUTO_INCREMENT, groupname VARCHAR(50) \
     CHARACTER SET latin1 NOT NULL, groupdesc VARCHAR(200) CHARACTER SET latin1 DEFAULT '', \
     PRIMARY KEY (id), UNIQUE KEY groupname (groupname)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE groupuser (groupid INT(11) NOT NULL, userid INT(11) NOT NULL, \
     grouprole ENUM('creator','normal') CHARACTER SET latin1 DEFAULT NULL, \
     KEY groupid (groupid, userid)) ENGINE=InnoDB DEFAULT CHARSET=utf8",
    "CREATE TABLE offlinemessage (userid INT(11) NOT NULL, message VARCHAR(500) NOT NULL) \
     ENGINE=InnoDB DEFAULT CHARSET=latin1",
];

/// With the course's latin1 `allgroup` and `offlinemessage` the seed
/// itself refused Chinese group names and messages (strict mode) or kept
/// `?` for them; a deployment that wanted them made those tables utf8.
const UTF8_GROUPS_AND_MESSAGES: [&str; 2] = [
    "ALTER TABLE allgroup CONVERT TO CHARACTER SET utf8",
    "ALTER TABLE offlinemessage CONVERT TO CHARACTER SET utf8",
];

/// A seed-dialect chat message as the seed's server stored it (nlohmann's
/// compact dump, keys sorted).
fn one_chat(from: i64, from_name: &str, to: i64, msg: &str, time: &str) -> String {
    format!(
        r#"{{"id":{from},"msg":"{msg}","msgid":5,"name":"{from_name}","time":"{time}","toid":{to}}}"#
    )
}

fn group_chat(from: i64, from_name: &str, group: i64, msg: &str, time: &str) -> String {
    format!(
        r#"{{"groupid":{group},"id":{from},"msg":"{msg}","msgid":9,"name":"{from_name}","time":"{time}"}}"#
    )
}

const ZHANG: i64 = 22;
const LI: i64 = 23;
const ALICE: i64 = 24;
const BOB: i64 = 25;
const MING: i64 = 26;
const NOPASS: i64 = 27;

/// The seed's statements, as its server sent them (`sprintf` into SQL
/// text, over a connection that ran `SET NAMES gbk`), in order.
fn seed_statements() -> Vec<String> {
    let mut s = Vec::new();
    // Users 22.. in registration order. 明x: an odd run of UTF-8 bytes
    // that GBK pairs with the `x`.
    for (name, password) in [
        ("张三", "密码你好"),
        ("李四", "lisi-pw"),
        ("alice", "alice pw"),
        ("bob", "123456"),
        ("明x", "ming"),
    ] {
        s.push(format!(
            "insert into user(name, password, state) values('{name}', '{password}', 'offline')"
        ));
    }
    // A user without a password (never able to log in at the seed).
    s.push("insert into user(name) values('nopass')".to_owned());

    // Friend rows: one-way, mirrored, repeated, dangling, with oneself.
    for (u, f) in [
        (ZHANG, LI),
        (LI, ZHANG),
        (ZHANG, LI),
        (ZHANG, ALICE),
        (ALICE, 99),
        (BOB, BOB),
        (MING, ALICE),
    ] {
        s.push(format!("insert into friend values({u}, {f})"));
    }

    s.push("insert into allgroup(groupname, groupdesc) values('聊天群组', '欢迎 Rust')".to_owned());
    s.push("insert into allgroup(groupname) values('ascii-group')".to_owned());
    for (g, u, role) in [
        (1, ZHANG, "creator"),
        (1, LI, "normal"),
        (1, ALICE, "normal"),
        (1, ALICE, "normal"),
        (2, ALICE, "creator"),
        (2, BOB, "normal"),
        (3, ZHANG, "normal"),
        (2, 99, "normal"),
    ] {
        s.push(format!("insert into groupuser values({g}, {u}, '{role}')"));
    }

    let offline = |to: i64, message: String| {
        format!("insert into offlinemessage values('{to}', '{message}')")
    };
    s.push(offline(
        LI,
        one_chat(ZHANG, "张三", LI, "你好李四", "2024-01-01 12:00:00"),
    ));
    // A group message stored once per offline member, with another
    // user's one-to-one message between its rows.
    let hello_all = group_chat(ZHANG, "张三", 1, "你好世界", "2024-01-01 12:01:00");
    s.push(offline(LI, hello_all.clone()));
    s.push(offline(
        BOB,
        one_chat(ALICE, "alice", BOB, "hi bob", "2024-01-01 12:01:30"),
    ));
    s.push(offline(ALICE, hello_all));
    s.push(offline(
        LI,
        one_chat(
            ALICE,
            "alice",
            LI,
            "hello from alice",
            "2024-01-01 12:02:00",
        ),
    ));
    s.push(offline(LI, "garbage, not JSON".to_owned()));
    s.push(offline(
        LI,
        one_chat(BOB, "bob", LI, &"x".repeat(50), "2024-01-01 12:03:00"),
    ));
    s.push(offline(
        99,
        one_chat(ZHANG, "张三", 99, "to nobody", "2024-01-01 12:04:00"),
    ));
    s.push(offline(
        ALICE,
        group_chat(BOB, "bob", 2, "ascii group message", "2024-01-01 12:05:00"),
    ));
    s
}

/// A seed database with the fixture's rows; `utf8` makes `allgroup` and
/// `offlinemessage` utf8 (else the course's latin1, with ASCII group
/// names and messages only).
async fn seed_database(utf8: bool) -> ThrowawayDatabase {
    let seed = ThrowawayDatabase::create().await;
    let mut connection = MySqlConnection::connect(&seed.url)
        .await
        .expect("connect to the seed");
    let mut ddl: Vec<&str> = SEED_TABLES.to_vec();
    if utf8 {
        ddl.extend(UTF8_GROUPS_AND_MESSAGES);
    }
    for statement in ddl {
        sqlx::raw_sql(statement)
            .execute(&mut connection)
            .await
            .expect(statement);
    }
    // The seed's db.cpp: every connection runs this, then sends what its
    // UTF-8 clients typed.
    sqlx::raw_sql("SET NAMES gbk")
        .execute(&mut connection)
        .await
        .expect("set names");
    for statement in seed_statements() {
        if !utf8 && statement.contains("offlinemessage") && !statement.is_ascii() {
            continue;
        }
        let statement = if utf8 {
            statement
        } else {
            statement
                .replace("聊天群组", "tech")
                .replace("欢迎 Rust", "about Rust")
        };
        // Built like the seed's `sprintf`s, on purpose: the fixture's own
        // constant text.
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
            .execute(&mut connection)
            .await
            .expect(&statement);
    }
    // A message the seed cut at the column's 500 characters: MySQL 5.6,
    // the course's, was not strict.
    sqlx::raw_sql("SET SESSION sql_mode = ''")
        .execute(&mut connection)
        .await
        .expect("sql_mode");
    let long = one_chat(ALICE, "alice", LI, &"y".repeat(600), "2024-01-01 12:06:00");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "insert into offlinemessage values('{LI}', '{long}')"
    )))
    .execute(&mut connection)
    .await
    .expect("a cut-off message");
    let _ = connection.close().await;
    // Someone fixed a name by hand over a UTF-8 connection: it is not
    // what a seed client sent.
    seed.execute(&format!(
        "INSERT INTO `{}`.user(name, password) VALUES ('José', 'pw')",
        seed.name
    ))
    .await;
    seed
}

/// `mysql://USER:PW@...` as the URL without the password, and the password.
fn without_password(url: &str) -> (String, String) {
    let rest = url.strip_prefix("mysql://").expect("a mysql URL");
    let (userinfo, host) = rest.rsplit_once('@').expect("a user");
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    (format!("mysql://{user}@{host}"), password.to_owned())
}

/// Runs `chatd [flags] import-seed --from <seed> [extra]` into `target`.
fn import(seed: &ThrowawayDatabase, target: &str, extra: &[&str]) -> Output {
    let (from, password) = without_password(&seed.url);
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .args([
            "--database-url",
            target,
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
            "--max-message",
            "40",
            "--log",
            "warn",
            "import-seed",
            "--from",
            &from,
        ])
        .args(extra)
        .env("CHAT_IMPORT_SOURCE_PASSWORD", password)
        .output()
        .expect("chatd runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "import failed ({}):\n{}\n{}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// The report's lines, without the first (which names the databases).
fn report_lines(output: &str) -> Vec<String> {
    output.lines().skip(1).map(str::to_owned).collect()
}

async fn target_db(url: &str) -> DatabaseConnection {
    Database::connect(url).await.expect("connect to the target")
}

/// Every row of `sql`, each column as text.
async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<Vec<String>> {
    let found = db
        .query_all_raw(Statement::from_string(DbBackend::MySql, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    found
        .iter()
        .map(|row| {
            (0..)
                .map_while(|i| {
                    row.try_get_by_index::<Option<String>>(i)
                        .or_else(|_| {
                            row.try_get_by_index::<Option<i64>>(i)
                                .map(|v| v.map(|v| v.to_string()))
                        })
                        .or_else(|_| {
                            row.try_get_by_index::<Option<u64>>(i)
                                .map(|v| v.map(|v| v.to_string()))
                        })
                        .ok()
                        .map(|v| v.unwrap_or_else(|| "NULL".to_owned()))
                })
                .collect()
        })
        .collect()
}

/// What an import put in a target, without the times it chose itself.
async fn imported(db: &DatabaseConnection) -> Vec<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for sql in [
        "SELECT id, name FROM user ORDER BY id",
        "SELECT user_id, friend_id FROM friendship ORDER BY user_id, friend_id",
        "SELECT id, name, description FROM chat_group ORDER BY id",
        "SELECT group_id, user_id, role FROM group_member ORDER BY group_id, user_id",
        "SELECT i.user_id, i.seq, m.sender_id, m.kind, m.target_id, m.body, m.created_at \
         FROM inbox i JOIN message m ON m.id = i.message_id ORDER BY i.user_id, i.seq",
        "SELECT user_id, last_seq, acked_seq FROM inbox_state ORDER BY user_id",
        "SELECT COUNT(*) FROM message",
    ] {
        all.push(rows(db, sql).await);
    }
    all
}

/// The seed client's side of a connection: JSON + NUL out, frames in.
struct SeedClient {
    stream: BufReader<TcpStream>,
}

impl SeedClient {
    async fn connect(addr: &str) -> SeedClient {
        let stream = TcpStream::connect(addr).await.expect("connect to chatd");
        SeedClient {
            stream: BufReader::new(stream),
        }
    }

    async fn send(&mut self, frame: Value) {
        let mut bytes = frame.to_string().into_bytes();
        bytes.push(0);
        self.stream.get_mut().write_all(&bytes).await.expect("send");
    }

    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line))
            .await
            .expect("a frame within 10 s")
            .expect("read");
        serde_json::from_str(line.trim_end()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// Logs in; returns the reply and every offline message, those in the
    /// reply and those that follow it as frames of their own.
    async fn login(&mut self, id: i64, password: &str, messages: usize) -> (Value, Vec<Value>) {
        self.send(json!({"msgid": 1, "id": id, "password": password}))
            .await;
        let reply = self.recv().await;
        assert_eq!(reply["errno"], 0, "login of {id}: {reply}");
        let mut offline: Vec<Value> = reply["offlinemsg"]
            .as_array()
            .map(|list| list.iter().map(inner).collect())
            .unwrap_or_default();
        while offline.len() < messages {
            offline.push(self.recv().await);
        }
        (reply, offline)
    }
}

/// A JSON object the seed's dialect carries as a string.
fn inner(value: &Value) -> Value {
    serde_json::from_str(value.as_str().expect("a JSON string")).expect("JSON inside")
}

fn chat_summary(message: &Value) -> (i64, i64, String, String) {
    (
        message["msgid"].as_i64().expect("msgid"),
        message["id"].as_i64().expect("sender"),
        message["msg"].as_str().expect("msg").to_owned(),
        message["time"].as_str().expect("time").to_owned(),
    )
}

async fn an_imported_seed_serves_the_seed_dialect_and_a_second_import_changes_nothing() {
    let seed = seed_database(true).await;
    let target = ThrowawayDatabase::create().await;
    let report = assert_ok(&import(&seed, &target.url, &[]));
    for expected in [
        "users:        5",
        "friendships:  3",
        "groups:       2",
        "memberships:  5",
        "messages:     5 (6 inbox entries, unread)",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }
    for expected in [
        "1  users without a password",
        "1  users whose name is not valid text",
        "1  friend rows repeating an earlier row",
        "1  friend rows giving the other direction",
        "1  friend rows of a user with itself",
        "1  friend rows naming a user that was not imported",
        "1  group member rows repeating an earlier row",
        "2  group member rows naming a group or user that was not imported",
        "1  offline messages that are not JSON",
        "1  offline messages cut off at the column's length",
        "1  offline messages longer than --max-message",
        "1  offline messages for a user that was not imported",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }

    // One message for the group message the seed stored per member.
    let db = target_db(&target.url).await;
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM message WHERE body = '你好世界'").await,
        [["1"]]
    );
    assert_eq!(
        rows(
            &db,
            "SELECT i.user_id FROM inbox i JOIN message m ON m.id = i.message_id \
                   WHERE m.body = '你好世界' ORDER BY i.user_id"
        )
        .await,
        [[LI.to_string()], [ALICE.to_string()]]
    );
    assert!(
        !rows(&db, "SELECT password_hash FROM user")
            .await
            .iter()
            .any(|r| !r[0].starts_with("$argon2id$")),
        "every password is an argon2id hash"
    );

    let logs = tempfile::tempdir().expect("tempdir");
    let mut chatd = Chatd::spawn(
        "imported",
        logs.path(),
        &["--database-url".to_owned(), target.url.clone()],
    );
    chatd.wait_listening().await;

    // 李四 with the seed password: friends, groups with roles, and the
    // offline messages in the seed's row order, with their own times.
    let mut li = SeedClient::connect(&chatd.addr).await;
    let (reply, offline) = li.login(LI, "lisi-pw", 3).await;
    assert_eq!(reply["name"], "李四");
    let friends: Vec<Value> = reply["friends"]
        .as_array()
        .expect("friends")
        .iter()
        .map(inner)
        .collect();
    assert_eq!(
        friends,
        [json!({"id": ZHANG, "name": "张三", "state": "offline"})]
    );
    let groups: Vec<Value> = reply["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(inner)
        .collect();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["id"], 1);
    assert_eq!(groups[0]["groupname"], "聊天群组");
    assert_eq!(groups[0]["groupdesc"], "欢迎 Rust");
    let mut members: Vec<(i64, String, String)> = groups[0]["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(inner)
        .map(|m| {
            (
                m["id"].as_i64().expect("id"),
                m["name"].as_str().expect("name").to_owned(),
                m["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        [
            (ZHANG, "张三".to_owned(), "creator".to_owned()),
            (LI, "李四".to_owned(), "normal".to_owned()),
            (ALICE, "alice".to_owned(), "normal".to_owned()),
        ]
    );
    let summaries: Vec<_> = offline.iter().map(chat_summary).collect();
    assert_eq!(
        summaries,
        [
            (
                5,
                ZHANG,
                "你好李四".to_owned(),
                "2024-01-01 12:00:00".to_owned()
            ),
            (
                9,
                ZHANG,
                "你好世界".to_owned(),
                "2024-01-01 12:01:00".to_owned()
            ),
            (
                5,
                ALICE,
                "hello from alice".to_owned(),
                "2024-01-01 12:02:00".to_owned()
            ),
        ]
    );
    assert_eq!(offline[1]["groupid"], 1);

    // 张三's password was Chinese; the odd run of 明x survived GBK.
    let mut zhang = SeedClient::connect(&chatd.addr).await;
    let (reply, _) = zhang.login(ZHANG, "密码你好", 0).await;
    assert_eq!(reply["name"], "张三");
    let mut friend_ids: Vec<i64> = reply["friends"]
        .as_array()
        .expect("friends")
        .iter()
        .map(|f| inner(f)["id"].as_i64().expect("id"))
        .collect();
    friend_ids.sort();
    assert_eq!(friend_ids, [LI, ALICE]);
    let mut ming = SeedClient::connect(&chatd.addr).await;
    let (reply, _) = ming.login(MING, "ming", 0).await;
    assert_eq!(reply["name"], "明x");
    let mut alice = SeedClient::connect(&chatd.addr).await;
    let (_, offline) = alice.login(ALICE, "alice pw", 2).await;
    let bodies: Vec<String> = offline.iter().map(|m| chat_summary(m).2).collect();
    assert_eq!(bodies, ["你好世界", "ascii group message"]);
    let mut nopass = SeedClient::connect(&chatd.addr).await;
    nopass
        .send(json!({"msgid": 1, "id": NOPASS, "password": ""}))
        .await;
    assert_eq!(
        nopass.recv().await["errno"],
        1,
        "a user without a password is not imported"
    );
    drop((li, zhang, ming, alice, nopass));
    chatd.signal("TERM");
    chatd.wait_exit(Duration::from_secs(15)).await;

    // Again: nothing changes.
    let before = imported(&db).await;
    let checkpoint = rows(&db, "SELECT state, updated_at FROM import_checkpoint").await;
    let again = assert_ok(&import(&seed, &target.url, &[]));
    assert!(again.contains("already"), "{again}");
    assert_eq!(imported(&db).await, before);
    assert_eq!(
        rows(&db, "SELECT state, updated_at FROM import_checkpoint").await,
        checkpoint
    );
    let _ = db.close().await;
    seed.drop_database().await;
    target.drop_database().await;
}

async fn an_interrupted_import_resumes_to_what_one_run_imports() {
    let seed = seed_database(true).await;
    let whole = ThrowawayDatabase::create().await;
    let whole_report = assert_ok(&import(&seed, &whole.url, &[]));

    // A target (with chatd's schema: chatd made it) that refuses one
    // message, in batches of one row: after the group message's first
    // row, the one-to-one message between its rows and its second row
    // (which joins a message an earlier batch stored).
    let target = ThrowawayDatabase::create().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let mut chatd = Chatd::spawn(
        "schema",
        logs.path(),
        &["--database-url".to_owned(), target.url.clone()],
    );
    chatd.wait_listening().await;
    chatd.signal("TERM");
    chatd.wait_exit(Duration::from_secs(15)).await;
    target
        .execute(&format!(
            "CREATE TRIGGER `{0}`.refuse_one BEFORE INSERT ON `{0}`.message FOR EACH ROW \
             IF NEW.body = 'hello from alice' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused for the test'; END IF",
            target.name
        ))
        .await;
    let interrupted = import(&seed, &target.url, &["--batch-size", "1"]);
    assert!(
        !interrupted.status.success(),
        "the refused message stops the import"
    );
    let stderr = String::from_utf8_lossy(&interrupted.stderr);
    assert!(stderr.contains("refused for the test"), "{stderr}");
    let db = target_db(&target.url).await;
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM message").await,
        [["3"]],
        "the batches before the refused one stay"
    );
    assert_eq!(rows(&db, "SELECT COUNT(*) FROM inbox").await, [["4"]]);

    target
        .execute(&format!("DROP TRIGGER `{}`.refuse_one", target.name))
        .await;
    let resumed = assert_ok(&import(&seed, &target.url, &["--batch-size", "1"]));
    let whole_db = target_db(&whole.url).await;
    assert_eq!(imported(&db).await, imported(&whole_db).await);
    assert_eq!(
        report_lines(&resumed),
        report_lines(&whole_report),
        "the report covers both runs"
    );
    let _ = db.close().await;
    let _ = whole_db.close().await;
    for database in [seed, whole, target] {
        database.drop_database().await;
    }
}

async fn a_target_holding_a_seed_users_name_is_refused_and_left_untouched() {
    let seed = seed_database(true).await;
    let target = ThrowawayDatabase::create().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let mut chatd = Chatd::spawn(
        "target",
        logs.path(),
        &["--database-url".to_owned(), target.url.clone()],
    );
    chatd.wait_listening().await;
    let client = chatcore::client::Client::connect(&chatd.addr)
        .await
        .expect("connect");
    let taken = client.register("李四", "other").await.expect("register");
    drop(client);
    chatd.signal("TERM");
    chatd.wait_exit(Duration::from_secs(15)).await;

    let db = target_db(&target.url).await;
    let before = imported(&db).await;
    let output = import(&seed, &target.url, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("user {taken} \"李四\"")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was written"), "{stderr}");
    assert_eq!(imported(&db).await, before);
    assert_eq!(
        rows(&db, "SELECT COUNT(*) FROM import_checkpoint").await,
        [["0"]]
    );
    let _ = db.close().await;
    seed.drop_database().await;
    target.drop_database().await;
}

async fn a_dry_run_on_the_course_schema_reports_and_writes_nothing() {
    let seed = seed_database(false).await;
    let target = ThrowawayDatabase::create().await;
    let report = assert_ok(&import(&seed, &target.url, &["--dry-run"]));
    assert!(report.starts_with("dry run, nothing written"), "{report}");
    for expected in [
        "users:        5",
        "groups:       2",
        "memberships:  5",
        // The course's latin1 offlinemessage kept only the ASCII ones.
        "messages:     3 (3 inbox entries, unread)",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }
    let db = target_db(&target.url).await;
    assert_eq!(
        rows(
            &db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}'",
                target.name
            )
        )
        .await,
        [["0"]],
        "not even the schema"
    );
    let _ = db.close().await;
    seed.drop_database().await;
    target.drop_database().await;
}

async fn a_seed_imports_into_the_embedded_sqlite_default_too() {
    let seed = seed_database(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let report = assert_ok(&import(&seed, &url, &["--batch-size", "2"]));
    assert!(
        report.contains("messages:     5 (6 inbox entries, unread)"),
        "{report}"
    );

    let mut chatd = Chatd::spawn(
        "sqlite",
        dir.path(),
        &["--database-url".to_owned(), url.clone()],
    );
    chatd.wait_listening().await;
    let mut li = SeedClient::connect(&chatd.addr).await;
    let (reply, offline) = li.login(LI, "lisi-pw", 3).await;
    assert_eq!(reply["name"], "李四");
    let bodies: Vec<String> = offline.iter().map(|m| chat_summary(m).2).collect();
    assert_eq!(bodies, ["你好李四", "你好世界", "hello from alice"]);
    drop(li);
    chatd.signal("TERM");
    chatd.wait_exit(Duration::from_secs(15)).await;
    assert!(assert_ok(&import(&seed, &url, &[])).contains("already"));
    seed.drop_database().await;
}
