//! Cascade's answer to a peer's offer, written with the `sdp` crate: every audio and video
//! section the offer bundles is answered on the one transport (ICE-lite, DTLS server, RTCP mux);
//! data channels and other sections are rejected (port 0); what each section negotiated is
//! returned beside the SDP.

use super::NegotiationError;
use super::capabilities::{self, Codec};
use super::remote::{Direction, RemoteDescription, RemoteSection, SectionKind, fmtp_param};
use super::writer::SectionOut;

/// The server's side of the transport, the same in every section.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    /// ICE username fragment.
    pub ice_ufrag: String,
    /// ICE password.
    pub ice_pwd: String,
    /// The DTLS certificate's fingerprint, `sha-256 AB:CD:...`.
    pub fingerprint: String,
    /// The server's candidates: values of `a=candidate:` lines.
    pub candidates: Vec<String>,
    /// The `o=` session id, the same for every description of this peer.
    pub session_id: u64,
    /// The `o=` session version, one more for each new description.
    pub session_version: u64,
}

/// A track the server sends in a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendTrack {
    /// The track's codec.
    pub codec: Codec,
    /// Its `a=fmtp` (the publisher's), to pick the matching H.264 profile or VP9 profile.
    pub fmtp: String,
    /// The SSRC the server sends it with.
    pub ssrc: u32,
    /// The SSRC of its retransmissions, used when the peer negotiates RTX.
    pub rtx_ssrc: u32,
    /// `a=msid` stream id (the publisher's participant).
    pub stream_id: String,
    /// `a=msid` track id (the Cascade track id).
    pub track_id: String,
    /// `a=ssrc ... cname:`.
    pub cname: String,
    /// A slot (a WHEP viewer's section before its track is known): the answer keeps every
    /// codec the section offered, so that whichever track fills it later can be sent.
    pub slot: bool,
}

/// A codec a section negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Which codec.
    pub codec: Codec,
    /// Its encoding name as the peer writes it (`opus`, `OPUS`, `VP8`, ...).
    pub name: String,
    /// Its payload type (the peer's).
    pub pt: u8,
    /// Its RTX payload type, if negotiated.
    pub rtx_pt: Option<u8>,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels (1 for video).
    pub channels: u16,
    /// Its `a=fmtp`.
    pub fmtp: String,
    /// The RTCP feedback negotiated for it.
    pub feedback: Vec<String>,
}

/// What one section of the answer negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedSection {
    /// The section's mid.
    pub mid: String,
    /// Its kind.
    pub kind: SectionKind,
    /// Rejected (port 0): a data channel, an unknown kind, no common codec, or stopped.
    pub rejected: bool,
    /// The server's direction.
    pub direction: Direction,
    /// The codecs negotiated, in the peer's order.
    pub codecs: Vec<NegotiatedCodec>,
    /// Header extensions negotiated: the peer's id and the URI.
    pub extensions: Vec<(u8, &'static str)>,
    /// The peer's section as offered.
    pub remote: RemoteSection,
    /// The track the server sends, if any.
    pub send: Option<SendTrack>,
}

/// Answers `offer`. `sending` says which track, if any, the server sends in a section the peer
/// wants to receive. Sections are answered in the offer's order.
pub fn answer(
    offer: &RemoteDescription,
    local: &LocalTransport,
    mut sending: impl FnMut(&RemoteSection) -> Option<SendTrack>,
) -> Result<(String, Vec<NegotiatedSection>), NegotiationError> {
    check_offer(offer)?;
    let negotiated: Vec<NegotiatedSection> = offer
        .sections
        .iter()
        .map(|s| negotiate(offer, s, &mut sending))
        .collect();
    let sdp = write(local, &negotiated);
    Ok((sdp, negotiated))
}

/// An offer Cascade can answer: the server is the DTLS server (`setup` `actpass` or
/// `active`), mids are unique, and several active sections share one BUNDLE transport.
fn check_offer(offer: &RemoteDescription) -> Result<(), NegotiationError> {
    if offer.setup == "passive" {
        return Err(NegotiationError::DtlsRole);
    }
    for (i, s) in offer.sections.iter().enumerate() {
        if offer.sections[..i].iter().any(|o| o.mid == s.mid) {
            return Err(NegotiationError::DuplicateMid(s.mid.clone()));
        }
    }
    let active = offer.sections.iter().filter(|s| !s.stopped).count();
    if active > 1 && offer.bundle.is_empty() {
        return Err(NegotiationError::NoBundle);
    }
    Ok(())
}

