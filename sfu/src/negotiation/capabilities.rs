//! What Cascade negotiates: its codecs, their RTCP feedback, and its RTP header extensions with
//! the id each gets in Cascade's own offers.

use super::answer::NegotiatedCodec;
use super::remote::{RemoteCodec, SectionKind, fmtp_param};

/// A codec Cascade forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus, 48 kHz stereo.
    Opus,
    /// RED (RFC 2198) carrying Opus, accepted only with Opus.
    Red,
    /// VP8.
    Vp8,
    /// VP9 (profile 0 or 2).
    Vp9,
    /// H.264 with packetization mode 1.
    H264,
    /// AV1.
    Av1,
}

/// Which of Cascade's codecs `c` is, if any, in an m-section of `kind`.
pub fn codec_of(kind: SectionKind, c: &RemoteCodec) -> Option<Codec> {
    let name = c.name.to_ascii_lowercase();
    match (kind, name.as_str(), c.clock_rate) {
        (SectionKind::Audio, "opus", 48_000) if c.channels == 2 => Some(Codec::Opus),
        (SectionKind::Audio, "red", 48_000) if c.channels == 2 => Some(Codec::Red),
        (SectionKind::Video, "vp8", 90_000) => Some(Codec::Vp8),
        (SectionKind::Video, "vp9", 90_000)
            if matches!(fmtp_param(&c.fmtp, "profile-id"), None | Some("0" | "2")) =>
        {
            Some(Codec::Vp9)
        }
        (SectionKind::Video, "h264", 90_000)
            if fmtp_param(&c.fmtp, "packetization-mode") == Some("1") =>
        {
            Some(Codec::H264)
        }
        (SectionKind::Video, "av1" | "av1x", 90_000) => Some(Codec::Av1),
        _ => None,
    }
}

/// The RTCP feedback Cascade accepts, per kind: it answers NACKs, requests keyframes, and
/// sends transport-wide congestion control feedback.
pub fn feedback_supported(kind: SectionKind, feedback: &str) -> bool {
    match kind {
        SectionKind::Audio => feedback == "transport-cc",
        SectionKind::Video => matches!(feedback, "nack" | "nack pli" | "ccm fir" | "transport-cc"),
        _ => false,
    }
}

/// `urn:ietf:params:rtp-hdrext:sdes:mid`.
pub const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// `urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id` (a simulcast layer's rid).
pub const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// `urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id` (the rid an RTX stream repairs).
pub const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
/// The transport-wide congestion control sequence number extension.
pub const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// The AV1 dependency descriptor.
pub const DEPENDENCY_DESCRIPTOR_URI: &str =
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension";

/// A header extension Cascade negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension {
    /// The id in Cascade's own offers: Chromium's default for it. Ids within a BUNDLE group
    /// keep their meaning for the whole session, and a browser picks its defaults for the
    /// extensions it adds later; other ids could make it reuse one for another extension,
    /// which it refuses.
    pub id: u8,
    /// Its URI.
    pub uri: &'static str,
    /// Negotiated in audio sections.
    pub audio: bool,
    /// Negotiated in video sections.
    pub video: bool,
}

/// The header extensions Cascade negotiates.
pub const EXTENSIONS: &[Extension] = &[
    ext(
        1,
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        true,
        false,
    ),
    ext(
        2,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        true,
        true,
    ),
    ext(3, TRANSPORT_CC_URI, true, true),
    ext(4, MID_URI, true, true),
    ext(
        5,
        "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        false,
        true,
    ),
    ext(
        10,
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        false,
        true,
    ),
    ext(
        11,
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        false,
        true,
    ),
    ext(12, DEPENDENCY_DESCRIPTOR_URI, false, true),
    ext(13, "urn:3gpp:video-orientation", false, true),
];

const fn ext(id: u8, uri: &'static str, audio: bool, video: bool) -> Extension {
    Extension {
        id,
        uri,
        audio,
        video,
    }
}

/// The extension with `uri`, if Cascade negotiates it in sections of `kind`.
pub fn extension(kind: SectionKind, uri: &str) -> Option<&'static Extension> {
    EXTENSIONS.iter().find(|e| {
        e.uri == uri
            && match kind {
                SectionKind::Audio => e.audio,
                SectionKind::Video => e.video,
                _ => false,
            }
    })
}

/// How Cascade offers `codec` in a new section when the peer has not negotiated it yet:
/// Chromium's payload types, the track's `fmtp` (its H.264 or VP9 profile) or the usual one.
pub fn default_codec(codec: Codec, fmtp: &str) -> NegotiatedCodec {
    let (name, pt, rtx_pt, clock_rate, channels, usual) = match codec {
        Codec::Opus => ("opus", 111, None, 48_000, 2, "minptime=10;useinbandfec=1"),
        Codec::Red => ("red", 63, None, 48_000, 2, "111/111"),
        Codec::Vp8 => ("VP8", 96, Some(97), 90_000, 1, ""),
        Codec::Vp9 => ("VP9", 98, Some(99), 90_000, 1, "profile-id=0"),
        Codec::H264 => (
            "H264",
            102,
            Some(103),
            90_000,
            1,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        Codec::Av1 => ("AV1", 45, Some(46), 90_000, 1, ""),
    };
    let video = !matches!(codec, Codec::Opus | Codec::Red);
    let feedback: &[&str] = if video {
        &["transport-cc", "ccm fir", "nack", "nack pli"]
    } else {
        &["transport-cc"]
    };
    NegotiatedCodec {
        codec,
        name: name.into(),
        pt,
        rtx_pt,
        clock_rate,
        channels,
        fmtp: if fmtp.is_empty() { usual } else { fmtp }.into(),
        feedback: feedback.iter().map(|f| (*f).to_owned()).collect(),
    }
}
