//! The media server: one UDP socket (IPv4 and IPv6), one receive thread, one worker per core,
//! and the ICE-TCP thread on the same port number.
//!
//! The receive thread reads every datagram of the shared port, finds its peer with the
//! [`Demuxer`] (bound path, or a binding request verified with the peer's ICE password on
//! first contact) and hands it to the data queue of the worker that owns the peer, dropping
//! it (counted) if that queue is full; the ICE-TCP thread does the same with each frame.
//! Peers are spread round-robin over the workers at creation.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::error::MediaError;
use crate::negotiation::answer::LocalTransport;
use crate::net::demux::Demuxer;
use crate::net::tcp::{Deliver, TcpLimits, TcpPort};
use crate::net::udp::{RecvBatch, UdpPort};
use crate::net::{Path, Proto};
use crate::seam::{Mailbox, PeerAddress, PeerEvent, PeerFactory, PeerHandle, PeerId};
use crate::stats::{MediaStats, StatsSnapshot};
use crate::stun_discovery::{self, Assessment, Reply};
use crate::transport::dtls::DtlsIdentity;
use crate::worker::shard::{EnginePeerInit, Shard};
use crate::worker::{self, COMMAND_SEND_TIMEOUT, Shared, WorkerMailbox, WorkerMsg};

/// Media-plane settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address to bind the UDP socket (and the ICE-TCP listener) to; port 0 picks a free
    /// port. `[::]` takes IPv4 and IPv6 (or IPv4 alone where the host has no IPv6).
    pub bind: SocketAddr,
    /// Addresses advertised in ICE candidates; empty = the host's interface addresses.
    pub public_ips: Vec<IpAddr>,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// A peer that sends nothing (not even ICE consent checks) for this long is disconnected...
    pub ice_disconnected_timeout: Duration,
    /// ...and, after this much longer, failed: it is then removed from its room.
    pub ice_failed_timeout: Duration,
    /// STUN server asked at start-up for the media socket's public address, which is then
    /// advertised too; `None` = no discovery.
    pub stun_server: Option<SocketAddr>,
    /// Passive ICE-TCP candidates on the media port number (for clients whose UDP is
    /// blocked), with these bounds; `None` = UDP only.
    pub ice_tcp: Option<TcpLimits>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 7882)),
            public_ips: Vec::new(),
            workers: 0,
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(10),
            stun_server: None,
            ice_tcp: Some(TcpLimits::default()),
        }
    }
}

/// The running media plane.
pub struct MediaServer {
    shared: Arc<Shared>,
    socket: Arc<UdpPort>,
    tcp: Mutex<Option<TcpPort>>,
    /// Each worker's control queue...
    workers: Vec<Sender<WorkerMsg>>,
    /// ...as its peers' mailbox.
    mailboxes: Vec<Arc<dyn Mailbox>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    candidate_ips: Vec<IpAddr>,
    /// Every advertised UDP candidate address: `candidate_ips` on the media port, then the
    /// STUN-discovered address if it is another one.
    candidates: Vec<SocketAddr>,
    /// The `a=candidate` values of every peer: UDP ones, then ICE-TCP ones.
    candidate_lines: Vec<String>,
    stun_report: Option<stun_discovery::Report>,
    /// The engine's session ids start here (one per server; each peer's answer and offers
    /// carry their own versions).
    session_id: u64,
    port: u16,
    /// The address the media socket is bound to.
    bound: SocketAddr,
    next_peer: AtomicU64,
    stop: Arc<AtomicBool>,
}

