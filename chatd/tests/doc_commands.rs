//! The shell commands in README.md and docs/ name things that exist: every
//! `cargo` command's packages and targets, every script, and every flag
//! and subcommand given to our programs (`chatd`, `chatcli`, `chat-load`,
//! `migration`), which are run with the documented arguments and `--help`
//! appended, so that clap rejects a flag or value that no longer exists
//! before it would print the help. A renamed flag, target or script in the
//! code fails here until the docs follow.
//!
//! Commands that start servers or load runs are not run as such; this
//! checks what they name. It needs the workspace's binaries, which
//! `cargo test --workspace` builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// The documents whose commands are checked.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut docs = vec![root.join("README.md"), root.join("chatcli/README.md")];
    let mut in_docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    docs
}

/// One command as written: where, and its text with continuations joined.
#[derive(Debug)]
struct Written {
    at: String,
    text: String,
}

/// The commands of the ```sh blocks of `doc`. In a transcript (a block
/// with `$ ` prompts) only the prompted lines are commands.
fn commands(path: &Path) -> Vec<Written> {
    let doc = std::fs::read_to_string(path).expect("read a document");
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut block: Option<Vec<(usize, &str)>> = None;
    for (n, line) in doc.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut block, fence) {
            (None, true) if line.trim_start() == "```sh" => block = Some(Vec::new()),
            (Some(lines), true) => {
                let transcript = lines.iter().any(|(_, l)| l.starts_with("$ "));
                let mut pending: Option<(usize, String)> = None;
                for &(n, l) in lines.iter() {
                    let l = match (transcript, l.strip_prefix("$ ")) {
                        (true, Some(cmd)) => cmd,
                        (true, None) if pending.is_none() => continue,
                        _ => l,
                    };
                    let (start, mut text) = pending.take().unwrap_or((n, String::new()));
                    match l.trim_end().strip_suffix('\\') {
                        Some(part) => {
                            text.push_str(part);
                            text.push(' ');
                            pending = Some((start, text));
                        }
                        None => {
                            text.push_str(l);
                            out.push(Written {
                                at: format!("{name}:{}", start + 1),
                                text,
                            });
                        }
                    }
                }
                block = None;
            }
            (Some(lines), false) => lines.push((n, line)),
            (None, _) => {}
        }
    }
    out
}

