//! Cascade's answer to a peer's offer, written with the `sdp` crate: every audio and video
//! section the offer bundles is answered on the one transport (ICE-lite, DTLS server, RTCP mux);
//! data channels and other sections are rejected (port 0); what each section negotiated is
//! returned beside the SDP.

use rtc::sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc::sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc::sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use super::NegotiationError;
use super::capabilities::{self, Codec};
use super::remote::{Direction, RemoteDescription, RemoteSection, SectionKind, fmtp_param};

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
}

/// A codec a section negotiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Which codec.
    pub codec: Codec,
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
            Some(t) if !receive => {
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
fn sends_as(track: &SendTrack, codec: Codec, offered_fmtp: &str) -> bool {
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

/// The answer's SDP.
fn write(local: &LocalTransport, sections: &[NegotiatedSection]) -> String {
    let accepted: Vec<&str> = sections
        .iter()
        .filter(|s| !s.rejected)
        .map(|s| s.mid.as_str())
        .collect();
    let mut desc = SessionDescription {
        version: 0,
        origin: Origin {
            username: "-".into(),
            session_id: local.session_id,
            session_version: local.session_version,
            network_type: "IN".into(),
            address_type: "IP4".into(),
            unicast_address: "0.0.0.0".into(),
        },
        session_name: "-".into(),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: vec![],
        }],
        ..SessionDescription::default()
    };
    desc.attributes.push(attr("ice-lite", None));
    if !accepted.is_empty() {
        desc.attributes.push(attr(
            "group",
            Some(format!("BUNDLE {}", accepted.join(" "))),
        ));
    }
    desc.attributes
        .push(attr("msid-semantic", Some(" WMS *".into())));
    let first = accepted.first().copied();
    for s in sections {
        desc.media_descriptions
            .push(write_section(local, s, first == Some(s.mid.as_str())));
    }
    desc.marshal()
}

fn write_section(
    local: &LocalTransport,
    s: &NegotiatedSection,
    candidates: bool,
) -> MediaDescription {
    let remote = &s.remote;
    let mut formats = Vec::new();
    for c in &s.codecs {
        formats.push(c.pt.to_string());
        if let (Some(rtx), true) = (c.rtx_pt, rtx_negotiated(s)) {
            formats.push(rtx.to_string());
        }
    }
    if s.rejected {
        formats = vec![remote.first_format.clone()];
    }
    let mut m = MediaDescription {
        media_name: MediaName {
            media: remote.media.clone(),
            port: RangedPort {
                value: if s.rejected { 0 } else { 9 },
                range: None,
            },
            protos: remote.protocol.split('/').map(str::to_owned).collect(),
            formats,
        },
        connection_information: Some(ConnectionInformation {
            network_type: "IN".into(),
            address_type: "IP4".into(),
            address: Some(Address {
                address: "0.0.0.0".into(),
                ttl: None,
                range: None,
            }),
        }),
        ..MediaDescription::default()
    };
    let a = &mut m.attributes;
    a.push(attr("mid", Some(s.mid.clone())));
    if s.rejected {
        a.push(attr("inactive", None));
        return m;
    }
    a.push(attr("ice-ufrag", Some(local.ice_ufrag.clone())));
    a.push(attr("ice-pwd", Some(local.ice_pwd.clone())));
    a.push(attr("fingerprint", Some(local.fingerprint.clone())));
    a.push(attr("setup", Some("passive".into())));
    a.push(attr("rtcp-mux", None));
    if remote.rtcp_rsize {
        a.push(attr("rtcp-rsize", None));
    }
    a.push(attr(s.direction.as_str(), None));
    for (id, uri) in &s.extensions {
        a.push(attr("extmap", Some(format!("{id} {uri}"))));
    }
    for c in &s.codecs {
        let name = remote
            .codecs
            .iter()
            .find(|r| r.pt == c.pt)
            .map_or("", |r| r.name.as_str());
        let channels = if c.channels > 1 {
            format!("/{}", c.channels)
        } else {
            String::new()
        };
        a.push(attr(
            "rtpmap",
            Some(format!("{} {name}/{}{channels}", c.pt, c.clock_rate)),
        ));
        for f in &c.feedback {
            a.push(attr("rtcp-fb", Some(format!("{} {f}", c.pt))));
        }
        if !c.fmtp.is_empty() {
            a.push(attr("fmtp", Some(format!("{} {}", c.pt, c.fmtp))));
        }
        if let (Some(rtx), true) = (c.rtx_pt, rtx_negotiated(s)) {
            a.push(attr("rtpmap", Some(format!("{rtx} rtx/{}", c.clock_rate))));
            a.push(attr("fmtp", Some(format!("{rtx} apt={}", c.pt))));
        }
    }
    if s.direction.receives() && !remote.send_rids.is_empty() {
        for rid in &remote.send_rids {
            a.push(attr("rid", Some(format!("{rid} recv"))));
        }
        a.push(attr(
            "simulcast",
            Some(format!("recv {}", remote.send_rids.join(";"))),
        ));
    }
    if let Some(t) = s.send.as_ref().filter(|_| s.direction.sends()) {
        a.push(attr(
            "msid",
            Some(format!("{} {}", t.stream_id, t.track_id)),
        ));
        let mut ssrcs = vec![t.ssrc];
        if rtx_negotiated(s) {
            a.push(attr(
                "ssrc-group",
                Some(format!("FID {} {}", t.ssrc, t.rtx_ssrc)),
            ));
            ssrcs.push(t.rtx_ssrc);
        }
        for ssrc in ssrcs {
            a.push(attr("ssrc", Some(format!("{ssrc} cname:{}", t.cname))));
            a.push(attr(
                "ssrc",
                Some(format!("{ssrc} msid:{} {}", t.stream_id, t.track_id)),
            ));
        }
    }
    if candidates {
        for c in &local.candidates {
            a.push(attr("candidate", Some(c.clone())));
        }
        a.push(attr("end-of-candidates", None));
    }
    m
}

/// RTX is negotiated for video (answering NACKs from the track's cache); audio has none.
fn rtx_negotiated(s: &NegotiatedSection) -> bool {
    s.kind == SectionKind::Video
}

fn attr(key: &str, value: Option<String>) -> Attribute {
    Attribute::new(key.to_owned(), value)
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
