//! Answers to offers captured from Chromium, Firefox, aiortc and GStreamer (`sfu/tests/fixtures/sdp`).

use super::*;
use crate::negotiation::remote;

const CHROMIUM_SIMULCAST: &str =
    include_str!("../../tests/fixtures/sdp/chromium-publish-simulcast.sdp");
const CHROMIUM_DATACHANNEL: &str =
    include_str!("../../tests/fixtures/sdp/chromium-publish-datachannel.sdp");
const CHROMIUM_WHEP: &str = include_str!("../../tests/fixtures/sdp/chromium-whep-recvonly.sdp");
pub(crate) const AIORTC_PUBLISH: &str = include_str!("../../tests/fixtures/sdp/aiortc-publish.sdp");
const AIORTC_WHEP: &str = include_str!("../../tests/fixtures/sdp/aiortc-whep-recvonly.sdp");
const GSTREAMER_PUBLISH: &str = include_str!("../../tests/fixtures/sdp/gstreamer-publish.sdp");
const FIREFOX_PUBLISH: &str = include_str!("../../tests/fixtures/sdp/firefox-publish.sdp");
const FIREFOX_WHEP: &str = include_str!("../../tests/fixtures/sdp/firefox-whep-recvonly.sdp");

pub(crate) fn local() -> LocalTransport {
    LocalTransport {
        ice_ufrag: "srv1".into(),
        ice_pwd: "server-password-of-22+chars".into(),
        fingerprint: "sha-256 AA:BB".into(),
        candidates: vec!["1 1 udp 2130706431 127.0.0.1 50000 typ host".into()],
        session_id: 42,
        session_version: 2,
    }
}

fn answer_of(offer: &str) -> (String, Vec<NegotiatedSection>) {
    let offer = RemoteDescription::parse(offer).expect("offer parses");
    answer(&offer, &local(), |_| None).expect("answered")
}

fn lines_of<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in sdp.lines() {
        if l.starts_with("m=") {
            inside = false;
        }
        if l == format!("a=mid:{mid}") {
            inside = true;
        }
        if inside || (l.starts_with("m=") && out.is_empty()) {
            out.push(l);
        }
    }
    out
}

pub(crate) fn track(codec: Codec, fmtp: &str) -> SendTrack {
    SendTrack {
        codec,
        fmtp: fmtp.into(),
        ssrc: 1111,
        rtx_ssrc: 2222,
        stream_id: "PA_pub".into(),
        track_id: "TR_1".into(),
        cname: "cascade".into(),
        slot: false,
    }
}

#[test]
fn chromium_publisher_with_simulcast_gets_forwardable_codecs_its_ids_and_its_rids() {
    let (sdp, sections) = answer_of(CHROMIUM_SIMULCAST);
    assert_eq!(sections.len(), 2);
    let (audio, video) = (&sections[0], &sections[1]);
    assert_eq!(
        (audio.rejected, audio.direction),
        (false, Direction::RecvOnly)
    );
    let audio_codecs: Vec<_> = audio.codecs.iter().map(|c| (c.codec, c.pt)).collect();
    assert_eq!(
        audio_codecs,
        vec![(Codec::Opus, 111), (Codec::Red, 63)],
        "no G722, PCMU, CN, DTMF"
    );
    assert_eq!(video.direction, Direction::RecvOnly);
    let kinds: std::collections::BTreeSet<_> = video
        .codecs
        .iter()
        .map(|c| format!("{:?}", c.codec))
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["Av1", "H264", "Vp8", "Vp9"]
    );
    assert!(
        video.codecs.iter().all(|c| c.rtx_pt.is_some()),
        "each video codec keeps its RTX"
    );
    assert!(
        video
            .codecs
            .iter()
            .filter(|c| c.codec == Codec::H264)
            .all(|c| c.fmtp.contains("packetization-mode=1")),
        "H.264 only in packetization mode 1"
    );
    assert_eq!(video.remote.send_rids, ["q", "h", "f"]);
    assert!(sdp.contains("a=simulcast:recv q;h;f"));
    for rid in ["q", "h", "f"] {
        assert!(sdp.contains(&format!("a=rid:{rid} recv")));
    }
    // Extensions keep the offer's ids; unknown ones are dropped.
    let exts: Vec<_> = video.extensions.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        exts,
        [2, 13, 3, 5, 4, 10, 11, 12],
        "no toffset, content type, timing, color space, layers allocation"
    );
    assert!(!sdp.contains("goog-remb") && !sdp.contains("toffset"));
    assert!(sdp.contains("a=rtcp-fb:96 transport-cc") && sdp.contains("a=rtcp-fb:96 nack pli"));
    // The session: ICE-lite, one bundle, the server the DTLS server, the candidates in every
    // bundled section.
    assert!(sdp.contains("a=ice-lite") && sdp.contains("a=group:BUNDLE 0 1"));
    assert_eq!(sdp.matches("a=setup:passive").count(), 2);
    assert_eq!(sdp.matches("a=candidate:").count(), 2);
    assert!(lines_of(&sdp, "0").contains(&"a=end-of-candidates"));
    assert!(lines_of(&sdp, "1").contains(&"a=end-of-candidates"));
    // And it is valid SDP that parses back with the same sections.
    let back = RemoteDescription::parse(&sdp).expect("the answer parses");
    assert_eq!(back.sections.len(), 2);
    assert_eq!(
        back.sections[1].send_rids,
        Vec::<String>::new(),
        "the answer receives the rids"
    );
    assert_eq!(back.fingerprint, "sha-256 AA:BB");
}

