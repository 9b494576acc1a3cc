//! The engine end to end, in memory: a publisher and a subscriber join with offers captured
//! from Chromium, each connects (a STUN check, an rtc-dtls handshake) and speaks SRTP sealed by
//! webrtc-rs's own contexts. Media, NACKs, RTX, keyframe requests and reports cross the router.

use super::*;
use crate::negotiation::NegotiationError;
use crate::negotiation::answer::LocalTransport;
use crate::negotiation::remote::RemoteDescription;
use crate::transport::dtls::tests::{Client, client_certificate};
use crate::transport::ice_lite::tests::{NOMINATE, request};
use bytes::{Bytes, BytesMut};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::srtp::context::Context;

const PUBLISH: &str = include_str!("../../tests/fixtures/sdp/chromium-publish-datachannel.sdp");
const VIEW: &str = include_str!("../../tests/fixtures/sdp/chromium-whep-recvonly.sdp");
/// The publisher's video SSRC and VP8 payload type in `PUBLISH`.
const VIDEO_SSRC: u32 = 3_845_870_702;
const VP8: u8 = 96;

#[derive(Default)]
struct Collect(Vec<(PeerIdx, Path, Vec<u8>)>);

impl Sink for Collect {
    fn send(&mut self, peer: PeerIdx, to: Path, datagram: &[u8]) {
        self.0.push((peer, to, datagram.to_vec()));
    }
}

impl Collect {
    /// What was sent to `peer` (checked to go to `addr`), taken.
    fn take(&mut self, peer: PeerIdx, addr: Path) -> Vec<Vec<u8>> {
        let (mine, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(p, _, _)| *p == peer);
        self.0 = rest;
        mine.into_iter()
            .map(|(_, to, d)| {
                assert_eq!(to, addr);
                d
            })
            .collect()
    }
}

/// A client of the router: its address, DTLS client and, once connected, SRTP contexts.
struct Peer {
    idx: PeerIdx,
    addr: Path,
    dtls: Client,
    out: Option<Context>,
    inn: Option<Context>,
    answer: String,
    /// The offer it joined with (its own fingerprint in).
    offer: String,
}

fn local(ufrag: &str) -> LocalTransport {
    LocalTransport {
        ice_ufrag: ufrag.into(),
        ice_pwd: "router-test-password-22+".into(),
        fingerprint: String::new(),
        candidates: vec!["1 1 udp 2130706431 127.0.0.1 40000 typ host".into()],
        session_id: 7,
        session_version: 1,
    }
}

/// Joins with `offer` (its fingerprint replaced by a fresh client certificate's), checks ICE
/// and completes DTLS.
fn join(router: &mut Router, sink: &mut Collect, offer: &str, ufrag: &str, port: u16) -> Peer {
    join_as(router, sink, offer, ufrag, port, false)
}

