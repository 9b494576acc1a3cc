//! The router of one room: its peers and tracks. A peer joins with an offer and gets Cascade's
//! answer: the streams it sends are published, and the sections it receives in are filled with
//! the room's tracks of that kind. Media from a publisher is fanned out to every subscription;
//! NACKs from a subscriber are answered from the track's cache; keyframe requests go to the
//! publisher (throttled); receiver reports, sender reports and NACKs go out on timers.
//!
//! Negotiation (joins, a peer's new offers, the server's own offers) is in
//! `router_negotiate.rs`.
//!
//! Bounds: [`MAX_PEERS`] peers, [`MAX_RETRANSMITS`] retransmissions per NACK; every object
//! below bounds its own state.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rtc::rtcp::packet::Packet as RtcpPacket;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use super::peer::EnginePeer;
use super::{PeerIdx, Sink, TrackId};
use crate::negotiation::NegotiationError;
use crate::negotiation::remote::{Direction, SectionKind};
use crate::send_stats::ntp_middle;
use crate::transport::dtls::{DtlsError, DtlsIdentity};
use crate::transport::peer_transport::Received;
use crate::up_track::Arrival;

/// Peers a router holds, at most.
pub const MAX_PEERS: usize = 1024;
/// Retransmissions one NACK may cause, at most.
pub const MAX_RETRANSMITS: usize = 64;
/// How often receiver and sender reports are sent.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The send buffer: the largest packet, an RTX header and the SRTP tag.
const BUFFER: usize =
    crate::packet_cache::MAX_PACKET + 2 + crate::transport::srtp::MAX_RTCP_OVERHEAD;

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

/// A published track: where it comes from and who receives it.
#[derive(Debug)]
struct TrackEntry {
    publisher: PeerIdx,
    publication: usize,
    subscribers: Vec<(PeerIdx, usize)>,
}

/// The router of one room.
pub struct Router {
    identity: DtlsIdentity,
    peers: Vec<Option<EnginePeer>>,
    tracks: Vec<Option<TrackEntry>>,
    scratch: Vec<u8>,
    repaired: Vec<u8>,
}

impl Router {
    /// A router presenting `identity` in DTLS.
    pub fn new(identity: DtlsIdentity) -> Self {
        Self {
            identity,
            peers: Vec::new(),
            tracks: Vec::new(),
            scratch: vec![0; BUFFER],
            repaired: vec![0; BUFFER],
        }
    }

    /// The peer `idx`, if present.
    pub fn peer(&self, idx: PeerIdx) -> Option<&EnginePeer> {
        self.peers.get(idx)?.as_ref()
    }

