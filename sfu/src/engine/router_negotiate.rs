//! The router's negotiation with its peers: joins answered, a joined peer's new offers, the
//! server's own offers of the room's new tracks and their answers; what each settles becomes
//! publications and subscriptions.

use std::time::Instant;

use super::{JoinError, MAX_PEERS, Router, Source, TrackEntry};
use crate::downtrack::down_track::{DownTrack, DownTrackParams, PayloadMapping};
use crate::engine::peer::{EnginePeer, PendingOffer, Subscription, TrackInfo};
use crate::engine::{PeerIdx, Sink, TrackId};
use crate::negotiation::NegotiationError;
use crate::negotiation::answer::{self, LocalTransport, NegotiatedSection, SendTrack};
use crate::negotiation::capabilities::{MID_URI, REPAIRED_RID_URI, RID_URI, TRANSPORT_CC_URI};
use crate::negotiation::offer::{self, SessionSection};
use crate::negotiation::remote::{RemoteDescription, RemoteSection, SectionKind};
use crate::transport::ice_lite::Credentials;
use crate::transport::peer_transport::PeerTransport;

impl Router {
    /// A peer joins with `offer`, answered with `local` (its ICE credentials, candidates and
    /// session id; the fingerprint is the router's): its index and the answer.
    pub fn join(
        &mut self,
        offer: &str,
        local: LocalTransport,
    ) -> Result<(PeerIdx, String), JoinError> {
        let idx = self.open(local)?;
        match self.renegotiate(idx, offer) {
            Ok(answer) => Ok((idx, answer)),
            Err(e) => {
                self.peers[idx] = None;
                Err(e.into())
            }
        }
    }

    /// A peer with no description yet, answering ICE with `local`'s credentials: it is offered
    /// first ([`Router::offer`]) or offers ([`Router::renegotiate`]).
    pub fn open(&mut self, mut local: LocalTransport) -> Result<PeerIdx, JoinError> {
        let idx = match self.peers.iter().position(Option::is_none) {
            Some(free) => free,
            None if self.peers.len() < MAX_PEERS => {
                self.peers.push(None);
                self.peers.len() - 1
            }
            None => return Err(JoinError::Full),
        };
        let credentials = Credentials {
            ufrag: local.ice_ufrag.clone(),
            pwd: local.ice_pwd.clone(),
        };
        let transport = PeerTransport::awaiting(credentials, &self.identity)?;
        local.fingerprint = self.identity.fingerprint().to_owned();
        self.peers[idx] = Some(EnginePeer::new(transport, local, &[]));
        Ok(idx)
    }

