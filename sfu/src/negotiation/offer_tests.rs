//! Cascade's own offers: accepted and answered by webrtc-rs, sections recycled, payload types
//! and extension ids kept consistent across the BUNDLE group.

use super::*;
use crate::negotiation::answer::answer;
use crate::negotiation::answer::tests::{AIORTC_PUBLISH, local, track, webrtc_rs_viewer};
use crate::negotiation::capabilities::Codec;
use rtc::peer_connection::sdp::RTCSessionDescription;
use std::time::Instant;

#[test]
fn webrtc_rs_takes_cascades_offer_of_new_tracks_and_its_answer_applies() {
    // A viewer joined an empty room: both of its sections are inactive.
    let (mut pc, viewer_offer) = webrtc_rs_viewer();
    let mut transport = local();
    transport.fingerprint = format!("sha-256 {}", ["AB"; 32].join(":"));
    let (sdp, sections) = answer(
        &RemoteDescription::parse(&viewer_offer).unwrap(),
        &transport,
        |_| None,
    )
    .unwrap();
    assert!(sections.iter().all(|s| s.direction == Direction::Inactive));
    pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp).unwrap())
        .unwrap();

    // Tracks arrive: audio and video take the idle sections, a second video gets a new one.
    let mut session: Vec<SessionSection> = sections.iter().map(SessionSection::from).collect();
    assert_eq!(
        place(
            &mut session,
            SectionKind::Audio,
            track(Codec::Opus, "minptime=10;useinbandfec=1")
        ),
        0
    );
    assert_eq!(
        place(&mut session, SectionKind::Video, track(Codec::Vp8, "")),
        1
    );
    let mut second = track(Codec::Vp8, "");
    second.ssrc = 3333;
    assert_eq!(place(&mut session, SectionKind::Video, second), 2);
    assert_eq!(session[2].mid, "2");
    assert_eq!(
        session[2].codecs[0].pt, session[1].codecs[0].pt,
        "VP8 keeps its payload type in the bundle"
    );
    transport.session_version += 1;
    let offer_sdp = offer(&transport, &session);
    assert!(offer_sdp.contains("a=setup:actpass") && offer_sdp.contains("a=group:BUNDLE 0 1 2"));

    pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::offer(offer_sdp.clone()).unwrap(),
    )
    .unwrap_or_else(|e| panic!("webrtc-rs refused the offer: {e}\n{offer_sdp}"));
    let their_answer = pc.create_answer(None).unwrap();
    pc.set_local_description(Instant::now(), their_answer.clone())
        .unwrap();
    let negotiated = apply_answer(
        &session,
        &RemoteDescription::parse(&their_answer.sdp).unwrap(),
    )
    .unwrap();
    for s in &negotiated {
        assert_eq!(s.direction, Direction::SendOnly, "{s:?}");
        assert!(s.send.is_some() && !s.codecs.is_empty());
    }
    assert_eq!(negotiated[2].send.as_ref().unwrap().ssrc, 3333);
}

#[test]
fn a_new_section_reuses_the_bundles_payload_types_and_avoids_taken_ones() {
    // Against aiortc: opus 96, VP8 97 (RTX 98), H.264 99 and 101 (RTX 100 and 102).
    let (_, sections) = answer(
        &RemoteDescription::parse(AIORTC_PUBLISH).unwrap(),
        &local(),
        |_| None,
    )
    .unwrap();
    let mut session: Vec<SessionSection> = sections.iter().map(SessionSection::from).collect();
    let vp8 = place(&mut session, SectionKind::Video, track(Codec::Vp8, ""));
    assert_eq!(
        (session[vp8].codecs[0].pt, session[vp8].codecs[0].rtx_pt),
        (97, Some(98))
    );
    let h264 = place(
        &mut session,
        SectionKind::Video,
        track(Codec::H264, "packetization-mode=1;profile-level-id=42e01f"),
    );
    assert_eq!(
        session[h264].codecs[0].pt, 101,
        "the matching H.264 profile's type"
    );
    let vp9 = place(&mut session, SectionKind::Video, track(Codec::Vp9, ""));
    let c = &session[vp9].codecs[0];
    assert_eq!(
        (c.pt, c.rtx_pt),
        (103, Some(104)),
        "98 and 99 are taken: the first free ones"
    );
    // aiortc's ids: mid 1, abs-send-time 3 (video), audio level 2: reused, others at Cascade's
    // ids unless taken.
    let ids: Vec<_> = session[vp9].extensions.clone();
    assert!(ids.contains(&(1, crate::negotiation::capabilities::MID_URI)));
    assert!(ids.iter().all(|(id, uri)| {
        session
            .iter()
            .flat_map(|s| &s.extensions)
            .all(|(i, u)| i != id || u == uri)
    }));
}

#[test]
fn an_answer_that_does_not_match_the_offer_is_refused() {
    let (_, sections) = answer(
        &RemoteDescription::parse(AIORTC_PUBLISH).unwrap(),
        &local(),
        |_| None,
    )
    .unwrap();
    let session: Vec<SessionSection> = sections.iter().map(SessionSection::from).collect();
    let one = RemoteDescription::parse(
        &AIORTC_PUBLISH.replace("m=video", "m=video 0 X Y\r\na=mid:zz\r\nm=video"),
    )
    .unwrap();
    assert!(matches!(
        apply_answer(&session, &one),
        Err(NegotiationError::AnswerMismatch(_))
    ));
    let swapped = RemoteDescription::parse(&AIORTC_PUBLISH.replace("a=mid:0", "a=mid:9")).unwrap();
    assert!(matches!(
        apply_answer(&session, &swapped),
        Err(NegotiationError::AnswerMismatch(_))
    ));
}
