//! The network edge: the shared media port over UDP (IPv4 and IPv6) and ICE-TCP, and the
//! demultiplexer that finds each datagram's peer.
//!
//! - [`Path`]: which way a datagram came and its answer goes (the client's address, the
//!   server's address it reached, UDP or TCP); the engine's only notion of an address.
//! - [`demux`]: datagram → peer, by bound path or by a verified ICE check.
//! - `udp`: batched receive (`recvmmsg`, with the local address of each datagram) and send
//!   (`sendmmsg`, UDP GSO, the source address chosen per path).
//! - [`tcp`]: passive ICE-TCP (RFC 6544) on the media port, RFC 4571 framing, a bounded write
//!   queue per connection that drops rather than blocks.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

pub mod demux;
pub mod tcp;
pub(crate) mod udp;

/// The transport a [`Path`] runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// A datagram of the shared UDP socket.
    Udp,
    /// A frame of a passive ICE-TCP connection.
    Tcp,
}

/// A network path between the server and a client: a candidate pair, as ICE sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path {
    /// UDP or TCP.
    pub proto: Proto,
    /// The client's address (IPv4-mapped IPv6 addresses are kept as IPv4).
    pub remote: SocketAddr,
    /// The server's address the client reached, the source of what is sent back; unspecified
    /// when the socket is bound to one address (the kernel then chooses).
    pub local: IpAddr,
}

impl Path {
    /// A UDP path from `remote`, the local address left to the kernel.
    pub fn udp(remote: SocketAddr) -> Self {
        Self::new(Proto::Udp, remote, None)
    }

    /// A path over `proto` from `remote` to `local` (if known), addresses canonical.
    pub fn new(proto: Proto, remote: SocketAddr, local: Option<IpAddr>) -> Self {
        let remote = canonical(remote);
        let local = local.map(|ip| ip.to_canonical()).unwrap_or(match remote {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
        Self {
            proto,
            remote,
            local,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        };
        if self.local.is_unspecified() {
            write!(f, "{proto} {}", self.remote)
        } else {
            write!(f, "{proto} {} via {}", self.remote, self.local)
        }
    }
}

/// A socket of `ty` for binding `addr`, of its family; for the unspecified IPv6 address,
/// dual-stack (IPv4 too).
fn socket_for(addr: SocketAddr, ty: Type) -> io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, ty, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    Ok(socket)
}

/// `addr` with an IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
/// client) turned back into IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4_and_the_local_family_follows_the_remote() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        let p = Path::new(Proto::Udp, mapped, Some("::ffff:10.0.0.2".parse().unwrap()));
        assert_eq!(p.remote, "10.0.0.1:5000".parse::<SocketAddr>().unwrap());
        assert_eq!(p.local, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(p.to_string(), "udp 10.0.0.1:5000 via 10.0.0.2");
        let v6 = Path::udp("[2001:db8::1]:7".parse().unwrap());
        assert_eq!(v6.local, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(v6.to_string(), "udp [2001:db8::1]:7");
    }
}