    /// Makes `peer` a viewer that cannot renegotiate (WHEP): its receiving sections become
    /// sending slots, filled by [`Router::want`]. Call before its offer.
    pub fn set_slots(&mut self, peer: PeerIdx) {
        if let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) {
            p.slots = true;
        }
    }

    /// Whether `peer` wants `track`: every track in room mode, those named by
    /// [`Router::want`] otherwise.
    fn wants(&self, peer: &EnginePeer, track: TrackId) -> bool {
        self.auto || peer.wanted.contains(&track)
    }

    /// Fills an idle slot of `peer` with `track` (see [`Router::want`]).
    pub(super) fn fill_slot(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        track: TrackId,
        sink: &mut impl Sink,
    ) -> bool {
        let Some(mut p) = self.peers.get_mut(peer).and_then(Option::take) else {
            return false;
        };
        let kind = self.tracks[track as usize]
            .as_ref()
            .and_then(|e| self.track_info(e))
            .map(|i| i.kind);
        let slot = p.sections.iter().position(|s| {
            p.slots
                && Some(s.kind) == kind
                && s.send.is_some()
                && s.direction.sends()
                && !p.subscriptions.iter().any(|x| x.mid == s.mid)
        });
        let filled = slot.is_some_and(|i| {
            let section = p.sections[i].clone();
            self.subscribe(peer, &mut p, &section, track)
        });
        let ssrc = p.subscriptions.last().map(|s| s.down.ssrc());
        let connected = p.transport.is_connected();
        self.peers[peer] = Some(p);
        if let (true, true, Some(ssrc)) = (filled, connected, ssrc) {
            self.on_keyframe_request(now, peer, ssrc, sink);
        }
        filled
    }

    /// `peer` (at `idx`) publishes the stream of `section` as a new track, unless that
    /// section's track is live already; a section whose track ended publishes in its place.
    fn publish(&mut self, idx: PeerIdx, peer: &mut EnginePeer, section: &NegotiatedSection) {
        let found = peer.publications.iter().position(|x| x.mid == section.mid);
        let live = found.is_some_and(|i| {
            let track = peer.publications[i].track as usize;
            self.tracks.get(track).is_some_and(Option::is_some)
        });
        if live {
            return;
        }
        let id = self.tracks.len() as TrackId;
        if !peer.publish(section, id) {
            return;
        }
        let publication = match found {
            Some(i) => {
                let new = peer.publications.pop().expect("just published");
                peer.publications[i] = new;
                i
            }
            None => peer.publications.len() - 1,
        };
        self.tracks.push(Some(TrackEntry {
            source: Source::Local {
                publisher: idx,
                publication,
            },
            names: None,
            subscribers: Vec::new(),
        }));
    }

    /// `peer` (at `idx`) receives `track` in `section`, if the section sends it; whether it
    /// does. A slot's idle down-track is reused (the subscriber's stream stays continuous).
    fn subscribe(
        &mut self,
        idx: PeerIdx,
        peer: &mut EnginePeer,
        section: &SessionSection,
        track: TrackId,
    ) -> bool {
        let Some(send) = section.send.as_ref().filter(|_| section.direction.sends()) else {
            return false;
        };
        let Some(info) = self.tracks[track as usize]
            .as_ref()
            .and_then(|e| self.track_info(e))
        else {
            return false;
        };
        let params = down_track_params(&info, section, send);
        let down = match peer.idle.iter().position(|(mid, _)| *mid == section.mid) {
            Some(i) => {
                let (_, mut down) = peer.idle.swap_remove(i);
                down.retarget(params);
                down
            }
            None => DownTrack::new(params),
        };
        peer.subscriptions.push(Subscription {
            track,
            mid: section.mid.clone(),
            down,
        });
        if let Some(entry) = self.tracks[track as usize].as_mut() {
            entry.subscribers.push((idx, peer.subscriptions.len() - 1));
        }
        true
    }

    /// The server's offer to `peer` of the room's tracks it does not receive yet (in sections
    /// of their kind that send nothing, or new ones) and of the sections whose track ended, or
    /// `None` if nothing changed or an offer is already waiting for its answer.
    pub fn offer(&mut self, peer: PeerIdx) -> Option<String> {
        let p = self.peers.get(peer)?.as_ref()?;
        if p.pending.is_some() {
            return None;
        }
        let mut sections = p.sections.clone();
        let mut placed = Vec::new();
        for (id, entry) in self.tracks.iter().enumerate() {
            let Some(entry) = entry else {
                continue;
            };
            let id = id as TrackId;
            if entry.publisher() == Some(peer)
                || !self.wants(p, id)
                || p.subscriptions.iter().any(|s| s.track == id)
            {
                continue;
            }
            let Some(info) = self.track_info(entry) else {
                continue;
            };
            let Some(send) = send_track(id, entry, &info) else {
                continue;
            };
            placed.push((offer::place(&mut sections, info.kind, send), id));
        }
        if placed.is_empty() && !p.renegotiate {
            return None;
        }
        let p = self.peers[peer].as_mut()?;
        p.local.session_version += 1;
        let sdp = offer::offer(&p.local, &sections);
        p.pending = Some(PendingOffer { sections, placed });
        Some(sdp)
    }

    /// The next [`Router::offer`] to `peer` is made even if nothing changed.
    pub fn mark_renegotiate(&mut self, peer: PeerIdx) {
        if let Some(p) = self.peers.get_mut(peer).and_then(Option::as_mut) {
            p.renegotiate = true;
        }
    }

    /// The track on each sending mid of the offer waiting for `peer`'s answer (tracks it
    /// receives already, and those the offer adds).
    pub fn offered_tracks(&self, peer: PeerIdx) -> Vec<(String, TrackId)> {
        let Some(p) = self.peers.get(peer).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let Some(pending) = &p.pending else {
            return Vec::new();
        };
        let sending = |mid: &str| {
            pending
                .sections
                .iter()
                .any(|s| s.mid == mid && s.send.is_some() && s.direction.sends())
        };
        let mut out: Vec<(String, TrackId)> = p
            .subscriptions
            .iter()
            .filter(|s| sending(&s.mid))
            .map(|s| (s.mid.clone(), s.track))
            .collect();
        for &(i, track) in &pending.placed {
            if let Some(section) = pending.sections.get(i) {
                out.push((section.mid.clone(), track));
            }
        }
        out
    }

    /// Applies `peer`'s answer to the server's offer: the tracks it accepted start flowing
    /// (with a keyframe request for video). An answer that cannot be applied drops the offer;
    /// the next [`Router::offer`] makes a new one.
    pub fn apply_answer(
        &mut self,
        now: Instant,
        peer: PeerIdx,
        sdp: &str,
        sink: &mut impl Sink,
    ) -> Result<(), NegotiationError> {
        let p = self
            .peers
            .get_mut(peer)
            .and_then(Option::as_mut)
            .ok_or(NegotiationError::NoOffer)?;
        let PendingOffer { sections, placed } =
            p.pending.take().ok_or(NegotiationError::NoOffer)?;
        let answer = RemoteDescription::parse(sdp)?;
        let negotiated = offer::apply_answer(&sections, &answer)?;
        let p = self.peers[peer].as_mut().expect("present");
        let mut connected_now = false;
        if p.remote_identity.1.is_empty() {
            connected_now = p
                .transport
                .set_remote_fingerprint(&answer.fingerprint)
                .map_err(|e| NegotiationError::Fingerprint(e.to_string()))?;
            p.remote_identity = (answer.ice_ufrag.clone(), answer.fingerprint.clone());
            if answer.setup == "passive" {
                p.transport
                    .dtls_connect(now)
                    .map_err(|e| NegotiationError::Fingerprint(e.to_string()))?;
            }
        } else if !answer
            .fingerprint
            .eq_ignore_ascii_case(&p.remote_identity.1)
        {
            return Err(NegotiationError::NewSession("another DTLS fingerprint"));
        }
        let mut p = self.peers[peer].take().expect("present");
        p.sections = negotiated.iter().map(SessionSection::from).collect();
        p.renegotiate = false;
        let before = if connected_now {
            0
        } else {
            p.subscriptions.len()
        };
        for (i, track) in placed {
            self.subscribe(peer, &mut p, &SessionSection::from(&negotiated[i]), track);
        }
        let ssrcs: Vec<u32> = p.subscriptions[before..]
            .iter()
            .map(|s| s.down.ssrc())
            .collect();
        let connected = p.transport.is_connected();
        if connected_now {
            p.last_reports = Some(now);
        }
        super::flush(peer, &mut p, sink);
        self.peers[peer] = Some(p);
        if connected_now {
            self.emit(super::RouterEvent::Connected(peer));
        }
        if connected {
            for ssrc in ssrcs {
                self.on_keyframe_request(now, peer, ssrc, sink);
            }
        }
        Ok(())
    }

    /// A peer's offer (its first, or a new one), answered on the same transport: the streams
    /// of its new sending sections are published, those whose section stopped sending end (for
    /// every subscriber), tracks it stopped receiving end, and its new receiving sections get
    /// the tracks it wants. The DTLS fingerprint must stay (else join again); a new ICE ufrag
    /// is an ICE restart (the server, ICE-lite, keeps its own credentials).
    pub fn renegotiate(&mut self, peer: PeerIdx, offer: &str) -> Result<String, NegotiationError> {
        let p = self
            .peers
            .get(peer)
            .and_then(Option::as_ref)
            .ok_or(NegotiationError::NoOffer)?;
        if p.pending.is_some() {
            return Err(NegotiationError::Glare);
        }
        let offer = RemoteDescription::parse(offer)?;
        let first = p.remote_identity.1.is_empty();
        if !first && !offer.fingerprint.eq_ignore_ascii_case(&p.remote_identity.1) {
            return Err(NegotiationError::NewSession("another DTLS fingerprint"));
        }
        let mut local = p.local.clone();
        local.session_version += 1;
        // Sections already sending keep their track; new receiving sections get new ones (or,
        // for a viewer's slots, a slot: every offered codec Cascade forwards, new SSRCs).
        let mut assigned: Vec<(String, TrackId)> = Vec::new();
        let (sdp, sections) = answer::answer(&offer, &local, |section| {
            if let Some(s) = p.subscriptions.iter().find(|s| s.mid == section.mid) {
                return p.sections.iter().find(|x| x.mid == s.mid)?.send.clone();
            }
            if p.slots {
                if let Some(send) = p.sections.iter().find(|x| x.mid == section.mid) {
                    return send.send.clone();
                }
                return slot_track(section);
            }
            let (track, send) = self.next_track(peer, section.kind, &assigned)?;
            assigned.push((section.mid.clone(), track));
            Some(send)
        })?;
        let mut p = self.peers[peer].take().expect("present");
        if first {
            match p.transport.set_remote_fingerprint(&offer.fingerprint) {
                Ok(connected) => {
                    if connected {
                        p.last_reports = Some(Instant::now());
                        self.emit(super::RouterEvent::Connected(peer));
                    }
                }
                Err(e) => {
                    self.peers[peer] = Some(p);
                    return Err(NegotiationError::Fingerprint(e.to_string()));
                }
            }
            p.remote_identity.1 = offer.fingerprint.clone();
        }
        p.remote_identity.0 = offer.ice_ufrag.clone();
        p.local = local;
        // Tracks it stopped receiving, and streams it stopped sending, end.
        let receiving = |mid: &str| {
            sections
                .iter()
                .any(|s| s.mid == mid && !s.rejected && s.direction.sends())
        };
        let sending = |mid: &str| {
            sections
                .iter()
                .any(|s| s.mid == mid && !s.rejected && s.direction.receives())
        };
        let dropped: Vec<usize> = (0..p.subscriptions.len())
            .rev()
            .filter(|&k| !receiving(&p.subscriptions[k].mid))
            .collect();
        let stopped: Vec<TrackId> = p
            .publications
            .iter()
            .filter(|x| !sending(&x.mid))
            .map(|x| x.track)
            .collect();
        for section in sections.iter().filter(|s| !s.rejected) {
            if section.direction.receives() {
                self.publish(peer, &mut p, section);
            }
            if let Some(&(_, track)) = assigned.iter().find(|(mid, _)| *mid == section.mid) {
                self.subscribe(peer, &mut p, &SessionSection::from(section), track);
            }
        }
        p.sections = sections.iter().map(SessionSection::from).collect();
        self.peers[peer] = Some(p);
        for k in dropped {
            self.unsubscribe(peer, k);
        }
        for track in stopped {
            self.end_track(track);
        }
        Ok(sdp)
    }

    /// The next room track of `kind` that `peer` neither publishes, receives nor was just
    /// given (`assigned`), and how to send it.
    fn next_track(
        &self,
        peer: PeerIdx,
        kind: SectionKind,
        assigned: &[(String, TrackId)],
    ) -> Option<(TrackId, SendTrack)> {
        let p = self.peers.get(peer)?.as_ref();
        self.tracks.iter().enumerate().find_map(|(id, entry)| {
            let entry = entry.as_ref()?;
            let id = id as TrackId;
            let taken = entry.publisher() == Some(peer)
                || assigned.iter().any(|(_, t)| *t == id)
                || p.is_some_and(|p| {
                    !self.wants(p, id) || p.subscriptions.iter().any(|s| s.track == id)
                });
            let info = self.track_info(entry)?;
            if taken || info.kind != kind {
                return None;
            }
            Some((id, send_track(id, entry, &info)?))
        })
    }

    fn track_info(&self, entry: &TrackEntry) -> Option<TrackInfo> {
        match &entry.source {
            Source::Local {
                publisher,
                publication,
            } => {
                let publisher = self.peers.get(*publisher)?.as_ref()?;
                Some(publisher.publications.get(*publication)?.info.clone())
            }
            Source::Mirror { info, .. } => Some(info.clone()),
        }
    }
}