    /// Takes a datagram for `peer` from `from`; what it causes goes to `sink`. An error means
    /// the peer's DTLS failed: remove it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        from: SocketAddr,
        buf: &mut [u8],
        sink: &mut impl Sink,
    ) -> Result<(), DtlsError> {
        let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) else {
            return Ok(());
        };
        let received = p.transport.handle_datagram(now, from, buf);
        flush(peer, p, sink);
        match received? {
            Received::Rtp(len) => self.on_rtp(now, peer, &mut buf[..len], sink),
            Received::Rtcp(len) => self.on_rtcp(now, peer, &buf[..len], sink),
            // A new subscriber needs a keyframe of each track it receives.
            Received::Connected => {
                p.last_reports = Some(now);
                let ssrcs: Vec<u32> = p.subscriptions.iter().map(|s| s.down.ssrc()).collect();
                for ssrc in ssrcs {
                    self.on_keyframe_request(now, peer, ssrc, sink);
                }
            }
            _ => {}
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
        if publication.up.missing() > 0 && p.nack_at.is_none() {
            p.nack_at = Some(now);
        }
        let publication = &p.publications[i];
        let Some(entry) = tracks[publication.track as usize].as_ref() else {
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

    /// RTCP from a peer: NACKs and keyframe requests from subscribers, sender reports from
    /// publishers.
    fn on_rtcp(&mut self, now: Instant, peer: PeerIdx, data: &[u8], sink: &mut impl Sink) {
        let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut &data[..]) else {
            return;
        };
        for packet in packets {
            let any = packet.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.on_nack(now, peer, nack, sink);
            } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                self.on_keyframe_request(now, peer, pli.media_ssrc, sink);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
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
        let Some((publisher, publication, k)) = self.source_of(peer, nack.media_ssrc) else {
            return;
        };
        let Ok([pubp, Some(sub)]) = self.peers.get_disjoint_mut([publisher, peer]) else {
            return;
        };
        let Some(pubp) = pubp.as_ref() else {
            return;
        };
        let cache = pubp.publications[publication].up.cache();
        let seqs = nack.nacks.iter().flat_map(|pair| pair.into_iter());
        for seq in seqs.take(MAX_RETRANSMITS) {
            let down = &mut sub.subscriptions[k].down;
            let Ok(len) = down.retransmit(seq, cache, &mut self.scratch, &mut sub.twcc, now) else {
                continue;
            };
            if let Ok((to, len)) = sub.transport.protect_rtp(&mut self.scratch, len) {
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
        let Some((publisher, publication, _)) = self.source_of(peer, ssrc) else {
            return;
        };
        let Some(p) = self.peers[publisher].as_mut() else {
            return;
        };
        let publication = &mut p.publications[publication];
        if publication.info.kind != SectionKind::Video {
            return;
        }
        if let Some(pli) = publication.up.keyframe_request(now) {
            send_rtcp(publisher, p, &[Box::new(pli)], &mut self.scratch, sink);
        }
    }

    /// The publisher, publication and subscription behind what `peer` receives as `ssrc`.
    fn source_of(&self, peer: PeerIdx, ssrc: u32) -> Option<(PeerIdx, usize, usize)> {
        let sub = self.peers.get(peer)?.as_ref()?;
        let k = sub.subscription_of(ssrc)?;
        let entry = self
            .tracks
            .get(sub.subscriptions[k].track as usize)?
            .as_ref()?;
        (entry.publisher != peer).then_some((entry.publisher, entry.publication, k))
    }

    /// Timers at `now`: transport timeouts, NACKs to publishers, reports. Returns the peers
    /// whose DTLS failed (remove them).
    pub fn handle_timeout(&mut self, now: Instant, sink: &mut impl Sink) -> Vec<PeerIdx> {
        let mut failed = Vec::new();
        for (idx, slot) in self.peers.iter_mut().enumerate() {
            let Some(p) = slot.as_mut() else {
                continue;
            };
            if p.transport.handle_timeout(now).is_err() {
                failed.push(idx);
                continue;
            }
            let mut rtcp: Vec<Box<dyn RtcpPacket>> = Vec::new();
            if p.nack_at.is_some_and(|t| t <= now) {
                for publication in &mut p.publications {
                    if let Some(nack) = publication.up.poll_nack(now) {
                        rtcp.push(Box::new(nack));
                    }
                }
                let missing = p.publications.iter().any(|x| x.up.missing() > 0);
                p.nack_at = missing.then_some(now + crate::up_track::NACK_INTERVAL);
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
        self.peers
            .iter()
            .flatten()
            .flat_map(|p| {
                let report = p.last_reports.map(|t| t + REPORT_INTERVAL);
                [p.transport.poll_timeout(), report, p.nack_at]
            })
            .flatten()
            .min()
    }

    /// Removes `peer`: its subscriptions end, and so do its tracks, for every subscriber (whose
    /// section goes idle: [`Router::offer`] then tells it, and a later track may take it).
    pub fn leave(&mut self, peer: PeerIdx) {
        if let Some(slot) = self.peers.get_mut(peer) {
            *slot = None;
        }
        for id in 0..self.tracks.len() {
            match &mut self.tracks[id] {
                Some(e) if e.publisher == peer => self.end_track(id as TrackId),
                Some(e) => e.subscribers.retain(|(s, _)| *s != peer),
                None => {}
            }
        }
    }

    /// Ends `track` for every subscriber.
    fn end_track(&mut self, track: TrackId) {
        let Some(entry) = self.tracks.get_mut(track as usize).and_then(Option::take) else {
            return;
        };
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
        if let Some(section) = p.sections.iter_mut().find(|s| s.mid == gone.mid) {
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
