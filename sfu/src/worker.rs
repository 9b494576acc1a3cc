//! Media workers: one OS thread per core, each owning a shard of the peers.
//!
//! A worker owns its peers' `RTCPeerConnection`s outright (no locks around them) and is driven
//! by two bounded channels of [`WorkerMsg`]s. The *data* queue ([`DATA_QUEUE`]) carries
//! datagrams routed to it by the UDP receive thread and RTP packets forwarded by peers on other
//! workers: when it is full, the datagram or packet is dropped and counted (media, like a full
//! socket buffer; RTCP feedback recovers). The *control* queue ([`CONTROL_QUEUE`]) carries new
//! peers and commands from signaling sessions: a sender waits up to [`COMMAND_SEND_TIMEOUT`]
//! for room, then the command fails (an awaited command reports [`crate::MediaError::Closed`]).
//! Timers come from each connection's `poll_timeout`; the worker sleeps on its channels until
//! the earliest deadline. The datagrams of one wake-up are sent together on
//! the shared UDP socket (`sendmmsg`, UDP GSO for bursts to one destination).

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rtc::rtp;
use tracing::{debug, trace, warn};

use crate::engine::shard::{EnginePeerInit, Shard, ShardSink};
use crate::peer::{Peer, PeerCommand};
use crate::server::Shared;
use crate::stats::MediaStats;
use crate::track::PublishedTrack;
use crate::udp::SendBatch;

/// Identifies a peer for the lifetime of the server.
pub type PeerId = u64;

/// Capacity of a worker's data queue: datagrams and forwarded RTP packets.
pub const DATA_QUEUE: usize = 8192;
/// Capacity of a worker's control queue: new peers and session commands. Every command a
/// remote party causes is awaited by its session or throttled, so one party holds few slots.
pub const CONTROL_QUEUE: usize = 4096;
/// How long a command waits for room in a full control queue before it fails.
pub const COMMAND_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A handle to reach a peer: its id and its worker's control channel.
#[derive(Debug, Clone)]
pub struct PeerAddress {
    /// The peer's id.
    pub id: PeerId,
    /// The index of the worker that owns it.
    pub worker: usize,
    /// The control channel of the worker that owns it.
    pub tx: Sender<WorkerMsg>,
}

impl PeerAddress {
    /// Sends a command to the peer, waiting up to [`COMMAND_SEND_TIMEOUT`] if the worker's
    /// control queue is full; returns false if it could not be queued.
    pub fn command(&self, cmd: PeerCommand) -> bool {
        self.tx
            .send_timeout(self.wrap(cmd), COMMAND_SEND_TIMEOUT)
            .is_ok()
    }

    /// Sends a command to the peer without waiting (from a worker: workers never block on
    /// each other); returns false if the worker's control queue is full or gone.
    pub fn try_command(&self, cmd: PeerCommand) -> bool {
        self.tx.try_send(self.wrap(cmd)).is_ok()
    }

    fn wrap(&self, cmd: PeerCommand) -> WorkerMsg {
        WorkerMsg::Command {
            peer: self.id,
            cmd: Box::new(cmd),
        }
    }
}

/// Everything a worker reacts to.
pub enum WorkerMsg {
    /// A datagram from the shared UDP socket for one of this worker's peers.
    Datagram {
        /// The peer it was routed to.
        peer: PeerId,
        /// Remote address.
        from: SocketAddr,
        /// The bytes.
        data: BytesMut,
        /// When it was read.
        at: Instant,
    },
    /// A new peer to own.
    AddPeer(Box<Peer>),
    /// A new peer of Cascade's engine to own.
    AddEnginePeer(Box<EnginePeerInit>),
    /// A new packet of an engine track published on another worker, for this worker's
    /// subscribers (one message per packet and worker).
    EngineForward {
        /// The track.
        track: Arc<PublishedTrack>,
        /// The packet as its publisher sent it (decrypted).
        packet: Arc<[u8]>,
    },
    /// A command for one peer.
    Command {
        /// Target peer.
        peer: PeerId,
        /// The command.
        cmd: Box<PeerCommand>,
    },
    /// An RTP packet of `track` to forward to this worker's subscribers `peers` (one message
    /// per packet and worker, not per subscriber).
    Forward {
        /// Subscribers owned by this worker.
        peers: Vec<PeerId>,
        /// The source track.
        track: Arc<PublishedTrack>,
        /// The packet as the publisher sent it (shared by every subscriber).
        packet: Arc<rtp::Packet>,
    },
    /// Close every peer and exit.
    Shutdown,
}

