//! Cascade's own offers (a server-initiated renegotiation): the peer's sections as negotiated so
//! far, in order, plus the tracks to start sending. A track goes into a section of its kind that
//! sends nothing (a WHEP viewer's section, or one a track left), else into a new section; the
//! payload types and extension ids of a new section are those the BUNDLE group already uses for
//! the same codec or URI, so that no id changes meaning. The peer's answer is applied back.

use super::NegotiationError;
use super::answer::{LocalTransport, NegotiatedCodec, NegotiatedSection, SendTrack, sends_as};
use super::capabilities::{self, EXTENSIONS, TRANSPORT_CC_URI};
use super::remote::{Direction, RemoteDescription, SectionKind};
use super::writer::{self, SectionOut};

/// A section of a peer's session as Cascade knows it (what the last negotiation settled, or
/// what the next offer proposes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSection {
    /// Its mid.
    pub mid: String,
    /// Its kind.
    pub kind: SectionKind,
    /// Rejected or stopped (port 0).
    pub rejected: bool,
    /// The server's direction.
    pub direction: Direction,
    /// Its codecs.
    pub codecs: Vec<NegotiatedCodec>,
    /// Its header extensions.
    pub extensions: Vec<(u8, &'static str)>,
    /// The track the server sends in it.
    pub send: Option<SendTrack>,
    /// Simulcast rids the server receives.
    pub recv_rids: Vec<String>,
    /// The `m=` media and protocol, as first written.
    pub media: String,
    /// See [`SessionSection::media`].
    pub protocol: String,
}

impl From<&NegotiatedSection> for SessionSection {
    fn from(s: &NegotiatedSection) -> Self {
        Self {
            mid: s.mid.clone(),
            kind: s.kind,
            rejected: s.rejected,
            direction: s.direction,
            codecs: s.codecs.clone(),
            extensions: s.extensions.clone(),
            send: s.send.clone(),
            recv_rids: s.remote.send_rids.clone(),
            media: s.remote.media.clone(),
            protocol: s.remote.protocol.clone(),
        }
    }
}

/// Puts `track` (sent as `codec`) into `sections`: the first section of its kind that is
/// neither rejected nor sending and offers that codec, else a new section. The section's index.
pub fn place(sections: &mut Vec<SessionSection>, kind: SectionKind, track: SendTrack) -> usize {
    let reusable = sections.iter().position(|s| {
        s.kind == kind
            && !s.rejected
            && s.send.is_none()
            && !s.direction.receives()
            && s.codecs.iter().any(|c| sends_as(&track, c.codec, &c.fmtp))
    });
    if let Some(i) = reusable {
        let s = &mut sections[i];
        if let Some(c) = s.codecs.iter().find(|c| sends_as(&track, c.codec, &c.fmtp)) {
            s.codecs = vec![c.clone()];
        }
        s.direction = Direction::SendOnly;
        s.send = Some(track);
        return i;
    }
    let codec = codec_for(sections, kind, &track);
    let extensions = extensions_for(sections, kind);
    let mut codec = codec;
    if !extensions.iter().any(|(_, uri)| *uri == TRANSPORT_CC_URI) {
        codec.feedback.retain(|f| f != "transport-cc");
    }
    let mid = (0..)
        .map(|n: u32| n.to_string())
        .find(|m| sections.iter().all(|s| s.mid != *m))
        .expect("a free mid");
    sections.push(SessionSection {
        mid,
        kind,
        rejected: false,
        direction: Direction::SendOnly,
        codecs: vec![codec],
        extensions,
        send: Some(track),
        recv_rids: Vec::new(),
        media: if kind == SectionKind::Audio {
            "audio"
        } else {
            "video"
        }
        .into(),
        protocol: "UDP/TLS/RTP/SAVPF".into(),
    });
    sections.len() - 1
}

/// The codec a new section sends `track` with: its payload types those the session already
/// uses for it, else Cascade's defaults if free, else free dynamic ones.
fn codec_for(sections: &[SessionSection], kind: SectionKind, track: &SendTrack) -> NegotiatedCodec {
    let used: Vec<&NegotiatedCodec> = sections.iter().flat_map(|s| &s.codecs).collect();
    if let Some(c) = used.iter().find(|c| sends_as(track, c.codec, &c.fmtp)) {
        return (*c).clone();
    }
    let mut codec = capabilities::default_codec(track.codec, &track.fmtp);
    let taken = |pt: u8| used.iter().any(|c| c.pt == pt || c.rtx_pt == Some(pt));
    let mut free = (96u8..=127).filter(|pt| !taken(*pt));
    if taken(codec.pt) {
        codec.pt = free.next().unwrap_or(codec.pt);
    }
    if kind == SectionKind::Video && codec.rtx_pt.is_none_or(|pt| taken(pt) || pt == codec.pt) {
        codec.rtx_pt = free.find(|pt| *pt != codec.pt);
    }
    codec
}