/// How the server sends `track` (`entry`, described by `info`): its codec, new SSRCs, its
/// names (or `cascade-<publisher>` / `track-<id>`).
fn send_track(track: TrackId, entry: &TrackEntry, info: &TrackInfo) -> Option<SendTrack> {
    let codec = info.codecs.first()?;
    let (stream_id, track_id) = entry.names.clone().unwrap_or_else(|| {
        let publisher = entry.publisher().map_or(-1, |p| p as i64);
        (format!("cascade-{publisher}"), format!("track-{track}"))
    });
    Some(SendTrack {
        codec: codec.codec,
        fmtp: codec.fmtp.clone(),
        ssrc: rand::random(),
        rtx_ssrc: rand::random(),
        stream_id,
        track_id,
        cname: "cascade".into(),
        slot: false,
    })
}

/// A viewer's slot in `section` before any track: answered with every codec of the section
/// Cascade forwards (the first one named here), new SSRCs.
fn slot_track(section: &RemoteSection) -> Option<SendTrack> {
    let (codec, fmtp) = section.codecs.iter().find_map(|c| {
        Some((
            crate::negotiation::capabilities::codec_of(section.kind, c)?,
            c.fmtp.clone(),
        ))
    })?;
    Some(SendTrack {
        codec,
        fmtp,
        ssrc: rand::random(),
        rtx_ssrc: rand::random(),
        stream_id: "cascade".into(),
        track_id: format!("slot-{}", section.mid),
        cname: "cascade".into(),
        slot: true,
    })
}

