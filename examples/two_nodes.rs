//! Two chat nodes in one process sharing a store, a bus and presence: a
//! user on one node chats with a user on the other.
//!
//! Run it with `cargo run -p examples --example two_nodes`. It prints the
//! conversation and exits. The same wiring with the Redis bus and presence
//! and a MySQL store is what a real cluster runs.

use std::sync::Arc;

use chatcore::bus::LocalBroker;
use chatcore::client::{Client, Event};
use chatcore::node::{self, Backends};
use chatcore::presence::LocalPresence;
use chatcore::server::{self, ServerConfig};
use chatcore::service::{HashParams, Passwords, ServiceConfig};
use chatcore::store::{MemoryStore, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Every task of both nodes runs on `tasks` and ends with `shutdown`.
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = LocalBroker::new();
    let presence = LocalPresence::new();

    let mut addrs = Vec::new();
    for _ in 0..2 {
        let passwords = Passwords::new(HashParams::default(), 2)?;
        let service = node::start(
            Backends::joining(Arc::clone(&store), &broker, &presence),
            passwords,
            ServiceConfig::default(),
            &tasks,
            shutdown.clone(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        addrs.push(listener.local_addr()?);
        tasks.spawn(server::run(
            listener,
            service,
            ServerConfig::default(),
            shutdown.clone(),
        ));
    }

    let alice = Client::connect(addrs[0]).await?;
    let alice_id = alice.register("alice", "alice's password").await?;
    alice.login(alice_id, "alice's password").await?;
    let mut bob = Client::connect(addrs[1]).await?;
    let bob_id = bob.register("bob", "bob's password").await?;
    bob.login(bob_id, "bob's password").await?;
    println!(
        "alice is on node 1 ({}), bob on node 2 ({})",
        addrs[0], addrs[1]
    );

    alice.add_friend(bob_id).await?;
    alice.send_to(bob_id, "hello from node 1").await?;
    if let Some(Event::Message(m)) = bob.next_event().await {
        println!("bob received from {}: {}", m.name, m.msg);
    }
    for friend in bob.friends().await? {
        println!(
            "bob's friend {} ({}) is {}",
            friend.name, friend.id, friend.state
        );
    }

    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}