fn negotiate(
    offer: &RemoteDescription,
    remote: &RemoteSection,
    sending: &mut impl FnMut(&RemoteSection) -> Option<SendTrack>,
) -> NegotiatedSection {
    let mut out = NegotiatedSection {
        mid: remote.mid.clone(),
        kind: remote.kind,
        rejected: true,
        direction: Direction::Inactive,
        codecs: Vec::new(),
        extensions: Vec::new(),
        remote: remote.clone(),
        send: None,
    };
    let bundled = offer.bundle.is_empty() || offer.bundle.contains(&remote.mid);
    let media = matches!(remote.kind, SectionKind::Audio | SectionKind::Video);
    if !media || remote.stopped || !bundled {
        return out;
    }
    let receive = remote.direction.sends();
    let send = if remote.direction.receives() {
        sending(remote)
    } else {
        None
    };
    let mut codecs = Vec::new();
    for c in &remote.codecs {
        let Some(codec) = capabilities::codec_of(remote.kind, c) else {
            continue;
        };
        // Receiving: every codec Cascade forwards. Sending: the first offered codec that
        // matches the track. Neither (inactive, e.g. no track of that kind yet): every codec,
        // so that the section stays valid for a later offer.
        let keep = match &send {
            Some(t) if !receive && !t.slot => {
                sends_as(t, codec, &c.fmtp)
                    && !codecs.iter().any(|n: &NegotiatedCodec| n.codec == codec)
            }
            _ => true,
        };
        if !keep {
            continue;
        }
        codecs.push(NegotiatedCodec {
            codec,
            name: c.name.clone(),
            pt: c.pt,
            rtx_pt: c.rtx_pt,
            clock_rate: c.clock_rate,
            channels: c.channels,
            fmtp: c.fmtp.clone(),
            feedback: c
                .feedback
                .iter()
                .filter(|f| capabilities::feedback_supported(remote.kind, f))
                .cloned()
                .collect(),
        });
    }
    // RED only over a negotiated Opus.
    let opus: Vec<u8> = codecs
        .iter()
        .filter(|c| c.codec == Codec::Opus)
        .map(|c| c.pt)
        .collect();
    codecs.retain(|c| {
        c.codec != Codec::Red
            || c.fmtp
                .split('/')
                .all(|pt| pt.parse().is_ok_and(|pt: u8| opus.contains(&pt)))
    });
    if codecs.is_empty() {
        return out;
    }
    let send = send.filter(|t| codecs.iter().any(|c| sends_as(t, c.codec, &c.fmtp)));
    out.rejected = false;
    out.direction = Direction::from_flags(send.is_some(), receive);
    out.extensions = remote
        .extensions
        .iter()
        .filter_map(|(id, uri)| Some((*id, capabilities::extension(remote.kind, uri)?.uri)))
        .collect();
    if !out
        .extensions
        .iter()
        .any(|(_, uri)| *uri == capabilities::TRANSPORT_CC_URI)
    {
        for c in &mut codecs {
            c.feedback.retain(|f| f != "transport-cc");
        }
    }
    out.codecs = codecs;
    out.send = send;
    out
}

/// Whether a track of `codec` with `fmtp` is sent as an offered codec of `codec` with
/// `offered_fmtp`: same codec, and for H.264 the same profile, for VP9 the same profile id.
pub(super) fn sends_as(track: &SendTrack, codec: Codec, offered_fmtp: &str) -> bool {
    if track.codec != codec {
        return false;
    }
    let key = match codec {
        Codec::H264 => "profile-level-id",
        Codec::Vp9 => "profile-id",
        _ => return true,
    };
    let profile = |fmtp: &str| match (codec, fmtp_param(fmtp, key)) {
        // The profile (first two bytes) must match; the level may differ.
        (Codec::H264, Some(v)) => v.get(..4).map(str::to_ascii_lowercase),
        (Codec::Vp9, v) => Some(v.unwrap_or("0").to_owned()),
        (_, v) => v.map(str::to_owned),
    };
    profile(&track.fmtp) == profile(offered_fmtp)
}

/// The answer's SDP: the server is the DTLS server (`setup:passive`).
fn write(local: &LocalTransport, sections: &[NegotiatedSection]) -> String {
    let out: Vec<SectionOut<'_>> = sections
        .iter()
        .map(|s| SectionOut {
            mid: &s.mid,
            media: &s.remote.media,
            protocol: &s.remote.protocol,
            first_format: &s.remote.first_format,
            rejected: s.rejected,
            kind: s.kind,
            direction: s.direction,
            codecs: &s.codecs,
            extensions: &s.extensions,
            rtcp_rsize: s.remote.rtcp_rsize,
            recv_rids: &s.remote.send_rids,
            send: s.send.as_ref(),
        })
        .collect();
    super::writer::write(local, "passive", &out)
}

#[cfg(test)]
#[path = "answer_tests.rs"]
pub(crate) mod tests;