#[test]
fn a_data_channel_section_is_rejected_and_left_out_of_the_bundle() {
    let (sdp, sections) = answer_of(CHROMIUM_DATACHANNEL);
    let app = sections
        .iter()
        .find(|s| s.kind == SectionKind::Application)
        .unwrap();
    assert!(app.rejected);
    assert!(sdp.contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel"));
    assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"), "{sdp}");
    assert_eq!(sections.iter().filter(|s| !s.rejected).count(), 2);
}

#[test]
fn a_whep_viewer_gets_the_tracks_codec_its_rtx_and_ssrcs() {
    for offer in [CHROMIUM_WHEP, AIORTC_WHEP] {
        let parsed = RemoteDescription::parse(offer).unwrap();
        let (sdp, sections) = answer(&parsed, &local(), |s| match s.kind {
            SectionKind::Audio => Some(track(Codec::Opus, "minptime=10;useinbandfec=1")),
            _ => Some(track(
                Codec::H264,
                "packetization-mode=1;profile-level-id=42e01f",
            )),
        })
        .unwrap();
        let (audio, video) = (&sections[0], &sections[1]);
        assert_eq!(audio.direction, Direction::SendOnly);
        assert_eq!(audio.codecs.len(), 1, "only the codec sent");
        assert_eq!(video.codecs.len(), 1);
        let offered = parsed.sections[1]
            .codecs
            .iter()
            .find(|c| c.pt == video.codecs[0].pt)
            .unwrap();
        assert!(
            offered.fmtp.contains("42e01f"),
            "the matching H.264 profile: {}",
            offered.fmtp
        );
        let video_lines = lines_of(&sdp, &video.mid);
        assert!(video_lines.contains(&"a=sendonly"));
        assert!(
            video_lines.contains(&"a=ssrc-group:FID 1111 2222"),
            "{video_lines:?}"
        );
        assert!(video_lines.contains(&"a=msid:PA_pub TR_1"));
        assert!(video_lines.iter().any(|l| l.ends_with(" rtx/90000")));
        assert!(
            !lines_of(&sdp, &audio.mid)
                .iter()
                .any(|l| l.starts_with("a=ssrc-group")),
            "no RTX for audio"
        );
    }
    // A track in a codec the viewer does not offer: nothing is sent there.
    let parsed = RemoteDescription::parse(AIORTC_WHEP).unwrap();
    let (_, sections) = answer(&parsed, &local(), |s| {
        (s.kind == SectionKind::Video).then(|| track(Codec::Av1, ""))
    })
    .unwrap();
    assert!(sections[1].rejected || sections[1].direction == Direction::Inactive);
    assert_eq!(sections[1].send, None);
}

#[test]
fn aiortc_and_gstreamer_publishers_are_understood() {
    let offer = RemoteDescription::parse(AIORTC_PUBLISH).unwrap();
    assert_eq!(offer.sections[1].ssrcs, [2_373_551_742]);
    assert_eq!(
        offer.sections[1].rtx_ssrcs,
        [(2_373_551_742, 3_744_391_401)]
    );
    let (_, sections) = answer(&offer, &local(), |_| None).unwrap();
    assert_eq!(sections[0].codecs[0].codec, Codec::Opus);
    assert_eq!(sections[0].codecs[0].pt, 96);
    assert_eq!(
        (sections[1].codecs[0].codec, sections[1].codecs[0].rtx_pt),
        (Codec::Vp8, Some(98))
    );

    // String mids, a bundle-only section on port 0, an upper-case OPUS, no extensions.
    let offer = RemoteDescription::parse(GSTREAMER_PUBLISH).unwrap();
    assert_eq!(offer.bundle, ["video0", "audio1"]);
    assert!(!offer.sections[1].stopped, "bundle-only is not stopped");
    let (sdp, sections) = answer(&offer, &local(), |_| None).unwrap();
    assert_eq!(sections.iter().filter(|s| !s.rejected).count(), 2);
    assert!(
        sdp.contains("a=rtpmap:111 OPUS/48000/2"),
        "the codec name as offered"
    );
    assert!(
        !sdp.contains("transport-cc"),
        "no transport-cc feedback without its extension"
    );
    assert!(sdp.contains("a=group:BUNDLE video0 audio1"));
}

#[test]
fn offers_cascade_cannot_answer_get_errors_that_say_why() {
    let err = |sdp: &str| {
        RemoteDescription::parse(sdp)
            .and_then(|o| answer(&o, &local(), |_| None).map(|_| ()))
            .unwrap_err()
    };
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=setup:actpass", "a=setup:passive")),
        NegotiationError::DtlsRole
    );
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=group:BUNDLE 0 1\r\n", "")),
        NegotiationError::NoBundle
    );
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=mid:1", "a=mid:0")),
        NegotiationError::DuplicateMid("0".into())
    );
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=mid:1\r\n", "")),
        NegotiationError::MissingMid(1)
    );
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=fingerprint:sha-256", "a=fingerprint:sha-1")),
        NegotiationError::Missing("a=fingerprint:sha-256")
    );
    assert_eq!(
        err(&CHROMIUM_WHEP.replace("a=ice-pwd:", "a=x-pwd:")),
        NegotiationError::Missing("a=ice-pwd")
    );
    assert!(matches!(
        err("this is not sdp"),
        NegotiationError::Malformed(_)
    ));
    let many = format!(
        "{}{}",
        CHROMIUM_WHEP,
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:x\r\n".repeat(remote::MAX_SECTIONS)
    );
    assert!(matches!(err(&many), NegotiationError::TooManySections(_)));
    // Truncated anywhere: an error or an answer, never a panic.
    for cut in (0..CHROMIUM_SIMULCAST.len()).step_by(37) {
        let _ = RemoteDescription::parse(&CHROMIUM_SIMULCAST[..cut])
            .map(|o| answer(&o, &local(), |_| None));
    }
}

