//! `chatd` configured like a service: a `--config` TOML file under the
//! environment under the flags, `--check-config` with secrets redacted,
//! JSON logs, and the open-files limit that `--max-connections` needs.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chat_testkit::free_port;
use serde_json::Value;
use support::Chatd;

/// `chatd` with `args` and `env` only: no `CHAT_*`, `RUST_LOG` or
/// `RUST_BACKTRACE` of the test's environment reaches it.
fn chatd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
    command.args(args).stdin(Stdio::null());
    clean_env(&mut command);
    command.envs(env.iter().copied());
    command
}

fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CHAT_") || key_text == "RUST_LOG" || key_text == "RUST_BACKTRACE" {
            command.env_remove(key);
        }
    }
}

fn run(command: &mut Command) -> (Output, String, String) {
    let output = command.output().expect("chatd runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// The line of `--check-config`'s report that sets `key`.
fn line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no `{key}` in the report:\n{report}"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the file");
    path.display().to_string()
}

#[test]
fn a_flag_beats_its_environment_variable_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "chatd.toml",
        "max-frame = 1000\nrate-limit = 7\nlogin-timeout-secs = 11\n",
    );
    let (output, report, stderr) = run(&mut chatd(
        &[
            "--config",
            &file,
            "--login-timeout-secs",
            "13",
            "--check-config",
        ],
        &[("CHAT_RATE_LIMIT", "8"), ("CHAT_LOGIN_TIMEOUT_SECS", "12")],
    ));
    assert!(output.status.success(), "{stderr}");
    assert!(line(&report, "max-frame").contains("= 1000"));
    assert!(line(&report, "max-frame").ends_with("# file"));
    assert!(line(&report, "rate-limit").contains("= 8"));
    assert!(line(&report, "rate-limit").ends_with("# environment CHAT_RATE_LIMIT"));
    assert!(line(&report, "login-timeout-secs").contains("= 13"));
    assert!(line(&report, "login-timeout-secs").ends_with("# flag"));
    assert!(line(&report, "outbox").contains("= 1024"));
    assert!(line(&report, "outbox").ends_with("# default"));
}

#[test]
fn repeatable_flags_take_arrays_in_the_file_and_a_flag_replaces_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "chatd.toml",
        "web-allowed-origin = [\"https://a.example\", \"https://b.example\"]\n\
         proxy-protocol-from = [\"10.0.0.0/8\"]\n",
    );
    let (output, report, stderr) = run(&mut chatd(&["--config", &file, "--check-config"], &[]));
    assert!(output.status.success(), "{stderr}");
    assert!(
        line(&report, "web-allowed-origin")
            .starts_with("web-allowed-origin = [\"https://a.example\", \"https://b.example\"]"),
        "{report}"
    );
    // A flag replaces the file's array, as it replaces a default.
    let (_, report, _) = run(&mut chatd(
        &[
            "--config",
            &file,
            "--web-allowed-origin",
            "https://c.example",
            "--check-config",
        ],
        &[],
    ));
    assert!(
        line(&report, "web-allowed-origin")
            .starts_with("web-allowed-origin = [\"https://c.example\"]"),
        "{report}"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "chatd.toml",
        "listen = \"127.0.0.1:1\"\nlisen = \"x\"\n",
    );
    let (output, _, stderr) = run(chatd(&["--config", &file], &[]).current_dir(dir.path()));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown key `lisen`"), "{stderr}");
    assert!(stderr.contains(&file), "the file is named: {stderr}");
    assert!(!dir.path().join("chat.db").exists(), "nothing was started");
}

