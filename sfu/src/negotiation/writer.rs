//! Cascade's SDP, offers and answers alike, written with the `sdp` crate: one BUNDLE
//! transport (ICE-lite, the server's certificate, RTCP mux), the server's candidates in every
//! bundled section (a client finds them whichever section it reads).

use rtc::sdp::description::common::{Address, Attribute, ConnectionInformation};
use rtc::sdp::description::media::{MediaDescription, MediaName, RangedPort};
use rtc::sdp::description::session::{Origin, SessionDescription, TimeDescription, Timing};

use super::answer::{LocalTransport, NegotiatedCodec, SendTrack};
use super::remote::{Direction, SectionKind};

/// One m-section to write.
pub(super) struct SectionOut<'a> {
    pub mid: &'a str,
    pub media: &'a str,
    pub protocol: &'a str,
    /// The format of a rejected section's `m=` line.
    pub first_format: &'a str,
    /// Port 0: only the mid is written.
    pub rejected: bool,
    pub kind: SectionKind,
    /// The server's direction.
    pub direction: Direction,
    pub codecs: &'a [NegotiatedCodec],
    pub extensions: &'a [(u8, &'static str)],
    pub rtcp_rsize: bool,
    /// Simulcast rids the server receives.
    pub recv_rids: &'a [String],
    /// The track the server sends.
    pub send: Option<&'a SendTrack>,
}

/// The whole description; `setup` is `passive` in answers, `actpass` in offers (the browser
/// answers `active`: the server stays the DTLS server).
pub(super) fn write(local: &LocalTransport, setup: &str, sections: &[SectionOut<'_>]) -> String {
    let accepted: Vec<&str> = sections
        .iter()
        .filter(|s| !s.rejected)
        .map(|s| s.mid)
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
    for s in sections {
        desc.media_descriptions
            .push(section(local, setup, s, accepted.contains(&s.mid)));
    }
    desc.marshal()
}

fn section(
    local: &LocalTransport,
    setup: &str,
    s: &SectionOut<'_>,
    candidates: bool,
) -> MediaDescription {
    let mut formats = Vec::new();
    for c in s.codecs {
        formats.push(c.pt.to_string());
        if let (Some(rtx), true) = (c.rtx_pt, rtx_negotiated(s)) {
            formats.push(rtx.to_string());
        }
    }
    if s.rejected {
        formats = vec![s.first_format.to_owned()];
    }
    let mut m = MediaDescription {
        media_name: MediaName {
            media: s.media.to_owned(),
            port: RangedPort {
                value: if s.rejected { 0 } else { 9 },
                range: None,
            },
            protos: s.protocol.split('/').map(str::to_owned).collect(),
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
    a.push(attr("mid", Some(s.mid.to_owned())));
    if s.rejected {
        a.push(attr("inactive", None));
        return m;
    }
    a.push(attr("ice-ufrag", Some(local.ice_ufrag.clone())));
    a.push(attr("ice-pwd", Some(local.ice_pwd.clone())));
    a.push(attr("fingerprint", Some(local.fingerprint.clone())));
    a.push(attr("setup", Some(setup.to_owned())));
    a.push(attr("rtcp-mux", None));
    if s.rtcp_rsize {
        a.push(attr("rtcp-rsize", None));
    }
    a.push(attr(s.direction.as_str(), None));
    for (id, uri) in s.extensions {
        a.push(attr("extmap", Some(format!("{id} {uri}"))));
    }
    for c in s.codecs {
        let name = &c.name;
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
    if s.direction.receives() && !s.recv_rids.is_empty() {
        for rid in s.recv_rids {
            a.push(attr("rid", Some(format!("{rid} recv"))));
        }
        a.push(attr(
            "simulcast",
            Some(format!("recv {}", s.recv_rids.join(";"))),
        ));
    }
    if let Some(t) = s.send.filter(|_| s.direction.sends()) {
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
fn rtx_negotiated(s: &SectionOut<'_>) -> bool {
    s.kind == SectionKind::Video
}

fn attr(key: &str, value: Option<String>) -> Attribute {
    Attribute::new(key.to_owned(), value)
}