/// How a subscriber receives a track: the publisher's payload types and extension ids mapped to
/// the subscriber's by codec and URI.
fn down_track_params(
    info: &TrackInfo,
    section: &SessionSection,
    send: &SendTrack,
) -> DownTrackParams {
    let payload_types = section
        .codecs
        .iter()
        .filter_map(|s| {
            let p = info.codecs.iter().find(|p| p.codec == s.codec)?;
            let rtx = s.rtx_pt.filter(|_| section.kind == SectionKind::Video);
            Some(PayloadMapping {
                track: p.pt,
                subscriber: s.pt,
                rtx,
            })
        })
        .collect();
    // The publisher's transport and m-line extensions (transport-wide sequence numbers, its
    // mid and rids) would mislead the subscriber: removed (transport-cc is stamped anew).
    let extensions = info
        .extensions
        .iter()
        .filter(|(_, uri)| ![MID_URI, RID_URI, REPAIRED_RID_URI, TRANSPORT_CC_URI].contains(uri))
        .filter_map(|(track_id, uri)| {
            let (sub_id, _) = section.extensions.iter().find(|(_, u)| u == uri)?;
            Some((*track_id, *sub_id))
        })
        .collect();
    DownTrackParams {
        ssrc: send.ssrc,
        rtx_ssrc: send.rtx_ssrc,
        clock_rate: section.codecs.first().map_or(90_000, |c| c.clock_rate),
        payload_types,
        extensions,
        transport_cc: section
            .extensions
            .iter()
            .find(|(_, uri)| *uri == TRANSPORT_CC_URI)
            .map(|(id, _)| *id),
    }
}
