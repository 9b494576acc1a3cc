//! A worker's share of Cascade's engine (`--media-engine cascade`): one explicit-mode
//! [`Router`] holding the worker's peers, driven by the same [`PeerCommand`]s and telling
//! sessions the same [`PeerEvent`]s as the `RTCPeerConnection` peers, so rooms, sessions and
//! the API do not know which engine serves them.
//!
//! A track published on this worker is a local track of the router; a track published on
//! another worker is received once per worker: its publisher's worker sends each new packet
//! once ([`WorkerMsg::Forward`]) to every worker with a subscriber, where a *mirror*
//! keeps it in its own cache for the local subscribers' NACKs. Keyframe requests for a mirror
//! go to the publisher's worker as [`PeerCommand::RequestKeyframe`], throttled per track.
//!
//! Bounds: the router's ([`crate::engine::router::MAX_PEERS`] peers per worker); a peer whose
//! session does not take its events ([`crate::seam::PEER_EVENT_QUEUE`]) is closed; a peer from
//! which nothing valid arrives for the ICE disconnected + failed timeouts is closed.

use crate::net::Path;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cascade_signaling::protocol::{IceCandidate, TrackKind};
use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

use crate::candidate_budget::CandidateBudget;
use crate::engine::peer::TrackInfo;
use crate::engine::router::{Router, RouterEvent};
use crate::engine::{PeerIdx, Sink, TrackId};
use crate::error::MediaError;
use crate::negotiation::NegotiationError;
use crate::negotiation::answer::LocalTransport;
use crate::negotiation::remote::SectionKind;
use crate::net::udp::SendBatch;
use crate::seam::track::PublishedTrack;
use crate::seam::{PeerAddress, PeerCommand, PeerEvent, PeerId, ServerOffer};
use crate::stats::MediaStats;
use crate::transport::dtls::DtlsIdentity;
use crate::worker::WorkerMsg;

/// What a worker needs to add an engine peer.
#[derive(Debug)]
pub struct EnginePeerInit {
    /// The peer's id.
    pub id: PeerId,
    /// Its participant id (`PA_…`): the stream id its tracks are sent with.
    pub participant: String,
    /// Where it lives.
    pub me: PeerAddress,
    /// The server's ICE credentials and candidates for it.
    pub local: LocalTransport,
    /// Where its events go.
    pub events: mpsc::Sender<PeerEvent>,
}

/// A peer of the shard: what the router does not know of it.
struct ShardPeer {
    id: PeerId,
    participant: String,
    me: PeerAddress,
    ufrag: String,
    events: mpsc::Sender<PeerEvent>,
    /// When a valid datagram last arrived (or the peer was added).
    last_seen: Instant,
    candidates: CandidateBudget,
    /// Its subscriptions: the track and the router's track carrying it.
    subscribed: Vec<(Arc<PublishedTrack>, TrackId)>,
}

/// A track of the router, as the rest of the server knows it.
struct ShardTrack {
    track: Arc<PublishedTrack>,
    /// A mirror of a track published on another worker: how many local peers want it.
    mirror_wanted: Option<usize>,
}

/// A worker's engine.
pub struct Shard {
    router: Router,
    worker: usize,
    peers: Vec<Option<ShardPeer>>,
    by_id: HashMap<PeerId, PeerIdx>,
    tracks: Vec<Option<ShardTrack>>,
    /// The router's track of each [`PublishedTrack`] (by its address), local or mirror.
    by_track: HashMap<usize, TrackId>,
    stats: Arc<MediaStats>,
    ice_timeout: Duration,
    /// Peers the shard removed, whose demultiplexer entries the worker drops: (id, ufrag).
    removed: Vec<(PeerId, String)>,
}

