//! What the load generator needs of the operating system: sockets from a
//! chosen source address, the open-files limit, and a process's memory,
//! open files and CPU time.

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

/// CPU time process `pid` has used so far, user and system, in clock
/// ticks (fields 14 and 15 of /proc/PID/stat): all its threads, the ones
/// that have ended included, but not its children.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no utime and stime in /proc/{pid}/stat"),
        )
    })
}

/// utime + stime of a /proc/PID/stat line. The command name (field 2) is
/// in parentheses and may itself hold spaces and parentheses, so the
/// fields are counted from the last `)`: the state (field 3) comes first.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, the unit of [`cpu_ticks`] (`USER_HZ`: 100 on
/// Linux, but asked for rather than assumed).
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_counted_after_the_command_name() {
        // A command name with a space and a `)` of its own, then fields 3
        // to 17; utime (14) is 1200 and stime (15) 34.
        let line = "4242 (chat d) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1200 34 0 0 20\n";
        assert_eq!(parse_cpu_ticks(line), Some(1234));
        assert_eq!(parse_cpu_ticks("4242 (chatd) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn reads_its_own_cpu_time() {
        let me = std::process::id();
        let before = cpu_ticks(me).expect("own /proc stat");
        // Spin until the kernel has charged this process a few ticks.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_ticks(me).expect("own /proc stat") < before + 3 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            assert!(started.elapsed().as_secs() < 30, "no CPU time charged");
        }
        assert!(clock_ticks_per_second() > 0);
    }

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