impl MediaServer {
    /// Binds the UDP port, asks the STUN server (if any) for its public address, and starts the
    /// receive thread and the workers. A failed discovery is logged and the server starts
    /// without the mapped address.
    pub fn start(config: MediaConfig) -> io::Result<Arc<Self>> {
        let n = if config.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            config.workers
        };
        let shared = Arc::new(Shared {
            stats: Arc::new(MediaStats::default()),
            demux: Mutex::new(Demuxer::default()),
            peers: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (data_queues, data): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| crossbeam_channel::bounded(worker::DATA_QUEUE))
            .unzip();
        let deliver = TcpDeliver {
            shared: shared.clone(),
            workers: data_queues.clone(),
        };
        let (socket, tcp) = bind_ports(&config, &deliver, &shared.stats, &stop)?;
        let socket = Arc::new(socket);
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let bound = socket.local_addr()?;
        let port = bound.port();
        let candidate_ips = if !config.public_ips.is_empty() {
            config.public_ips.clone()
        } else if !bound.ip().is_unspecified() {
            vec![bound.ip()]
        } else {
            host_addresses(socket.takes_ipv4(), socket.takes_ipv6())
        };
        let mut candidates: Vec<SocketAddr> = candidate_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        let mut stun_report = None;
        if let Some(server) = config.stun_server {
            match discover(&socket, server) {
                Ok(mapped) => {
                    let report = stun_discovery::Report {
                        mapped,
                        assessment: stun_discovery::assess(mapped, port, &candidates),
                        reaches_socket: probe(&socket, mapped),
                    };
                    log_stun(server, port, &report);
                    if report.assessment != Assessment::AlreadyAdvertised {
                        candidates.push(mapped);
                    }
                    stun_report = Some(report);
                }
                Err(reason) => {
                    warn!(%server, %reason, "STUN discovery failed, starting without it");
                }
            }
        }
        let mut candidate_lines = candidate_lines(&candidates, Proto::Udp);
        if tcp.is_some() {
            // The STUN-mapped address is a UDP mapping: TCP gets the advertised addresses.
            let tcp_candidates: Vec<SocketAddr> = candidate_ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
            candidate_lines.extend(candidate_lines_after(
                &tcp_candidates,
                Proto::Tcp,
                candidate_lines.len(),
            ));
        }
        let outlet = tcp.as_ref().map(TcpPort::outlet).unwrap_or_default();
        let mut threads = Vec::new();
        let (workers, control): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| crossbeam_channel::bounded(worker::CONTROL_QUEUE))
            .unzip();
        let identity = DtlsIdentity::generate().map_err(io::Error::other)?;
        let ice_timeout = config.ice_disconnected_timeout + config.ice_failed_timeout;
        for (i, (control, data)) in control.into_iter().zip(data).enumerate() {
            let (shared, all) = (shared.clone(), data_queues.clone());
            let out = worker::Outputs {
                udp: socket.clone(),
                tcp: outlet.clone(),
                workers: all,
            };
            let shard = Shard::new(i, identity.clone(), shared.stats.clone(), ice_timeout);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("cascade-worker-{i}"))
                    .spawn(move || worker::run(control, data, out, shared, shard))?,
            );
        }
        {
            let (socket, shared, stop, workers) =
                (socket.clone(), shared.clone(), stop.clone(), data_queues);
            threads.push(
                std::thread::Builder::new()
                    .name("cascade-udp-recv".into())
                    .spawn(move || receive_loop(&socket, &shared, &stop, &workers))?,
            );
        }
        info!(
            port,
            workers = n,
            ?candidates,
            ice_tcp = tcp.is_some(),
            "media plane started"
        );
        let mailboxes = workers
            .iter()
            .map(|w| Arc::new(WorkerMailbox(w.clone())) as Arc<dyn Mailbox>)
            .collect();
        Ok(Arc::new(Self {
            shared,
            socket,
            mailboxes,
            tcp: Mutex::new(tcp),
            candidate_lines,
            workers,
            threads: Mutex::new(threads),
            candidate_ips,
            candidates,
            stun_report,
            session_id: rand::random::<u64>() >> 2,
            port,
            bound,
            next_peer: AtomicU64::new(1),
            stop,
        }))
    }

    /// The UDP port media flows on (and the ICE-TCP port, if on).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the media socket is bound to (`[::]` when dual-stack).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    /// Whether passive ICE-TCP candidates are offered.
    pub fn ice_tcp(&self) -> bool {
        self.tcp.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// What `--stun-server` discovery found and its self-check said; `None` without a STUN
    /// server or when discovery failed.
    pub fn stun_report(&self) -> Option<stun_discovery::Report> {
        self.stun_report
    }

    /// Every advertised candidate address, the STUN-discovered one included.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// The addresses advertised in ICE candidates.
    pub fn candidate_ips(&self) -> &[IpAddr] {
        &self.candidate_ips
    }

    /// A copy of the media counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Live peer connections.
    pub fn peer_count(&self) -> usize {
        self.shared.peers.load(Relaxed)
    }

    /// Closes every peer, stops the threads and waits for them.
    pub fn shutdown(&self) {
        self.stop.store(true, Relaxed);
        for w in &self.workers {
            let _ = w.send_timeout(WorkerMsg::Shutdown, COMMAND_SEND_TIMEOUT);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        if let Some(tcp) = self.tcp.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tcp.join();
        }
        debug!(port = self.port, socket = ?self.socket.local_addr().ok(), "media plane stopped");
    }
}

