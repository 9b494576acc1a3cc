//! Unit tests of the in-place RTP view against webrtc-rs's own packet type.

use super::*;
use bytes::Bytes;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};

/// A packet with CSRCs, the given extensions (one- or two-byte form) and maybe padding, marshalled.
fn packet(profile: u16, extensions: &[(u8, &[u8])], padding: bool) -> Vec<u8> {
    let mut header = Header {
        version: 2,
        marker: true,
        payload_type: 96,
        sequence_number: 65_530,
        timestamp: 0xDEAD_BEEF,
        ssrc: 0x1122_3344,
        csrc: vec![7, 8],
        extension: !extensions.is_empty(),
        extension_profile: profile,
        ..Default::default()
    };
    for (id, data) in extensions {
        header
            .set_extension(*id, Bytes::copy_from_slice(data))
            .unwrap();
    }
    header.padding = padding;
    let p = Packet {
        header,
        payload: Bytes::from_static(b"frame data"),
    };
    p.marshal().unwrap().to_vec()
}

fn unmarshal(bytes: &[u8]) -> Packet {
    Packet::unmarshal(&mut &bytes[..]).unwrap()
}

#[test]
fn fields_are_read_and_rewritten_in_place_and_the_rest_stays_byte_identical() {
    for (profile, exts) in [
        (
            PROFILE_ONE_BYTE,
            vec![(1u8, &b"\x01\x02"[..]), (3, &b"\x0a\x0b\x0c"[..])],
        ),
        (
            PROFILE_TWO_BYTE,
            vec![
                (1u8, &b"\x01\x02"[..]),
                (20, &b""[..]),
                (3, &b"\x0a\x0b\x0c"[..]),
            ],
        ),
    ] {
        let original = packet(profile, &exts, true);
        let mut buf = original.clone();
        let mut v = RtpView::parse(&mut buf).unwrap();
        assert!(v.marker());
        assert_eq!(
            (v.payload_type(), v.seq(), v.timestamp(), v.ssrc()),
            (96, 65_530, 0xDEAD_BEEF, 0x1122_3344)
        );
        assert_eq!(v.payload(), b"frame data");
        assert_eq!(v.extension(3), Some(&b"\x0a\x0b\x0c"[..]));
        assert_eq!(v.extension(1), Some(&b"\x01\x02"[..]));
        assert_eq!(v.extension(2), None);

        v.set_payload_type(111);
        v.set_seq(3);
        v.set_timestamp(42);
        v.set_ssrc(0xCAFE_F00D);
        let p = unmarshal(&buf);
        assert_eq!(
            (p.header.payload_type, p.header.marker),
            (111, true),
            "the marker bit stays"
        );
        assert_eq!(
            (p.header.sequence_number, p.header.timestamp, p.header.ssrc),
            (3, 42, 0xCAFE_F00D)
        );
        assert_eq!(p.header.csrc, vec![7, 8]);
        assert_eq!(&p.payload[..], b"frame data");
        assert_eq!(
            buf[12..],
            original[12..],
            "nothing after the fixed header changed"
        );
    }
}

#[test]
fn extension_ids_are_remapped_and_unmapped_ones_removed() {
    for profile in [PROFILE_ONE_BYTE, PROFILE_TWO_BYTE] {
        let mut buf = packet(
            profile,
            &[(1, b"\x01\x02"), (3, b"\x0a\x0b\x0c"), (5, b"\x05")],
            false,
        );
        let mut v = RtpView::parse(&mut buf).unwrap();
        // The subscriber negotiated 1 as 4 and 5 as 2; not 3.
        v.remap_extensions(|id| match id {
            1 => Some(4),
            5 => Some(2),
            _ => None,
        });
        assert_eq!(v.extension(4), Some(&b"\x01\x02"[..]));
        assert_eq!(v.extension(2), Some(&b"\x05"[..]));
        assert_eq!(
            (v.extension(1), v.extension(3), v.extension(5)),
            (None, None, None)
        );
        // webrtc-rs reads the same.
        let p = unmarshal(&buf);
        assert_eq!(p.header.get_extension(4).as_deref(), Some(&b"\x01\x02"[..]));
        assert_eq!(p.header.get_extension(2).as_deref(), Some(&b"\x05"[..]));
        assert_eq!(p.header.get_extension(3), None);
        assert_eq!(&p.payload[..], b"frame data");
    }
}

#[test]
fn a_one_byte_element_cannot_take_an_id_above_14() {
    let mut buf = packet(PROFILE_ONE_BYTE, &[(1, b"\x01")], false);
    let mut v = RtpView::parse(&mut buf).unwrap();
    v.remap_extensions(|_| Some(15));
    assert_eq!(
        v.extension(1),
        None,
        "removed rather than given a reserved id"
    );
    assert_eq!(v.extension(15), None);
}

#[test]
fn bad_layouts_are_refused_and_nothing_panics() {
    let good = packet(PROFILE_ONE_BYTE, &[(1, b"\x01\x02")], true);
    assert_eq!(
        RtpView::parse(&mut [0x80; 11]).unwrap_err(),
        RtpError::TooShort
    );
    let mut v1 = good.clone();
    v1[0] = (v1[0] & 0x3F) | 0x40;
    assert_eq!(RtpView::parse(&mut v1).unwrap_err(), RtpError::Version);
    let mut zero_padding = good.clone();
    *zero_padding.last_mut().unwrap() = 0;
    assert_eq!(
        RtpView::parse(&mut zero_padding).unwrap_err(),
        RtpError::Padding
    );
    let mut long_padding = good.clone();
    *long_padding.last_mut().unwrap() = 200;
    assert_eq!(
        RtpView::parse(&mut long_padding).unwrap_err(),
        RtpError::Padding
    );
    let mut cut = good[..good.len() - 20].to_vec();
    assert!(
        RtpView::parse(&mut cut).is_err(),
        "an extension block past the end"
    );
    // Every truncation and random bytes: an error or a view, never a panic, and no accessor panics.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for len in 0..=good.len() {
        for round in 0..40 {
            let mut buf = good[..len].to_vec();
            if round > 0 {
                for b in buf.iter_mut() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if rng.is_multiple_of(3) {
                        *b = rng as u8;
                    }
                }
            }
            if let Ok(mut v) = RtpView::parse(&mut buf) {
                let _ = (v.payload(), v.extension(1), v.seq(), v.ssrc());
                v.remap_extensions(|id| id.checked_add(1));
                v.set_seq(1);
            }
        }
    }
}

#[test]
fn past_sixteen_elements_the_rest_is_removed() {
    // A hand-made packet: 20 one-byte elements of id 1, one data byte each.
    let mut buf = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xBE, 0xDE, 0, 10];
    for i in 0..20u8 {
        buf.extend_from_slice(&[0x10, i]);
    }
    buf.extend_from_slice(b"payload");
    let mut v = RtpView::parse(&mut buf).unwrap();
    v.remap_extensions(|_| Some(2));
    let mut seen = Vec::new();
    walk(&buf[16..56], false, |at, id, range| {
        seen.push((id, buf[16 + at + range.start]))
    });
    assert_eq!(
        seen,
        (0..16).map(|i| (2, i)).collect::<Vec<_>>(),
        "16 remapped, the rest removed"
    );
    assert_eq!(&buf[56..], b"payload");
}
