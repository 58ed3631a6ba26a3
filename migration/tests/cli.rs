//! The command line docs/mysql.md and docs/operations.md show: `up` on a
//! new SQLite file applies every migration, and `status` then lists each
//! as applied.

use std::process::Command;

use migration::{Migrator, MigratorTrait};

fn run(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_migration"))
        .arg("-u")
        .arg(url)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run migration");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "migration {args:?} failed:\n{text}");
    text
}

#[test]
fn up_applies_every_migration_and_status_lists_them() {
    let dir = std::env::temp_dir().join(format!("chat-migration-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/chat.db?mode=rwc", dir.display());

    run(&url, &["up"]);
    let status = run(&url, &["status"]);
    let migrations = Migrator::migrations();
    for migration in &migrations {
        let line = format!("Migration '{}'... Applied", migration.name());
        assert!(status.contains(&line), "no {line:?} in:\n{status}");
    }
    assert_eq!(status.matches("... Applied").count(), migrations.len());
    let _ = std::fs::remove_dir_all(&dir);
}
