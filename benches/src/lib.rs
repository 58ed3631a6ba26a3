//! The load generator behind `chat-load`: scenarios, clients and the
//! measurements they report. The criterion benchmarks live in `benches/`.