/// [`join`], as a viewer whose receiving sections are slots if `slots`.
fn join_as(
    router: &mut Router,
    sink: &mut Collect,
    offer: &str,
    ufrag: &str,
    port: u16,
    slots: bool,
) -> Peer {
    let now = Instant::now();
    let (cert, fingerprint) = client_certificate();
    let offer: String = offer
        .lines()
        .map(|l| {
            if l.starts_with("a=fingerprint:") {
                format!("a=fingerprint:{fingerprint}")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\r\n")
        .collect();
    let (idx, answer) = if slots {
        let idx = router.open(local(ufrag)).expect("opened");
        router.set_slots(idx);
        (idx, router.renegotiate(idx, &offer).expect("answered"))
    } else {
        router.join(&offer, local(ufrag)).expect("joined")
    };
    let addr = Path::udp(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let mut check = request(ufrag, "router-test-password-22+", NOMINATE, 1);
    router
        .handle_datagram(now, idx, addr, &mut check, sink)
        .unwrap();
    assert_eq!(sink.take(idx, addr).len(), 1, "the check is answered");
    let server_fingerprint = RemoteDescription::parse(&answer).unwrap().fingerprint;
    let mut dtls = Client::connect(
        now,
        cert,
        &[SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        &server_fingerprint,
    );
    for _ in 0..8 {
        for d in dtls.take() {
            let mut d = d.to_vec();
            router
                .handle_datagram(now, idx, addr, &mut d, sink)
                .unwrap();
        }
        let replies = sink
            .take(idx, addr)
            .into_iter()
            .map(|d| BytesMut::from(&d[..]))
            .collect();
        dtls.receive(now, replies);
        if router.peer(idx).unwrap().transport.is_connected() {
            break;
        }
    }
    assert!(
        router.peer(idx).unwrap().transport.is_connected(),
        "DTLS connected"
    );
    let keys = dtls.keys();
    let provider = rtc::crypto::default_provider().unwrap();
    let context = |key: &[u8], salt: &[u8]| {
        Context::new(key, salt, keys.profile, None, None, provider.crypto()).unwrap()
    };
    Peer {
        idx,
        addr,
        out: Some(context(
            &keys.keys.local_master_key,
            &keys.keys.local_master_salt,
        )),
        inn: Some(context(
            &keys.keys.remote_master_key,
            &keys.keys.remote_master_salt,
        )),
        dtls,
        answer,
        offer,
    }
}

fn video(seq: u16) -> Packet {
    let mut header = Header {
        version: 2,
        payload_type: VP8,
        sequence_number: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc: VIDEO_SSRC,
        extension: true,
        extension_profile: 0xBEDE,
        ..Default::default()
    };
    // transport-cc is 3 in the publisher's offer.
    header
        .set_extension(3, Bytes::from_static(&[0, 0]))
        .unwrap();
    let payload: Vec<u8> = (0..200u16).map(|i| i.wrapping_mul(seq) as u8).collect();
    Packet {
        header,
        payload: Bytes::from(payload),
    }
}

fn send(router: &mut Router, sink: &mut Collect, from: &mut Peer, plain: &[u8], rtcp: bool) {
    send_at(Instant::now(), router, sink, from, plain, rtcp);
}

fn send_at(
    now: Instant,
    router: &mut Router,
    sink: &mut Collect,
    from: &mut Peer,
    plain: &[u8],
    rtcp: bool,
) {
    let ctx = from.out.as_mut().unwrap();
    let mut sealed = if rtcp {
        ctx.encrypt_rtcp(plain)
    } else {
        ctx.encrypt_rtp(plain)
    }
    .unwrap()
    .to_vec();
    router
        .handle_datagram(now, from.idx, from.addr, &mut sealed, sink)
        .unwrap();
}

fn rtcp_of(peer: &mut Peer, datagram: &[u8]) -> Vec<Box<dyn RtcpPacket>> {
    let plain = peer
        .inn
        .as_mut()
        .unwrap()
        .decrypt_rtcp(datagram)
        .expect("SRTCP for this peer");
    rtc::rtcp::packet::unmarshal(&mut &plain[..]).unwrap()
}

/// The RTCP packets the router sent `peer`, taken from `sink`.
fn rtcp_to(sink: &mut Collect, peer: &mut Peer) -> Vec<Box<dyn RtcpPacket>> {
    let datagrams = sink.take(peer.idx, peer.addr);
    datagrams.iter().flat_map(|d| rtcp_of(peer, d)).collect()
}

/// The RTP packets the router sent `peer`, decrypted, taken from `sink`.
fn rtp_to(sink: &mut Collect, peer: &mut Peer) -> Vec<Packet> {
    let datagrams = sink.take(peer.idx, peer.addr);
    let inn = peer.inn.as_mut().unwrap();
    datagrams
        .iter()
        .map(|d| {
            let plain = inn.decrypt_rtp(d).expect("SRTP for this peer");
            Packet::unmarshal(&mut &plain[..]).unwrap()
        })
        .collect()
}

/// The first packet of type `T` among `packets`.
fn first<T: 'static>(packets: &[Box<dyn RtcpPacket>]) -> &T {
    packets
        .iter()
        .find_map(|p| p.as_any().downcast_ref::<T>())
        .unwrap_or_else(|| panic!("no {}", std::any::type_name::<T>()))
}

#[test]
fn media_feedback_and_reports_cross_the_router_in_place() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut publisher = join(&mut router, &mut sink, PUBLISH, "pubA", 5000);
    let p = router.peer(publisher.idx).unwrap();
    assert_eq!(
        p.publications.len(),
        2,
        "audio and video published; the data channel rejected"
    );
    assert!(publisher.answer.contains("m=application 0 "));
    let mut viewer = join(&mut router, &mut sink, VIEW, "subA", 6000);
    // The new viewer needs a keyframe of the video: the publisher is asked.
    let rtcp = rtcp_to(&mut sink, &mut publisher);
    assert_eq!(rtcp.len(), 1, "one PLI, none for audio");
    assert_eq!(first::<PictureLossIndication>(&rtcp).media_ssrc, VIDEO_SSRC);
    assert_eq!(router.peer(viewer.idx).unwrap().subscriptions.len(), 2);
    let answer = RemoteDescription::parse(&viewer.answer).unwrap();
    let video_section = answer
        .sections
        .iter()
        .find(|s| s.kind == SectionKind::Video)
        .unwrap();
    let (sub_ssrc, sub_rtx) = video_section.rtx_ssrcs[0];
    let sub_vp8 = video_section.codecs[0].pt;

    // Media: the viewer gets each packet once, rewritten, its payload byte-identical.
    let mut received = Vec::new();
    for seq in 100..110u16 {
        if seq == 105 {
            continue; // lost on the way to the server
        }
        let sent = video(seq);
        send(
            &mut router,
            &mut sink,
            &mut publisher,
            &sent.marshal().unwrap(),
            false,
        );
        let mut got = rtp_to(&mut sink, &mut viewer);
        assert_eq!(got.len(), 1, "packet {seq} forwarded once");
        let packet = got.remove(0);
        assert_eq!(
            (packet.header.ssrc, packet.header.payload_type),
            (sub_ssrc, sub_vp8)
        );
        assert_eq!(packet.payload, sent.payload);
        received.push(packet);
    }
    assert!(
        received.windows(2).all(|w| w[1].header.sequence_number
            == w[0].header.sequence_number.wrapping_add(1)
            || w[0].header.sequence_number == 104),
        "continuous"
    );
    // A duplicate is not forwarded again.
    send(
        &mut router,
        &mut sink,
        &mut publisher,
        &video(109).marshal().unwrap(),
        false,
    );
    assert!(sink.take(viewer.idx, viewer.addr).is_empty());

    // Timers: the publisher is NACKed for 105 and gets a receiver report; the viewer a sender
    // report.
    // Reports go out a report interval after DTLS connected.
    let failed = router.handle_timeout(Instant::now() + REPORT_INTERVAL, &mut sink);
    assert!(failed.is_empty());
    let rtcp = rtcp_to(&mut sink, &mut publisher);
    let nack = first::<TransportLayerNack>(&rtcp);
    assert_eq!(nack.media_ssrc, VIDEO_SSRC);
    let asked: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    assert_eq!(asked, [105]);
    let rr = first::<ReceiverReport>(&rtcp);
    assert!(
        rr.reports
            .iter()
            .any(|r| r.ssrc == VIDEO_SSRC && r.total_lost == 1)
    );
    let sr = first::<SenderReport>(&rtcp_to(&mut sink, &mut viewer)).clone();
    assert_eq!((sr.ssrc, sr.packet_count), (sub_ssrc, 9));

    // The viewer NACKs its third packet: RTX from the track's cache.
    let nacked = received[2].header.sequence_number;
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: sub_ssrc,
        nacks:
            rtc::rtcp::transport_feedbacks::transport_layer_nack::nack_pairs_from_sequence_numbers(
                &[nacked],
            ),
    };
    send(
        &mut router,
        &mut sink,
        &mut viewer,
        &nack.marshal().unwrap(),
        true,
    );
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 1);
    let rtx = &got[0];
    assert_eq!(rtx.header.ssrc, sub_rtx);
    assert_eq!(rtx.payload[..2], nacked.to_be_bytes());
    assert_eq!(rtx.payload[2..], received[2].payload[..]);

    // The viewer asks for a keyframe: the publisher is asked, once per interval (the join's
    // request was the last).
    let pli = PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: sub_ssrc,
    };
    let later = Instant::now() + crate::track::up_track::KEYFRAME_REQUEST_INTERVAL;
    for _ in 0..2 {
        send_at(
            later,
            &mut router,
            &mut sink,
            &mut viewer,
            &pli.marshal().unwrap(),
            true,
        );
    }
    let rtcp = rtcp_to(&mut sink, &mut publisher);
    assert_eq!(rtcp.len(), 1, "throttled");
    assert_eq!(first::<PictureLossIndication>(&rtcp).media_ssrc, VIDEO_SSRC);

    // The publisher leaves: nothing more reaches the viewer, and nothing fails.
    router.leave(publisher.idx);
    let mut sealed = publisher
        .out
        .as_mut()
        .unwrap()
        .encrypt_rtp(&video(120).marshal().unwrap())
        .unwrap()
        .to_vec();
    router
        .handle_datagram(
            Instant::now(),
            publisher.idx,
            publisher.addr,
            &mut sealed,
            &mut sink,
        )
        .unwrap();
    assert!(sink.0.is_empty());
    let _ = publisher.dtls.take();
}

