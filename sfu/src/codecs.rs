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
use crate::negotiation::capabilities::{self, EXTENSIONS};
use crate::stats::MediaStats;

/// Registers Cascade's header extensions ([`capabilities::EXTENSIONS`]) so that each gets its
/// id there in the server's own offers: webrtc-rs gives the n-th registered extension id n, so a
/// free id is held by a placeholder of no media kind, which is never offered and matches no
/// remote extension. Answers keep the ids of the client's offer. This path does not forward the
/// AV1 dependency descriptor, nor negotiate the mid extension for audio.
fn register_header_extensions(engine: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    let last = EXTENSIONS.iter().map(|e| e.id).max().unwrap_or(0);
    for id in 1..=last {
        let ext = EXTENSIONS
            .iter()
            .find(|e| e.id == id && e.uri != capabilities::DEPENDENCY_DESCRIPTOR_URI);
        let (uri, kinds) = match ext {
            Some(e) => {
                let audio = e.audio && e.uri != capabilities::MID_URI;
                let kinds = [(audio, RtpCodecKind::Audio), (e.video, RtpCodecKind::Video)];
                let kinds: Vec<_> = kinds.iter().filter(|k| k.0).map(|k| k.1).collect();
                (e.uri.to_owned(), kinds)
            }
            None => (
                format!("urn:cascade:unused-extension-id:{id}"),
                vec![RtpCodecKind::Unspecified],
            ),
        };
        for kind in kinds {
            engine.register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: uri.clone() },
                kind,
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
