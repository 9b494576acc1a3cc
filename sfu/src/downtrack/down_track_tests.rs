//! Unit tests of the down-track: what it writes, read back with webrtc-rs's own RTP parser.

use super::*;
use bytes::Bytes;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};
use std::time::Duration;

/// The publisher's extension ids: audio level 1, transport-cc 3, mid 4.
const TRACK_TWCC: u8 = 3;
const SUB_TWCC: u8 = 5;

/// A publisher's packet: pt 96, its SSRC, transport-cc, audio level and mid extensions.
fn track_packet(ssrc: u32, seq: u16, ts: u32, padding: bool) -> Vec<u8> {
    let mut header = Header {
        version: 2,
        payload_type: 96,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        extension: true,
        extension_profile: 0xBEDE,
        ..Default::default()
    };
    header
        .set_extension(1, Bytes::from_static(&[0x7f]))
        .unwrap();
    header
        .set_extension(TRACK_TWCC, Bytes::from_static(&[0xaa, 0xbb]))
        .unwrap();
    header.set_extension(4, Bytes::from_static(b"0")).unwrap();
    header.padding = padding;
    let payload: Vec<u8> = (0..40).map(|i| (i as u16 + seq) as u8).collect();
    Packet {
        header,
        payload: Bytes::from(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

fn params(rtx: bool) -> DownTrackParams {
    DownTrackParams {
        ssrc: 0x5555_0001,
        rtx_ssrc: 0x5555_0002,
        clock_rate: 90_000,
        payload_types: vec![PayloadMapping {
            track: 96,
            subscriber: 100,
            rtx: rtx.then_some(101),
        }],
        // The subscriber negotiated transport-cc as 5 and audio level as 9; not mid.
        extensions: vec![(TRACK_TWCC, SUB_TWCC), (1, 9)],
        transport_cc: Some(SUB_TWCC),
    }
}

fn parse(bytes: &[u8]) -> Packet {
    Packet::unmarshal(&mut &bytes[..]).unwrap()
}

#[test]
fn a_forwarded_packet_is_rewritten_for_the_subscriber_and_its_payload_untouched() {
    let now = Instant::now();
    let mut down = DownTrack::new(params(true));
    let mut twcc = TwccSender::default();
    let mut out = vec![0u8; 1500];
    let mut first_seq = None;
    for i in 0..5u16 {
        let original = track_packet(0xabc, 1000 + i, 9000 + u32::from(i) * 3000, false);
        let len = down
            .forward(&original, 70_000 + u64::from(i), &mut out, &mut twcc, now)
            .unwrap();
        let got = parse(&out[..len]);
        let want = parse(&original);
        assert_eq!(got.header.payload_type, 100);
        assert_eq!(got.header.ssrc, 0x5555_0001);
        let first = *first_seq.get_or_insert(got.header.sequence_number);
        assert_eq!(
            got.header.sequence_number,
            first.wrapping_add(i),
            "continuous"
        );
        assert_eq!(got.payload, want.payload, "payload byte-identical");
        assert_eq!(
            got.header.get_extension(SUB_TWCC).unwrap()[..],
            i.to_be_bytes(),
            "transport-wide seq"
        );
        assert_eq!(
            got.header.get_extension(9).unwrap()[..],
            [0x7f],
            "audio level under the subscriber's id"
        );
        assert_eq!(
            got.header.get_extension(4),
            None,
            "mid not negotiated: removed"
        );
        assert_eq!(got.header.get_extension(1), None);
    }
    // Another source (a republished track): the stream stays continuous.
    let later = now + Duration::from_millis(100);
    let original = track_packet(0xdef, 7, 123, false);
    let len = down
        .forward(&original, 1, &mut out, &mut twcc, later)
        .unwrap();
    let got = parse(&out[..len]);
    assert_eq!(
        got.header.sequence_number,
        first_seq.unwrap().wrapping_add(5)
    );
    assert_eq!(got.header.ssrc, 0x5555_0001);
    let report = down
        .sender_report(later, std::time::SystemTime::now())
        .unwrap();
    assert_eq!((report.ssrc, report.packet_count), (0x5555_0001, 6));
}

#[test]
fn a_nack_is_answered_from_the_tracks_cache_as_rtx_or_as_sent() {
    for rtx in [true, false] {
        let now = Instant::now();
        let mut down = DownTrack::new(params(rtx));
        let mut twcc = TwccSender::default();
        let mut cache = PacketCache::new(64);
        let mut out = vec![0u8; 1500];
        let mut sent = Vec::new();
        for i in 0..10u16 {
            let original = track_packet(0xabc, 500 + i, 100 * u32::from(i), i == 3);
            cache.insert(5_000 + u64::from(i), &original);
            let len = down
                .forward(&original, 5_000 + u64::from(i), &mut out, &mut twcc, now)
                .unwrap();
            sent.push(parse(&out[..len]));
        }
        for i in [3usize, 7] {
            let nacked = &sent[i];
            let len = down
                .retransmit(
                    nacked.header.sequence_number,
                    &cache,
                    &mut out,
                    &mut twcc,
                    now,
                )
                .unwrap();
            let got = parse(&out[..len]);
            assert_eq!(
                got.header.timestamp, nacked.header.timestamp,
                "the timestamp sent"
            );
            assert_eq!(got.header.padding, nacked.header.padding);
            if rtx {
                assert_eq!(
                    (got.header.ssrc, got.header.payload_type),
                    (0x5555_0002, 101)
                );
                assert_eq!(
                    got.payload[..2],
                    nacked.header.sequence_number.to_be_bytes(),
                    "the original seq first"
                );
                assert_eq!(
                    got.payload[2..],
                    nacked.payload[..],
                    "then the original payload"
                );
            } else {
                assert_eq!(got.header.ssrc, nacked.header.ssrc);
                assert_eq!(got.header.sequence_number, nacked.header.sequence_number);
                assert_eq!(got.payload, nacked.payload);
            }
            assert!(
                got.header.get_extension(SUB_TWCC).is_some(),
                "stamped like any packet"
            );
        }
        // Never sent, or no longer cached: unavailable.
        let unsent = sent[9].header.sequence_number.wrapping_add(1);
        assert_eq!(
            down.retransmit(unsent, &cache, &mut out, &mut twcc, now),
            Err(DownTrackError::Unavailable)
        );
        let mut small = PacketCache::new(4);
        small.insert(5_009, &track_packet(0xabc, 509, 900, false));
        let old = sent[0].header.sequence_number;
        assert_eq!(
            down.retransmit(old, &small, &mut out, &mut twcc, now),
            Err(DownTrackError::Unavailable)
        );
    }
}

#[test]
fn unnegotiated_payload_types_small_buffers_and_garbage_are_errors() {
    let now = Instant::now();
    let mut down = DownTrack::new(params(true));
    let mut twcc = TwccSender::default();
    let mut out = vec![0u8; 1500];
    let mut other = track_packet(1, 1, 1, false);
    other[1] = 111;
    assert_eq!(
        down.forward(&other, 1, &mut out, &mut twcc, now),
        Err(DownTrackError::PayloadType(111))
    );
    let packet = track_packet(1, 1, 1, false);
    assert_eq!(
        down.forward(&packet, 1, &mut out[..10], &mut twcc, now),
        Err(DownTrackError::NoRoom)
    );
    for cut in 0..12 {
        assert!(matches!(
            down.forward(&packet[..cut], 1, &mut out, &mut twcc, now),
            Err(DownTrackError::Rtp(_))
        ));
    }
    // Nothing was sent: nothing to report, nothing stamped.
    assert!(
        down.sender_report(now, std::time::SystemTime::now())
            .is_none()
    );
}
