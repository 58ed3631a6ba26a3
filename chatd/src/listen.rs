//! Listening sockets in two steps: bound first, before the database is
//! opened, so that a wrong or busy address fails the start before anything
//! is created; listening once the node is ready, so that no client is
//! accepted (and left waiting) before it can be served.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel queues (tokio's default too).
const BACKLOG: i32 = 1024;

/// The addresses `addr` (`HOST:PORT`) names.
pub(crate) fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the name resolves to no address",
        ));
    }
    Ok(addrs)
}

/// A socket bound to its address, not listening yet.
#[derive(Debug)]
pub(crate) struct Bound {
    socket: Socket,
}

impl Bound {
    /// Binds the first address of `addr` that can be bound; `what` names
    /// it in the error (`--listen`).
    pub(crate) fn new(addr: &str, what: &str) -> anyhow::Result<Bound> {
        let addrs = resolve(addr).with_context(|| format!("invalid {what} {addr:?}"))?;
        let mut last = None;
        for target in addrs {
            match bind(target) {
                Ok(socket) => return Ok(Bound { socket }),
                Err(e) => last = Some(e),
            }
        }
        let e = last.unwrap_or_else(|| io::Error::other("no address"));
        Err(e).with_context(|| format!("cannot bind {what} {addr}"))
    }

    /// Starts listening.
    pub(crate) fn listen(self) -> io::Result<TcpListener> {
        self.socket.listen(BACKLOG)?;
        TcpListener::from_std(self.socket.into())
    }
}

fn bind(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's `TcpListener::bind`: a restarted node can take its port
    // back while old connections linger in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_socket_refuses_until_it_listens() {
        let bound = Bound::new("127.0.0.1:0", "--listen").expect("bind");
        let addr = bound
            .socket
            .local_addr()
            .expect("address")
            .as_socket()
            .expect("an IP address");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        let listener = bound.listen().expect("listen");
        tokio::net::TcpStream::connect(addr)
            .await
            .expect("accepted once listening");
        let busy = Bound::new(&addr.to_string(), "--listen").expect_err("taken");
        assert!(
            format!("{busy:#}").contains("cannot bind --listen"),
            "{busy:#}"
        );
        drop(listener);
    }
}
