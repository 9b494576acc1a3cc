//! The engine on one UDP socket and one thread, for one room: the first I/O loop of Cascade's
//! own engine (issue 11). The `cascade` binary does not use it yet; the interop tests drive it
//! with stacks Cascade did not write. Datagrams are routed to peers by the [`Demuxer`] (a
//! verified ICE check binds an address), handed to the [`Router`], and what it sends goes out
//! with `send_to`. Timers come from [`Router::poll_timeout`].

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use tracing::{debug, warn};

use super::router::Router;
use super::{PeerIdx, Sink};
use crate::demux::Demuxer;
use crate::negotiation::answer::LocalTransport;
use crate::transport::dtls::DtlsIdentity;

/// Commands waiting for the engine thread, at most.
const COMMAND_QUEUE: usize = 64;
/// How long a join waits for the engine thread's answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest the thread sleeps in `recv_from` (commands are looked at in between).
const MAX_WAIT: Duration = Duration::from_millis(20);

enum Command {
    Join {
        offer: String,
        reply: Sender<Result<(PeerIdx, String), String>>,
    },
    Leave(PeerIdx),
    Stop,
}

/// One room's engine on its own UDP socket and thread; stopped when dropped.
pub struct EngineServer {
    addr: SocketAddr,
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl EngineServer {
    /// Binds `bind` (a concrete address: it is advertised as the host candidate) and starts the
    /// engine thread.
    pub fn start(bind: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(bind)?;
        let addr = socket.local_addr()?;
        let identity = DtlsIdentity::generate().map_err(io::Error::other)?;
        let (commands, rx) = bounded(COMMAND_QUEUE);
        let thread = std::thread::Builder::new()
            .name("cascade-engine".into())
            .spawn(move || run(socket, addr, Router::new(identity), rx))?;
        Ok(Self {
            addr,
            commands,
            thread: Some(thread),
        })
    }

    /// The UDP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A peer joins with `offer`: its index and Cascade's answer, or why not.
    pub fn join(&self, offer: &str) -> Result<(PeerIdx, String), String> {
        let (reply, answer) = bounded(1);
        let command = Command::Join {
            offer: offer.to_owned(),
            reply,
        };
        self.commands
            .send_timeout(command, JOIN_TIMEOUT)
            .map_err(|_| "the engine is not running".to_owned())?;
        answer
            .recv_timeout(JOIN_TIMEOUT)
            .map_err(|_| "the engine did not answer".to_owned())?
    }

    /// Removes a peer.
    pub fn leave(&self, peer: PeerIdx) {
        let _ = self
            .commands
            .send_timeout(Command::Leave(peer), JOIN_TIMEOUT);
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        let _ = self.commands.send_timeout(Command::Stop, JOIN_TIMEOUT);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends each datagram at once.
struct SocketSink<'a>(&'a UdpSocket);

impl Sink for SocketSink<'_> {
    fn send(&mut self, peer: PeerIdx, to: SocketAddr, datagram: &[u8]) {
        if let Err(e) = self.0.send_to(datagram, to) {
            debug!(peer, %to, "send failed: {e}");
        }
    }
}

/// A random string of `len` ICE characters.
fn ice_chars(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| CHARS[rand::random::<u8>() as usize % CHARS.len()] as char)
        .collect()
}

fn run(socket: UdpSocket, addr: SocketAddr, mut router: Router, commands: Receiver<Command>) {
    let mut demux: Demuxer<PeerIdx> = Demuxer::default();
    let mut ufrags: HashMap<PeerIdx, String> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let candidate = format!("1 1 udp 2130706431 {} {} typ host", addr.ip(), addr.port());
    let session_id: u64 = rand::random::<u64>() >> 1;
    loop {
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Stop => return,
                Command::Leave(peer) => leave(&mut router, &mut demux, &mut ufrags, peer),
                Command::Join { offer, reply } => {
                    let local = LocalTransport {
                        ice_ufrag: ice_chars(8),
                        ice_pwd: ice_chars(24),
                        fingerprint: String::new(),
                        candidates: vec![candidate.clone()],
                        session_id,
                        session_version: 1,
                    };
                    let (ufrag, pwd) = (local.ice_ufrag.clone(), local.ice_pwd.clone());
                    let joined = router.join(&offer, local).map_err(|e| e.to_string());
                    if let Ok((peer, _)) = &joined {
                        demux.add_peer(ufrag.clone(), pwd, *peer);
                        ufrags.insert(*peer, ufrag);
                    }
                    let _ = reply.send(joined);
                }
            }
        }
        let now = Instant::now();
        let wait = router
            .poll_timeout()
            .map_or(MAX_WAIT, |d| d.saturating_duration_since(now))
            .clamp(Duration::from_millis(1), MAX_WAIT);
        let _ = socket.set_read_timeout(Some(wait));
        let mut sink = SocketSink(&socket);
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(peer) = demux.route(from, &buf[..n]) {
                    let now = Instant::now();
                    if let Err(e) =
                        router.handle_datagram(now, peer, from, &mut buf[..n], &mut sink)
                    {
                        warn!(peer, "DTLS failed, peer removed: {e}");
                        leave(&mut router, &mut demux, &mut ufrags, peer);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => debug!("recv failed: {e}"),
        }
        let now = Instant::now();
        if router.poll_timeout().is_some_and(|d| d <= now) {
            for peer in router.handle_timeout(now, &mut sink) {
                warn!(peer, "DTLS timed out, peer removed");
                leave(&mut router, &mut demux, &mut ufrags, peer);
            }
        }
    }
}

/// Removes `peer` from the router and the demultiplexer.
fn leave(
    router: &mut Router,
    demux: &mut Demuxer<PeerIdx>,
    ufrags: &mut HashMap<PeerIdx, String>,
    peer: PeerIdx,
) {
    router.leave(peer);
    if let Some(ufrag) = ufrags.remove(&peer) {
        demux.remove_ufrag(&ufrag);
    }
}
