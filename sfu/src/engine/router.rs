//! The router of a set of peers: their tracks and subscriptions. A peer joins with an offer (or
//! is opened and offered first) and gets Cascade's answer: the streams it sends are published,
//! and the sections it receives in are filled with the tracks it wants: every track of the
//! router in *room* mode ([`Router::new`]: one room, the interop tests), the tracks named by
//! [`Router::want`] in *explicit* mode ([`Router::explicit`]: a worker's peers, whose rooms
//! decide the subscriptions). Tracks published elsewhere (another worker) enter as *mirrors*
//! ([`Router::add_mirror`]). Media from a publisher is fanned out to every subscription;
//! NACKs from a subscriber are answered from the track's cache; keyframe requests go to the
//! publisher (throttled); receiver reports, sender reports and NACKs go out on timers.
//!
//! Negotiation (joins, a peer's new offers, the server's own offers) is in
//! `router_negotiate.rs`.
//!
//! Bounds: [`MAX_PEERS`] peers, [`MAX_RETRANSMITS`] retransmissions per NACK; every object
//! below bounds its own state.

use crate::net::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rtc::rtcp::packet::Packet as RtcpPacket;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use super::peer::{EnginePeer, TrackInfo};
use super::{PeerIdx, Sink, TrackId};
use crate::downtrack::send_stats::ntp_middle;
use crate::negotiation::NegotiationError;
use crate::negotiation::remote::{Direction, SectionKind};
use crate::stats::MediaStats;
use crate::track::packet_cache::PacketCache;
use crate::track::up_track::{Arrival, UpTrack, UpTrackParams};
use crate::transport::dtls::{DtlsError, DtlsIdentity};
use crate::transport::peer_transport::Received;

/// Peers a router holds, at most.
pub const MAX_PEERS: usize = 1024;
/// Retransmissions one NACK may cause, at most.
pub const MAX_RETRANSMITS: usize = 64;
/// How often receiver and sender reports are sent.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The send buffer: the largest packet, an RTX header and the SRTP tag.
const BUFFER: usize =
    crate::track::packet_cache::MAX_PACKET + 2 + crate::transport::srtp::MAX_RTCP_OVERHEAD;

/// Why a peer could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The offer cannot be answered.
    #[error(transparent)]
    Negotiation(#[from] NegotiationError),
    /// The DTLS side could not be set up (e.g. a malformed fingerprint).
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// [`MAX_PEERS`] peers already.
    #[error("the router is full")]
    Full,
}

/// What the router tells its owner (drained with [`Router::poll_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterEvent {
    /// The peer's DTLS handshake completed: media flows.
    Connected(PeerIdx),
    /// The peer closed DTLS or its DTLS failed: remove it ([`Router::leave`]).
    Closed(PeerIdx, String),
    /// The first packet of a local track arrived: announce it.
    Published(TrackId),
    /// A local track ended (its section stopped sending, or its publisher left).
    Ended(TrackId),
    /// A subscriber of a mirror wants a keyframe: ask the track's origin.
    KeyframeWanted(TrackId),
}

/// Events queued for the owner, at most (the owner drains them after every call; past this,
/// the oldest are dropped).
pub const MAX_EVENTS: usize = 4096;

/// Where a track's packets come from.
#[derive(Debug)]
enum Source {
    /// A publication of a peer of this router.
    Local {
        publisher: PeerIdx,
        publication: usize,
    },
    /// A track published elsewhere, its packets handed in by [`Router::mirror_rtp`] and kept in
    /// its own cache for this router's subscribers' NACKs.
    Mirror { up: Box<UpTrack>, info: TrackInfo },
}

/// A track: where it comes from, how subscribers see it, and who receives it.
#[derive(Debug)]
struct TrackEntry {
    source: Source,
    /// The `msid` subscribers see: stream id and track id.
    names: Option<(String, String)>,
    subscribers: Vec<(PeerIdx, usize)>,
}

impl TrackEntry {
    fn publisher(&self) -> Option<PeerIdx> {
        match self.source {
            Source::Local { publisher, .. } => Some(publisher),
            Source::Mirror { .. } => None,
        }
    }
}

