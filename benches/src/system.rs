//! What the load generator needs of the operating system: sockets from a
//! chosen source address, the open-files limit, and a process's memory
//! and open files.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream, lookup_host};

/// Connects to `addr`, from `source` (port chosen by the kernel) when
/// given: each loopback source address has its own ephemeral ports.
pub async fn connect(addr: &str, source: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let target: SocketAddr = lookup_host(addr)
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no IPv4 address for {addr}"),
            )
        })?;
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        socket.bind(SocketAddr::from((source, 0)))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Raises this process's soft limit of open files to the hard limit and
/// returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

/// Open file descriptors of process `pid` (the entries of /proc/PID/fd):
/// a server's grows by one for each connection it accepts, whichever
/// client opened it.
pub fn open_fds(pid: u32) -> io::Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_its_own_open_files() {
        let me = std::process::id();
        let before = open_fds(me).expect("own /proc fd");
        // Other test threads open and close files meanwhile (reading
        // /proc/PID/status, for one, holds a file for a moment); holding
        // eight keeps the count above `before` whatever they close.
        let _files: Vec<_> = (0..8)
            .map(|_| std::fs::File::open("/proc/self/status").expect("open a file"))
            .collect();
        assert!(open_fds(me).expect("own /proc fd") > before);
    }

    #[test]
    fn reads_its_own_resident_memory() {
        let kib = rss_kib(std::process::id()).expect("own /proc status");
        assert!(kib > 100, "{kib} KiB");
    }
}
