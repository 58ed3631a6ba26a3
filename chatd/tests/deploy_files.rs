//! The deployment files under `deploy/` are what docs/operations.md says:
//! the systemd unit passes `systemd-analyze verify` with the chatd binary
//! it starts, and keeps its hardening; the settings file it names, as
//! shipped, passes `--check-config`.
//!
//! ```text
//! CHAT_TEST_SYSTEMD_ANALYZE=/usr/bin/systemd-analyze cargo test --workspace --test deploy_files
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use chat_testkit::{Service, trial};

fn main() -> ExitCode {
    chat_testkit::harness::run([
        trial!(the_systemd_unit_passes_systemd_analyze_verify).needs(&[Service::SystemdAnalyze]),
        trial!(the_systemd_unit_confines_chatd),
        trial!(the_unit_runs_chatd_on_the_shipped_settings_file),
    ])
}

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(name)
}

fn unit() -> String {
    std::fs::read_to_string(deploy_file("systemd/chatd.service")).expect("read the unit")
}

/// `systemd-analyze verify` checks every key and that the programs the
/// unit starts exist; the installed path is swapped for the binary this
/// build made, with the unit's own arguments.
async fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = unit();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/chatd "),
        "the unit starts chatd from where docs/operations.md installs it"
    );
    let unit = unit.replace(
        "ExecStart=/usr/local/bin/chatd ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_chatd")),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("chatd.service");
    std::fs::write(&file, unit).expect("write the unit");

    let out = Command::new(Service::SystemdAnalyze.value())
        .arg("verify")
        .arg(&file)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // It reports unknown keys and bad values as warnings and still exits 0.
    let about_the_unit: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("chatd.service"))
        .collect();
    assert!(
        about_the_unit.is_empty(),
        "systemd-analyze warns about the unit:\n{}",
        about_the_unit.join("\n")
    );
}

/// The hardening docs/operations.md promises; a unit edited without these
/// would still verify.
async fn the_systemd_unit_confines_chatd() {
    let unit = unit();
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the unit sets no {key}"))
    };
    for (key, expected) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "chatd"),
        ("WorkingDirectory", "/var/lib/chatd"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(value(key), expected, "{key}");
    }
    // Room for chatd's default --max-connections (10,000) and its pools.
    let nofile: u64 = value("LimitNOFILE").parse().expect("a number");
    assert!(nofile >= 10_000 + 1_000, "LimitNOFILE={nofile}");
}

/// The unit's command line, with the shipped example as its settings file,
/// is a configuration chatd accepts.
async fn the_unit_runs_chatd_on_the_shipped_settings_file() {
    let unit = unit();
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart=/usr/local/bin/chatd "))
        .expect("an ExecStart of chatd");
    let args: Vec<String> = exec
        .split_whitespace()
        .map(|arg| {
            if arg == "/etc/chatd/chatd.toml" {
                deploy_file("chatd.toml").display().to_string()
            } else {
                arg.to_owned()
            }
        })
        .collect();
    assert!(
        args.iter().any(|a| a.ends_with("deploy/chatd.toml")),
        "the unit reads /etc/chatd/chatd.toml: {exec}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(&args)
        .arg("--check-config")
        .env_remove("RUST_LOG")
        .output()
        .expect("run chatd");
    assert!(
        out.status.success(),
        "chatd {} --check-config: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
