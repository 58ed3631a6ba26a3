//! The `--config` file: a TOML table whose keys are the long flags' names.
//! Its values become the flags' defaults, so that clap still lets a flag
//! and then its environment variable override them (and no environment
//! variable is ever set to carry them).

use anyhow::{anyhow, bail};
use clap::{Arg, ArgAction, Command};
use toml::Value;

/// Flags that make no sense in the file that they would point at.
pub(super) const NOT_IN_FILE: &[&str] = &["config", "check-config", "help", "version"];

/// `command` with the values of the TOML `text` as its arguments'
/// defaults, and the keys the file set. An unknown key, a value of the
/// wrong shape or one the flag would refuse is an error naming the key.
pub(super) fn apply(mut command: Command, text: &str) -> anyhow::Result<(Command, Vec<String>)> {
    let table: toml::Table = text.parse()?;
    let mut keys = Vec::with_capacity(table.len());
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|arg| {
                arg.get_long() == Some(key.as_str()) && !NOT_IN_FILE.contains(&key.as_str())
            })
            .ok_or_else(|| {
                anyhow!(
                    "unknown key `{key}`: the keys are chatd's long flag names, such as \
                     `listen` or `database-url` (see chatd --help)"
                )
            })?;
        let values = values_of(arg, key, value)?;
        if !matches!(arg.get_action(), ArgAction::SetTrue) {
            // As a flag, so that clap's own parser judges it.
            let flags = values.iter().map(|text| format!("--{key}={text}"));
            command
                .clone()
                .try_get_matches_from(std::iter::once("chatd".to_owned()).chain(flags))
                .map_err(|e| anyhow!("`{key}`: {}", clap_message(&e)))?;
        }
        let id = arg.get_id().clone();
        command = command.mut_arg(id, |arg| arg.default_values(values));
        keys.push(key.clone());
    }
    Ok((command, keys))
}

/// The flag's arguments for `value`: an array's elements for a
/// repeatable flag, else the one scalar, as text for clap to parse.
fn values_of(arg: &Arg, key: &str, value: &Value) -> anyhow::Result<Vec<String>> {
    let repeatable = matches!(arg.get_action(), ArgAction::Append);
    let switch = matches!(arg.get_action(), ArgAction::SetTrue);
    match value {
        Value::Array(items) if repeatable => items.iter().map(|item| scalar(key, item)).collect(),
        Value::Array(_) => bail!("`{key}` takes one value, not an array"),
        Value::Boolean(_) => Ok(vec![scalar(key, value)?]),
        _ if switch => bail!("`{key}` is a switch: write `{key} = true` or `{key} = false`"),
        _ => Ok(vec![scalar(key, value)?]),
    }
}

fn scalar(key: &str, value: &Value) -> anyhow::Result<String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(x) => Ok(x.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Datetime(_) | Value::Array(_) | Value::Table(_) => bail!(
            "`{key}` must be a string, a number or a boolean, not {}",
            value.type_str()
        ),
    }
}

/// clap's own error text without its `error: ` prefix and usage lines.
fn clap_message(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::super::Config;
    use super::*;

    fn parse(file: &str, args: &[&str]) -> anyhow::Result<Config> {
        let (command, _) = apply(Config::command(), file)?;
        let matches =
            command.try_get_matches_from(std::iter::once("chatd").chain(args.iter().copied()))?;
        Ok(<Config as clap::FromArgMatches>::from_arg_matches(
            &matches,
        )?)
    }

    fn error(file: &str) -> String {
        match parse(file, &[]) {
            Ok(config) => panic!("{file:?} was accepted: {config:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn file_values_are_defaults_under_the_flags() {
        let file = "listen = \"127.0.0.1:7000\"\nmax-connections = 50\nno-migrate = true\n";
        let config = parse(file, &[]).expect("valid file");
        assert_eq!(config.listen, "127.0.0.1:7000");
        assert_eq!(config.max_connections, 50);
        assert!(config.no_migrate);
        let config = parse(file, &["--listen", "127.0.0.1:7001"]).expect("valid file");
        assert_eq!(config.listen, "127.0.0.1:7001", "the flag wins");
        assert_eq!(config.max_connections, 50);
    }

    #[test]
    fn repeatable_flags_take_arrays_and_single_values() {
        let config = parse(
            "redis-cluster-node = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]\n\
             proxy-protocol-from = \"10.0.0.0/8\"\n",
            &[],
        )
        .expect("valid file");
        assert_eq!(
            config.redis_cluster_nodes,
            ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
        );
        assert_eq!(config.proxy_protocol_from.len(), 1);
    }

    #[test]
    fn the_example_file_shows_every_key_with_its_default() {
        let example = include_str!("../../../deploy/chatd.toml");
        let settings: String = example
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once(" = ").is_some_and(|(key, _)| {
                    !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let table: toml::Table = settings.parse().expect("the example's settings are TOML");
        let command = Config::command();
        // Shown as examples, not defaults: no default, or the machine's.
        let examples = [
            "redis-url",
            "node-id",
            "admin-addr",
            "admin-token-file",
            "resume-key",
            "hash-threads",
        ];
        for arg in command.get_arguments() {
            let Some(key) = arg.get_long() else { continue };
            if NOT_IN_FILE.contains(&key) {
                continue;
            }
            let value = table
                .get(key)
                .unwrap_or_else(|| panic!("deploy/chatd.toml does not show `{key}`"));
            if examples.contains(&key) {
                continue;
            }
            let shown = values_of(arg, key, value).expect("a value of the right shape");
            let mut default: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            // A switch's action, not the argument, holds its default.
            if default.is_empty() && matches!(arg.get_action(), ArgAction::SetTrue) {
                default.push("false".to_owned());
            }
            assert_eq!(shown, default, "deploy/chatd.toml: the default of `{key}`");
        }
        apply(Config::command(), &settings).expect("the example's settings are valid");
    }

    #[test]
    fn mistakes_name_their_key() {
        assert!(error("lisen = \"x\"").contains("unknown key `lisen`"));
        assert!(error("config = \"other.toml\"").contains("unknown key `config`"));
        assert!(error("listen = [\"a:1\"]").contains("`listen` takes one value"));
        assert!(error("no-migrate = \"yes\"").contains("`no-migrate` is a switch"));
        assert!(error("listen = { host = \"x\" }").contains("`listen` must be a string"));
        let bad_number = error("max-connections = \"many\"");
        assert!(
            bad_number.contains("`max-connections`") && bad_number.contains("many"),
            "{bad_number}"
        );
        assert!(
            error("listen = ").contains("TOML"),
            "{}",
            error("listen = ")
        );
    }
}
