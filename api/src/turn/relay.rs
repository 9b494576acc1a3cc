//! Relay sockets of TURN allocations: one UDP socket per allocation, bound on the relay IP
//! (within the configured port range, if any), with a task that hands datagrams from Cascade's
//! media addresses to the TURN server task and drops all others.

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Event;

/// Pause after a receive error, so that a lasting one cannot spin.
const ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// Largest datagram a relay socket receives.
const MAX_DATAGRAM: usize = 65_535;

/// Where relay sockets are bound.
#[derive(Debug)]
pub struct RelaySettings {
    /// The IP relay sockets are bound on.
    pub bind_ip: IpAddr,
    /// The IP told to clients as the relayed address (`bind_ip`, unless that is unspecified).
    pub advertised_ip: IpAddr,
    /// The ports relay sockets may take; `None` = ephemeral ones.
    pub ports: Option<RangeInclusive<u16>>,
    /// Where the next search for a free port of `ports` starts.
    pub next_port: AtomicU16,
}

/// One allocation's relay socket; its receive task ends when it is dropped.
#[derive(Debug)]
pub struct Relay {
    /// The relayed address told to the client.
    pub addr: SocketAddr,
    /// The socket.
    pub socket: Arc<UdpSocket>,
    /// The IP of the client that owns it.
    pub client_ip: IpAddr,
    /// The last translated peer it sent to: the public address and the local one used.
    pub public_peer: Option<(SocketAddr, SocketAddr)>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Binds a relay socket for a client at `client_ip` and starts its receive task, which
    /// passes datagrams from `allowed` peers to `events`.
    pub fn open(
        settings: &RelaySettings,
        client_ip: IpAddr,
        allowed: Arc<[SocketAddr]>,
        events: mpsc::Sender<Event>,
    ) -> std::io::Result<Self> {
        let std_socket = bind(settings)?;
        std_socket.set_nonblocking(true)?;
        let port = std_socket.local_addr()?.port();
        let socket = Arc::new(UdpSocket::from_std(std_socket)?);
        let addr = SocketAddr::new(settings.advertised_ip, port);
        let task = tokio::spawn(receive(socket.clone(), addr, allowed, events));
        Ok(Self {
            addr,
            socket,
            client_ip,
            public_peer: None,
            task,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A UDP socket on the relay IP: an ephemeral port, or the first free one of the range from
/// where the last search stopped.
fn bind(settings: &RelaySettings) -> std::io::Result<StdUdpSocket> {
    let Some(ports) = &settings.ports else {
        return StdUdpSocket::bind(SocketAddr::new(settings.bind_ip, 0));
    };
    let (min, max) = (*ports.start(), *ports.end());
    let span = u32::from(max - min) + 1;
    let start = settings.next_port.load(Ordering::Relaxed).clamp(min, max);
    for i in 0..span {
        let port = min + ((u32::from(start - min) + i) % span) as u16;
        if let Ok(socket) = StdUdpSocket::bind(SocketAddr::new(settings.bind_ip, port)) {
            let next = if port == max { min } else { port + 1 };
            settings.next_port.store(next, Ordering::Relaxed);
            return Ok(socket);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("every relay port of {min}-{max} is taken"),
    ))
}

/// Passes datagrams from allowed peers to the TURN server task; drops the rest (and drops
/// datagrams when that task is behind, as UDP may).
async fn receive(
    socket: Arc<UdpSocket>,
    relay: SocketAddr,
    allowed: Arc<[SocketAddr]>,
    events: mpsc::Sender<Event>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            // Per-datagram errors (a late ICMP unreachable): go on, without spinning.
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        if !super::policy::allowed_peer(&allowed, from) {
            continue;
        }
        let event = Event::Relay {
            relay,
            from,
            data: buf[..n].to_vec(),
        };
        if let Err(mpsc::error::TrySendError::Closed(_)) = events.try_send(event) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_ports_come_from_the_range_in_turn() {
        let taken = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let base = taken.local_addr().unwrap().port();
        // A range of three around the taken port, assuming its neighbours are free (they are
        // in a fresh network namespace; elsewhere the test still checks the range).
        let (min, max) = (
            base.saturating_sub(1).max(1024),
            base.saturating_sub(1).max(1024) + 2,
        );
        let settings = RelaySettings {
            bind_ip: "127.0.0.1".parse().unwrap(),
            advertised_ip: "127.0.0.1".parse().unwrap(),
            ports: Some(min..=max),
            next_port: AtomicU16::new(min),
        };
        let mut held = Vec::new();
        while let Ok(socket) = bind(&settings) {
            let port = socket.local_addr().unwrap().port();
            assert!((min..=max).contains(&port), "{port} outside {min}-{max}");
            assert_ne!(port, base, "the taken port is skipped");
            held.push(socket);
            assert!(held.len() <= 3, "more sockets than ports");
        }
        assert!(!held.is_empty() || (min..=max).contains(&base));
    }
}