/// The extensions of a new section of `kind`: each at the id the session already gives its
/// URI, else at Cascade's id unless that id means something else in the session.
fn extensions_for(sections: &[SessionSection], kind: SectionKind) -> Vec<(u8, &'static str)> {
    let used: Vec<(u8, &'static str)> = sections
        .iter()
        .flat_map(|s| s.extensions.iter().copied())
        .collect();
    EXTENSIONS
        .iter()
        .filter(|e| {
            if kind == SectionKind::Audio {
                e.audio
            } else {
                e.video
            }
        })
        .filter_map(|e| match used.iter().find(|(_, uri)| *uri == e.uri) {
            Some((id, _)) => Some((*id, e.uri)),
            None if used.iter().all(|(id, _)| *id != e.id) => Some((e.id, e.uri)),
            None => None,
        })
        .collect()
}

/// The offer of `sections` (`setup:actpass`: the browser answers `active`, the server stays
/// the DTLS server).
pub fn offer(local: &LocalTransport, sections: &[SessionSection]) -> String {
    let first_formats: Vec<String> = sections
        .iter()
        .map(|s| s.codecs.first().map_or("0".into(), |c| c.pt.to_string()))
        .collect();
    let out: Vec<SectionOut<'_>> = sections
        .iter()
        .zip(&first_formats)
        .map(|(s, first)| SectionOut {
            mid: &s.mid,
            media: &s.media,
            protocol: &s.protocol,
            first_format: first,
            rejected: s.rejected,
            kind: s.kind,
            direction: s.direction,
            codecs: &s.codecs,
            extensions: &s.extensions,
            rtcp_rsize: true,
            recv_rids: &s.recv_rids,
            send: s.send.as_ref(),
        })
        .collect();
    writer::write(local, "actpass", &out)
}

/// Applies the peer's `answer` to an offer of `sections`: per section the codecs and
/// extensions the answer kept, and the directions both sides agree on.
pub fn apply_answer(
    sections: &[SessionSection],
    answer: &RemoteDescription,
) -> Result<Vec<NegotiatedSection>, NegotiationError> {
    if answer.sections.len() != sections.len() {
        return Err(NegotiationError::AnswerMismatch(format!(
            "{} m-sections for an offer of {}",
            answer.sections.len(),
            sections.len()
        )));
    }
    sections
        .iter()
        .zip(&answer.sections)
        .map(|(ours, theirs)| {
            if ours.mid != theirs.mid {
                return Err(NegotiationError::AnswerMismatch(format!(
                    "mid {:?} where the offer has {:?}",
                    theirs.mid, ours.mid
                )));
            }
            let codecs: Vec<NegotiatedCodec> = ours
                .codecs
                .iter()
                .filter_map(|c| {
                    let answered = theirs.codecs.iter().find(|t| t.pt == c.pt)?;
                    let mut c = c.clone();
                    c.rtx_pt = c.rtx_pt.filter(|_| answered.rtx_pt.is_some());
                    Some(c)
                })
                .collect();
            let extensions = ours
                .extensions
                .iter()
                .filter(|(id, uri)| theirs.extensions.iter().any(|(i, u)| i == id && u == uri))
                .copied()
                .collect();
            let rejected = ours.rejected || theirs.stopped || codecs.is_empty();
            let direction = Direction::from_flags(
                ours.direction.sends() && theirs.direction.receives(),
                ours.direction.receives() && theirs.direction.sends(),
            );
            Ok(NegotiatedSection {
                mid: ours.mid.clone(),
                kind: ours.kind,
                rejected,
                direction: if rejected {
                    Direction::Inactive
                } else {
                    direction
                },
                codecs,
                extensions,
                remote: theirs.clone(),
                send: ours.send.clone().filter(|_| !rejected && direction.sends()),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "offer_tests.rs"]
mod tests;
