//! The architecture's invariants that can be read off the source
//! (docs/ARCHITECTURE.md): each module of chatcore imports only the layers
//! below it, and only `protocol` names the fields of the wire.

use std::fs;
use std::path::{Path, PathBuf};

/// For each top-level module, the modules it may import (`crate::x`).
/// Backends and shared types at the bottom, binaries' helpers at the top;
/// `telemetry` is recorded from every layer.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &["store"]), // a doc link only
    ("codec", &[]),
    ("protocol", &["model"]),
    ("limit", &["model", "redis_target"]),
    ("telemetry", &["model", "protocol"]),
    // One Redis or a Redis Cluster, under the Redis bus, presence and
    // counters.
    ("redis_target", &[]),
    ("presence", &["model", "redis_target", "telemetry"]),
    ("bus", &["model", "presence", "redis_target", "telemetry"]),
    ("store", &["model", "telemetry"]),
    // Policy over the store: a background job.
    ("retention", &["model", "store", "telemetry"]),
    (
        "hub",
        &["bus", "model", "presence", "protocol", "telemetry"],
    ),
    (
        "service",
        &[
            "bus",
            "hub",
            "limit",
            "model",
            "presence",
            "protocol",
            "store",
            "telemetry",
        ],
    ),
    (
        "connection",
        &[
            "codec",
            "hub",
            "limit",
            "model",
            "protocol",
            "service",
            "telemetry",
        ],
    ),
    (
        "server",
        &["connection", "protocol", "service", "telemetry"],
    ),
    (
        "node",
        &[
            "bus", "hub", "limit", "presence", "protocol", "service", "store",
        ],
    ),
    ("client", &["codec", "model", "protocol"]),
];

/// Keys of the wire's JSON objects that no other module may spell.
const WIRE_FIELDS: &[&str] = &[
    "msgid",
    "rid",
    "errno",
    "errmsg",
    "toid",
    "friendid",
    "groupid",
    "groupname",
    "groupdesc",
    "offlinemsg",
    "proto",
    "cmid",
    "resume",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a file of `src/` belongs to.
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a path")
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// A file's code without its unit tests, which may wire up whatever they
/// test with.
fn code(file: &Path) -> String {
    let text = fs::read_to_string(file).expect("readable source");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The modules a file names as `crate::<module>`.
fn imports(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .match_indices("crate::")
        .map(|(i, _)| {
            text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let mut violations = Vec::new();
    for file in rust_files(&src()) {
        let module = module_of(&file);
        if module == "lib" {
            continue;
        }
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == module) else {
            violations.push(format!("{}: module `{module}` has no rule", file.display()));
            continue;
        };
        for import in imports(&code(&file)) {
            if import != module && !allowed.contains(&import.as_str()) {
                violations.push(format!(
                    "{}: `{module}` reaches `crate::{import}`",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn only_protocol_spells_the_wire_fields() {
    let mut violations = Vec::new();
    for file in rust_files(&src()) {
        // telemetry's metric labels name message kinds ("resume", ...),
        // which is not the wire.
        if ["protocol", "telemetry"].contains(&module_of(&file).as_str()) {
            continue;
        }
        let text = code(&file);
        for field in WIRE_FIELDS {
            if text.contains(&format!("\"{field}\"")) {
                violations.push(format!("{}: spells \"{field}\"", file.display()));
            }
        }
        if text.contains("json!") {
            violations.push(format!("{}: builds JSON by hand", file.display()));
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_rules_can_fail() {
    assert_eq!(
        imports("use crate::store::Store; crate::model::UserId, crate::store"),
        ["model", "store"]
    );
    assert_eq!(module_of(&src().join("service/auth.rs")), "service");
    assert_eq!(module_of(&src().join("hub.rs")), "hub");
}
