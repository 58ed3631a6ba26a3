//! The migration command line: `cargo run -p migration -- up|down|status|fresh`
//! with the database in `-u URL` or `DATABASE_URL` (see `docs/mysql.md`).

use sea_orm_migration::cli;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
