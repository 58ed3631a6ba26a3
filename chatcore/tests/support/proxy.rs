//! A TCP proxy owned by a test, to break a connection on purpose: between
//! a server and its database (cut it, or freeze it like a hung database,
//! then restore it) or between a client and a node (freeze it: the
//! half-open connection of a client whose network died without a FIN or
//! RST). Shared by chatcore's and chatd's tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the proxy does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Closes every connection and refuses new ones (accepted, then closed
    /// at once, like a peer that is gone).
    Cut,
    /// Keeps every connection open but moves no byte either way; new
    /// connections are held the same. Neither side hears anything: no FIN,
    /// no RST.
    Freeze,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Cancelled when the mode changes, which ends the forwarding of every
    /// connection of the previous mode.
    epoch: CancellationToken,
    /// Frozen sockets, kept open until the mode changes again.
    held: Vec<TcpStream>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A proxy on a free port of 127.0.0.1 to `upstream`; dropping it closes
/// everything.
#[derive(Debug)]
pub struct Proxy {
    /// Where to connect instead of the upstream: `127.0.0.1:PORT`.
    pub addr: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            state: Mutex::new(State {
                mode: Mode::Pass,
                epoch: CancellationToken::new(),
                held: Vec::new(),
            }),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop.clone()));
        Proxy { addr, shared, stop }
    }

    /// Switches to `mode`. Connections frozen or cut before are closed:
    /// bytes a frozen connection swallowed are gone, so it cannot carry on,
    /// just as a real peer answers a connection it forgot with a reset.
    pub fn set(&self, mode: Mode) {
        let held = {
            let mut state = self.shared.state();
            state.mode = mode;
            state.epoch.cancel();
            state.epoch = CancellationToken::new();
            std::mem::take(&mut state.held)
        };
        drop(held);
    }

    pub fn mode(&self) -> Mode {
        self.shared.state().mode
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.set(Mode::Cut);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let client = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        let (mode, epoch) = {
            let state = shared.state();
            (state.mode, state.epoch.clone())
        };
        match mode {
            Mode::Pass => {
                tokio::spawn(forward(client, Arc::clone(&shared), epoch));
            }
            Mode::Cut => drop(client),
            Mode::Freeze => shared.state().held.push(client),
        }
    }
}

async fn forward(mut client: TcpStream, shared: Arc<Shared>, epoch: CancellationToken) {
    let Ok(mut server) = TcpStream::connect(&shared.upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let interrupted = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
        () = epoch.cancelled() => true,
    };
    if !interrupted {
        return;
    }
    let mut state = shared.state();
    if state.mode == Mode::Freeze {
        state.held.extend([client, server]);
    }
}