impl PeerFactory for MediaServer {
    /// Creates the server side of a participant's peer connection (ICE-lite, host candidates
    /// on the shared port). Its events go to `events`.
    fn create_peer(
        &self,
        participant: &str,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<PeerHandle, MediaError> {
        let id = self.next_peer.fetch_add(1, Relaxed);
        let worker = (id as usize) % self.workers.len();
        let (ufrag, pwd) = (random_token(16), random_token(32));
        let me = PeerAddress::new(id, worker, self.mailboxes[worker].clone());
        let candidates = self.candidate_lines.clone();
        let init = EnginePeerInit {
            id,
            participant: participant.to_owned(),
            me: me.clone(),
            local: LocalTransport {
                ice_ufrag: ufrag.clone(),
                ice_pwd: pwd.clone(),
                fingerprint: String::new(),
                candidates,
                session_id: self.session_id + id,
                session_version: 1,
            },
            events,
        };
        self.shared
            .demuxer()
            .add_peer(ufrag.clone(), pwd, (id, worker));
        self.shared.peers.fetch_add(1, Relaxed);
        let sent = self.workers[worker]
            .send_timeout(WorkerMsg::AddPeer(Box::new(init)), COMMAND_SEND_TIMEOUT);
        if sent.is_err() {
            self.shared.remove_ufrag(&ufrag);
            return Err(MediaError::Closed);
        }
        Ok(PeerHandle { peer: me })
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn receive_loop(
    socket: &UdpPort,
    shared: &Shared,
    stop: &AtomicBool,
    workers: &[Sender<WorkerMsg>],
) {
    let mut batch = RecvBatch::default();
    while !stop.load(Relaxed) {
        match batch.recv(socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors (e.g. connection refused) surface here on Linux; keep serving.
                debug!("udp receive error: {e}");
                continue;
            }
        }
        let at = Instant::now();
        // One lock per batch: peers are added and removed between batches.
        let mut demux = shared.demuxer();
        for (from, data) in batch.datagrams() {
            route(&mut demux, &shared.stats, workers, from, data, at);
        }
    }
}

/// Hands one datagram (or ICE-TCP frame) to the worker of its peer, or drops it (counted);
/// whether it had a peer.
fn route(
    demux: &mut Demuxer<(PeerId, usize)>,
    stats: &MediaStats,
    workers: &[Sender<WorkerMsg>],
    from: Path,
    data: &[u8],
    at: Instant,
) -> bool {
    match demux.route(from, data) {
        Some((peer, worker)) => {
            let sent = workers[worker].try_send(WorkerMsg::Datagram {
                peer,
                from,
                data: BytesMut::from(data),
                at,
            });
            if let Err(TrySendError::Full(_)) = sent {
                MediaStats::add(&stats.datagrams_queue_full, 1);
            }
            true
        }
        None => {
            MediaStats::add(&stats.datagrams_unknown_source, 1);
            debug!(%from, len = data.len(), "datagram from unknown source dropped");
            false
        }
    }
}

/// The ICE-TCP thread's way to the workers: the demultiplexer, as for UDP.
#[derive(Clone)]
struct TcpDeliver {
    shared: Arc<Shared>,
    workers: Vec<Sender<WorkerMsg>>,
}

impl Deliver for TcpDeliver {
    fn deliver(&mut self, path: Path, data: Vec<u8>, at: Instant) -> bool {
        let mut demux = self.shared.demuxer();
        route(
            &mut demux,
            &self.shared.stats,
            &self.workers,
            path,
            &data,
            at,
        )
    }

    fn closed(&mut self, path: Path) {
        self.shared.demuxer().unbind(path);
    }
}

/// Attempts at finding a port number free for both UDP and TCP, when the configured port is
/// 0 (any).
const PORT_ATTEMPTS: usize = 16;

/// Binds the media socket and, with ICE-TCP on, the TCP listener on the same port number.
/// Port 0 picks a number free for both.
fn bind_ports(
    config: &MediaConfig,
    deliver: &TcpDeliver,
    stats: &Arc<MediaStats>,
    stop: &Arc<AtomicBool>,
) -> io::Result<(UdpPort, Option<TcpPort>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = bind_udp(config.bind)?;
        let Some(limits) = config.ice_tcp else {
            return Ok((udp, None));
        };
        // The same address and family as UDP's (IPv4 if UDP fell back to it).
        let at = udp.local_addr()?;
        match TcpPort::start(at, limits, deliver.clone(), stats.clone(), stop.clone()) {
            Ok(tcp) => return Ok((udp, Some(tcp))),
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && config.bind.port() == 0
                    && attempt < PORT_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("ICE-TCP on {at}: {e}")));
            }
        }
    }
}