/// Longest sleep when no peer has a timer.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Messages handled per wake-up before timers and outputs are serviced.
const BATCH: usize = 256;

/// A packet a publisher on this worker received, to fan out to the track's subscribers.
pub(crate) type Fanout = (Arc<PublishedTrack>, Arc<rtp::Packet>);

/// The worker loop; returns when [`WorkerMsg::Shutdown`] arrives or every control sender is
/// gone. `index` is this worker's position in `workers` (every worker's data queue).
pub(crate) fn run(
    index: usize,
    control: Receiver<WorkerMsg>,
    data: Receiver<WorkerMsg>,
    workers: Vec<Sender<WorkerMsg>>,
    socket: Arc<UdpSocket>,
    shared: Arc<Shared>,
    mut shard: Option<Shard>,
) {
    let mut peers: HashMap<PeerId, Peer> = HashMap::new();
    let mut touched: Vec<PeerId> = Vec::new();
    let mut fanout: Vec<Fanout> = Vec::new();
    let mut sends = SendBatch::default();
    // Subscribers of one packet, grouped by owning worker.
    let mut by_worker: Vec<Vec<PeerId>> = vec![Vec::new(); workers.len()];
    let mut next_deadline: Option<Instant> = None;
    loop {
        let wait = next_deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(IDLE_WAIT)
            .min(IDLE_WAIT);
        let first = crossbeam_channel::select! {
            recv(control) -> m => match m {
                Ok(m) => Some(m),
                Err(_) => break,
            },
            recv(data) -> m => m.ok(),
            default(wait) => None,
        };
        let mut shutdown = false;
        let batch = control
            .try_iter()
            .take(BATCH)
            .chain(data.try_iter().take(BATCH));
        let now = Instant::now();
        for msg in first.into_iter().chain(batch) {
            let msg = match shard.as_mut() {
                Some(shard) => {
                    let mut out = ShardSink {
                        sends: &mut sends,
                        workers: &workers,
                        stats: &shared.stats,
                    };
                    match engine_message(shard, msg, now, &mut out) {
                        Some(msg) => msg,
                        None => continue,
                    }
                }
                None => msg,
            };
            match msg {
                WorkerMsg::Shutdown => shutdown = true,
                WorkerMsg::AddEnginePeer(init) => {
                    let _ = init.events.try_send(crate::peer::PeerEvent::Closed(
                        "this worker runs no engine".into(),
                    ));
                }
                WorkerMsg::EngineForward { .. } => {}
                WorkerMsg::AddPeer(peer) => {
                    touched.push(peer.id);
                    peers.insert(peer.id, *peer);
                }
                WorkerMsg::Datagram {
                    peer,
                    from,
                    data,
                    at,
                } => {
                    if let Some(p) = peers.get_mut(&peer) {
                        p.handle_datagram(from, data, at);
                        touched.push(peer);
                    } else {
                        trace!(peer, "datagram for a closed peer dropped");
                    }
                }
                WorkerMsg::Command { peer, cmd } => match peers.get_mut(&peer) {
                    Some(p) => {
                        p.handle_command(*cmd);
                        touched.push(peer);
                    }
                    None => PeerCommand::refuse_closed(*cmd),
                },
                WorkerMsg::Forward {
                    peers: targets,
                    track,
                    packet,
                } => {
                    for peer in targets {
                        if let Some(p) = peers.get_mut(&peer) {
                            p.forward(&track, &packet);
                            touched.push(peer);
                        }
                    }
                }
            }
        }
        if shutdown {
            for (_, mut p) in peers.drain() {
                p.close();
                p.flush(&mut sends);
            }
            if let Some(shard) = shard.as_mut() {
                let mut out = ShardSink {
                    sends: &mut sends,
                    workers: &workers,
                    stats: &shared.stats,
                };
                shard.shutdown(Instant::now(), &mut out);
                for (_, ufrag) in shard.take_removed() {
                    shared.remove_ufrag(&ufrag);
                }
            }
            sends.send(&socket);
            break;
        }

        let now = Instant::now();
        if let Some(shard) = shard.as_mut() {
            if shard.poll_timeout().is_some_and(|d| d <= now) {
                let mut out = ShardSink {
                    sends: &mut sends,
                    workers: &workers,
                    stats: &shared.stats,
                };
                shard.handle_timeout(now, &mut out);
            }
            for (id, ufrag) in shard.take_removed() {
                debug!(peer = id, "engine peer removed from worker");
                shared.remove_ufrag(&ufrag);
            }
        }
        if next_deadline.is_some_and(|d| d <= now) {
            for (id, p) in peers.iter_mut() {
                if p.deadline().is_some_and(|d| d <= now) {
                    p.handle_timeout(now);
                    touched.push(*id);
                }
            }
        }
        // Drive the touched peers; packets their publications yield are forwarded at once to
        // this worker's subscribers (which are then driven in the next round) and in one
        // message per packet to each other worker.
        while !touched.is_empty() {
            touched.sort_unstable();
            touched.dedup();
            for id in touched.drain(..) {
                let Some(p) = peers.get_mut(&id) else {
                    continue;
                };
                p.drive(&mut sends);
                p.take_fanout(&mut fanout);
                if p.is_closed() {
                    debug!(peer = id, "peer removed from worker");
                    let p = peers.remove(&id).expect("present");
                    shared.remove_peer(&p);
                }
            }
            for (track, packet) in fanout.drain(..) {
                track.for_each_subscriber(|sub| by_worker[sub.worker].push(sub.id));
                for (w, targets) in by_worker.iter_mut().enumerate() {
                    if targets.is_empty() {
                        continue;
                    }
                    if w == index {
                        for id in targets.drain(..) {
                            if let Some(p) = peers.get_mut(&id) {
                                p.forward(&track, &packet);
                                touched.push(id);
                            }
                        }
                    } else {
                        let sent = workers[w].try_send(WorkerMsg::Forward {
                            peers: std::mem::take(targets),
                            track: track.clone(),
                            packet: packet.clone(),
                        });
                        if let Err(TrySendError::Full(_)) = sent {
                            MediaStats::add(&shared.stats.forwards_queue_full, 1);
                        }
                    }
                }
            }
        }
        sends.send(&socket);
        next_deadline = peers
            .values()
            .filter_map(Peer::deadline)
            .chain(shard.as_ref().and_then(Shard::poll_timeout))
            .min();
    }
    if !peers.is_empty() {
        warn!(count = peers.len(), "worker exiting with peers");
    }
    for p in peers.values() {
        shared.remove_peer(p);
    }
}

/// Hands `msg` to the engine if it is for the engine; otherwise gives it back.
fn engine_message(
    shard: &mut Shard,
    msg: WorkerMsg,
    now: Instant,
    out: &mut ShardSink,
) -> Option<WorkerMsg> {
    match msg {
        WorkerMsg::AddEnginePeer(init) => shard.add_peer(*init, now),
        WorkerMsg::EngineForward { track, packet } => shard.forward(&track, &packet, now, out),
        WorkerMsg::Datagram {
            peer,
            from,
            mut data,
            at,
        } if shard.has(peer) => shard.handle_datagram(peer, from, &mut data, at, out),
        WorkerMsg::Command { peer, cmd } if shard.has(peer) => {
            shard.handle_command(peer, *cmd, now, out)
        }
        msg => return Some(msg),
    }
    None
}