/// The worker's send batch and the other workers, as the router's [`Sink`].
pub(crate) struct ShardSink<'a> {
    /// The wake-up's outgoing datagrams.
    pub(crate) sends: &'a mut SendBatch,
    /// Every worker's data queue.
    pub(crate) workers: &'a [Sender<WorkerMsg>],
    /// Media counters.
    pub(crate) stats: &'a MediaStats,
}

/// The [`RouterSink`] of `$shard` over `$out` (a macro: the shard's router is borrowed mutably
/// beside its track table).
macro_rules! router_sink {
    ($shard:expr, $out:expr) => {
        RouterSink {
            out: $out,
            tracks: &$shard.tracks,
            worker: $shard.worker,
        }
    };
}

/// The sink with the shard's track table, which [`Sink::publish`] reads.
struct RouterSink<'a, 'b> {
    out: &'a mut ShardSink<'b>,
    tracks: &'a [Option<ShardTrack>],
    worker: usize,
}

impl Sink for RouterSink<'_, '_> {
    fn send(&mut self, _peer: PeerIdx, to: Path, datagram: &[u8]) {
        let rtp = datagram.first().is_some_and(|b| (128..=191).contains(b))
            && datagram.get(1).is_some_and(|pt| !(192..=223).contains(pt));
        if rtp {
            MediaStats::add(&self.out.stats.rtp_packets_out, 1);
            MediaStats::add(&self.out.stats.rtp_bytes_out, datagram.len() as u64);
        }
        self.out.sends.push(to, datagram);
    }

    fn publish(&mut self, track: TrackId, _ext: u64, packet: &[u8]) -> bool {
        let Some(Some(t)) = self.tracks.get(track as usize) else {
            return true;
        };
        if t.track.blocked() {
            return false;
        }
        let others = t.track.subscriber_workers() & !(1u64 << (self.worker % 64));
        if others == 0 {
            return true;
        }
        let packet: Arc<[u8]> = Arc::from(packet);
        for (w, queue) in self.out.workers.iter().enumerate() {
            if w == self.worker || others & (1u64 << (w % 64)) == 0 {
                continue;
            }
            let sent = queue.try_send(WorkerMsg::Forward {
                track: t.track.clone(),
                packet: packet.clone(),
            });
            if let Err(TrySendError::Full(_)) = sent {
                MediaStats::add(&self.out.stats.forwards_queue_full, 1);
            }
        }
        true
    }
}

impl Shard {
    /// The engine of worker `worker`, presenting `identity` in DTLS; a peer silent for
    /// `ice_timeout` is closed.
    pub fn new(
        worker: usize,
        identity: DtlsIdentity,
        stats: Arc<MediaStats>,
        ice_timeout: Duration,
    ) -> Self {
        Self {
            router: Router::explicit(identity).with_stats(stats.clone()),
            worker,
            peers: Vec::new(),
            by_id: HashMap::new(),
            tracks: Vec::new(),
            by_track: HashMap::new(),
            stats,
            ice_timeout,
            removed: Vec::new(),
        }
    }

    /// Whether `id` is a peer of this shard.
    pub fn has(&self, id: PeerId) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Live peers.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the shard has no peer.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The peers removed since the last call: (id, ICE ufrag).
    pub fn take_removed(&mut self) -> Vec<(PeerId, String)> {
        std::mem::take(&mut self.removed)
    }

    /// Adds a peer (opened: it offers, or is offered, next).
    pub fn add_peer(&mut self, init: EnginePeerInit, now: Instant) {
        let ufrag = init.local.ice_ufrag.clone();
        let idx = match self.router.open(init.local) {
            Ok(idx) => idx,
            Err(e) => {
                warn!(peer = init.id, "engine peer not added: {e}");
                let _ = init.events.try_send(PeerEvent::Closed(e.to_string()));
                self.removed.push((init.id, ufrag));
                return;
            }
        };
        if self.peers.len() <= idx {
            self.peers.resize_with(idx + 1, || None);
        }
        self.by_id.insert(init.id, idx);
        self.peers[idx] = Some(ShardPeer {
            id: init.id,
            participant: init.participant,
            me: init.me,
            ufrag,
            events: init.events,
            last_seen: now,
            candidates: CandidateBudget::default(),
            subscribed: Vec::new(),
        });
    }