/// A webrtc-rs peer connection that has offered to receive audio and video, and its offer.
pub(crate) fn webrtc_rs_viewer() -> (rtc::peer_connection::RTCPeerConnection, String) {
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::configuration::media_engine::MediaEngine;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    let mut engine = MediaEngine::default();
    engine.register_default_codecs().unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(engine)
        .build(std::time::Instant::now())
        .unwrap();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        pc.add_transceiver_from_kind(kind, Some(init)).unwrap();
    }
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(std::time::Instant::now(), offer.clone())
        .unwrap();
    (pc, offer.sdp)
}

#[test]
fn webrtc_rs_accepts_the_answer_to_its_offer() {
    use rtc::peer_connection::sdp::RTCSessionDescription;
    use std::time::Instant;

    let mut transport = local();
    transport.fingerprint = format!("sha-256 {}", ["AB"; 32].join(":"));
    let answer_to = |offer: &str| {
        let parsed = RemoteDescription::parse(offer).unwrap();
        answer(&parsed, &transport, |s| match s.kind {
            SectionKind::Audio => Some(track(Codec::Opus, "minptime=10;useinbandfec=1")),
            _ => Some(track(Codec::Vp8, "")),
        })
        .unwrap()
    };
    let (mut pc, offer) = webrtc_rs_viewer();
    let (sdp, sections) = answer_to(&offer);
    assert!(
        sections.iter().all(|s| s.direction == Direction::SendOnly),
        "{sections:?}"
    );
    let answer = RTCSessionDescription::answer(sdp.clone()).unwrap();
    pc.set_remote_description(Instant::now(), answer)
        .unwrap_or_else(|e| panic!("webrtc-rs refused the answer: {e}\n{sdp}"));

    // The check has teeth: an answer with other mids is refused.
    let (mut pc, offer) = webrtc_rs_viewer();
    let (sdp, _) = answer_to(&offer);
    let broken = RTCSessionDescription::answer(sdp.replace("a=mid:1", "a=mid:9")).unwrap();
    assert!(pc.set_remote_description(Instant::now(), broken).is_err());
}