#[test]
fn offers_that_cannot_be_answered_join_nobody() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    assert!(matches!(
        router.join("garbage", local("x")),
        Err(JoinError::Negotiation(_))
    ));
    let passive = VIEW.replace("a=setup:actpass", "a=setup:passive");
    assert!(matches!(
        router.join(&passive, local("x")),
        Err(JoinError::Negotiation(NegotiationError::DtlsRole))
    ));
    let bad_fingerprint = VIEW.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz");
    assert!(router.join(&bad_fingerprint, local("x")).is_err());
    assert!(router.peer(0).is_none());
}

const SIMULCAST: &str = include_str!("../../tests/fixtures/sdp/chromium-publish-simulcast.sdp");

/// A packet of Chromium's simulcast video: pt 96 (RTX 97), mid "1" (id 4), rid or repaired-rid
/// (ids 10 and 11).
fn layer_packet(
    ssrc: u32,
    pt: u8,
    seq: u16,
    rid_id: u8,
    rid: &'static [u8],
    payload: Vec<u8>,
) -> Vec<u8> {
    let mut header = Header {
        version: 2,
        payload_type: pt,
        sequence_number: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        extension: true,
        extension_profile: 0xBEDE,
        ..Default::default()
    };
    header.set_extension(4, Bytes::from_static(b"1")).unwrap();
    header
        .set_extension(rid_id, Bytes::from_static(rid))
        .unwrap();
    Packet {
        header,
        payload: Bytes::from(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

#[test]
fn unsignaled_simulcast_ssrcs_are_learned_from_mid_and_rid_and_the_first_layer_forwarded() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut publisher = join(&mut router, &mut sink, SIMULCAST, "pubS", 5100);
    let p = router.peer(publisher.idx).unwrap();
    let video = p
        .publications
        .iter()
        .find(|x| x.info.kind == SectionKind::Video)
        .unwrap();
    assert_eq!(
        (video.bound, video.rid.as_deref()),
        (false, Some("q")),
        "no a=ssrc: learned later"
    );
    let mut viewer = join(&mut router, &mut sink, VIEW, "subS", 6100);
    let _ = sink.take(publisher.idx, publisher.addr);
    let payload = |seq: u16| {
        (0..100u16)
            .map(|i| i.wrapping_add(seq) as u8)
            .collect::<Vec<u8>>()
    };

    let mut forwarded = Vec::new();
    for seq in 1..=5u16 {
        // Layer q (forwarded) and layer h (not, yet), each on its own SSRC.
        if seq != 3 {
            let q = layer_packet(0xAAAA, VP8, seq, 10, b"q", payload(seq));
            send(&mut router, &mut sink, &mut publisher, &q, false);
        }
        let h = layer_packet(0xBBBB, VP8, seq, 10, b"h", payload(seq));
        send(&mut router, &mut sink, &mut publisher, &h, false);
        forwarded.extend(rtp_to(&mut sink, &mut viewer));
    }
    assert_eq!(forwarded.len(), 4, "layer q only, packet 3 lost");
    // The first source passes through the munger unchanged: the publisher's numbers.
    let seqs: Vec<u16> = forwarded.iter().map(|p| p.header.sequence_number).collect();
    assert_eq!(seqs, [1, 2, 4, 5]);
    assert!(
        forwarded
            .iter()
            .all(|p| p.payload[..] == payload(p.header.sequence_number)[..])
    );
    // Packet 3 comes as RTX on its own SSRC, named by repaired-rid: repaired and forwarded.
    let mut rtx_payload = 3u16.to_be_bytes().to_vec();
    rtx_payload.extend(payload(3));
    let rtx = layer_packet(0xCCCC, 97, 900, 11, b"q", rtx_payload);
    send(&mut router, &mut sink, &mut publisher, &rtx, false);
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 1, "the repaired packet is forwarded");
    let repaired = &got[0];
    assert_eq!(repaired.payload[..], payload(3)[..]);
    let video = router
        .peer(publisher.idx)
        .unwrap()
        .publications
        .iter()
        .find(|x| x.info.kind == SectionKind::Video)
        .unwrap();
    assert_eq!((video.up.ssrc(), video.rtx_ssrc), (0xAAAA, Some(0xCCCC)));
}

/// The answer a receiving client gives to the server's `offer` (what a browser's would say).
fn receiving_answer(offer: &str, peer: &Peer) -> String {
    let fingerprint = peer
        .offer
        .lines()
        .find(|l| l.starts_with("a=fingerprint:"))
        .expect("the peer's fingerprint");
    offer
        .lines()
        .filter(|l| {
            ![
                "a=ice-lite",
                "a=candidate",
                "a=end-of-candidates",
                "a=ssrc",
                "a=msid:",
            ]
            .iter()
            .any(|p| l.starts_with(p))
        })
        .map(|l| match l {
            "a=setup:actpass" => "a=setup:active".to_owned(),
            "a=sendonly" => "a=recvonly".to_owned(),
            _ if l.starts_with("a=fingerprint:") => fingerprint.to_owned(),
            _ => l.to_owned(),
        })
        .map(|l| l + "\r\n")
        .collect()
}

#[test]
fn a_viewer_that_joined_an_empty_room_is_offered_the_new_tracks() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut viewer = join(&mut router, &mut sink, VIEW, "subR", 6200);
    assert!(router.peer(viewer.idx).unwrap().subscriptions.is_empty());
    assert_eq!(router.offer(viewer.idx), None, "nothing to offer yet");
    let mut publisher = join(&mut router, &mut sink, PUBLISH, "pubR", 5200);

    let offer = router
        .offer(viewer.idx)
        .expect("an offer of the new tracks");
    assert_eq!(router.offer(viewer.idx), None, "one offer at a time");
    let parsed = RemoteDescription::parse(&offer).unwrap();
    assert_eq!(
        parsed.sections.len(),
        2,
        "the viewer's idle sections are reused"
    );
    assert!(offer.contains("a=setup:actpass") && offer.contains("a=sendonly"));
    let video_ssrc = parsed.sections[1].ssrcs[0];

    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .expect("the answer applies");
    assert_eq!(router.peer(viewer.idx).unwrap().subscriptions.len(), 2);
    let rtcp = rtcp_to(&mut sink, &mut publisher);
    assert_eq!(
        first::<PictureLossIndication>(&rtcp).media_ssrc,
        VIDEO_SSRC,
        "a keyframe for the viewer"
    );

    let sent = video(7);
    send(
        &mut router,
        &mut sink,
        &mut publisher,
        &sent.marshal().unwrap(),
        false,
    );
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 1);
    let packet = &got[0];
    assert_eq!(
        (packet.header.ssrc, packet.payload.clone()),
        (video_ssrc, sent.payload)
    );

    assert!(matches!(
        router.apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink
        ),
        Err(NegotiationError::NoOffer)
    ));

    // The publisher leaves: the viewer's sections go idle, and it is told so.
    router.leave(publisher.idx);
    assert!(router.peer(viewer.idx).unwrap().subscriptions.is_empty());
    let idle = router
        .offer(viewer.idx)
        .expect("an offer of the idle sections");
    assert_eq!(idle.matches("a=inactive").count(), 2, "{idle}");
    assert!(!idle.contains("a=ssrc"));
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&idle, &viewer),
            &mut sink,
        )
        .unwrap();
    assert_eq!(router.offer(viewer.idx), None, "nothing changed since");

    // Another publisher: its tracks take the same two sections (m-lines are recycled).
    let mut second = join(&mut router, &mut sink, PUBLISH, "pubR2", 5300);
    let offer = router
        .offer(viewer.idx)
        .expect("an offer of the new tracks");
    let parsed = RemoteDescription::parse(&offer).unwrap();
    assert_eq!(parsed.sections.len(), 2, "no new m-line");
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .unwrap();
    let _ = sink.take(second.idx, second.addr);
    send(
        &mut router,
        &mut sink,
        &mut second,
        &video(9).marshal().unwrap(),
        false,
    );
    assert_eq!(
        sink.take(viewer.idx, viewer.addr).len(),
        1,
        "the second publisher's video flows"
    );
}