    /// A datagram for peer `id`.
    pub(crate) fn handle_datagram(
        &mut self,
        id: PeerId,
        from: Path,
        data: &mut [u8],
        now: Instant,
        out: &mut ShardSink,
    ) {
        let Some(&idx) = self.by_id.get(&id) else {
            return;
        };
        if let Some(p) = self.peers[idx].as_mut() {
            p.last_seen = now;
        }
        if data.first().is_some_and(|b| (128..=191).contains(b))
            && data.get(1).is_some_and(|pt| !(192..=223).contains(pt))
        {
            MediaStats::add(&self.stats.rtp_packets_in, 1);
            MediaStats::add(&self.stats.rtp_bytes_in, data.len() as u64);
        }
        let mut sink = router_sink!(self, out);
        // A DTLS failure is also a `Closed` event, handled below.
        let _ = self.router.handle_datagram(now, idx, from, data, &mut sink);
        self.drain(now, out);
    }

    /// A packet of `track`, published on another worker.
    pub(crate) fn forward(
        &mut self,
        track: &Arc<PublishedTrack>,
        packet: &[u8],
        now: Instant,
        out: &mut ShardSink,
    ) {
        let Some(&tid) = self.by_track.get(&key(track)) else {
            return;
        };
        let mut sink = router_sink!(self, out);
        self.router.mirror_rtp(now, tid, packet, &mut sink);
        self.drain(now, out);
    }

    /// Executes a session's command for peer `id`.
    pub(crate) fn handle_command(
        &mut self,
        id: PeerId,
        cmd: PeerCommand,
        now: Instant,
        out: &mut ShardSink,
    ) {
        let Some(&idx) = self.by_id.get(&id) else {
            return cmd.refuse_closed();
        };
        trace!(peer = id, command = ?cmd, "engine command");
        match cmd {
            PeerCommand::ApplyOffer {
                sdp,
                can_publish,
                reply,
            } => {
                let result = self.apply_offer(idx, &sdp, can_publish, false);
                let _ = reply.send(result);
            }
            PeerCommand::ApplyViewerOffer { sdp, reply } => {
                let result = self.apply_offer(idx, &sdp, false, true);
                let _ = reply.send(result);
            }
            PeerCommand::CreateOffer { reply } => {
                let _ = reply.send(self.create_offer(idx));
            }
            PeerCommand::ApplyAnswer { sdp, reply } => {
                let mut sink = router_sink!(self, out);
                let result = self
                    .router
                    .apply_answer(now, idx, &sdp, &mut sink)
                    .map_err(media_error);
                let _ = reply.send(result);
            }
            PeerCommand::AddCandidate { candidate, reply } => {
                let _ = reply.send(self.add_candidate(idx, &candidate));
            }
            PeerCommand::Subscribe(track) => self.subscribe(idx, track, now, out),
            PeerCommand::Unsubscribe(track) => self.unsubscribe(idx, &track),
            PeerCommand::RequestKeyframe(track) => {
                let local = self.tracks.iter().position(|t| {
                    t.as_ref()
                        .is_some_and(|t| t.mirror_wanted.is_none() && t.track.id == track)
                });
                if let Some(tid) = local {
                    let mut sink = router_sink!(self, out);
                    self.router.request_keyframe(now, tid as TrackId, &mut sink);
                }
            }
            PeerCommand::Close => self.close(idx, "closed".into(), now, out),
        }
        self.drain(now, out);
    }

