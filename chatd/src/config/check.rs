//! `--check-config`: the settings in effect, as a TOML file that `--config`
//! would take, each line saying where its value came from. Passwords in
//! URLs and keys are redacted: the report is meant to be pasted into
//! tickets.

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use super::redact;

/// Keys whose whole value is a secret.
const SECRETS: &[&str] = &["resume-key"];
/// Keys whose values are URLs that may carry a password.
const URLS: &[&str] = &["database-url", "redis-url", "redis-cluster-node"];

pub(super) fn report(command: &Command, matches: &ArgMatches, from_file: &[String]) -> String {
    let mut out = String::from(
        "# chatd: the settings in effect (flag > environment > --config file > default)\n",
    );
    for arg in command.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if super::file::NOT_IN_FILE.contains(&key) {
            continue;
        }
        let id = arg.get_id().as_str();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_owned(),
            Some(ValueSource::EnvVariable) => match arg.get_env() {
                Some(var) => format!("environment {}", var.to_string_lossy()),
                None => "environment".to_owned(),
            },
            Some(ValueSource::DefaultValue) if from_file.iter().any(|k| k == key) => {
                "file".to_owned()
            }
            _ => "default".to_owned(),
        };
        let values: Vec<String> = matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|raw| {
                let text = raw.to_string_lossy();
                if SECRETS.contains(&key) {
                    "<redacted>".to_owned()
                } else if URLS.contains(&key) {
                    redact(&text)
                } else {
                    text.into_owned()
                }
            })
            .collect();
        let line = if matches!(arg.get_action(), ArgAction::Append) {
            let items: Vec<String> = values.iter().map(|v| toml_value(v)).collect();
            format!("{key} = [{}]", items.join(", "))
        } else if let Some(value) = values.first() {
            format!("{key} = {}", toml_value(value))
        } else {
            format!("# {key} is not set")
        };
        out.push_str(&format!("{line:<60} # {source}\n"));
    }
    out
}

/// A number or boolean as it is, anything else as a TOML string.
fn toml_value(text: &str) -> String {
    if text.parse::<i64>().is_ok() || text == "true" || text == "false" {
        text.to_owned()
    } else {
        toml::Value::String(text.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn the_report_is_a_config_file_with_secrets_redacted() {
        let loaded = Config::load_from([
            "chatd",
            "--database-url",
            "mysql://chat:hunter2@db:3306/chat",
            "--resume-key",
            "0123456789abcdef0123456789abcdef-secret",
            "--redis-cluster-node",
            "redis://:redispw@r1:7000",
        ])
        .expect("valid flags");
        let report = loaded.report();
        assert!(!report.contains("hunter2"), "{report}");
        assert!(!report.contains("redispw"), "{report}");
        assert!(!report.contains("-secret"), "{report}");
        assert!(report.contains("database-url = \"mysql://chat:***@db:3306/chat\""));
        assert!(report.contains("resume-key = \"<redacted>\""));
        assert!(report.contains("redis-cluster-node = [\"redis://:***@r1:7000\"]"));
        assert!(report.contains("# node-id is not set"));
        // Fed back (without the redacted lines) it is a valid file.
        let text: String = report
            .lines()
            .filter(|line| !line.contains("***") && !line.contains("<redacted>"))
            .map(|line| format!("{line}\n"))
            .collect();
        let (_, keys) =
            super::super::file::apply(<Config as clap::CommandFactory>::command(), &text)
                .expect("the report is a valid --config file");
        assert!(keys.iter().any(|k| k == "listen"));
    }
}