#[test]
fn when_one_publisher_leaves_the_others_tracks_still_reach_the_viewer() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut viewer = join(&mut router, &mut sink, VIEW, "subL", 6400);
    let first = join(&mut router, &mut sink, PUBLISH, "pubL1", 5400);
    let offer = router.offer(viewer.idx).unwrap();
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .unwrap();
    let mut second = join(&mut router, &mut sink, PUBLISH, "pubL2", 5500);
    let offer = router.offer(viewer.idx).unwrap();
    assert_eq!(
        RemoteDescription::parse(&offer).unwrap().sections.len(),
        4,
        "two new m-lines"
    );
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .unwrap();
    assert_eq!(router.peer(viewer.idx).unwrap().subscriptions.len(), 4);

    // The first publisher's subscriptions go; the second's move in the table and still flow.
    router.leave(first.idx);
    assert_eq!(router.peer(viewer.idx).unwrap().subscriptions.len(), 2);
    let _ = std::mem::take(&mut sink.0);
    for seq in 1..=3 {
        send(
            &mut router,
            &mut sink,
            &mut second,
            &video(seq).marshal().unwrap(),
            false,
        );
    }
    let got = rtp_to(&mut sink, &mut viewer);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|p| p.header.payload_type == VP8));
}

/// `offer` with the direction of its video section replaced by `direction`.
fn video_direction(offer: &str, direction: &str) -> String {
    let at = offer.find("m=video").expect("a video section");
    let (head, video) = offer.split_at(at);
    format!("{head}{}", video.replacen("a=sendonly", direction, 1))
}

