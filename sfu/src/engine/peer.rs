//! One peer of the engine: its transport, the streams it publishes (up-tracks) and the tracks
//! it receives (down-tracks), each found by SSRC with a scan (a peer has a few).

use std::time::Instant;

use crate::down_track::DownTrack;
use crate::negotiation::answer::{NegotiatedCodec, NegotiatedSection};
use crate::negotiation::remote::SectionKind;
use crate::transport::peer_transport::PeerTransport;
use crate::transport::twcc::TwccSender;
use crate::up_track::{UpTrack, UpTrackParams};

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

/// A stream the peer publishes.
#[derive(Debug)]
pub struct Publication {
    /// The router's track.
    pub track: TrackId,
    /// The section it arrives in.
    pub mid: String,
    /// Its receive side.
    pub up: UpTrack,
    /// The SSRC of its retransmissions, if signaled.
    pub rtx_ssrc: Option<u32>,
    /// What subscribers need to know of it.
    pub info: TrackInfo,
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
}

impl EnginePeer {
    /// A peer on `transport`.
    pub fn new(transport: PeerTransport) -> Self {
        Self {
            transport,
            local_ssrc: rand::random(),
            publications: Vec::new(),
            subscriptions: Vec::new(),
            twcc: TwccSender::default(),
            last_reports: None,
            nack_at: None,
        }
    }

    /// Publishes the stream of `section` (a section the peer sends in, with a signaled SSRC)
    /// as `track`; false if it has no SSRC or codec.
    pub fn publish(&mut self, section: &NegotiatedSection, track: TrackId) -> bool {
        let (Some(&ssrc), Some(first)) = (section.remote.ssrcs.first(), section.codecs.first())
        else {
            return false;
        };
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
        });
        self.publications.push(Publication {
            track,
            mid: section.mid.clone(),
            up,
            rtx_ssrc,
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
            if p.up.ssrc() == ssrc {
                Some((i, false))
            } else if p.rtx_ssrc == Some(ssrc) {
                Some((i, true))
            } else {
                None
            }
        })
    }

    /// The subscription sent with `ssrc`.
    pub fn subscription_of(&self, ssrc: u32) -> Option<usize> {
        self.subscriptions
            .iter()
            .position(|s| s.down.ssrc() == ssrc)
    }
}
