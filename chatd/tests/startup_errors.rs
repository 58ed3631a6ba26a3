//! A `chatd` that cannot start says why in words that lead to the fix:
//! the error and its causes, one a line, exit status 1, no backtrace; a
//! mistake that will not pass by itself is not called "temporarily
//! unavailable"; and nothing is created before the listen address is
//! known to work.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use chat_testkit::mysql::MysqlServer;
use chat_testkit::{Service, free_port, trial};

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(a_wrong_mysql_user_is_not_called_temporary).needs(&[Service::Mysql]),
        trial!(an_unknown_mysql_database_is_named).needs(&[Service::Mysql]),
        trial!(an_unreachable_mysql_says_connection_refused),
        trial!(a_missing_sqlite_file_gets_the_mode_rwc_hint),
        trial!(a_busy_listen_address_fails_before_the_database_is_created),
        trial!(errors_print_their_causes_and_no_backtrace),
    ])
}

/// What a failed start printed on stderr, after checking that it exited
/// with status 1. `RUST_BACKTRACE=1` is set, as on many a developer's
/// machine.
fn failed_start(dir: &Path, args: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
    command
        .args(["--web-addr", "off", "--database-acquire-timeout-ms", "2000"])
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.env("RUST_BACKTRACE", "1");
    let output = command.output().expect("chatd runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|line| line.starts_with("error: ")),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    stderr
}

fn listen() -> String {
    format!("127.0.0.1:{}", free_port())
}

async fn a_wrong_mysql_user_is_not_called_temporary() {
    let server = MysqlServer::from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("mysql://chatd_no_such_user:wrong-pw@{}/chat", server.addr);
    let stderr = failed_start(dir.path(), &["--listen", &listen(), "--database-url", &url]);
    assert!(stderr.contains("Access denied"), "{stderr}");
    assert!(!stderr.contains("temporarily"), "{stderr}");
    assert!(
        !stderr.contains("wrong-pw"),
        "the password is redacted: {stderr}"
    );
}

async fn an_unknown_mysql_database_is_named() {
    let server = MysqlServer::from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.database_url("chatd_no_such_database");
    let stderr = failed_start(dir.path(), &["--listen", &listen(), "--database-url", &url]);
    assert!(stderr.contains("Unknown database"), "{stderr}");
    assert!(!stderr.contains("temporarily"), "{stderr}");
}

async fn an_unreachable_mysql_says_connection_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("mysql://chat:pw@127.0.0.1:{}/chat", free_port());
    let stderr = failed_start(dir.path(), &["--listen", &listen(), "--database-url", &url]);
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(!stderr.contains("pool timed out"), "{stderr}");
}

async fn a_missing_sqlite_file_gets_the_mode_rwc_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = failed_start(
        dir.path(),
        &[
            "--listen",
            &listen(),
            "--database-url",
            "sqlite://missing.db",
        ],
    );
    assert!(
        stderr.contains("missing.db does not exist") && stderr.contains("?mode=rwc"),
        "{stderr}"
    );
    assert!(!stderr.contains("temporarily"), "{stderr}");
    assert!(!dir.path().join("missing.db").exists());
    assert!(
        !dir.path().join("missing.db.resume-key").exists(),
        "no key file is left beside a database that could not be opened"
    );
}

async fn a_busy_listen_address_fails_before_the_database_is_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let stderr = failed_start(dir.path(), &["--listen", &addr]);
    assert!(
        stderr.contains(&format!("cannot bind --listen {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(
        !dir.path().join("chat.db").exists(),
        "the database file is not created"
    );
}

async fn errors_print_their_causes_and_no_backtrace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = failed_start(dir.path(), &["--listen", "127.0.0.1:notaport"]);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "error: invalid configuration: invalid --listen \"127.0.0.1:notaport\": invalid \
             port value"
        ],
        "{stderr}"
    );
    let stderr = failed_start(
        dir.path(),
        &[
            "--listen",
            &listen(),
            "--database-url",
            "sqlite://missing.db",
        ],
    );
    let mut lines = stderr.lines();
    assert_eq!(
        lines.next(),
        Some("error: opening the database sqlite://missing.db")
    );
    assert!(
        lines
            .next()
            .is_some_and(|line| line.starts_with("  caused by: ")),
        "{stderr}"
    );
}