#[test]
fn a_publisher_that_stops_sending_video_ends_it_for_its_viewer_and_can_send_it_again() {
    let mut router = Router::new(DtlsIdentity::generate().unwrap());
    let mut sink = Collect::default();
    let mut publisher = join(&mut router, &mut sink, PUBLISH, "pubN", 5600);
    let mut viewer = join(&mut router, &mut sink, VIEW, "subN", 6600);
    assert_eq!(router.peer(viewer.idx).unwrap().subscriptions.len(), 2);

    // The publisher's new offer stops its video: the viewer loses that track.
    let answer = router
        .renegotiate(
            publisher.idx,
            &video_direction(&publisher.offer, "a=inactive"),
        )
        .expect("answered");
    let answered = RemoteDescription::parse(&answer).unwrap();
    assert_eq!(answered.sections[1].direction, Direction::Inactive);
    assert_eq!(
        router.peer(viewer.idx).unwrap().subscriptions.len(),
        1,
        "audio only"
    );
    let _ = std::mem::take(&mut sink.0);
    send(
        &mut router,
        &mut sink,
        &mut publisher,
        &video(1).marshal().unwrap(),
        false,
    );
    assert!(
        rtp_to(&mut sink, &mut viewer).is_empty(),
        "its video is not forwarded"
    );
    let idle = router.offer(viewer.idx).expect("the viewer is told");
    assert!(idle.contains("a=inactive"));

    // While that offer waits, the viewer's own offer is glare; then it answers.
    let glare = router.renegotiate(viewer.idx, &viewer.offer);
    assert!(matches!(glare, Err(NegotiationError::Glare)));
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&idle, &viewer),
            &mut sink,
        )
        .unwrap();

    // The video comes back (a new track, in the same m-line) and reaches the viewer again.
    router
        .renegotiate(publisher.idx, &publisher.offer)
        .expect("answered");
    let offer = router.offer(viewer.idx).expect("the new track is offered");
    assert_eq!(
        RemoteDescription::parse(&offer).unwrap().sections.len(),
        2,
        "recycled"
    );
    router
        .apply_answer(
            Instant::now(),
            viewer.idx,
            &receiving_answer(&offer, &viewer),
            &mut sink,
        )
        .unwrap();
    let _ = std::mem::take(&mut sink.0);
    send(
        &mut router,
        &mut sink,
        &mut publisher,
        &video(2).marshal().unwrap(),
        false,
    );
    assert_eq!(rtp_to(&mut sink, &mut viewer).len(), 1);

    // Another ICE username fragment is an ICE restart, answered on the same session; another
    // certificate needs a new session.
    let restarted = publisher.offer.replacen("a=ice-ufrag:", "a=ice-ufrag:x", 2);
    let answer = router.renegotiate(publisher.idx, &restarted).unwrap();
    assert!(
        answer.contains("a=ice-ufrag:pubN"),
        "the server keeps its credentials: {answer}"
    );
    let fingerprint = publisher
        .offer
        .lines()
        .find(|l| l.starts_with("a=fingerprint:"))
        .unwrap();
    let other = restarted.replace(fingerprint, "a=fingerprint:sha-256 00:11");
    assert!(matches!(
        router.renegotiate(publisher.idx, &other),
        Err(NegotiationError::NewSession(_))
    ));
}

#[path = "router_explicit_tests.rs"]
mod explicit;
