//! A TCP proxy owned by a test, to break a connection on purpose: between
//! a server and its database (cut it, or freeze it like a hung database,
//! then restore it), between a client and a node (freeze it: the
//! half-open connection of a client whose network died without a FIN or
//! RST), or lose chosen lines of a line-based protocol.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
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

/// Which way a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the upstream.
    Up,
    /// From the upstream to the client.
    Down,
}

/// What happens to a line (see [`Proxy::start_filtered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// The line is lost.
    Drop,
    /// The line is lost and every connection open now is closed (later
    /// ones pass).
    DropAndCut,
}

/// Decides the fate of each `\n`-ended line (given without its `\n`).
pub type LineFilter = dyn Fn(Direction, &str) -> Verdict + Send + Sync;

struct Shared {
    upstream: String,
    filter: Option<Box<LineFilter>>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Cancelled when the mode changes (or on a cut), which ends the
    /// forwarding of every connection opened before.
    epoch: CancellationToken,
    /// Frozen sockets, kept open until the mode changes again.
    held: Vec<TcpStream>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `mode` and ends the connections of the previous epoch; returns
    /// the frozen sockets for the caller to close outside the lock.
    fn new_epoch(&self, mode: Mode) -> Vec<TcpStream> {
        let mut state = self.state();
        state.mode = mode;
        state.epoch.cancel();
        state.epoch = CancellationToken::new();
        std::mem::take(&mut state.held)
    }

    fn cut(&self) {
        let mode = self.state().mode;
        drop(self.new_epoch(mode));
    }
}

/// A proxy on a free port of 127.0.0.1 to `upstream`; dropping it closes
/// everything.
pub struct Proxy {
    /// Where to connect instead of the upstream: `127.0.0.1:PORT`.
    pub addr: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Forwards bytes as they come, in [`Mode::Pass`].
    pub async fn start(upstream: &str) -> Proxy {
        Proxy::launch(upstream, None).await
    }

    /// Forwards line by line, each as `filter` decides.
    pub async fn start_filtered(
        upstream: &str,
        filter: impl Fn(Direction, &str) -> Verdict + Send + Sync + 'static,
    ) -> Proxy {
        Proxy::launch(upstream, Some(Box::new(filter))).await
    }

    async fn launch(upstream: &str, filter: Option<Box<LineFilter>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            filter,
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

    /// [`Proxy::addr`] as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr.parse().expect("an IP address and port")
    }

    /// Switches to `mode`. Connections frozen or cut before are closed:
    /// bytes a frozen connection swallowed are gone, so it cannot carry on,
    /// just as a real peer answers a connection it forgot with a reset.
    pub fn set(&self, mode: Mode) {
        drop(self.shared.new_epoch(mode));
    }

    /// Closes every connection open now; later ones are treated as the
    /// mode says.
    pub fn cut(&self) {
        self.shared.cut();
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
    let interrupted = if shared.filter.is_some() {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::select! {
            () = pump(client_read, server_write, Direction::Up, &shared) => false,
            () = pump(server_read, client_write, Direction::Down, &shared) => false,
            () = epoch.cancelled() => true,
        }
    } else {
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
            () = epoch.cancelled() => true,
        }
    };
    if !interrupted {
        return;
    }
    let mut state = shared.state();
    if state.mode == Mode::Freeze {
        state.held.extend([client, server]);
    }
}

/// Copies `\n`-ended lines from `from` to `to` as the filter decides.
async fn pump(
    from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    shared: &Shared,
) {
    let Some(filter) = &shared.filter else {
        return;
    };
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match filter(direction, &line) {
            Verdict::Forward => {}
            Verdict::Drop => continue,
            Verdict::DropAndCut => {
                shared.cut();
                continue;
            }
        }
        if to.write_all(format!("{line}\n").as_bytes()).await.is_err() {
            break;
        }
    }
}