/// Binds the UDP socket at `bind`; an unspecified IPv6 address falls back to IPv4 where the
/// host has no IPv6.
fn bind_udp(bind: SocketAddr) -> io::Result<UdpPort> {
    match UdpPort::bind(bind) {
        Err(e) if bind.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) => {
            warn!("no IPv6 ({e}): the media port takes IPv4 only");
            UdpPort::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), bind.port()))
        }
        other => other,
    }
}

/// The `a=candidate` values (without the attribute name) of host candidates at `addrs` over
/// `proto`, foundations and priorities counting from the first.
fn candidate_lines(addrs: &[SocketAddr], proto: Proto) -> Vec<String> {
    candidate_lines_after(addrs, proto, 0)
}

/// [`candidate_lines`] after `before` others: foundations go on from them. UDP candidates
/// come first in priority (RFC 8445 type preference 126 for host), then passive ICE-TCP ones
/// (RFC 6544: lower, so that UDP wins wherever it works).
fn candidate_lines_after(addrs: &[SocketAddr], proto: Proto, before: usize) -> Vec<String> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let foundation = before + i + 1;
            // (type preference << 24) + (local preference << 8) + (256 - component 1).
            match proto {
                Proto::Udp => {
                    let priority = (126u32 << 24) + ((65_535 - i as u32) << 8) + 255;
                    format!(
                        "{foundation} 1 udp {priority} {} {} typ host",
                        addr.ip(),
                        addr.port()
                    )
                }
                Proto::Tcp => {
                    let priority = (90u32 << 24) + ((65_535 - i as u32) << 8) + 255;
                    format!(
                        "{foundation} 1 tcp {priority} {} {} typ host tcptype passive",
                        addr.ip(),
                        addr.port()
                    )
                }
            }
        })
        .collect()
}

