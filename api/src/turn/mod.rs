//! The embedded TURN server (RFC 8656) of the `cascade` binary: TURN over UDP, TCP and TLS,
//! relaying only to Cascade's own media addresses, for clients whose networks block UDP to the
//! media port.
//!
//! The protocol (allocations, permissions, channels, long-term credentials, nonces) is the
//! sans-I/O `turn-server-proto` crate; this module does the I/O and the policy:
//!
//! - [`policy`]: credentials are the time-limited TURN REST API ones of
//!   [`crate::turn_credentials`]; every username is checked for form and expiry before the
//!   server sees the request (401 otherwise), and a new one is taught to the server once a
//!   request signed with its genuine credential comes; a forged credential is never taught, so
//!   the server's MESSAGE-INTEGRITY check refuses it (401).
//! - Never an open relay: CreatePermission for any IP but Cascade's media IPs, and ChannelBind
//!   or Send to any address but Cascade's media addresses, are refused with 403 (Send, an
//!   indication, is dropped); relay sockets drop datagrams to and from any other address.
//! - [`core`]: one task per listener owns its TURN server; [`udp`] and [`stream`] feed it,
//!   [`relay`] sockets (one per allocation, with a receive task) carry the relayed traffic.
//!
//! Bounds: allocations (`turn_max_allocations`, and a quarter of it per client IP and listener: 508
//! Insufficient Capacity past them), stream connections (as many as allocations, per
//! listener), users the server learns (the crate cannot forget users or nonces, so a listener
//! whose user table is full starts a fresh server once no allocation is live; till then new
//! usernames get 486), frame sizes and idle connections ([`stream`]).

pub mod core;
pub mod policy;
pub mod relay;
pub mod stream;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use anyhow::{Context, bail};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use self::core::{CORE_QUEUE, Core, Shared};
use self::relay::RelaySettings;
use crate::metrics::TurnCounters;