    /// A client offer (`viewer`: a WHEP viewer's, whose receiving sections become slots).
    fn apply_offer(
        &mut self,
        idx: PeerIdx,
        sdp: &str,
        can_publish: bool,
        viewer: bool,
    ) -> Result<String, MediaError> {
        let sends = crate::sdp::offers_to_send(sdp)?;
        if viewer {
            if sends {
                return Err(MediaError::InvalidSdp(
                    "a WHEP offer must not send media: use recvonly m-lines".into(),
                ));
            }
            if crate::sdp::receiving_kinds(sdp)?.is_empty() {
                return Err(MediaError::InvalidSdp(
                    "the offer receives no audio or video (WHEP offers are recvonly)".into(),
                ));
            }
            self.router.set_slots(idx);
        } else if sends && !can_publish {
            return Err(MediaError::PermissionDenied(
                "this token may not publish: the offer carries a track to send".into(),
            ));
        }
        let answer = self.router.renegotiate(idx, sdp).map_err(media_error)?;
        if let Some(p) = self.peers[idx].as_mut() {
            p.candidates.on_remote_ufrag(crate::sdp::ice_ufrag(sdp));
        }
        Ok(answer)
    }

    /// The server's offer, with the Cascade track on each sending mid.
    fn create_offer(&mut self, idx: PeerIdx) -> Result<ServerOffer, MediaError> {
        self.router.mark_renegotiate(idx);
        let sdp = self
            .router
            .offer(idx)
            .ok_or_else(|| MediaError::InvalidState("an offer is waiting for its answer".into()))?;
        let tracks = self
            .router
            .offered_tracks(idx)
            .into_iter()
            .filter_map(|(mid, tid)| {
                let t = self.tracks.get(tid as usize)?.as_ref()?;
                Some((mid, t.track.id.clone()))
            })
            .collect();
        trace!(%sdp, ?tracks, "engine offer");
        Ok(ServerOffer { sdp, tracks })
    }

    fn add_candidate(&mut self, idx: PeerIdx, c: &IceCandidate) -> Result<(), MediaError> {
        if c.candidate.is_empty() {
            return Ok(()); // end-of-candidates: nothing to do for an ICE-lite server
        }
        let described = self
            .router
            .peer(idx)
            .is_some_and(|p| !p.remote_identity.1.is_empty());
        let Some(p) = self.peers[idx].as_mut() else {
            return Err(MediaError::Closed);
        };
        p.candidates.take()?;
        if !described {
            return Err(MediaError::InvalidCandidate(
                "no remote description yet".into(),
            ));
        }
        // ICE-lite: the client's checks tell the server its addresses; a candidate is only
        // checked.
        let raw = c
            .candidate
            .strip_prefix("candidate:")
            .unwrap_or(&c.candidate);
        rtc::ice::candidate::unmarshal_candidate(raw)
            .map(drop)
            .map_err(|e| MediaError::InvalidCandidate(e.to_string()))
    }

    /// Starts forwarding `track` to peer `idx`.
    fn subscribe(
        &mut self,
        idx: PeerIdx,
        track: Arc<PublishedTrack>,
        now: Instant,
        out: &mut ShardSink,
    ) {
        let Some(p) = self.peers[idx].as_ref() else {
            return;
        };
        if track.publisher.id == p.id || p.subscribed.iter().any(|(t, _)| t.id == track.id) {
            return;
        }
        let me = p.me.clone();
        let tid = match self.by_track.get(&key(&track)) {
            Some(&tid) => {
                if let Some(Some(ShardTrack {
                    mirror_wanted: Some(n),
                    ..
                })) = self.tracks.get_mut(tid as usize)
                {
                    *n += 1;
                }
                tid
            }
            None => {
                let tid = self.router.add_mirror(track.engine.clone());
                self.router
                    .name_track(tid, track.participant.clone(), track.id.clone());
                self.set_track(tid, track.clone(), Some(1));
                tid
            }
        };
        track.add_subscriber(me);
        if let Some(p) = self.peers[idx].as_mut() {
            p.subscribed.push((track, tid));
        }
        let mut sink = router_sink!(self, out);
        self.router.want(now, idx, tid, &mut sink);
    }

