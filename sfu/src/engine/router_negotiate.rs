//! The router's negotiation with its peers: joins answered, a joined peer's new offers, the
//! server's own offers of the room's new tracks and their answers; what each settles becomes
//! publications and subscriptions.

use std::time::Instant;

use super::{JoinError, MAX_PEERS, Router, TrackEntry};
use crate::down_track::{DownTrack, DownTrackParams, PayloadMapping};
use crate::engine::peer::{EnginePeer, PendingOffer, Subscription, TrackInfo};
use crate::engine::{PeerIdx, Sink, TrackId};
use crate::negotiation::NegotiationError;
use crate::negotiation::answer::{self, LocalTransport, NegotiatedSection, SendTrack};
use crate::negotiation::capabilities::TRANSPORT_CC_URI;
use crate::negotiation::offer::{self, SessionSection};
use crate::negotiation::remote::{RemoteDescription, SectionKind};
use crate::transport::ice_lite::Credentials;
use crate::transport::peer_transport::PeerTransport;

impl Router {
    /// A peer joins with `offer`, answered with `local` (its ICE credentials, candidates and
    /// session id; the fingerprint is the router's): its index and the answer.
    pub fn join(
        &mut self,
        offer: &str,
        mut local: LocalTransport,
    ) -> Result<(PeerIdx, String), JoinError> {
        let offer = RemoteDescription::parse(offer)?;
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
        let transport = PeerTransport::new(credentials, &self.identity, &offer.fingerprint)?;
        local.fingerprint = self.identity.fingerprint().to_owned();
        // The sections the peer receives in get the room's tracks of their kind, each once.
        let mut assigned: Vec<(String, TrackId)> = Vec::new();
        let (sdp, sections) = answer::answer(&offer, &local, |section| {
            let (track, send) = self.next_track(idx, section.kind, &assigned)?;
            assigned.push((section.mid.clone(), track));
            Some(send)
        })?;
        let mut peer = EnginePeer::new(transport, local, &sections);
        peer.remote_identity = (offer.ice_ufrag.clone(), offer.fingerprint.clone());
        for section in sections.iter().filter(|s| !s.rejected) {
            if section.direction.receives() {
                self.publish(idx, &mut peer, section);
            }
            let track = assigned
                .iter()
                .find(|(mid, _)| *mid == section.mid)
                .map(|(_, t)| *t);
            if let Some(track) = track {
                self.subscribe(idx, &mut peer, section, track);
            }
        }
        self.peers[idx] = Some(peer);
        Ok((idx, sdp))
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
            publisher: idx,
            publication,
            subscribers: Vec::new(),
        }));
    }

    /// `peer` (at `idx`) receives `track` in `section`, if the section sends it.
    fn subscribe(
        &mut self,
        idx: PeerIdx,
        peer: &mut EnginePeer,
        section: &NegotiatedSection,
        track: TrackId,
    ) {
        let Some(send) = section.send.as_ref().filter(|_| section.direction.sends()) else {
            return;
        };
        let Some(info) = self.tracks[track as usize]
            .as_ref()
            .and_then(|e| self.track_info(e))
        else {
            return;
        };
        let down = DownTrack::new(down_track_params(&info, section, send));
        peer.subscriptions.push(Subscription {
            track,
            mid: section.mid.clone(),
            down,
        });
        if let Some(entry) = self.tracks[track as usize].as_mut() {
            entry.subscribers.push((idx, peer.subscriptions.len() - 1));
        }
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
            if entry.publisher == peer || p.subscriptions.iter().any(|s| s.track == id) {
                continue;
            }
            let Some(info) = self.track_info(entry) else {
                continue;
            };
            let Some(send) = send_track(id, entry.publisher, &info) else {
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
        let mut p = self.peers[peer].take().expect("present");
        p.sections = negotiated.iter().map(SessionSection::from).collect();
        p.renegotiate = false;
        let before = p.subscriptions.len();
        for (i, track) in placed {
            self.subscribe(peer, &mut p, &negotiated[i], track);
        }
        let ssrcs: Vec<u32> = p.subscriptions[before..]
            .iter()
            .map(|s| s.down.ssrc())
            .collect();
        let connected = p.transport.is_connected();
        self.peers[peer] = Some(p);
        if connected {
            for ssrc in ssrcs {
                self.on_keyframe_request(now, peer, ssrc, sink);
            }
        }
        Ok(())
    }

    /// A joined peer's new offer, answered on the same transport: the streams of its new
    /// sending sections are published, those whose section stopped sending end (for every
    /// subscriber), tracks it stopped receiving end, and its new receiving sections get the
    /// room's tracks. The ICE credentials and DTLS fingerprint must stay (else join again).
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
        if offer.ice_ufrag != p.remote_identity.0 {
            return Err(NegotiationError::NewSession(
                "another ICE username fragment",
            ));
        }
        if !offer.fingerprint.eq_ignore_ascii_case(&p.remote_identity.1) {
            return Err(NegotiationError::NewSession("another DTLS fingerprint"));
        }
        let mut local = p.local.clone();
        local.session_version += 1;
        // Sections already sending keep their track; new receiving sections get new ones.
        let mut assigned: Vec<(String, TrackId)> = Vec::new();
        let (sdp, sections) = answer::answer(&offer, &local, |section| {
            if let Some(s) = p.subscriptions.iter().find(|s| s.mid == section.mid) {
                return p.sections.iter().find(|x| x.mid == s.mid)?.send.clone();
            }
            let (track, send) = self.next_track(peer, section.kind, &assigned)?;
            assigned.push((section.mid.clone(), track));
            Some(send)
        })?;
        let mut p = self.peers[peer].take().expect("present");
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
                self.subscribe(peer, &mut p, section, track);
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
            let taken = entry.publisher == peer
                || assigned.iter().any(|(_, t)| *t == id)
                || p.is_some_and(|p| p.subscriptions.iter().any(|s| s.track == id));
            let info = self.track_info(entry)?;
            if taken || info.kind != kind {
                return None;
            }
            Some((id, send_track(id, entry.publisher, &info)?))
        })
    }

    fn track_info(&self, entry: &TrackEntry) -> Option<TrackInfo> {
        let publisher = self.peers.get(entry.publisher)?.as_ref()?;
        Some(publisher.publications.get(entry.publication)?.info.clone())
    }
}

/// How the server sends `track` (of `publisher`, described by `info`): its codec, new SSRCs.
fn send_track(track: TrackId, publisher: PeerIdx, info: &TrackInfo) -> Option<SendTrack> {
    let codec = info.codecs.first()?;
    Some(SendTrack {
        codec: codec.codec,
        fmtp: codec.fmtp.clone(),
        ssrc: rand::random(),
        rtx_ssrc: rand::random(),
        stream_id: format!("cascade-{publisher}"),
        track_id: format!("track-{track}"),
        cname: "cascade".into(),
    })
}

/// How a subscriber receives a track: the publisher's payload types and extension ids mapped to
/// the subscriber's by codec and URI.
fn down_track_params(
    info: &TrackInfo,
    section: &NegotiatedSection,
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
    let extensions = info
        .extensions
        .iter()
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