/// The router of a set of peers.
pub struct Router {
    identity: DtlsIdentity,
    /// Room mode: every peer wants every track.
    auto: bool,
    peers: Vec<Option<EnginePeer>>,
    tracks: Vec<Option<TrackEntry>>,
    events: std::collections::VecDeque<RouterEvent>,
    stats: Arc<MediaStats>,
    scratch: Vec<u8>,
    repaired: Vec<u8>,
}

impl Router {
    /// A router of one room presenting `identity` in DTLS: every peer receives every track.
    pub fn new(identity: DtlsIdentity) -> Self {
        Self {
            identity,
            auto: true,
            peers: Vec::new(),
            tracks: Vec::new(),
            events: Default::default(),
            stats: Arc::default(),
            scratch: vec![0; BUFFER],
            repaired: vec![0; BUFFER],
        }
    }

    /// A router whose peers receive the tracks [`Router::want`] names.
    pub fn explicit(identity: DtlsIdentity) -> Self {
        Self {
            auto: false,
            ..Self::new(identity)
        }
    }

    /// The same router counting feedback and retransmissions into `stats`.
    pub fn with_stats(self, stats: Arc<MediaStats>) -> Self {
        Self { stats, ..self }
    }

    /// The peer `idx`, if present.
    pub fn peer(&self, idx: PeerIdx) -> Option<&EnginePeer> {
        self.peers.get(idx)?.as_ref()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<RouterEvent> {
        self.events.pop_front()
    }

    fn emit(&mut self, event: RouterEvent) {
        emit(&mut self.events, event);
    }

    /// Names `track` for its subscribers' `msid` (stream id, track id).
    pub fn name_track(&mut self, track: TrackId, stream: String, id: String) {
        if let Some(entry) = self.tracks.get_mut(track as usize).and_then(Option::as_mut) {
            entry.names = Some((stream, id));
        }
    }

    /// The local publication behind `track`: its publisher and what it publishes.
    pub fn publication(
        &self,
        track: TrackId,
    ) -> Option<(PeerIdx, &crate::engine::peer::Publication)> {
        let entry = self.tracks.get(track as usize)?.as_ref()?;
        let Source::Local {
            publisher,
            publication,
        } = entry.source
        else {
            return None;
        };
        let p = self.peers.get(publisher)?.as_ref()?;
        Some((publisher, p.publications.get(publication)?))
    }

    /// Adds a track published elsewhere, described by `info`; its packets come through
    /// [`Router::mirror_rtp`].
    pub fn add_mirror(&mut self, info: TrackInfo) -> TrackId {
        let clock_rate = info.codecs.first().map_or(90_000, |c| c.clock_rate);
        let up = UpTrack::new(UpTrackParams {
            ssrc: 0,
            local_ssrc: 0,
            clock_rate,
            rtx_payload_types: Vec::new(),
            nack: false,
            cache: super::peer::cache_packets(info.kind),
        });
        self.tracks.push(Some(TrackEntry {
            source: Source::Mirror {
                up: Box::new(up),
                info,
            },
            names: None,
            subscribers: Vec::new(),
        }));
        (self.tracks.len() - 1) as TrackId
    }

    /// A packet of the mirror `track` (decrypted, as its publisher sent it): into its cache
    /// once, then to every subscription.
    pub fn mirror_rtp(
        &mut self,
        now: Instant,
        track: TrackId,
        packet: &[u8],
        sink: &mut impl Sink,
    ) {
        let Some(Some(TrackEntry {
            source: Source::Mirror { up, .. },
            ..
        })) = self.tracks.get_mut(track as usize)
        else {
            return;
        };
        let Ok(Arrival::New(ext)) = up.on_rtp(packet, now) else {
            return;
        };
        fan_out(
            &mut self.peers,
            &self.tracks,
            track,
            packet,
            ext,
            &mut self.scratch,
            now,
            sink,
        );
    }

    /// Ends the mirror `track` for its subscribers.
    pub fn end_mirror(&mut self, track: TrackId) {
        if matches!(
            self.tracks.get(track as usize),
            Some(Some(TrackEntry {
                source: Source::Mirror { .. },
                ..
            }))
        ) {
            self.end_track(track);
        }
    }

    /// `peer` wants to receive `track` (explicit mode). True if it started at once in an idle
    /// sending section (a WHEP viewer's slot); otherwise the next [`Router::offer`] carries it.
    pub fn want(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        track: TrackId,
        sink: &mut impl Sink,
    ) -> bool {
        let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) else {
            return false;
        };
        if p.wanted.contains(&track) {
            return false;
        }
        p.wanted.push(track);
        self.fill_slot(now, peer, track, sink)
    }