/// What a TURN server task is told.
#[derive(Debug)]
pub enum Event {
    /// A datagram, or a whole frame of a stream, from a client.
    Client {
        /// The client's address.
        from: SocketAddr,
        /// The datagram or frame.
        data: Vec<u8>,
    },
    /// A stream client connected; its outgoing frames go to `tx`.
    Connected {
        /// The client's address.
        from: SocketAddr,
        /// The connection's outbox.
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// A stream client disconnected.
    Closed {
        /// The client's address.
        from: SocketAddr,
    },
    /// A datagram from an allowed peer to a relay socket.
    Relay {
        /// The relayed address (as told to the client).
        relay: SocketAddr,
        /// The peer.
        from: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
}

/// What the embedded TURN server needs to start.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// The IP the listeners bind.
    pub listen_ip: IpAddr,
    /// The UDP listener's port (0 = ephemeral).
    pub udp_port: u16,
    /// The TCP listener's port (0 = ephemeral).
    pub tcp_port: u16,
    /// The TLS listener's port; `None` = no TLS listener.
    pub tls_port: Option<u16>,
    /// The IP relay sockets bind; `None` = `listen_ip`.
    pub relay_ip: Option<IpAddr>,
    /// The ports relay sockets may take; `None` = ephemeral ones.
    pub relay_ports: Option<RangeInclusive<u16>>,
    /// The relayed IP told to clients when relay sockets bind an unspecified IP.
    pub advertised_ip: IpAddr,
    /// Most live allocations (all listeners together).
    pub max_allocations: usize,
    /// The realm of the long-term credentials.
    pub realm: String,
    /// The TURN REST API secret the credentials are checked against.
    pub secret: Vec<u8>,
    /// The only peers allocations may relay to and from: Cascade's media addresses.
    pub allowed_peers: Vec<SocketAddr>,
    /// Allowed peers that are not this host's own (a 1:1 NAT's public address), each with the
    /// local address of the media socket that relays send to instead, so that no NAT has to
    /// hairpin. The local addresses are allowed peers too.
    pub translations: Vec<(SocketAddr, SocketAddr)>,
    /// Where allocations and refusals are counted.
    pub metrics: TurnCounters,
}

/// A running embedded TURN server.
#[derive(Debug)]
pub struct TurnHandle {
    /// The UDP listener's address.
    pub udp_addr: SocketAddr,
    /// The TCP listener's address.
    pub tcp_addr: SocketAddr,
    /// The TLS listener's address, if there is one.
    pub tls_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl TurnHandle {
    /// Live allocations, all listeners together.
    pub fn allocations(&self) -> usize {
        self.shared.allocations.load(Ordering::Relaxed)
    }

    /// The peers allocations may relay to.
    pub fn allowed_peers(&self) -> &[SocketAddr] {
        &self.shared.allowed
    }

    /// Stops the listeners and closes every allocation.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for TurnHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds the listeners (TLS only with `tls_port` set, which then needs `tls`) and starts
/// serving.
pub async fn start(config: TurnConfig, tls: Option<TlsAcceptor>) -> anyhow::Result<TurnHandle> {
    let tls = match (config.tls_port, tls) {
        (Some(port), Some(acceptor)) => Some((port, acceptor)),
        (Some(_), None) => bail!("turn_tls_port is set, but no TLS certificate is configured"),
        (None, _) => None,
    };
    let bind_ip = config.relay_ip.unwrap_or(config.listen_ip);
    let advertised_ip = if bind_ip.is_unspecified() {
        config.advertised_ip
    } else {
        bind_ip
    };
    let shared = Arc::new(Shared {
        realm: config.realm.clone(),
        secret: config.secret.clone(),
        allowed: config
            .allowed_peers
            .iter()
            .chain(config.translations.iter().map(|(_, local)| local))
            .copied()
            .collect::<Vec<_>>()
            .into(),
        translations: config.translations.clone(),
        relay: RelaySettings {
            bind_ip,
            advertised_ip,
            next_port: AtomicU16::new(config.relay_ports.as_ref().map_or(0, |r| *r.start())),
            ports: config.relay_ports.clone(),
        },
        allocations: AtomicUsize::new(0),
        max_allocations: config.max_allocations,
        metrics: config.metrics.clone(),
    });
    let (stop, shutdown) = watch::channel(false);

    let udp_addr = SocketAddr::new(config.listen_ip, config.udp_port);
    let udp = UdpSocket::bind(udp_addr)
        .await
        .with_context(|| format!("binding the TURN UDP port {udp_addr} (turn_udp_port)"))?;
    let udp_addr = udp.local_addr()?;
    let tcp_addr = SocketAddr::new(config.listen_ip, config.tcp_port);
    let tcp = TcpListener::bind(tcp_addr)
        .await
        .with_context(|| format!("binding the TURN TCP port {tcp_addr} (turn_tcp_port)"))?;
    let tcp_addr = tcp.local_addr()?;
    let tls = match tls {
        Some((port, acceptor)) => {
            let addr = SocketAddr::new(config.listen_ip, port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the TURN TLS port {addr} (turn_tls_port)"))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;

    let udp = Arc::new(udp);
    let events = spawn_core(udp_addr, Some(udp.clone()), &shared, &shutdown);
    tokio::spawn(udp::receive(udp, events, shutdown.clone()));
    let events = spawn_core(tcp_addr, None, &shared, &shutdown);
    let max = config.max_allocations;
    tokio::spawn(stream::accept_loop(
        tcp,
        None,
        events,
        max,
        shutdown.clone(),
    ));
    if let (Some((listener, acceptor)), Some(addr)) = (tls, tls_addr) {
        let events = spawn_core(addr, None, &shared, &shutdown);
        let accept = stream::accept_loop(listener, Some(acceptor), events, max, shutdown.clone());
        tokio::spawn(accept);
    }
    info!(
        udp = %udp_addr,
        tcp = %tcp_addr,
        tls = ?tls_addr,
        relay_ip = %advertised_ip,
        allowed_peers = ?config.allowed_peers,
        translations = ?config.translations,
        "embedded TURN server listening"
    );
    Ok(TurnHandle {
        udp_addr,
        tcp_addr,
        tls_addr,
        shared,
        stop,
    })
}

/// Starts the TURN server task of the listener at `listen`; returns its queue.
fn spawn_core(
    listen: SocketAddr,
    udp: Option<Arc<UdpSocket>>,
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
) -> mpsc::Sender<Event> {
    let (tx, rx) = mpsc::channel(CORE_QUEUE);
    let core = Core::new(listen, udp, shared.clone(), tx.clone());
    let task = tokio::spawn(core.run(rx, shutdown.clone()));
    // A panic in the protocol crate would end this listener: say so loudly.
    tokio::spawn(async move {
        if let Err(e) = task.await
            && e.is_panic()
        {
            error!(%listen, "the TURN server task of this listener panicked; it no longer serves");
        }
    });
    tx
}
