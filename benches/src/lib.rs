//! The load generator behind `chat-load`: scenarios, clients and the
//! measurements they report. The criterion benchmarks live in `benches/`.
//!
//! # Layout
//!
//! - [`options`]: the command line, parsed once.
//! - [`scenario`]: `one-to-one`, `group`, `idle`, `login`, `resume`,
//!   `backlog`: set-up, load, and what each fills into the summary. Native
//!   clients are `chatcore::client::Client`s.
//! - [`legacy`]: a connection in the seed's dialect, as its console client
//!   speaks it.
//! - [`payload`]: the numbered text each message carries (sender, sequence
//!   number, due time), from which receivers tell loss, duplicates,
//!   reordering and latency.
//! - [`metrics`]: live counters, latency histograms, per-stream records.
//! - [`report`]: the summary (JSON and text).
//! - [`cpu`]: the measured processes' CPU over the load phase, and an
//!   idle baseline of it.
//! - [`progress`]: the progress bar.
//! - [`system`]: sockets from chosen source addresses, the open-files
//!   limit, server memory and CPU time from /proc.

pub mod cpu;
pub mod legacy;
pub mod metrics;
pub mod options;
pub mod payload;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod system;
pub mod ws;

pub use options::Options;
pub use report::Summary;
pub use scenario::{RunError, run};
