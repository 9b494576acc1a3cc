//! Media workers: one OS thread per core, each owning a shard of the peers.
//!
//! A worker owns its [`Shard`] of Cascade's engine outright (no locks around its peers) and is
//! driven by two bounded channels of [`WorkerMsg`]s. The *data* queue ([`DATA_QUEUE`]) carries
//! datagrams routed to it by the UDP receive thread and packets of tracks published on other
//! workers: when it is full, the datagram or packet is dropped and counted (media, like a full
//! socket buffer; RTCP feedback recovers). The *control* queue ([`CONTROL_QUEUE`]) carries new
//! peers and commands from signaling sessions: a sender waits up to [`COMMAND_SEND_TIMEOUT`]
//! for room, then the command fails (an awaited command reports [`crate::MediaError::Closed`]).
//! Timers come from the shard's `poll_timeout`; the worker sleeps on its channels until the
//! earliest deadline. The datagrams of one wake-up are sent together on the shared UDP socket
//! (`sendmmsg`, UDP GSO for bursts to one destination), or handed to the ICE-TCP thread.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};
use tracing::{debug, warn};

use self::shard::{EnginePeerInit, Shard, ShardSink};
use crate::net::Path;
use crate::net::demux::Demuxer;
use crate::net::tcp::TcpOutlet;
use crate::net::udp::{SendBatch, UdpPort};
use crate::seam::{Mailbox, PeerCommand, PeerId, PublishedTrack};
use crate::stats::MediaStats;

pub mod shard;

/// State shared by the receive thread, the workers and the handles.
pub(crate) struct Shared {
    /// Media counters.
    pub(crate) stats: Arc<MediaStats>,
    pub(crate) demux: Mutex<Demuxer<(PeerId, usize)>>,
    /// Live peers.
    pub(crate) peers: AtomicUsize,
}

impl Shared {
    /// Forgets the peer whose server-side ICE ufrag is `ufrag`.
    pub(crate) fn remove_ufrag(&self, ufrag: &str) {
        self.demuxer().remove_ufrag(ufrag);
        self.peers.fetch_sub(1, Relaxed);
    }

    pub(crate) fn demuxer(&self) -> std::sync::MutexGuard<'_, Demuxer<(PeerId, usize)>> {
        self.demux.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Capacity of a worker's data queue: datagrams and forwarded RTP packets.
pub const DATA_QUEUE: usize = 8192;
/// Capacity of a worker's control queue: new peers and session commands. Every command a
/// remote party causes is awaited by its session or throttled, so one party holds few slots.
pub const CONTROL_QUEUE: usize = 4096;
/// How long a command waits for room in a full control queue before it fails.
pub const COMMAND_SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// A worker's control queue as a peer's [`Mailbox`].
#[derive(Debug)]
pub(crate) struct WorkerMailbox(pub(crate) Sender<WorkerMsg>);

impl Mailbox for WorkerMailbox {
    fn send(&self, peer: PeerId, cmd: PeerCommand, wait: bool) -> bool {
        let msg = WorkerMsg::Command {
            peer,
            cmd: Box::new(cmd),
        };
        if wait {
            self.0.send_timeout(msg, COMMAND_SEND_TIMEOUT).is_ok()
        } else {
            self.0.try_send(msg).is_ok()
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
        from: Path,
        /// The bytes.
        data: BytesMut,
        /// When it was read.
        at: Instant,
    },
    /// A new peer to own.
    AddPeer(Box<EnginePeerInit>),
    /// A command for one peer.
    Command {
        /// Target peer.
        peer: PeerId,
        /// The command.
        cmd: Box<PeerCommand>,
    },
    /// A new packet of a track published on another worker, for this worker's subscribers
    /// (one message per packet and worker, not per subscriber).
    Forward {
        /// The track.
        track: Arc<PublishedTrack>,
        /// The packet as its publisher sent it (decrypted).
        packet: Arc<[u8]>,
    },
    /// Close every peer and exit.
    Shutdown,
}

/// Longest sleep when no peer has a timer.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Messages handled per wake-up before timers and outputs are serviced.
const BATCH: usize = 256;

/// Where a worker's outputs go.
pub(crate) struct Outputs {
    /// The shared media socket.
    pub(crate) udp: Arc<UdpPort>,
    /// The ICE-TCP thread.
    pub(crate) tcp: TcpOutlet,
    /// Every worker's data queue (this worker's among them).
    pub(crate) workers: Vec<Sender<WorkerMsg>>,
}

/// The worker loop; returns when [`WorkerMsg::Shutdown`] arrives or every control sender is
/// gone.
pub(crate) fn run(
    control: Receiver<WorkerMsg>,
    data: Receiver<WorkerMsg>,
    outputs: Outputs,
    shared: Arc<Shared>,
    mut shard: Shard,
) {
    let Outputs {
        udp: socket,
        tcp,
        workers,
    } = outputs;
    let mut sends = SendBatch::default();
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
        let batch = control
            .try_iter()
            .take(BATCH)
            .chain(data.try_iter().take(BATCH));
        let now = Instant::now();
        let mut out = ShardSink {
            sends: &mut sends,
            workers: &workers,
            stats: &shared.stats,
        };
        let mut shutdown = false;
        for msg in first.into_iter().chain(batch) {
            match msg {
                WorkerMsg::Shutdown => shutdown = true,
                WorkerMsg::AddPeer(init) => shard.add_peer(*init, now),
                WorkerMsg::Forward { track, packet } => {
                    shard.forward(&track, &packet, now, &mut out)
                }
                WorkerMsg::Datagram {
                    peer,
                    from,
                    mut data,
                    at,
                } => shard.handle_datagram(peer, from, &mut data, at, &mut out),
                WorkerMsg::Command { peer, cmd } => shard.handle_command(peer, *cmd, now, &mut out),
            }
        }
        // `next_deadline` is from before this wake-up's messages: a timer they set for now is
        // seen at the end, and the next wait is then zero.
        if shutdown {
            shard.shutdown(Instant::now(), &mut out);
        } else if next_deadline.is_some_and(|d| d <= now) {
            shard.handle_timeout(now, &mut out);
        }
        for (id, ufrag) in shard.take_removed() {
            debug!(peer = id, "peer removed from worker");
            shared.remove_ufrag(&ufrag);
        }
        sends.send(&socket, &tcp);
        if shutdown {
            break;
        }
        next_deadline = shard.poll_timeout();
    }
    if !shard.is_empty() {
        warn!(count = shard.len(), "worker exiting with peers");
    }
}
