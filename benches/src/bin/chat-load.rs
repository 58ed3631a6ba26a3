//! `chat-load`: drives a chat server (or a cluster behind nginx) with many
//! clients and reports throughput, latency and delivery errors.

fn main() {
    eprintln!("chat-load: not written yet");
    std::process::exit(2);
}
