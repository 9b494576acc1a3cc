//! One peer of the engine: its transport, the streams it publishes (up-tracks) and the tracks
//! it receives (down-tracks), each found by SSRC with a scan (a peer has a few).

use std::time::Instant;

use crate::downtrack::down_track::DownTrack;
use crate::negotiation::answer::{LocalTransport, NegotiatedCodec, NegotiatedSection};
use crate::negotiation::capabilities::{MID_URI, REPAIRED_RID_URI, RID_URI};
use crate::negotiation::offer::SessionSection;
use crate::negotiation::remote::SectionKind;
use crate::rtp::view::RtpView;
use crate::track::up_track::{UpTrack, UpTrackParams};
use crate::transport::peer_transport::PeerTransport;
use crate::transport::twcc::TwccSender;

use super::TrackId;

/// What subscribers need to know of a published track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: SectionKind,
    /// The publisher's negotiated codecs, its preferred first (what it sends).
    pub codecs: Vec<NegotiatedCodec>,
    /// The publisher's header extensions: its id and the URI.
    pub extensions: Vec<(u8, &'static str)>,
}

/// Packets the cache of a track of `kind` keeps.
pub fn cache_packets(kind: SectionKind) -> usize {
    match kind {
        SectionKind::Video => crate::track::up_track::CACHE_PACKETS,
        _ => crate::track::up_track::AUDIO_CACHE_PACKETS,
    }
}

/// A stream the peer publishes.
#[derive(Debug)]
pub struct Publication {
    /// The router's track.
    pub track: TrackId,
    /// The section it arrives in.
    pub mid: String,
    /// Its receive side.
    pub up: UpTrack,
    /// Whether the up-track's SSRC is known: signaled in the SDP, or learned from the first
    /// packet carrying the section's mid (and `rid`).
    pub bound: bool,
    /// The simulcast layer forwarded (the first rid of `a=simulcast`), if the stream has rids;
    /// other layers are not forwarded yet.
    pub rid: Option<String>,
    /// The SSRC of its retransmissions, if signaled or learned.
    pub rtx_ssrc: Option<u32>,
    /// What subscribers need to know of it.
    pub info: TrackInfo,
    /// Whether its first packet arrived (and was announced).
    pub announced: bool,
}

/// A track the peer receives.
#[derive(Debug)]
pub struct Subscription {
    /// The router's track.
    pub track: TrackId,
    /// The section it is sent in.
    pub mid: String,
    /// Its send side.
    pub down: DownTrack,
}

/// One peer of the engine.
pub struct EnginePeer {
    /// Its transport.
    pub transport: PeerTransport,
    /// Our SSRC as the sender of RTCP to this peer.
    pub local_ssrc: u32,
    /// What it publishes.
    pub publications: Vec<Publication>,
    /// What it receives.
    pub subscriptions: Vec<Subscription>,
    /// Transport-wide sequence numbers of what it is sent.
    pub twcc: TwccSender,
    /// When its receiver and sender reports were last sent (first: when DTLS connected).
    pub last_reports: Option<Instant>,
    /// When its publications' missing packets are next NACKed, if any are missing.
    pub nack_at: Option<Instant>,
    /// Its session as last negotiated.
    pub sections: Vec<SessionSection>,
    /// The server's side of its transport, for the next offer.
    pub local: LocalTransport,
    /// The server's offer waiting for its answer.
    pub pending: Option<PendingOffer>,
    /// A track it received ended: the next offer says so even with nothing new.
    pub renegotiate: bool,
    /// The peer's ICE username fragment and DTLS fingerprint (empty until its first
    /// description); a new offer must keep the fingerprint.
    pub remote_identity: (String, String),
    /// The tracks it wants (explicit mode).
    pub wanted: Vec<TrackId>,
    /// A viewer that cannot renegotiate (WHEP): each receiving section is a sending slot,
    /// filled with a wanted track and kept when the track ends.
    pub slots: bool,
    /// Its slots' down-tracks with no track now, by mid.
    pub idle: Vec<(String, DownTrack)>,
}

/// A server offer waiting for its answer.
#[derive(Debug, Clone)]
pub struct PendingOffer {
    /// The sections offered.
    pub sections: Vec<SessionSection>,
    /// Which track each new sending section (by index) carries.
    pub placed: Vec<(usize, TrackId)>,
}

