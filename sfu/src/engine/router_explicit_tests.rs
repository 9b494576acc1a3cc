//! The router's explicit mode (a worker's peers, whose rooms say who receives what) and its
//! mirrors of tracks published on other workers, end to end in memory with the helpers of
//! `router_tests.rs`.

use super::*;

/// `from` sends the video packet `seq`.
fn send_video(router: &mut Router, sink: &mut Collect, from: &mut Peer, seq: u16) {
    send(router, sink, from, &video(seq).marshal().unwrap(), false);
}

/// The track of `peer`'s video publication.
fn video_track(router: &Router, peer: &Peer) -> TrackId {
    let p = router.peer(peer.idx).unwrap();
    p.publications
        .iter()
        .find(|x| x.info.kind == SectionKind::Video)
        .unwrap()
        .track
}

#[test]
fn explicit_mode_sends_wanted_tracks_and_a_slot_keeps_one_stream_across_tracks() {
    let now = Instant::now();
    let mut router = Router::explicit(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut publisher = join(&mut router, &mut sink, PUBLISH, "pubX", 5700);
    let track = video_track(&router, &publisher);
    send_video(&mut router, &mut sink, &mut publisher, 1);
    let events: Vec<_> = std::iter::from_fn(|| router.poll_event()).collect();
    assert!(
        events.contains(&RouterEvent::Published(track)),
        "{events:?}"
    );

    let mut viewer = join_as(&mut router, &mut sink, VIEW, "subX", 6700, true);
    assert!(
        router.peer(viewer.idx).unwrap().subscriptions.is_empty(),
        "nothing wanted yet"
    );
    assert_eq!(viewer.answer.matches("a=sendonly").count(), 2, "two slots");
    send_video(&mut router, &mut sink, &mut publisher, 2);
    assert!(rtp_to(&mut sink, &mut viewer).is_empty());

    assert!(
        router.want(now, viewer.idx, track, &mut sink),
        "the video slot takes it"
    );
    let rtcp = rtcp_to(&mut sink, &mut publisher);
    assert_eq!(first::<PictureLossIndication>(&rtcp).media_ssrc, VIDEO_SSRC);
    send_video(&mut router, &mut sink, &mut publisher, 3);
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, video(3).payload);
    let (ssrc, seq) = (got[0].header.ssrc, got[0].header.sequence_number);

    // Unwanted: the slot idles and keeps its stream for the next track.
    router.unwant(viewer.idx, track);
    assert_eq!(router.peer(viewer.idx).unwrap().idle.len(), 1);
    send_video(&mut router, &mut sink, &mut publisher, 4);
    assert!(rtp_to(&mut sink, &mut viewer).is_empty());
    assert!(router.want(now, viewer.idx, track, &mut sink));
    let _ = rtcp_to(&mut sink, &mut publisher);
    send_video(&mut router, &mut sink, &mut publisher, 5);
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header.ssrc, ssrc, "the slot's SSRC");
    assert_eq!(
        got[0].header.sequence_number,
        seq.wrapping_add(2),
        "the same source keeps its numbering (one packet went by while unwanted)"
    );

    // The publisher leaves: its track ends (told), the viewer's slot idles.
    router.leave(publisher.idx);
    let events: Vec<_> = std::iter::from_fn(|| router.poll_event()).collect();
    assert!(events.contains(&RouterEvent::Ended(track)), "{events:?}");
    assert!(router.peer(viewer.idx).unwrap().subscriptions.is_empty());
}

#[test]
fn a_mirror_of_a_track_from_elsewhere_reaches_its_subscribers_and_asks_upstream_for_keyframes() {
    let now = Instant::now();
    let mut origin = Router::explicit(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let publisher = join(&mut origin, &mut sink, PUBLISH, "pubM", 5800);
    let (_, publication) = origin
        .publication(video_track(&origin, &publisher))
        .unwrap();
    let info = publication.info.clone();

    let mut router = Router::explicit(DtlsIdentity::generate().unwrap());
    let mut viewer = join(&mut router, &mut sink, VIEW, "subM", 6800);
    let mirror = router.add_mirror(info);
    router.name_track(mirror, "PA_pub".into(), "TR_video".into());
    assert!(
        !router.want(now, viewer.idx, mirror, &mut sink),
        "needs an offer"
    );
    let offer = router.offer(viewer.idx).expect("the mirror is offered");
    assert!(offer.contains("a=msid:PA_pub TR_video"), "{offer}");
    assert_eq!(
        router.offered_tracks(viewer.idx),
        [(
            RemoteDescription::parse(&offer).unwrap().sections[1]
                .mid
                .clone(),
            mirror
        )]
    );
    router
        .apply_answer(
            now,
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| router.poll_event()).collect();
    assert!(
        events.contains(&RouterEvent::KeyframeWanted(mirror)),
        "a new subscriber's keyframe is asked upstream: {events:?}"
    );
    for seq in [10, 11, 11, 12] {
        router.mirror_rtp(now, mirror, &video(seq).marshal().unwrap(), &mut sink);
    }
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 3, "the duplicate is forwarded once");
    assert_eq!(got[2].payload, video(12).payload);
    // A NACK is answered from the mirror's cache.
    let ssrc = got[0].header.ssrc;
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        nacks: vec![
            rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair {
                packet_id: got[1].header.sequence_number,
                lost_packets: 0,
            },
        ],
    };
    let data = rtc::rtcp::packet::marshal(&[Box::new(nack) as Box<dyn RtcpPacket>]).unwrap();
    send(&mut router, &mut sink, &mut viewer, &data, true);
    assert_eq!(rtp_to(&mut sink, &mut viewer).len(), 1, "retransmitted");
    router.end_mirror(mirror);
    assert!(router.peer(viewer.idx).unwrap().subscriptions.is_empty());
}
