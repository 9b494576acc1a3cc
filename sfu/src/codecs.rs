//! The codecs and RTP header extensions Cascade negotiates, and the peer-connection settings.

use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

use std::sync::Arc;

use rtc::interceptor::{NackGeneratorBuilder, NackResponderBuilder, Slot};

use crate::feedback_tap::{FEEDBACK_TAP_SLOT, FeedbackTap};
use crate::stats::MediaStats;

/// The header extensions Cascade negotiates, at the index of the id it gives each in its own
/// offers (id = index + 1): Chromium's default ids. Ids within a BUNDLE group must keep their
/// meaning for the whole session, and Chromium picks its defaults for extensions it adds later;
/// with other ids, a browser that first received the server's offer could later make an offer
/// (or get one, after rolling its own back) that reuses an id for another extension, which it
/// refuses. `None` keeps an id free (the Chromium extensions Cascade does not negotiate). Answers
/// keep the ids of the client's offer. Simulcast's mid/rid/repaired-rid and transport-cc are
/// configured by webrtc-rs's helpers too; the others are forwarded from publishers to
/// subscribers (each with its id rewritten for the subscriber).
const EXTENSION_IDS: [Option<(&str, &[RtpCodecKind])>; 13] = [
    Some(("urn:ietf:params:rtp-hdrext:ssrc-audio-level", AUDIO)),
    Some((
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        AUDIO_VIDEO,
    )),
    Some((
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        AUDIO_VIDEO,
    )),
    Some(("urn:ietf:params:rtp-hdrext:sdes:mid", VIDEO)),
    Some((
        "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        VIDEO,
    )),
    None, // video-content-type
    None, // video-timing
    None, // color-space
    None,
    Some(("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", VIDEO)),
    Some((
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        VIDEO,
    )),
    None,
    Some(("urn:3gpp:video-orientation", VIDEO)),
];
const AUDIO: &[RtpCodecKind] = &[RtpCodecKind::Audio];
const VIDEO: &[RtpCodecKind] = &[RtpCodecKind::Video];
const AUDIO_VIDEO: &[RtpCodecKind] = &[RtpCodecKind::Audio, RtpCodecKind::Video];

/// Registers [`EXTENSION_IDS`] in order; a free id is held by a placeholder of no media kind,
/// which is never offered and matches no remote extension.
fn register_header_extensions(engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    for (index, entry) in EXTENSION_IDS.iter().enumerate() {
        let (uri, kinds) = match entry {
            Some((uri, kinds)) => ((*uri).to_owned(), *kinds),
            None => (
                format!("urn:cascade:unused-extension-id:{}", index + 1),
                &[RtpCodecKind::Unspecified][..],
            ),
        };
        for kind in kinds {
            engine.register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: uri.clone() },
                *kind,
                None,
            )?;
        }
    }
    Ok(())
}

/// The codec a WHEP slot is created with before a track fills it: Opus or VP8, as registered
/// by the media engine. The codec actually sent is the filling track's, if negotiated.
pub fn default_codec(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: Vec::new(),
        },
        _ => RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: Vec::new(),
        },
    }
}

/// Builds the media engine (Opus, VP8, VP9, H.264, AV1 with RTX and the usual feedback) and the
/// interceptors of one server peer connection: receiver/sender reports, TWCC feedback to
/// publishers, NACK generation towards publishers, NACK answering towards subscribers (RTX when
/// negotiated), and the [`FeedbackTap`] that surfaces subscribers' PLI/FIR/NACK and counts
/// retransmissions in `stats`.
pub fn media_engine_and_interceptors(
    stats: Arc<MediaStats>,
) -> Result<(MediaEngine, Registry), rtc::shared::error::Error> {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs()?;
    for fb in [("nack", ""), ("nack", "pli"), ("ccm", "fir")] {
        engine.register_feedback(
            RTCPFeedback {
                typ: fb.0.to_owned(),
                parameter: fb.1.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
    engine.register_feedback(
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        },
        RtpCodecKind::Audio,
    );
    register_header_extensions(&mut engine)?;
    configure_simulcast_extension_headers(&mut engine)?;
    let registry = Registry::new()
        .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::Custom(FEEDBACK_TAP_SLOT), FeedbackTap::new(stats));
    let registry = configure_twcc_receiver_only(registry, &mut engine)?;
    let registry = configure_rtcp_reports(registry);
    Ok((engine, registry))
}

#[cfg(test)]
#[path = "codecs_tests.rs"]
mod tests;