/// Binding requests sent to the STUN server at start-up, at most...
const STUN_ATTEMPTS: u32 = 3;
/// ...each waited for this long.
const STUN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// Asks the STUN `server` for `socket`'s public address: up to [`STUN_ATTEMPTS`] binding
/// requests, each answered within [`STUN_ATTEMPT_TIMEOUT`] or retried. Datagrams from other
/// addresses or for other transactions are ignored. Runs before the receive thread starts, so
/// nothing else reads the socket (whose read timeout bounds each wait).
fn discover(socket: &UdpPort, server: SocketAddr) -> Result<SocketAddr, String> {
    let mut buf = [0u8; 1500];
    for _ in 0..STUN_ATTEMPTS {
        let (id, request) = stun_discovery::binding_request();
        socket
            .send_to(&request, server)
            .map_err(|e| format!("sending the binding request: {e}"))?;
        let deadline = Instant::now() + STUN_ATTEMPT_TIMEOUT;
        while Instant::now() < deadline {
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(format!("receiving the binding response: {e}")),
            };
            if from != server {
                continue;
            }
            match stun_discovery::parse_response(&buf[..n], &id) {
                Some(Reply::Mapped(mapped)) => return Ok(mapped),
                Some(Reply::Refused(why)) => return Err(why),
                None => {}
            }
        }
    }
    Err(format!(
        "no response after {STUN_ATTEMPTS} attempts of {STUN_ATTEMPT_TIMEOUT:?}"
    ))
}

/// The self-check: sends a binding request from `socket` to its `mapped` address and waits up
/// to [`STUN_ATTEMPT_TIMEOUT`] for it to arrive back on `socket` (it does when there is no NAT,
/// or the NAT forwards the port and hairpins).
fn probe(socket: &UdpPort, mapped: SocketAddr) -> bool {
    let (id, request) = stun_discovery::binding_request();
    if socket.send_to(&request, mapped).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + STUN_ATTEMPT_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok((n, _)) = socket.recv_from(&mut buf)
            && stun_discovery::is_probe(&buf[..n], &id)
        {
            return true;
        }
    }
    false
}

/// The log lines of a discovery: the mapped address, what it says, and the self-check.
fn log_stun(server: SocketAddr, port: u16, report: &stun_discovery::Report) {
    let stun_discovery::Report {
        mapped,
        assessment,
        reaches_socket,
    } = *report;
    let meaning = assessment.describe();
    match assessment {
        Assessment::AlreadyAdvertised | Assessment::Public => {
            info!(%server, %mapped, local_port = port, meaning, "STUN: mapped address")
        }
        Assessment::NotPublic | Assessment::PortChanged => {
            warn!(%server, %mapped, local_port = port, meaning, "STUN: mapped address")
        }
    }
    if reaches_socket {
        info!(%mapped, "STUN self-check: a datagram sent to the mapped address reached the media socket");
    } else {
        info!(
            %mapped,
            "STUN self-check: a datagram sent to the mapped address did not come back (the NAT \
             does not hairpin, or the port is not forwarded); check from outside that UDP to it \
             reaches this host"
        );
    }
}

/// The host's interface addresses of the families the socket takes (IPv6 link-local ones
/// excluded), loopback excluded unless it is the only one.
fn host_addresses(ipv4: bool, ipv6: bool) -> Vec<IpAddr> {
    let wanted = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => ipv4,
        // Link-local addresses need a scope (an interface) that a candidate cannot carry.
        IpAddr::V6(v6) => ipv6 && !v6.is_unicast_link_local(),
    };
    let all: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).filter(wanted).collect())
        .unwrap_or_else(|e| {
            warn!("cannot list interfaces: {e}");
            Vec::new()
        });
    let mut external: Vec<IpAddr> = all.iter().copied().filter(|ip| !ip.is_loopback()).collect();
    if external.is_empty() {
        external = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
        .into_iter()
        .filter(wanted)
        .collect();
    }
    // IPv4 first: the candidates' order is their priority.
    external.sort_by_key(IpAddr::is_ipv6);
    external
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % ALPHABET.len()] as char)
        .collect()
}