    /// `peer` no longer wants `track`: its subscription ends (the next offer says so).
    pub fn unwant(&mut self, peer: PeerIdx, track: TrackId) {
        let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) else {
            return;
        };
        p.wanted.retain(|t| *t != track);
        if let Some(k) = p.subscriptions.iter().position(|s| s.track == track) {
            if let Some(entry) = self.tracks.get_mut(track as usize).and_then(Option::as_mut) {
                entry.subscribers.retain(|sub| *sub != (peer, k));
            }
            self.end_subscription(peer, k, true);
        }
    }

    /// Asks the publisher of the local `track` for a keyframe (throttled).
    pub fn request_keyframe(&mut self, now: Instant, track: TrackId, sink: &mut impl Sink) {
        let Some(Some(TrackEntry {
            source:
                Source::Local {
                    publisher,
                    publication,
                },
            ..
        })) = self.tracks.get(track as usize)
        else {
            return;
        };
        let (publisher, publication) = (*publisher, *publication);
        let Some(p) = self.peers[publisher].as_mut() else {
            return;
        };
        let Some(publication) = p.publications.get_mut(publication) else {
            return;
        };
        if publication.info.kind != SectionKind::Video {
            return;
        }
        if let Some(pli) = publication.up.keyframe_request(now) {
            MediaStats::add(&self.stats.keyframe_requests_sent, 1);
            send_rtcp(publisher, p, &[Box::new(pli)], &mut self.scratch, sink);
        }
    }

    /// Takes a datagram for `peer` from `from`; what it causes goes to `sink`. An error means
    /// the peer's DTLS failed: remove it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        from: Path,
        buf: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), DtlsError> {
        let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) else {
            return Ok(());
        };
        let received = p.transport.handle_datagram(now, from, buf);
        flush(peer, p, sink);
        let received = match received {
            Ok(received) => received,
            Err(e) => {
                self.emit(RouterEvent::Closed(peer, format!("DTLS failed: {e}")));
                return Err(e);
            }
        };
        match received {
            Received::Rtp(len) => self.on_rtp(now, peer, &mut buf[..len], sink),
            Received::Rtcp(len) => self.on_rtcp(now, peer, &buf[..len], sink),
            // A new subscriber needs a keyframe of each track it receives.
            Received::Connected => {
                p.last_reports = Some(now);
                let ssrcs: Vec<u32> = p.subscriptions.iter().map(|s| s.down.ssrc()).collect();
                self.emit(RouterEvent::Connected(peer));
                for ssrc in ssrcs {
                    self.on_keyframe_request(now, peer, ssrc, sink);
                }
            }
            Received::Closed => self.emit(RouterEvent::Closed(peer, "DTLS closed".into())),
            Received::Dropped(why) => tracing::trace!(peer, %from, ?why, "datagram dropped"),
            Received::Handled => tracing::trace!(peer, %from, first = buf.first(), "handled"),
        }
        Ok(())
    }

    /// A publisher's packet: into its up-track once, then to every subscription.
    fn on_rtp(&mut self, now: Instant, peer: PeerIdx, packet: &mut [u8], sink: &mut impl Sink) {
        let Self {
            peers,
            tracks,
            scratch,
            repaired,
            events,
            ..
        } = self;
        let Some(p) = peers[peer].as_mut() else {
            return;
        };
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let Some((i, rtx)) = p.publication_of(ssrc).or_else(|| p.bind_unsignaled(packet)) else {
            return;
        };
        let packet = &*packet;
        let publication = &mut p.publications[i];
        let packet = if rtx {
            match publication.up.repair(packet, repaired) {
                Ok(len) => &repaired[..len],
                Err(_) => return,
            }
        } else {
            packet
        };
        let Ok(Arrival::New(ext)) = publication.up.on_rtp(packet, now) else {
            return;
        };
        if !publication.announced {
            publication.announced = true;
            emit(events, RouterEvent::Published(publication.track));
        }
        let track = publication.track;
        if publication.up.missing() > 0 && p.nack_at.is_none() {
            p.nack_at = Some(now);
        }
        if sink.publish(track, ext, packet) {
            fan_out(peers, tracks, track, packet, ext, scratch, now, sink);
        }
    }

    /// RTCP from a peer: NACKs and keyframe requests from subscribers, sender reports from
    /// publishers.
    fn on_rtcp(&mut self, now: Instant, peer: PeerIdx, data: &[u8], sink: &mut impl Sink) {
        let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &data[..]) else {
            return;
        };
        for packet in packets {
            let any = packet.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                MediaStats::add(&self.stats.nacks_received, 1);
                self.on_nack(now, peer, nack, sink);
            } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                MediaStats::add(&self.stats.plis_received, 1);
                self.on_keyframe_request(now, peer, pli.media_ssrc, sink);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                MediaStats::add(&self.stats.firs_received, 1);
                for entry in &fir.fir {
                    self.on_keyframe_request(now, peer, entry.ssrc, sink);
                }
            } else if let Some(sr) = any.downcast_ref::<SenderReport>()
                && let Some(p) = self.peers[peer].as_mut()
                && let Some((i, false)) = p.publication_of(sr.ssrc)
            {
                p.publications[i]
                    .up
                    .on_sender_report(ntp_middle(sr.ntp_time), now);
            }
        }
    }

    /// A subscriber's NACK: answered from the track's cache.
    fn on_nack(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        nack: &TransportLayerNack,
        sink: &mut impl Sink,
    ) {
        let Some((track, k)) = self.source_of(peer, nack.media_ssrc) else {
            return;
        };
        let Some(entry) = self.tracks[track as usize].as_ref() else {
            return;
        };
        let (cache, sub): (&PacketCache, _) = match &entry.source {
            Source::Local {
                publisher,
                publication,
            } => {
                let Ok([Some(pubp), Some(sub)]) = self.peers.get_disjoint_mut([*publisher, peer])
                else {
                    return;
                };
                (pubp.publications[*publication].up.cache(), sub)
            }
            Source::Mirror { up, .. } => {
                let Some(sub) = self.peers[peer].as_mut() else {
                    return;
                };
                (up.cache(), sub)
            }
        };
        let seqs = nack.nacks.iter().flat_map(|pair| pair.into_iter());
        for seq in seqs.take(MAX_RETRANSMITS) {
            let down = &mut sub.subscriptions[k].down;
            let Ok(len) = down.retransmit(seq, cache, &mut self.scratch, &mut sub.twcc, now) else {
                continue;
            };
            if let Ok((to, len)) = sub.transport.protect_rtp(&mut self.scratch, len) {
                MediaStats::add(&self.stats.retransmissions, 1);
                sink.send(peer, to, &self.scratch[..len]);
            }
        }
    }

    /// A subscriber asks for a keyframe of the video track it receives as `ssrc`: the
    /// publisher is asked (throttled).
    fn on_keyframe_request(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        ssrc: u32,
        sink: &mut impl Sink,
    ) {
        let Some((track, _)) = self.source_of(peer, ssrc) else {
            return;
        };
        match &self.tracks[track as usize] {
            Some(TrackEntry {
                source: Source::Mirror { info, .. },
                ..
            }) if info.kind == SectionKind::Video => {
                self.emit(RouterEvent::KeyframeWanted(track));
            }
            Some(TrackEntry {
                source: Source::Mirror { .. },
                ..
            }) => {}
            Some(_) => self.request_keyframe(now, track, sink),
            None => {}
        }
    }

    /// The track and subscription behind what `peer` receives as `ssrc`.
    fn source_of(&self, peer: PeerIdx, ssrc: u32) -> Option<(TrackId, usize)> {
        let sub = self.peers.get(peer)?.as_ref()?;
        let k = sub.subscription_of(ssrc)?;
        let track = sub.subscriptions[k].track;
        let entry = self.tracks.get(track as usize)?.as_ref()?;
        (entry.publisher() != Some(peer)).then_some((track, k))
    }

    /// Timers at `now`: transport timeouts, NACKs to publishers, reports. Returns the peers
    /// whose DTLS failed (remove them).
    pub fn handle_timeout(&mut self, now: Instant, sink: &mut impl Sink) -> Vec<PeerIdx> {
        let mut failed = Vec::new();
        for (idx, slot) in self.peers.iter_mut().enumerate() {
            let Some(p) = slot.as_mut() else {
                continue;
            };
            if peer_deadline(p).is_none_or(|d| d > now) {
                continue;
            }
            if let Err(e) = p.transport.handle_timeout(now) {
                emit(
                    &mut self.events,
                    RouterEvent::Closed(idx, format!("DTLS failed: {e}")),
                );
                failed.push(idx);
                continue;
            }
            let mut rtcp: Vec<Box<dyn RtcpPacket>> = Vec::new();
            if p.nack_at.is_some_and(|t| t <= now) {
                for publication in &mut p.publications {
                    if let Some(nack) = publication.up.poll_nack(now) {
                        MediaStats::add(&self.stats.nacks_sent, 1);
                        rtcp.push(Box::new(nack));
                    }
                }
                let missing = p.publications.iter().any(|x| x.up.missing() > 0);
                p.nack_at = missing.then_some(now + crate::track::up_track::NACK_INTERVAL);
            }
            if p.last_reports
                .is_some_and(|t| now.saturating_duration_since(t) >= REPORT_INTERVAL)
            {
                p.last_reports = Some(now);
                let reports: Vec<_> = p
                    .publications
                    .iter_mut()
                    .filter_map(|publication| publication.up.reception_report(now))
                    .collect();
                if !reports.is_empty() {
                    rtcp.push(Box::new(ReceiverReport {
                        ssrc: p.local_ssrc,
                        reports,
                        ..Default::default()
                    }));
                }
                let wall = SystemTime::now();
                for s in &p.subscriptions {
                    if let Some(sr) = s.down.sender_report(now, wall) {
                        rtcp.push(Box::new(sr));
                    }
                }
            }
            if !rtcp.is_empty() {
                send_rtcp(idx, p, &rtcp, &mut self.scratch, sink);
            }
            flush(idx, p, sink);
        }
        failed
    }

    /// When [`Router::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.iter().flatten().filter_map(peer_deadline).min()
    }

    /// Removes `peer`: its subscriptions end, and so do its tracks, for every subscriber (whose
    /// section goes idle: [`Router::offer`] then tells it, and a later track may take it).
    pub fn leave(&mut self, peer: PeerIdx) {
        if let Some(slot) = self.peers.get_mut(peer) {
            *slot = None;
        }
        for id in 0..self.tracks.len() {
            match &mut self.tracks[id] {
                Some(e) if e.publisher() == Some(peer) => self.end_track(id as TrackId),
                Some(e) => e.subscribers.retain(|(s, _)| *s != peer),
                None => {}
            }
        }
    }

    /// Sends `peer` DTLS close_notify, then removes it ([`Router::leave`]).
    pub fn close(&mut self, now: Instant, peer: PeerIdx, sink: &mut impl Sink) {
        if let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) {
            p.transport.close(now);
            flush(peer, p, sink);
        }
        self.leave(peer);
    }

    /// Ends `track` for every subscriber.
    fn end_track(&mut self, track: TrackId) {
        let Some(entry) = self.tracks.get_mut(track as usize).and_then(Option::take) else {
            return;
        };
        if entry.publisher().is_some() {
            self.emit(RouterEvent::Ended(track));
        }
        for p in self.peers.iter_mut().flatten() {
            p.wanted.retain(|t| *t != track);
        }
        let mut ended = entry.subscribers;
        // Highest index first: removing one never moves another still to be removed.
        ended.sort_unstable_by(|a, b| b.cmp(a));
        for (s, k) in ended {
            self.end_subscription(s, k, true);
        }
    }

    /// `peer` stopped receiving its subscription `k` (its own renegotiation).
    fn unsubscribe(&mut self, peer: PeerIdx, k: usize) {
        let track = self
            .peers
            .get(peer)
            .and_then(Option::as_ref)
            .and_then(|p| p.subscriptions.get(k))
            .map(|s| s.track);
        if let Some(entry) = track
            .and_then(|t| self.tracks.get_mut(t as usize))
            .and_then(Option::as_mut)
        {
            entry.subscribers.retain(|sub| *sub != (peer, k));
        }
        // The peer itself made the section idle: nothing to offer for it.
        self.end_subscription(peer, k, false);
    }

    /// Ends `peer`'s subscription `k`: the section that carried it sends nothing any more (to
    /// be offered so if `offer`: the track is gone; not if the peer itself stopped it).
    fn end_subscription(&mut self, peer: PeerIdx, k: usize, offer: bool) {
        let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) else {
            return;
        };
        if k >= p.subscriptions.len() {
            return;
        }
        let gone = p.subscriptions.swap_remove(k);
        if p.slots {
            // A viewer's slot stays negotiated, sending, with its down-track (its munger keeps
            // the stream continuous for the next track).
            p.idle.push((gone.mid, gone.down));
        } else if let Some(section) = p.sections.iter_mut().find(|s| s.mid == gone.mid) {
            section.send = None;
            section.direction = Direction::from_flags(false, section.direction.receives());
            p.renegotiate |= offer;
        }
        // The last subscription moved into `k`: its track's entry follows.
        if let Some(moved) = p.subscriptions.get(k) {
            let old = p.subscriptions.len();
            if let Some(entry) = self
                .tracks
                .get_mut(moved.track as usize)
                .and_then(Option::as_mut)
            {
                for sub in &mut entry.subscribers {
                    if *sub == (peer, old) {
                        sub.1 = k;
                    }
                }
            }
        }
    }
}

