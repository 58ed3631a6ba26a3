//! `chat-load`: drives a chat server (or a cluster behind nginx) with many
//! clients and reports throughput, latency and delivery errors.
//!
//! Exit status: 0 on a clean run, 1 if an acknowledged message was lost,
//! duplicated or reordered, 2 if the run could not be done.

use std::process::ExitCode;

use anyhow::Context;
use chat_bench::{Options, system};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&options.log))
        .with_writer(std::io::stderr)
        .init();
    match run(options).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(options: Options) -> anyhow::Result<ExitCode> {
    match system::raise_open_files_limit() {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
    let json = options.json.clone();
    let summary = chat_bench::run(options).await?;
    print!("{}", summary.text());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if summary.broke_delivery_contract() {
        eprintln!("chat-load: acknowledged messages were lost, duplicated or reordered");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
