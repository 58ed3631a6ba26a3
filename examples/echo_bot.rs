//! An embedded chat server with a bot that answers every message.
//!
//! Run it with `cargo run -p examples --example echo_bot`, then connect a
//! client to 127.0.0.1:6100 (the seed's client, or `chatcli` once it
//! exists), register, and chat to the bot: its id is printed at start.
//! Stop it with Ctrl-C.
//!
//! It shows the pieces an embedder wires together: a store (here in
//! memory), a node on the in-process bus, the accept loop, and a client of
//! its own talking to it.

use std::sync::Arc;

use chatcore::client::{Client, Event};
use chatcore::model::Target;
use chatcore::node::{self, Backends};
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::MemoryStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    // Every task of the server runs on `tasks` and ends with `shutdown`.
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let passwords = Passwords::new(HashParams::default(), 2)?;
    let service = node::start(
        Backends::local(Arc::new(MemoryStore::new())),
        passwords,
        ServiceConfig::default(),
        &tasks,
        shutdown.clone(),
    );
    let listener = TcpListener::bind("127.0.0.1:6100").await?;
    let addr = listener.local_addr()?;
    tasks.spawn(server::run(
        listener,
        service,
        ServerConfig::default(),
        shutdown.clone(),
    ));

    let mut bot = Client::connect(addr).await?;
    let bot_id = bot.register("echo-bot", "bot password").await?;
    bot.login(bot_id, "bot password").await?;
    println!("chat server on {addr}; the echo bot is user {bot_id}");

    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = bot.next_event() => match event {
                Some(Event::Message(m)) => {
                    let reply = format!("{} said: {}", m.name, m.msg);
                    // Answer where the message came from: the group, or the sender.
                    let target = match m.target() {
                        Some(Target::Group(g)) => Target::Group(g),
                        _ => Target::User(m.from),
                    };
                    if let Err(e) = bot.send(target, &reply, None).await {
                        tracing::warn!(error = %e, "could not answer");
                    }
                    if let Some(seq) = m.seq {
                        bot.ack(seq).await?;
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}