#[test]
fn a_section_with_nothing_to_send_or_receive_stays_open_as_inactive() {
    // A viewer offers audio and video, and the room has only video: the audio section is
    // answered inactive (not rejected), with the transport, for a later offer to fill.
    let parsed = RemoteDescription::parse(AIORTC_WHEP).unwrap();
    let (sdp, sections) = answer(&parsed, &local(), |s| {
        (s.kind == SectionKind::Video).then(|| track(Codec::Vp8, ""))
    })
    .unwrap();
    let audio = &sections[0];
    assert!(!audio.rejected);
    assert_eq!(audio.direction, Direction::Inactive);
    assert!(!audio.codecs.is_empty(), "a valid section keeps its codecs");
    let lines = lines_of(&sdp, &audio.mid);
    for want in [
        "a=inactive",
        "a=ice-ufrag:srv1",
        "a=setup:passive",
        "a=rtcp-mux",
    ] {
        assert!(lines.contains(&want), "{want} in {lines:?}");
    }
    assert!(sdp.contains(&format!("a=group:BUNDLE {} {}", audio.mid, sections[1].mid)));
}

#[test]
fn firefox_publisher_and_viewer_are_understood() {
    // Firefox 153 ESR: SSRCs with an FID group, extensions with a direction (`2/recvonly`),
    // the video section bundle-only on port 0, RED and ulpfec for video (not forwarded).
    let offer = RemoteDescription::parse(FIREFOX_PUBLISH).unwrap();
    assert_eq!(offer.bundle, ["0", "1"]);
    assert!(!offer.sections[1].stopped, "bundle-only is not stopped");
    assert_eq!(offer.sections[1].ssrcs, [2_005_440_142]);
    assert_eq!(
        offer.sections[1].rtx_ssrcs,
        [(2_005_440_142, 3_843_580_991)]
    );
    let (sdp, sections) = answer(&offer, &local(), |_| None).unwrap();
    assert_eq!(sections.iter().filter(|s| !s.rejected).count(), 2);
    assert_eq!(
        (sections[0].codecs[0].codec, sections[0].codecs[0].pt),
        (Codec::Opus, 109)
    );
    let video: Vec<_> = sections[1]
        .codecs
        .iter()
        .map(|c| (c.codec, c.pt, c.rtx_pt))
        .collect();
    assert_eq!(
        video,
        [
            (Codec::Vp8, 120, Some(124)),
            (Codec::Vp9, 121, Some(125)),
            (Codec::Av1, 99, Some(100))
        ],
        "ulpfec and video RED are not forwarded"
    );
    let ids = |s: &NegotiatedSection| s.extensions.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    assert!(ids(&sections[0]).contains(&1) && ids(&sections[0]).contains(&3));
    assert!(
        ids(&sections[1]).contains(&7),
        "transport-cc at Firefox's id"
    );
    assert!(sdp.contains("a=group:BUNDLE 0 1") && sdp.contains("a=setup:passive"));
    assert!(
        !sdp.contains("red/90000") && !sdp.contains("ulpfec"),
        "{sdp}"
    );

    // A Firefox WHEP viewer: its receiving sections become slots that send.
    let offer = RemoteDescription::parse(FIREFOX_WHEP).unwrap();
    let (sdp, sections) = answer(&offer, &local(), |s| {
        Some(track(
            if s.kind == SectionKind::Audio {
                Codec::Opus
            } else {
                Codec::Vp8
            },
            "",
        ))
    })
    .unwrap();
    assert!(sections.iter().all(|s| !s.rejected && s.direction.sends()));
    assert_eq!(sdp.matches("a=sendonly").count(), 2);
}
