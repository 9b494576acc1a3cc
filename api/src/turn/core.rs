//! One listener's TURN server task: it owns a sans-I/O [`TurnServer`], screens each client
//! request with the [`Policy`] before the server sees it, drives the server's timers and
//! socket requests, and routes what it sends to clients and through relay sockets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use turn_server_proto::api::{
    SocketAllocateError, TcpConnectError, Transmit, TurnServerApi, TurnServerPollRet,
};
use turn_server_proto::server::TurnServer;
use turn_server_proto::types::attribute::XorPeerAddress;
use turn_server_proto::types::message::{CHANNEL_BIND, CREATE_PERMISSION, SEND};
use turn_server_proto::types::stun::attribute::{
    Attribute, AttributeFromRaw, AttributeStaticType, ErrorCode, MessageIntegrity,
    MessageIntegritySha256, Username,
};
use turn_server_proto::types::stun::message::{
    LongTermKeyCredentials, Message, MessageWrite, MessageWriteExt, MessageWriteVec,
};
use turn_server_proto::types::{AddressFamily, Instant, TransportType};

use super::Event;
use super::policy::{Admission, Policy, Refusal};
use super::relay::{self, RelaySettings};
use super::stream::pad_for_stream;
use crate::metrics::TurnCounters;

/// Frames queued for one stream client before more are dropped.
pub const CLIENT_QUEUE: usize = 64;
/// Events queued for a TURN server task before relay datagrams are dropped (client input
/// waits instead).
pub const CORE_QUEUE: usize = 1024;
/// Most poll rounds per wake-up, so one wake-up cannot spin.
const MAX_POLLS: usize = 1024;
/// Longest sleep between two polls of the TURN server.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often at most a refused peer or client is logged at WARN.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What the listeners of one embedded TURN server share.
#[derive(Debug)]
pub struct Shared {
    /// The realm of the long-term credentials.
    pub realm: String,
    /// The TURN REST API secret.
    pub secret: Vec<u8>,
    /// Cascade's media addresses: the only peers.
    pub allowed: Arc<[SocketAddr]>,
    /// Public media addresses that are not this host's, with the local address relays use
    /// instead ([`super::TurnConfig::translations`]).
    pub translations: Vec<(SocketAddr, SocketAddr)>,
    /// Where relay sockets are bound.
    pub relay: RelaySettings,
    /// Live allocations over all listeners.
    pub allocations: AtomicUsize,
    /// Most live allocations over all listeners.
    pub max_allocations: usize,
    /// Where allocations and refusals are counted.
    pub metrics: TurnCounters,
}

impl Shared {
    /// Most usernames one listener's TURN server learns before it is replaced by a fresh one.
    fn max_users(&self) -> usize {
        self.max_allocations.saturating_mul(16).max(1024)
    }

    /// Most live allocations of one client IP.
    fn max_per_ip(&self) -> usize {
        (self.max_allocations / 4).max(1)
    }
}

/// Where replies to clients go.
enum Clients {
    /// The listener's UDP socket.
    Datagram(Arc<UdpSocket>),
    /// The outboxes of the connected streams.
    Streams(HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>),
}

/// What [`Core::screen`] decided about a client message.
enum Screen {
    /// Hand it to the TURN server.
    Pass,
    /// Answer it with this message instead.
    Reply(Vec<u8>),
    /// Drop it.
    Drop,
}

/// One listener's TURN server task.
pub struct Core {
    server: TurnServer,
    transport: TransportType,
    listen: SocketAddr,
    clients: Clients,
    policy: Policy,
    shared: Arc<Shared>,
    relays: HashMap<SocketAddr, relay::Relay>,
    per_ip: HashMap<IpAddr, usize>,
    events: mpsc::Sender<Event>,
    base: std::time::Instant,
    last_warn: Option<std::time::Instant>,
}

impl Core {
    /// A task for the listener at `listen`: a UDP one replying through `udp`, or (with `None`)
    /// a TCP or TLS one replying through its connections. `events` is the sender of its own
    /// queue, for its relay sockets.
    pub fn new(
        listen: SocketAddr,
        udp: Option<Arc<UdpSocket>>,
        shared: Arc<Shared>,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let (transport, clients) = match udp {
            Some(socket) => (TransportType::Udp, Clients::Datagram(socket)),
            None => (TransportType::Tcp, Clients::Streams(HashMap::new())),
        };
        let policy = Policy::new(&shared.secret, shared.max_users(), shared.allowed.to_vec());
        Self {
            server: TurnServer::new(transport, listen, shared.realm.clone()),
            transport,
            listen,
            clients,
            policy,
            shared,
            relays: HashMap::new(),
            per_ip: HashMap::new(),
            events,
            base: std::time::Instant::now(),
            last_warn: None,
        }
    }