/// When `p`'s timers next have something to do: its transport's, its reports, its NACKs.
fn peer_deadline(p: &EnginePeer) -> Option<Instant> {
    let report = p.last_reports.map(|t| t + REPORT_INTERVAL);
    [p.transport.poll_timeout(), report, p.nack_at]
        .into_iter()
        .flatten()
        .min()
}

fn emit(events: &mut std::collections::VecDeque<RouterEvent>, event: RouterEvent) {
    if events.len() == MAX_EVENTS {
        events.pop_front();
    }
    events.push_back(event);
}

/// A track's new packet (extended sequence number `ext`) to each of its subscriptions: copied
/// into `scratch`, rewritten, protected and sent.
#[allow(clippy::too_many_arguments)]
fn fan_out(
    peers: &mut [Option<EnginePeer>],
    tracks: &[Option<TrackEntry>],
    track: TrackId,
    packet: &[u8],
    ext: u64,
    scratch: &mut [u8],
    now: Instant,
    sink: &mut impl Sink,
) {
    let Some(entry) = tracks[track as usize].as_ref() else {
        return;
    };
    for &(s, k) in &entry.subscribers {
        let Some(sub) = peers[s].as_mut() else {
            continue;
        };
        let Some(subscription) = sub.subscriptions.get_mut(k) else {
            continue;
        };
        let Ok(len) = subscription
            .down
            .forward(packet, ext, scratch, &mut sub.twcc, now)
        else {
            continue;
        };
        if let Ok((to, len)) = sub.transport.protect_rtp(scratch, len) {
            sink.send(s, to, &scratch[..len]);
        }
    }
}

/// Sends `packets` to `peer` as one compound SRTCP packet.
fn send_rtcp(
    idx: PeerIdx,
    peer: &mut EnginePeer,
    packets: &[Box<dyn RtcpPacket>],
    scratch: &mut [u8],
    sink: &mut impl Sink,
) {
    let Ok(data) = rtc::rtcp::packet::marshal(packets) else {
        return;
    };
    let Some(buf) = scratch.get_mut(..data.len()) else {
        return;
    };
    buf.copy_from_slice(&data);
    if let Ok((to, len)) = peer.transport.protect_rtcp(scratch, data.len()) {
        sink.send(idx, to, &scratch[..len]);
    }
}

/// Sends what `peer`'s transport has queued (STUN answers, DTLS).
fn flush(idx: PeerIdx, peer: &mut EnginePeer, sink: &mut impl Sink) {
    while let Some(t) = peer.transport.poll_transmit() {
        sink.send(idx, t.to, &t.data);
    }
}

#[path = "router_negotiate.rs"]
mod negotiate;

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