/// Splits a command line into simple commands (at `;`, `&&`, `||`, `|`
/// and `&`) of words, as a shell would, dropping comments; `$VAR`,
/// `${VAR}` and `$(...)` become `1`, a stand-in value.
fn simple_commands(text: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    let end_word = |word: &mut String, in_word: &mut bool, commands: &mut Vec<Vec<String>>| {
        if *in_word {
            commands
                .last_mut()
                .expect("a command")
                .push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some('\''), c) => word.push(c),
            (_, '$') => {
                // A substitution: skip it, keep a stand-in.
                match chars.peek() {
                    Some('(') | Some('{') => {
                        let (open, close) = if chars.peek() == Some(&'(') {
                            ('(', ')')
                        } else {
                            ('{', '}')
                        };
                        let mut depth = 0;
                        for c in chars.by_ref() {
                            if c == open {
                                depth += 1;
                            } else if c == close {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    _ => {
                        while chars
                            .peek()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '!')
                        {
                            chars.next();
                        }
                    }
                }
                word.push('1');
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '#') if !in_word => break,
            (None, c) if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut commands),
            // `2>&1`: a redirection, not a background `&`.
            (None, '&') if word.ends_with('>') => word.push(c),
            (None, ';' | '|' | '&') => {
                end_word(&mut word, &mut in_word, &mut commands);
                if chars.peek().is_some_and(|n| *n == c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    in_word = true;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut commands);
    commands
        .into_iter()
        .map(|words| {
            // Leading assignments (`CHAT_X=1 chatd ...`) are environment.
            without_redirections(words)
                .into_iter()
                .skip_while(|w| {
                    w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

/// `words` without redirections (`> file`, `2>/dev/null`, `2>&1`, `< in`).
fn without_redirections(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let operator = word.trim_start_matches(|c: char| c.is_ascii_digit());
        if !(operator.starts_with('>') || operator.starts_with('<')) {
            out.push(word);
            continue;
        }
        // The target is in this word (`>file`, `>&1`) or the next (`> file`).
        if operator.trim_start_matches(['>', '<']).is_empty() {
            words.next();
        }
    }
    out
}

/// The workspace's packages with their targets, by kind.
struct Workspace {
    packages: BTreeSet<String>,
    /// (kind, name): `bin`, `example`, `test`, `bench`.
    targets: BTreeSet<(String, String)>,
    /// A binary target's package.
    bins: Vec<(String, String)>,
}

fn workspace() -> Workspace {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut ws = Workspace {
        packages: BTreeSet::new(),
        targets: BTreeSet::new(),
        bins: Vec::new(),
    };
    for package in meta["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_owned();
        for target in package["targets"].as_array().expect("targets") {
            let target_name = target["name"].as_str().expect("target name").to_owned();
            for kind in target["kind"].as_array().expect("kinds") {
                let kind = kind.as_str().expect("kind").to_owned();
                if kind == "bin" {
                    ws.bins.push((target_name.clone(), name.clone()));
                }
                ws.targets.insert((kind, target_name.clone()));
            }
        }
        ws.packages.insert(name);
    }
    ws
}

/// Where this build put the workspace's binaries.
fn binary(name: &str) -> PathBuf {
    let chatd = Path::new(env!("CARGO_BIN_EXE_chatd"));
    let path = chatd.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    path
}

/// Our program `program` accepts `args`: run with `--help` appended, clap
/// checks each flag, value and subcommand before printing the help.
fn accepts(program: &str, args: &[String]) -> Result<(), String> {
    let out = Command::new(binary(program))
        .args(args)
        .arg("--help")
        .env_remove("RUST_LOG")
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {} refuses it: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The value of `flag` in `words`, once or more.
fn values<'w>(words: &'w [String], flag: &str) -> Vec<&'w str> {
    words
        .windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1].as_str())
        .collect()
}

fn check_cargo(ws: &Workspace, words: &[String]) -> Result<(), String> {
    let (own, passed) = match words.iter().position(|w| w == "--") {
        Some(at) => (&words[..at], &words[at + 1..]),
        None => (words, &[][..]),
    };
    let Some(sub) = own.get(1).map(String::as_str) else {
        return Ok(());
    };
    if !matches!(sub, "run" | "build" | "test" | "bench" | "tree" | "clippy") {
        return Ok(());
    }
    for package in values(own, "-p")
        .into_iter()
        .chain(values(own, "--package"))
    {
        if !ws.packages.contains(package) {
            return Err(format!("no package `{package}` in the workspace"));
        }
    }
    for (flag, kind) in [
        ("--bin", "bin"),
        ("--example", "example"),
        ("--test", "test"),
        ("--bench", "bench"),
    ] {
        for name in values(own, flag) {
            if !ws.targets.contains(&(kind.to_owned(), name.to_owned())) {
                return Err(format!("no {kind} target `{name}`"));
            }
        }
    }
    if sub != "run" || !values(own, "--example").is_empty() {
        return Ok(());
    }
    // `cargo run`: which of our binaries, with the arguments after `--`.
    let bin = values(own, "--bin")
        .first()
        .map(|b| (*b).to_owned())
        .or_else(|| {
            let package = values(own, "-p").first().map(|p| (*p).to_owned())?;
            let bins: Vec<&String> = ws
                .bins
                .iter()
                .filter(|(_, p)| *p == package)
                .map(|(b, _)| b)
                .collect();
            (bins.len() == 1).then(|| bins[0].clone())
        })
        .unwrap_or_else(|| "chatd".to_owned());
    accepts(&bin, passed)
}

fn check(ws: &Workspace, words: &[String]) -> Result<(), String> {
    let program = words[0].as_str();
    let base = program.rsplit('/').next().unwrap_or(program);
    let ours = ws.bins.iter().any(|(bin, _)| bin == base)
        && (program == base || program.contains("target/") || program.starts_with("1/"));
    if program == "cargo" {
        check_cargo(ws, words)
    } else if ours {
        accepts(base, &words[1..])
    } else if program.ends_with(".sh") {
        let script = root().join(program);
        if !script.exists() {
            return Err(format!("no script {program}"));
        }
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .map_err(|e| e.to_string())?;
        if !syntax.success() {
            return Err(format!("{program} does not parse"));
        }
        Ok(())
    } else {
        Ok(())
    }
}

#[test]
fn documented_commands_name_what_exists() {
    let ws = workspace();
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc in documents() {
        for written in commands(&doc) {
            for words in simple_commands(&written.text) {
                checked += 1;
                if let Err(why) = check(&ws, &words) {
                    failures.push(format!("{}: `{}`: {why}", written.at, written.text.trim()));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} commands found: is the parser broken?"
    );
    assert!(
        failures.is_empty(),
        "stale commands in the docs:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_splitter_reads_commands_as_a_shell_does() {
    let split = |text: &str| simple_commands(text);
    assert_eq!(
        split("CHAT_X=1 $T/chatd --listen 127.0.0.1:7000 --log warn &  # a server"),
        vec![vec![
            "1/chatd",
            "--listen",
            "127.0.0.1:7000",
            "--log",
            "warn"
        ]]
    );
    assert_eq!(
        split("chat-load --server-pid $(pgrep -f 'listen 127.0.0.1:7000') --service-pid redis=$P"),
        vec![vec![
            "chat-load",
            "--server-pid",
            "1",
            "--service-pid",
            "redis=1"
        ]]
    );
    assert_eq!(
        split("chatd --log warn 2> $DIR/chatd.log > out.txt 2>&1 < /dev/null &"),
        vec![vec!["chatd", "--log", "warn"]]
    );
    assert_eq!(
        split("mkdir -p /tmp/x && cd /tmp/x; sqlite3 db \".backup 'a b'\" | tail -1"),
        vec![
            vec!["mkdir", "-p", "/tmp/x"],
            vec!["cd", "/tmp/x"],
            vec!["sqlite3", "db", ".backup 'a b'"],
            vec!["tail", "-1"],
        ]
    );
}

#[test]
fn a_stale_flag_is_caught() {
    let ws = workspace();
    let words = |text: &str| simple_commands(text).remove(0);
    assert!(check(&ws, &words("target/release/chatd --listen 127.0.0.1:1")).is_ok());
    assert!(check(&ws, &words("target/release/chatd --no-such-flag 1")).is_err());
    assert!(check(&ws, &words("cargo run -p chatcli -- --no-such-flag")).is_err());
    assert!(check(&ws, &words("cargo bench --workspace --bench no_such_bench")).is_err());
    assert!(check(&ws, &words("cargo run -p no-such-package")).is_err());
    assert!(check(&ws, &words("benches/no-such-script.sh 2")).is_err());
}
