//! The header extension ids of the server's own offers.

use super::*;
use crate::server::server_peer_connection;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

/// The `(m-line kind, id, uri)` of every `a=extmap` of `sdp`.
fn extmaps(sdp: &str) -> Vec<(String, u16, String)> {
    let mut kind = String::new();
    let mut out = Vec::new();
    for line in sdp.lines() {
        if let Some(m) = line.strip_prefix("m=") {
            kind = m.split(' ').next().unwrap_or_default().to_owned();
        } else if let Some(ext) = line.strip_prefix("a=extmap:") {
            let (id, uri) = ext.split_once(' ').expect("id and uri");
            let id = id.split('/').next().unwrap().parse().expect("numeric id");
            out.push((kind.clone(), id, uri.trim().to_owned()));
        }
    }
    out
}

#[test]
fn server_offers_use_chromium_default_extension_ids() {
    let stats = Arc::new(MediaStats::default());
    let mut pc = server_peer_connection("ufrg", "server-password-of-22+chars", None, stats, &[])
        .expect("server peer connection");
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        pc.add_transceiver_from_kind(kind, Some(init))
            .expect("transceiver");
    }
    let offer = pc.create_offer(None).expect("offer");
    let found = extmaps(&offer.sdp);
    // Chromium's defaults (its own offers use these ids for these extensions).
    let chromium = [
        (1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
        (
            2,
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        ),
        (
            3,
            "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        ),
        (4, "urn:ietf:params:rtp-hdrext:sdes:mid"),
        (
            5,
            "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        ),
        (10, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
        (11, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"),
        (13, "urn:3gpp:video-orientation"),
    ];
    for (kind, id, uri) in &found {
        let expected = chromium.iter().find(|(_, u)| u == uri).map(|(i, _)| *i);
        assert_eq!(expected, Some(*id), "{kind} m-line: {uri} has id {id}");
    }
    let audio: Vec<_> = found
        .iter()
        .filter(|(k, _, _)| k == "audio")
        .map(|(_, i, _)| *i)
        .collect();
    let video: Vec<_> = found
        .iter()
        .filter(|(k, _, _)| k == "video")
        .map(|(_, i, _)| *i)
        .collect();
    let (mut audio_sorted, mut video_sorted) = (audio.clone(), video.clone());
    audio_sorted.sort_unstable();
    video_sorted.sort_unstable();
    assert_eq!(audio_sorted, vec![1, 2, 3], "audio extensions");
    assert_eq!(
        video_sorted,
        vec![2, 3, 4, 5, 10, 11, 13],
        "video extensions"
    );
    assert!(
        !offer.sdp.contains("urn:cascade:unused-extension-id"),
        "placeholders are never offered"
    );
}
