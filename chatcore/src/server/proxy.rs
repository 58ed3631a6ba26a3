//! The PROXY protocol (v1 and v2) on the TCP listener: behind a load
//! balancer every client has the balancer's address, so per-address limits,
//! the login guard and the logs would all see one client. A proxy listed
//! in `--proxy-protocol-from` starts each connection with a header that
//! names the client; chatd believes it from those proxies only.
//!
//! - From a listed proxy, the header is required: a connection without
//!   one (or with a malformed one) is closed, since anything after it would
//!   be read as the proxy's own address.
//! - From anyone else, a header is refused (the connection is closed): a
//!   client could name any address in it.
//!
//! The header is read to its exact end (v1: its line; v2: its stated
//! length) so that the client's first frame stays in the socket; its
//! contents are parsed by the `ppp` crate.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use ppp::HeaderResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 header's fixed start.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 header's start.
const V1_START: &[u8; 6] = b"PROXY ";
/// A v1 header's longest line, by the specification.
const V1_MAX: usize = 107;
/// The v2 header's fixed part: signature, version and command, family,
/// length.
const V2_FIXED: usize = 16;

/// Why a connection was turned away.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    #[error("a PROXY header from {0}, which is not a trusted proxy")]
    Untrusted(IpAddr),
    #[error("no valid PROXY header from the trusted proxy {peer}: {why}")]
    Missing { peer: IpAddr, why: String },
    #[error("the PROXY header did not come within {0:?}")]
    Slow(Duration),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The proxies whose PROXY headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(ranges)
    }

    /// Whether none is named (the PROXY protocol is off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `peer` is one of them.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.0.iter().any(|range| range.contains(&peer))
    }
}

/// An IPv4 peer on an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address
/// it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address on a new connection from `peer`: the one a trusted
/// proxy's header names, or `peer` itself. Waits at most `within` for a
/// header or for the first bytes of a client that must not send one.
pub(crate) async fn client_address(
    stream: &mut TcpStream,
    peer: IpAddr,
    trusted: &TrustedProxies,
    within: Duration,
) -> Result<IpAddr, Refused> {
    if trusted.is_empty() {
        return Ok(peer);
    }
    match tokio::time::timeout(within, examine(stream, peer, trusted)).await {
        Ok(result) => result,
        Err(_) => Err(Refused::Slow(within)),
    }
}

async fn examine(
    stream: &mut TcpStream,
    peer: IpAddr,
    trusted: &TrustedProxies,
) -> Result<IpAddr, Refused> {
    if !trusted.contains(peer) {
        return if starts_with_header(stream).await? {
            Err(Refused::Untrusted(peer))
        } else {
            Ok(peer)
        };
    }
    let header = read_header(stream).await?.ok_or_else(|| Refused::Missing {
        peer,
        why: "the connection does not start with one".into(),
    })?;
    source(&header)
        .map_err(|why| Refused::Missing { peer, why })
        .map(|named| named.unwrap_or(peer))
}

/// Whether the first bytes on `stream` (left there) start a PROXY header.
async fn starts_with_header(stream: &mut TcpStream) -> io::Result<bool> {
    let mut first = [0u8; V2_SIGNATURE.len()];
    loop {
        let n = stream.peek(&mut first).await?;
        let seen = &first[..n];
        let could_be = |signature: &[u8]| {
            let common = seen.len().min(signature.len());
            seen[..common] == signature[..common]
        };
        if n == 0 {
            return Ok(false);
        }
        let v1 = could_be(V1_START);
        let v2 = could_be(V2_SIGNATURE);
        if !v1 && !v2 {
            return Ok(false);
        }
        if (v1 && n >= V1_START.len()) || (v2 && n >= V2_SIGNATURE.len()) {
            return Ok(true);
        }
        // The bytes so far are the start of a header or of something
        // else: wait for more (rare; JSON never starts like either).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads a whole header off `stream`; `None` when the connection does not
/// start with one (what was read is then lost: the connection is refused).
async fn read_header(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut header = vec![0u8; V1_START.len()];
    stream.read_exact(&mut header).await?;
    if header == V1_START {
        // v1: a line ending in CRLF, at most 107 bytes.
        while !header.ends_with(b"\r\n") {
            if header.len() >= V1_MAX {
                return Ok(None);
            }
            header.push(stream.read_u8().await?);
        }
        return Ok(Some(header));
    }
    if header[..] != V2_SIGNATURE[..V1_START.len()] {
        return Ok(None);
    }
    header.resize(V2_FIXED, 0);
    stream.read_exact(&mut header[V1_START.len()..]).await?;
    if header[..V2_SIGNATURE.len()] != V2_SIGNATURE[..] {
        return Ok(None);
    }
    let rest = u16::from_be_bytes([header[14], header[15]]) as usize;
    header.resize(V2_FIXED + rest, 0);
    stream.read_exact(&mut header[V2_FIXED..]).await?;
    Ok(Some(header))
}

/// The client's address a header names; `None` when it names none (v1
/// `UNKNOWN`, v2 `LOCAL` such as a proxy's health check).
fn source(header: &[u8]) -> Result<Option<IpAddr>, String> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some(IpAddr::V4(a.source_address)),
            ppp::v1::Addresses::Tcp6(a) => Some(IpAddr::V6(a.source_address)),
            ppp::v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => Some(IpAddr::V4(a.source_address)),
            ppp::v2::Addresses::IPv6(a) => Some(IpAddr::V6(a.source_address)),
            ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
        }),
        HeaderResult::V1(Err(e)) => Err(format!("malformed v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Err(format!("malformed v2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_their_source() {
        let v1 = b"PROXY TCP4 203.0.113.9 10.0.0.1 51000 6000\r\n";
        assert_eq!(source(v1), Ok(Some("203.0.113.9".parse().expect("ip"))));
        let v1_unknown = b"PROXY UNKNOWN\r\n";
        assert_eq!(source(v1_unknown), Ok(None));
        let mut v2 = V2_SIGNATURE.to_vec();
        // Version 2, PROXY; TCP over IPv4; 12 bytes of addresses.
        v2.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x17, 0x70,
        ]);
        assert_eq!(source(&v2), Ok(Some("198.51.100.7".parse().expect("ip"))));
        assert!(source(b"PROXY TCP4 nonsense\r\n").is_err());
    }

    #[test]
    fn ranges_match_mapped_addresses_too() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("cidr")]);
        assert!(trusted.contains("10.1.2.3".parse().expect("ip")));
        assert!(trusted.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!trusted.contains("192.0.2.1".parse().expect("ip")));
        assert!(!TrustedProxies::default().contains("10.1.2.3".parse().expect("ip")));
    }
}