#[test]
fn check_config_redacts_passwords_and_keys() {
    let (output, report, stderr) = run(&mut chatd(
        &[
            "--database-url",
            "mysql://chat:db-secret@db.example:3306/chat",
            "--redis-url",
            "redis://:redis-secret@redis.example:6379",
            "--check-config",
        ],
        &[(
            "CHAT_RESUME_KEY",
            "key-secret-key-secret-key-secret-key-secret",
        )],
    ));
    assert!(output.status.success(), "{stderr}");
    for secret in ["db-secret", "redis-secret", "key-secret"] {
        assert!(!report.contains(secret), "{secret} shows:\n{report}");
        assert!(!stderr.contains(secret), "{secret} shows:\n{stderr}");
    }
    assert!(line(&report, "database-url").contains("mysql://chat:***@db.example:3306/chat"));
    assert!(line(&report, "redis-url").contains("redis://:***@redis.example:6379"));
    assert!(line(&report, "resume-key").contains("<redacted>"));
    assert!(line(&report, "resume-key").ends_with("# environment CHAT_RESUME_KEY"));
    assert!(report.contains("# open files: up to"), "{report}");
}

#[test]
fn check_config_fails_with_the_reasons_of_an_invalid_configuration() {
    let (output, report, stderr) = run(&mut chatd(
        &[
            "--resume-key",
            "too short",
            "--database-url",
            "postgres://x/y",
            "--listen",
            "127.0.0.1:notaport",
            "--check-config",
        ],
        &[],
    ));
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(stderr.contains("invalid --resume-key"), "{stderr}");
    assert!(
        stderr.contains("unsupported --database-url postgres://x/y"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid --listen \"127.0.0.1:notaport\""),
        "{stderr}"
    );
}

#[test]
fn a_file_alone_configures_a_running_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", free_port());
    let file = write(
        dir.path(),
        "chatd.toml",
        &format!(
            "listen = \"{addr}\"\nweb-addr = \"off\"\n\
             database-url = \"sqlite://{}/from-file.db?mode=rwc\"\n\
             argon2-memory-kib = 64\nargon2-iterations = 1\n",
            dir.path().display()
        ),
    );
    let mut child = chatd(&["--config", &file], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chatd starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("chatd did not listen on the file's address {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("from-file.db").exists());
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let logs = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/chat.db?mode=rwc", logs.path().display());
    let mut node = Chatd::spawn(
        "json",
        logs.path(),
        &["--log-format", "json", "--database-url", &db].map(str::to_owned),
    );
    node.wait_listening().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines: Vec<Value> = loop {
        let text = node.log_text();
        if text.contains("chatd ready") || Instant::now() > deadline {
            break text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ready = lines
        .iter()
        .find(|line| line["message"] == "chatd ready")
        .unwrap_or_else(|| panic!("no ready line in {lines:?}"));
    assert_eq!(ready["level"], "INFO");
    assert_eq!(
        ready["listen"],
        node.addr.as_str(),
        "fields beside the message"
    );
    assert!(ready["timestamp"].is_string());
}

/// `chatd args` under `sh`'s `ulimit` of open files.
fn under_ulimit(limits: &str, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("{limits} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_chatd"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null());
    clean_env(&mut command);
    command
}

#[test]
fn a_hard_open_files_limit_below_the_need_refuses_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let (output, _, stderr) = run(&mut under_ulimit(
        "ulimit -Sn 256 && ulimit -Hn 512",
        dir.path(),
        &[
            "--listen",
            &listen,
            "--web-addr",
            "off",
            "--max-connections",
            "10000",
        ],
    ));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--max-connections 10000 needs up to")
            && stderr.contains("hard limit on open files (RLIMIT_NOFILE) is 512"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("chat.db").exists(),
        "refused before the database"
    );
}

#[test]
fn a_low_soft_open_files_limit_is_raised_to_the_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = under_ulimit(
        "ulimit -Sn 256",
        dir.path(),
        &[
            "--listen",
            &listen,
            "--web-addr",
            "off",
            "--max-connections",
            "1000",
            "--database-pool",
            "4",
            "--argon2-memory-kib",
            "64",
            "--argon2-iterations",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("chatd starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&listen).is_err() {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("chatd did not start under a soft limit of 256");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let _ = child.kill();
    let _ = child.wait();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("an open files line");
    let soft: u64 = open_files
        .split_whitespace()
        .nth(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{open_files}"));
    // 1000 connections, 3 files for each of 5 database connections, 128.
    assert_eq!(soft, 1000 + 3 * 5 + 128, "{open_files}");
}