    /// Stops forwarding the track `id` to peer `idx`.
    fn unsubscribe(&mut self, idx: PeerIdx, id: &str) {
        let Some(p) = self.peers[idx].as_mut() else {
            return;
        };
        let Some(i) = p.subscribed.iter().position(|(t, _)| t.id == id) else {
            return;
        };
        let (track, tid) = p.subscribed.swap_remove(i);
        track.remove_subscriber(p.id);
        self.router.unwant(idx, tid);
        self.release_mirror(tid);
    }

    /// One peer fewer wants the mirror `tid`; the last one ends it.
    fn release_mirror(&mut self, tid: TrackId) {
        let Some(Some(t)) = self.tracks.get_mut(tid as usize) else {
            return;
        };
        let Some(n) = t.mirror_wanted.as_mut() else {
            return;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            let t = self.tracks[tid as usize].take().expect("present");
            self.by_track.remove(&key(&t.track));
            self.router.end_mirror(tid);
        }
    }

    fn set_track(&mut self, tid: TrackId, track: Arc<PublishedTrack>, mirror: Option<usize>) {
        let i = tid as usize;
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, || None);
        }
        self.by_track.insert(key(&track), tid);
        self.tracks[i] = Some(ShardTrack {
            track,
            mirror_wanted: mirror,
        });
    }

    /// Timers: the router's, and peers silent for too long.
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut ShardSink) {
        let mut sink = router_sink!(self, out);
        // Failed peers are also `Closed` events.
        self.router.handle_timeout(now, &mut sink);
        let silent: Vec<PeerIdx> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let p = p.as_ref()?;
                (now.saturating_duration_since(p.last_seen) >= self.ice_timeout).then_some(i)
            })
            .collect();
        for idx in silent {
            MediaStats::add(&self.stats.peer_connection_failures, 1);
            self.close(idx, "ICE failed: nothing received".into(), now, out);
        }
        self.drain(now, out);
    }

    /// When `Shard::handle_timeout` next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let silent = self
            .peers
            .iter()
            .flatten()
            .map(|p| p.last_seen + self.ice_timeout)
            .min();
        match (self.router.poll_timeout(), silent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Closes every peer.
    pub(crate) fn shutdown(&mut self, now: Instant, out: &mut ShardSink) {
        for idx in 0..self.peers.len() {
            if self.peers[idx].is_some() {
                self.close(idx, "closed".into(), now, out);
            }
        }
        self.drain(now, out);
    }

    /// Closes peer `idx`: DTLS close_notify, its tracks end (its session is told each), its
    /// subscriptions end, and its session is told `Closed`.
    fn close(&mut self, idx: PeerIdx, reason: String, now: Instant, out: &mut ShardSink) {
        let Some(p) = self.peers[idx].take() else {
            return;
        };
        let mut sink = router_sink!(self, out);
        self.router.close(now, idx, &mut sink);
        self.by_id.remove(&p.id);
        for (track, tid) in &p.subscribed {
            track.remove_subscriber(p.id);
            self.release_mirror(*tid);
        }
        // The tracks it published end: tell its session before it is closed.
        while let Some(event) = self.router.poll_event() {
            if let RouterEvent::Ended(tid) = event {
                if let Some(t) = self.take_local(tid) {
                    let _ = p.events.try_send(PeerEvent::TrackUnpublished(t.id.clone()));
                }
            } else {
                self.on_event(event, now, out);
            }
        }
        let _ = p.events.try_send(PeerEvent::Closed(reason));
        self.removed.push((p.id, p.ufrag));
    }

    /// Handles what the router reported.
    fn drain(&mut self, now: Instant, out: &mut ShardSink) {
        // Each event is handled once; closing a peer ends at most its own tracks.
        while let Some(event) = self.router.poll_event() {
            self.on_event(event, now, out);
        }
    }

    fn on_event(&mut self, event: RouterEvent, now: Instant, out: &mut ShardSink) {
        debug!(worker = self.worker, ?event, "engine event");
        match event {
            RouterEvent::Connected(idx) => self.emit(idx, PeerEvent::Connected, now, out),
            RouterEvent::Closed(idx, reason) => {
                MediaStats::add(&self.stats.peer_connection_failures, 1);
                self.close(idx, reason, now, out);
            }
            RouterEvent::Published(tid) => {
                let Some((publisher, track)) = self.router.publication(tid).and_then(|(i, x)| {
                    let p = self.peers.get(i)?.as_ref()?;
                    Some((i, published_track(p, x)?))
                }) else {
                    return;
                };
                let track = Arc::new(track);
                self.router
                    .name_track(tid, track.participant.clone(), track.id.clone());
                self.set_track(tid, track.clone(), None);
                self.emit(publisher, PeerEvent::TrackPublished(track), now, out);
            }
            RouterEvent::Ended(tid) => {
                let publisher = self.tracks.get(tid as usize).and_then(|t| {
                    let t = t.as_ref()?;
                    let idx = *self.by_id.get(&t.track.publisher.id)?;
                    Some(idx)
                });
                if let (Some(t), Some(idx)) = (self.take_local(tid), publisher) {
                    self.emit(idx, PeerEvent::TrackUnpublished(t.id.clone()), now, out);
                }
            }
            RouterEvent::KeyframeWanted(tid) => {
                if let Some(Some(t)) = self.tracks.get(tid as usize) {
                    t.track.request_keyframe(now);
                }
            }
        }
    }

    /// Forgets the local track `tid`.
    fn take_local(&mut self, tid: TrackId) -> Option<Arc<PublishedTrack>> {
        let slot = self.tracks.get_mut(tid as usize)?;
        if slot.as_ref()?.mirror_wanted.is_some() {
            return None;
        }
        let t = slot.take()?;
        self.by_track.remove(&key(&t.track));
        Some(t.track)
    }

    /// Tells peer `idx`'s session `event`; a session that does not take it closes the peer.
    fn emit(&mut self, idx: PeerIdx, event: PeerEvent, now: Instant, out: &mut ShardSink) {
        let Some(p) = self.peers.get(idx).and_then(Option::as_ref) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = p.events.try_send(event) {
            warn!(
                peer = p.id,
                "the session does not take its peer events: peer closed"
            );
            self.close(idx, "slow session".into(), now, out);
        }
    }
}

/// The key of a track in [`Shard::by_track`]: its address, stable while the shard holds it.
fn key(track: &Arc<PublishedTrack>) -> usize {
    Arc::as_ptr(track) as usize
}

/// The [`PublishedTrack`] of `publication`, published by `p`.
fn published_track(
    p: &ShardPeer,
    publication: &crate::engine::peer::Publication,
) -> Option<PublishedTrack> {
    let info: &TrackInfo = &publication.info;
    let codec = info.codecs.first()?;
    let (kind, mime) = match info.kind {
        SectionKind::Audio => (TrackKind::Audio, format!("audio/{}", codec.name)),
        SectionKind::Video => (TrackKind::Video, format!("video/{}", codec.name)),
        _ => return None,
    };
    Some(PublishedTrack::new(
        crate::ids::new_id("TR"),
        p.participant.clone(),
        kind,
        mime,
        Some(publication.mid.clone()),
        p.me.clone(),
        info.clone(),
    ))
}

/// The protocol error of a negotiation error.
fn media_error(e: NegotiationError) -> MediaError {
    match e {
        NegotiationError::Glare | NegotiationError::NoOffer => {
            MediaError::InvalidState(e.to_string())
        }
        e => MediaError::InvalidSdp(e.to_string()),
    }
}