impl EnginePeer {
    /// A peer on `transport`, negotiated with `local` into `sections`.
    pub fn new(
        transport: PeerTransport,
        local: LocalTransport,
        sections: &[NegotiatedSection],
    ) -> Self {
        Self {
            transport,
            local_ssrc: rand::random(),
            publications: Vec::new(),
            subscriptions: Vec::new(),
            twcc: TwccSender::default(),
            last_reports: None,
            nack_at: None,
            sections: sections.iter().map(SessionSection::from).collect(),
            local,
            pending: None,
            renegotiate: false,
            remote_identity: (String::new(), String::new()),
            wanted: Vec::new(),
            slots: false,
            idle: Vec::new(),
        }
    }

    /// Publishes the stream of `section` (a section the peer sends in) as `track`; false if
    /// it has no codec. Without a signaled SSRC (simulcast, or none given) the SSRC is learned
    /// from the first packet carrying the section's mid ([`EnginePeer::bind_unsignaled`]).
    pub fn publish(&mut self, section: &NegotiatedSection, track: TrackId) -> bool {
        let Some(first) = section.codecs.first() else {
            return false;
        };
        let signaled = section.remote.ssrcs.first().copied();
        let ssrc = signaled.unwrap_or(0);
        let rtx_ssrc = section
            .remote
            .rtx_ssrcs
            .iter()
            .find(|(media, _)| *media == ssrc)
            .map(|(_, rtx)| *rtx);
        let up = UpTrack::new(UpTrackParams {
            ssrc,
            local_ssrc: self.local_ssrc,
            clock_rate: first.clock_rate,
            rtx_payload_types: section
                .codecs
                .iter()
                .filter_map(|c| Some((c.rtx_pt?, c.pt)))
                .collect(),
            nack: section.kind == SectionKind::Video,
            cache: cache_packets(section.kind),
        });
        self.publications.push(Publication {
            track,
            mid: section.mid.clone(),
            up,
            bound: signaled.is_some(),
            rid: section.remote.send_rids.first().cloned(),
            rtx_ssrc,
            announced: false,
            info: TrackInfo {
                kind: section.kind,
                codecs: section.codecs.clone(),
                extensions: section.extensions.clone(),
            },
        });
        true
    }

    /// The publication whose media (`false`) or RTX (`true`) SSRC is `ssrc`.
    pub fn publication_of(&self, ssrc: u32) -> Option<(usize, bool)> {
        self.publications.iter().enumerate().find_map(|(i, p)| {
            if p.bound && p.up.ssrc() == ssrc {
                Some((i, false))
            } else if p.rtx_ssrc == Some(ssrc) {
                Some((i, true))
            } else {
                None
            }
        })
    }

    /// Learns the SSRC of an unsignaled stream from `packet`, an RTP packet of an unknown
    /// SSRC: the publication whose mid its mid extension carries, and whose forwarded layer its
    /// rid (media) or repaired-rid (RTX) extension names. The publication and whether it is the
    /// RTX stream, once bound; `None` for another layer or a packet without a mid.
    pub fn bind_unsignaled(&mut self, packet: &mut [u8]) -> Option<(usize, bool)> {
        let view = RtpView::parse(packet).ok()?;
        let ssrc = view.ssrc();
        for (i, p) in self.publications.iter_mut().enumerate() {
            let id = |uri: &str| {
                p.info
                    .extensions
                    .iter()
                    .find(|(_, u)| *u == uri)
                    .map(|(id, _)| *id)
            };
            let carries = |uri: &str, value: &str| {
                id(uri).and_then(|id| view.extension(id)) == Some(value.as_bytes())
            };
            if !carries(MID_URI, &p.mid) {
                continue;
            }
            // Media and RTX are told apart by payload type; a layer by rid, or repaired-rid
            // for RTX.
            let layer = |uri: &str| p.rid.as_deref().is_none_or(|rid| carries(uri, rid));
            let rtx =
                p.up.params()
                    .rtx_payload_types
                    .iter()
                    .any(|(r, _)| *r == view.payload_type());
            if !rtx && !p.bound && layer(RID_URI) {
                let mut params = p.up.params().clone();
                params.ssrc = ssrc;
                p.up = UpTrack::new(params);
                p.bound = true;
                return Some((i, false));
            }
            if rtx && p.rtx_ssrc.is_none() && layer(REPAIRED_RID_URI) {
                p.rtx_ssrc = Some(ssrc);
                return Some((i, true));
            }
        }
        None
    }

    /// The subscription sent with `ssrc`.
    pub fn subscription_of(&self, ssrc: u32) -> Option<usize> {
        self.subscriptions
            .iter()
            .position(|s| s.down.ssrc() == ssrc)
    }
}
