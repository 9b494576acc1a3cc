//! The codecs of the kit's peer connections (Opus, VP8 and RTX for VP8) and their media engine.

use std::fmt;

use anyhow::Result;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use webrtc::peer_connection::{MediaEngine, register_default_interceptors};

use crate::payload;
use crate::peer::PeerOptions;

/// Opus payload type the client registers.
pub const OPUS_PT: u8 = 111;
/// VP8 payload type the client registers.
pub const VP8_PT: u8 = 96;
/// RTX (for VP8) payload type the client registers when [`PeerOptions::rtx`] is set.
pub const RTX_PT: u8 = 97;

/// RTCP feedback the client registers for VP8 (`goog-remb` only with [`PeerOptions::remb`]).
const VP8_FEEDBACK: [(&str, &str); 5] = [
    ("goog-remb", ""),
    ("ccm", "fir"),
    ("nack", ""),
    ("nack", "pli"),
    ("transport-cc", ""),
];

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (VP8).
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as in Cascade's protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    /// webrtc-rs's kind.
    pub fn codec_kind(self) -> RtpCodecKind {
        match self {
            Self::Audio => RtpCodecKind::Audio,
            Self::Video => RtpCodecKind::Video,
        }
    }

    /// The kind of a webrtc-rs kind (`None` for an unspecified one).
    pub(crate) fn from_codec_kind(kind: RtpCodecKind) -> Option<Self> {
        match kind {
            RtpCodecKind::Audio => Some(Self::Audio),
            RtpCodecKind::Video => Some(Self::Video),
            _ => None,
        }
    }

    /// The codec of a local track of this kind (RTCP feedback is negotiated per m-line).
    pub(crate) fn track_codec(self) -> RTCRtpCodec {
        match self {
            Self::Audio => opus(),
            Self::Video => vp8(vec![]),
        }
    }

    /// Mime type and registered payload type of this kind's codec.
    pub(crate) fn mime_and_pt(self) -> (&'static str, u8) {
        match self {
            Self::Audio => (MIME_TYPE_OPUS, OPUS_PT),
            Self::Video => (MIME_TYPE_VP8, VP8_PT),
        }
    }

    /// RTP timestamp step of one test payload ([`payload::AUDIO_TS_STEP`] or
    /// [`payload::VIDEO_TS_STEP`]).
    pub(crate) fn ts_step(self) -> u32 {
        match self {
            Self::Audio => payload::AUDIO_TS_STEP,
            Self::Video => payload::VIDEO_TS_STEP,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: String) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp,
        rtcp_feedback: vec![],
    }
}

fn opus() -> RTCRtpCodec {
    codec(
        MIME_TYPE_OPUS,
        48_000,
        2,
        "minptime=10;useinbandfec=1".to_owned(),
    )
}

fn vp8(rtcp_feedback: Vec<RTCPFeedback>) -> RTCRtpCodec {
    RTCRtpCodec {
        rtcp_feedback,
        ..codec(MIME_TYPE_VP8, 90_000, 0, String::new())
    }
}

/// The media engine and interceptors of a peer connection: Opus/111, VP8/96 (nack, nack pli,
/// ccm fir, transport-cc, optionally goog-remb), optionally RTX/97; webrtc-rs's default
/// interceptors (NACK generator/responder, RR/SR, TWCC receiver, simulcast header extensions)
/// plus, if given, the [`crate::wire::WireRecorder`] nearest the wire.
pub(crate) fn media_engine(options: &PeerOptions) -> Result<(MediaEngine, Registry)> {
    let feedback = VP8_FEEDBACK
        .iter()
        .filter(|(typ, _)| options.remb || *typ != "goog-remb")
        .map(|&(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .collect();
    let mut codecs = vec![
        (opus(), OPUS_PT, RtpCodecKind::Audio),
        (vp8(feedback), VP8_PT, RtpCodecKind::Video),
    ];
    if options.rtx {
        let rtx = codec(MIME_TYPE_RTX, 90_000, 0, format!("apt={VP8_PT}"));
        codecs.push((rtx, RTX_PT, RtpCodecKind::Video));
    }
    let mut engine = MediaEngine::default();
    for (rtp_codec, payload_type, kind) in codecs {
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            },
            kind,
        )?;
    }
    let mut registry = register_default_interceptors(Registry::new(), &mut engine)?;
    if let Some(wire) = &options.wire {
        registry = registry.with(Slot::Custom(100), wire.interceptor());
    }
    Ok((engine, registry))
}