    /// Runs until `shutdown` fires or every sender of `rx` is gone; then closes the relays.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let wake = self.drive();
            tokio::select! {
                event = rx.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => break,
            }
        }
        for (_, relay) in self.relays.drain() {
            drop(relay);
            self.shared.allocations.fetch_sub(1, Ordering::Relaxed);
            self.shared.metrics.deallocated();
        }
    }

    fn now(&self) -> Instant {
        Instant::from_std(self.base)
    }

    fn on_event(&mut self, event: Event) {
        let now = self.now();
        match event {
            Event::Client { from, data } => {
                match self.screen(from, &data) {
                    Screen::Pass => {}
                    Screen::Reply(reply) => return self.send_to_client(from, reply),
                    Screen::Drop => return,
                }
                let transmit = Transmit::new(data, self.transport, from, self.listen);
                if let Some(out) = self.server.recv(transmit, now) {
                    self.route(out.build());
                }
            }
            Event::Connected { from, tx } => {
                if let Clients::Streams(streams) = &mut self.clients {
                    streams.insert(from, tx);
                }
            }
            Event::Closed { from } => {
                if let Clients::Streams(streams) = &mut self.clients {
                    streams.remove(&from);
                }
                // Empty data tells the server to forget the connection's buffer. Its
                // allocation, if any, lives on until its lifetime ends.
                let transmit = Transmit::new(Vec::new(), self.transport, from, self.listen);
                let _ = self.server.recv(transmit, now);
            }
            Event::Relay { relay, from, data } => {
                // The local media address answers for the public one the client addressed
                // (the media server never speaks first: it is ICE-lite).
                let from = match self.relays.get(&relay).and_then(|r| r.public_peer) {
                    Some((public, local)) if local == from => public,
                    _ => from,
                };
                let transmit = Transmit::new(data, TransportType::Udp, from, relay);
                if let Some(out) = self.server.recv(transmit, now) {
                    self.route(out.build());
                }
            }
        }
    }

    /// Applies the policy to a client message before the TURN server sees it: every username
    /// must be a well-formed, unexpired REST API username (new ones are taught to the server
    /// with their genuine credential, so its MESSAGE-INTEGRITY check refuses forged ones), and
    /// CreatePermission, ChannelBind and Send may only name Cascade's media addresses.
    fn screen(&mut self, from: SocketAddr, data: &[u8]) -> Screen {
        let Ok(msg) = Message::from_bytes(data) else {
            return Screen::Pass; // ChannelData (or garbage, which the server drops)
        };
        if msg.is_response() {
            return Screen::Drop;
        }
        let username = msg
            .attribute::<Username>()
            .ok()
            .map(|u| u.username().to_owned());
        if let Some(name) = &username {
            let mut admission = self.policy.admit(name, SystemTime::now());
            if admission == Admission::Refused(Refusal::TableFull) && self.relays.is_empty() {
                self.recycle();
                admission = self.policy.admit(name, SystemTime::now());
            }
            match admission {
                Admission::Known => {}
                Admission::Add { password } => {
                    // Learnt only from a request signed with the genuine credential, so that
                    // made-up usernames cannot fill the table. Unsigned or forged requests
                    // go on to the server, which answers 401 for a user it does not know.
                    let key = LongTermKeyCredentials::new(
                        name.clone(),
                        password.clone(),
                        self.shared.realm.clone(),
                    );
                    match msg.validate_integrity(&key.into()) {
                        Ok(_) => {
                            self.policy.learn(name);
                            self.server.add_user(name.clone(), password);
                        }
                        // Signed, but not with the genuine credential.
                        Err(_) if has_integrity(&msg) => self.shared.metrics.refused("forged"),
                        Err(_) => {}
                    }
                }
                Admission::Refused(refusal) => {
                    self.shared.metrics.refused(match refusal {
                        Refusal::Malformed => "malformed_username",
                        Refusal::Expired => "expired",
                        Refusal::TableFull => "user_table_full",
                    });
                    self.warn_limited(|| {
                        warn!(client = %from, reason = refusal.label(), "TURN request refused");
                    });
                    let code = match refusal {
                        Refusal::TableFull => ErrorCode::ALLOCATION_QUOTA_REACHED,
                        Refusal::Malformed | Refusal::Expired => ErrorCode::UNAUTHORIZED,
                    };
                    return reply_error(&msg, code, None);
                }
            }
        }
        let method = msg.method();
        if method != CREATE_PERMISSION && method != CHANNEL_BIND && method != SEND {
            return Screen::Pass;
        }
        let peers: Vec<SocketAddr> = msg
            .iter_attributes()
            .filter(|(_, raw)| raw.get_type() == XorPeerAddress::TYPE)
            .filter_map(|(_, raw)| XorPeerAddress::from_raw(raw).ok())
            .map(|a| a.addr(msg.transaction_id()))
            .collect();
        // Permissions are per IP (RFC 8656 §9); channels and Send name a port too.
        let allowed = if method == CREATE_PERMISSION {
            peers.iter().all(|p| self.policy.ip_allowed(p.ip()))
        } else {
            peers.iter().all(|p| self.policy.peer_allowed(*p))
        };
        if allowed {
            return Screen::Pass;
        }
        self.shared.metrics.refused("forbidden_peer");
        self.warn_limited(|| {
            warn!(client = %from, ?peers, "TURN relay to a peer that is not Cascade's refused");
        });
        if method == SEND {
            return Screen::Drop;
        }
        // 403 signed like the server signs, if the request is genuine; else 401.
        let signed = username.and_then(|name| {
            let password = self.policy.password(&name);
            let key = LongTermKeyCredentials::new(name, password, self.shared.realm.clone());
            let key = key.into();
            let algorithm = msg.validate_integrity(&key).ok()?;
            Some((key, algorithm))
        });
        match signed {
            Some(signing) => reply_error(&msg, ErrorCode::FORBIDDEN, Some(signing)),
            None => reply_error(&msg, ErrorCode::UNAUTHORIZED, None),
        }
    }

    /// Replaces the TURN server by a fresh one: the crate cannot forget users or nonces, so
    /// this is how their tables stay bounded. Only done without live allocations.
    fn recycle(&mut self) {
        info!(
            listen = %self.listen,
            users = self.policy.users(),
            "TURN user table full and no allocation live: starting afresh"
        );
        self.server = TurnServer::new(self.transport, self.listen, self.shared.realm.clone());
        self.policy.forget_users();
    }

    /// Polls the server until it only waits; returns when to poll again.
    fn drive(&mut self) -> tokio::time::Instant {
        let now = self.now();
        for _ in 0..MAX_POLLS {
            self.flush(now);
            match self.server.poll(now) {
                TurnServerPollRet::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(now).min(MAX_WAIT);
                    return tokio::time::Instant::now() + wait;
                }
                TurnServerPollRet::AllocateSocket {
                    transport,
                    listen_addr,
                    client_addr,
                    allocation_transport,
                    family,
                } => {
                    let result = self.allocate(client_addr, allocation_transport, family);
                    self.server.allocated_socket(
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                        result,
                        now,
                    );
                }
                TurnServerPollRet::TcpConnect {
                    relayed_addr,
                    peer_addr,
                    listen_addr,
                    client_addr,
                } => self.server.tcp_connected(
                    relayed_addr,
                    peer_addr,
                    listen_addr,
                    client_addr,
                    Err(TcpConnectError::Forbidden),
                    now,
                ),
                // Cascade opens no TCP connections to peers; client streams close themselves.
                TurnServerPollRet::TcpClose { .. } => {}
                TurnServerPollRet::SocketClose { listen_addr, .. } => self.close_relay(listen_addr),
            }
        }
        self.flush(now);
        tokio::time::Instant::now() + Duration::from_millis(10)
    }

    /// Sends what the server has queued.
    fn flush(&mut self, now: Instant) {
        for _ in 0..MAX_POLLS {
            let Some(transmit) = self.server.poll_transmit(now) else {
                return;
            };
            self.route(transmit);
        }
    }

    /// A relay socket for a new allocation of `client`, within the caps.
    fn allocate(
        &mut self,
        client: SocketAddr,
        transport: TransportType,
        family: AddressFamily,
    ) -> Result<SocketAddr, SocketAllocateError> {
        if transport != TransportType::Udp {
            // RFC 6062 TCP allocations would connect to peers: not offered.
            return Err(SocketAllocateError::InsufficientCapacity);
        }
        if family != AddressFamily::IPV4 || !self.shared.relay.bind_ip.is_ipv4() {
            return Err(SocketAllocateError::AddressFamilyNotSupported);
        }
        let per_ip = self.per_ip.get(&client.ip()).copied().unwrap_or(0);
        let live = self.shared.allocations.load(Ordering::Relaxed);
        if live >= self.shared.max_allocations || per_ip >= self.shared.max_per_ip() {
            self.shared.metrics.refused("capacity");
            self.warn_limited(|| {
                warn!(%client, live, per_ip, "TURN allocation refused: at capacity");
            });
            return Err(SocketAllocateError::InsufficientCapacity);
        }
        let relay = relay::Relay::open(
            &self.shared.relay,
            client.ip(),
            self.shared.allowed.clone(),
            self.events.clone(),
        )
        .map_err(|e| {
            warn!(error = %e, "TURN relay socket cannot be bound");
            SocketAllocateError::InsufficientCapacity
        })?;
        let addr = relay.addr;
        debug!(%client, relay = %addr, "TURN allocation");
        self.relays.insert(addr, relay);
        *self.per_ip.entry(client.ip()).or_default() += 1;
        self.shared.allocations.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.allocated();
        Ok(addr)
    }

    fn close_relay(&mut self, addr: SocketAddr) {
        let Some(relay) = self.relays.remove(&addr) else {
            return;
        };
        debug!(relay = %addr, "TURN allocation ended");
        if let Some(n) = self.per_ip.get_mut(&relay.client_ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&relay.client_ip);
            }
        }
        self.shared.allocations.fetch_sub(1, Ordering::Relaxed);
        self.shared.metrics.deallocated();
    }

    /// Sends one transmit of the server: to a client, or from a relay socket to a peer.
    fn route(&mut self, transmit: Transmit<Vec<u8>>) {
        if transmit.from == self.listen {
            return self.send_to_client(transmit.to, transmit.data);
        }
        let local = self.local_of(transmit.to);
        let Some(relay) = self.relays.get_mut(&transmit.from) else {
            debug!(from = %transmit.from, "TURN transmit from an unknown address dropped");
            return;
        };
        if !self.policy.peer_allowed(transmit.to) {
            // A permission is per IP: another port of an allowed IP ends here.
            self.shared.metrics.refused("forbidden_peer");
            let to = transmit.to;
            self.warn_limited(
                || warn!(peer = %to, "TURN relay to a peer that is not Cascade's dropped"),
            );
            return;
        }
        let to = match local {
            Some(local) => {
                relay.public_peer = Some((transmit.to, local));
                local
            }
            None => transmit.to,
        };
        let _ = relay.socket.try_send_to(&transmit.data, to);
    }

    /// The local media address to send to instead of `public`, if it is translated.
    fn local_of(&self, public: SocketAddr) -> Option<SocketAddr> {
        let t = &self.shared.translations;
        t.iter()
            .find(|(p, _)| *p == public)
            .map(|(_, local)| *local)
    }

    fn send_to_client(&mut self, to: SocketAddr, data: Vec<u8>) {
        match &mut self.clients {
            Clients::Datagram(socket) => {
                let _ = socket.try_send_to(&data, to);
            }
            Clients::Streams(streams) => {
                if let Some(tx) = streams.get(&to) {
                    let _ = tx.try_send(pad_for_stream(data));
                }
            }
        }
    }

    /// Runs `log` unless a warning was logged less than [`WARN_EVERY`] ago.
    fn warn_limited(&mut self, log: impl FnOnce()) {
        let now = std::time::Instant::now();
        if self
            .last_warn
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            self.last_warn = Some(now);
            log();
        }
    }
}

/// Whether `msg` carries a MESSAGE-INTEGRITY attribute (SHA-1 or SHA-256).
fn has_integrity(msg: &Message<'_>) -> bool {
    msg.has_attribute(MessageIntegrity::TYPE) || msg.has_attribute(MessageIntegritySha256::TYPE)
}

/// An error response to `msg` with `code`; signed with `signing` (credentials and algorithm
/// of the request) when given.
fn reply_error(
    msg: &Message<'_>,
    code: u16,
    signing: Option<(
        turn_server_proto::types::stun::message::MessageIntegrityCredentials,
        turn_server_proto::types::stun::message::IntegrityAlgorithm,
    )>,
) -> Screen {
    let Ok(error) = ErrorCode::builder(code).build() else {
        return Screen::Drop;
    };
    let mut reply = Message::builder_error(msg, MessageWriteVec::with_capacity(128));
    if reply.add_attribute(&error).is_err() {
        return Screen::Drop;
    }
    if let Some((key, algorithm)) = signing
        && reply.add_message_integrity(&key, algorithm).is_err()
    {
        return Screen::Drop;
    }
    Screen::Reply(reply.finish())
}
