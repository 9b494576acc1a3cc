//! Unit tests of the up-track: arrivals, duplicates, NACKs, RTX repair, keyframe throttle.

use super::*;
use bytes::Bytes;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};

const MEDIA: u32 = 0x1000_0001;
const RTX: u32 = 0x1000_0002;

fn params() -> UpTrackParams {
    UpTrackParams {
        ssrc: MEDIA,
        local_ssrc: 1,
        clock_rate: 90_000,
        rtx_payload_types: vec![(97, 96)],
        nack: true,
        cache: CACHE_PACKETS,
    }
}

fn header(ssrc: u32, pt: u8, seq: u16, padding: bool) -> Header {
    let mut h = Header {
        version: 2,
        payload_type: pt,
        sequence_number: seq,
        timestamp: u32::from(seq) * 3000,
        ssrc,
        marker: seq.is_multiple_of(3),
        extension: true,
        extension_profile: 0xBEDE,
        ..Default::default()
    };
    h.set_extension(3, Bytes::from_static(&[1, 2])).unwrap();
    h.padding = padding;
    h
}

fn media(seq: u16) -> Packet {
    let payload: Vec<u8> = (0..50u16).map(|i| i.wrapping_add(seq) as u8).collect();
    Packet {
        header: header(MEDIA, 96, seq, false),
        payload: Bytes::from(payload),
    }
}

/// `original` as RTX (the RFC 4588 payload), with padding.
fn rtx_of(original: &Packet, rtx_seq: u16) -> Vec<u8> {
    let mut payload = original.header.sequence_number.to_be_bytes().to_vec();
    payload.extend_from_slice(&original.payload);
    let mut h = header(RTX, 97, rtx_seq, true);
    h.timestamp = original.header.timestamp;
    h.marker = original.header.marker;
    Packet {
        header: h,
        payload: Bytes::from(payload),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

fn bytes(p: &Packet) -> Vec<u8> {
    p.marshal().unwrap().to_vec()
}

#[test]
fn packets_enter_once_and_gaps_are_nacked_until_repaired_by_rtx() {
    let now = Instant::now();
    let mut up = UpTrack::new(params());
    let mut seen = Vec::new();
    for seq in (65_530..=u16::MAX).chain(0..10) {
        if seq == 2 || seq == 65_534 {
            continue; // lost
        }
        match up.on_rtp(&bytes(&media(seq)), now).unwrap() {
            Arrival::New(ext) => seen.push(ext),
            Arrival::Duplicate => panic!("{seq} is new"),
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "extended across the wrap"
    );
    assert_eq!(
        up.on_rtp(&bytes(&media(5)), now).unwrap(),
        Arrival::Duplicate
    );

    let nack = up.poll_nack(now).expect("a NACK for the gaps");
    assert_eq!(nack.media_ssrc, MEDIA);
    let asked: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    assert_eq!(asked, [65_534, 2]);

    // The retransmission arrives as RTX: repaired into the original, byte for byte.
    let mut out = [0u8; 1500];
    let len = up.repair(&rtx_of(&media(2), 77), &mut out).unwrap();
    assert_eq!(Packet::unmarshal(&mut &out[..len]).unwrap(), media(2));
    assert_eq!(&out[..len], &bytes(&media(2))[..]);
    assert!(matches!(
        up.on_rtp(&out[..len], now).unwrap(),
        Arrival::New(_)
    ));
    assert_eq!(
        up.cache().get(seen[seen.len() - 8] + 1).map(<[u8]>::len),
        Some(len)
    );
    // It crossed a second copy: that one is a duplicate.
    let len = up.repair(&rtx_of(&media(2), 78), &mut out).unwrap();
    assert_eq!(up.on_rtp(&out[..len], now).unwrap(), Arrival::Duplicate);
    let later = now + NACK_INTERVAL;
    let nack = up.poll_nack(later).expect("the other one is asked again");
    let asked: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
    assert_eq!(asked, [65_534]);

    let report = up.reception_report(later).unwrap();
    assert_eq!(report.ssrc, MEDIA);
    assert_eq!(report.total_lost, 1);
}

#[test]
fn rtx_that_cannot_be_repaired_is_an_error() {
    let up = UpTrack::new(params());
    let mut out = [0u8; 1500];
    let mut other = rtx_of(&media(1), 1);
    other[1] = (other[1] & 0x80) | 98;
    assert_eq!(
        up.repair(&other, &mut out),
        Err(RepairError::PayloadType(98))
    );
    let empty = Packet {
        header: header(RTX, 97, 1, false),
        payload: Bytes::from_static(&[7]),
    };
    assert!(matches!(
        up.repair(&bytes(&empty), &mut out),
        Err(RepairError::Rtp(_))
    ));
    assert_eq!(
        up.repair(&rtx_of(&media(1), 1), &mut out[..20]),
        Err(RepairError::NoRoom)
    );
    for cut in 0..12 {
        assert!(up.repair(&rtx_of(&media(1), 1)[..cut], &mut out).is_err());
    }
    assert!(
        up.repair(&[0x80; 1600], &mut out).is_err(),
        "bigger than any packet"
    );
}

#[test]
fn keyframe_requests_are_throttled() {
    let now = Instant::now();
    let mut up = UpTrack::new(params());
    let pli = up.keyframe_request(now).expect("the first goes out");
    assert_eq!((pli.sender_ssrc, pli.media_ssrc), (1, MEDIA));
    assert!(
        up.keyframe_request(now + KEYFRAME_REQUEST_INTERVAL / 2)
            .is_none()
    );
    assert!(
        up.keyframe_request(now + KEYFRAME_REQUEST_INTERVAL)
            .is_some()
    );
}

#[test]
fn audio_is_not_nacked() {
    let now = Instant::now();
    let mut up = UpTrack::new(UpTrackParams {
        nack: false,
        ..params()
    });
    for seq in [1u16, 5] {
        up.on_rtp(&bytes(&media(seq)), now).unwrap();
    }
    assert!(up.poll_nack(now).is_none());
    assert_eq!(up.on_rtp(&[0x80; 5], now), Err(RtpError::TooShort));
}
