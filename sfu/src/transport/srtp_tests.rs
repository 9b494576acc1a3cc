//! Unit tests of the in-place SRTP session, checked against webrtc-rs's own SRTP contexts in
//! both directions, for both profiles.

use super::*;
use rtc::srtp::context::Context;

const PROFILES: [ProtectionProfile; 2] = [
    ProtectionProfile::AeadAes128Gcm,
    ProtectionProfile::Aes128CmHmacSha1_80,
];

fn crypto() -> std::sync::Arc<dyn rtc::crypto::RTCCryptoProvider> {
    rtc::crypto::default_provider().expect("crypto provider")
}

/// Keys with distinct bytes per direction.
fn keys(profile: ProtectionProfile) -> SrtpKeys {
    let material: Vec<u8> = (0..SrtpKeys::keying_material_len(profile))
        .map(|i| (i * 7 + 3) as u8)
        .collect();
    SrtpKeys::from_keying_material(profile, &material, false).expect("keys")
}

/// webrtc-rs contexts of the other side: one that opens what we send, one that seals what we
/// receive.
fn their_contexts(k: &SrtpKeys) -> (Context, Context) {
    let provider = crypto();
    let opens = Context::new(
        &k.keys.local_master_key,
        &k.keys.local_master_salt,
        k.profile,
        None,
        None,
        provider.crypto(),
    )
    .expect("context");
    let seals = Context::new(
        &k.keys.remote_master_key,
        &k.keys.remote_master_salt,
        k.profile,
        None,
        None,
        provider.crypto(),
    )
    .expect("context");
    (opens, seals)
}

fn session(k: &SrtpKeys) -> SrtpSession {
    SrtpSession::new(k, crypto().crypto()).expect("session")
}

/// An RTP packet with a CSRC, a one-byte extension and a payload derived from `seq`.
fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0x91, 0x60];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0x1111_2222u32.to_be_bytes()); // CSRC
    p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
    p.extend((0..100u8).map(|i| i ^ seq as u8));
    p
}

/// A receiver report (with one block) followed by a PLI.
fn rtcp(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x81, 201, 0x00, 0x07];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    p.extend_from_slice(&[
        1, 0, 0, 2, 0, 0, 0x12, 0x34, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    p.extend_from_slice(&[0x81, 206, 0x00, 0x02]);
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    p
}

/// Protects `packet` with our session in a buffer with room to spare.
fn protect(s: &mut SrtpSession, packet: &[u8], rtcp: bool) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + MAX_RTCP_OVERHEAD, 0);
    let len = if rtcp {
        s.protect_rtcp(&mut buf, packet.len())
    } else {
        s.protect_rtp(&mut buf, packet.len())
    }
    .expect("protect");
    buf.truncate(len);
    buf
}

#[test]
fn what_we_protect_webrtc_rs_opens_and_the_reverse_across_the_sequence_wrap() {
    for profile in PROFILES {
        let k = keys(profile);
        let mut ours = session(&k);
        let (mut opens, mut seals) = their_contexts(&k);
        // Across the 16-bit wrap: the rollover counter must follow on both sides.
        for seq in (65_500..=u16::MAX).chain(0..100) {
            let plain = rtp(0x1234_5678, seq);
            let sent = protect(&mut ours, &plain, false);
            assert_ne!(
                &sent[24..plain.len()],
                &plain[24..],
                "{profile:?}: the payload is encrypted"
            );
            assert_eq!(
                &sent[..24],
                &plain[..24],
                "{profile:?}: the header stays in the clear"
            );
            let opened = opens.decrypt_rtp(&sent).expect("webrtc-rs opens ours");
            assert_eq!(&opened[..], &plain[..], "{profile:?} seq {seq}");

            let mut received = seals.encrypt_rtp(&plain).expect("webrtc-rs seals").to_vec();
            let len = ours.unprotect_rtp(&mut received).expect("we open theirs");
            assert_eq!(&received[..len], &plain[..], "{profile:?} seq {seq}");
        }
        for i in 0..5u32 {
            let plain = rtcp(0x0bad_cafe + i % 2);
            let sent = protect(&mut ours, &plain, true);
            let opened = opens.decrypt_rtcp(&sent).expect("webrtc-rs opens our RTCP");
            assert_eq!(&opened[..], &plain[..], "{profile:?} rtcp {i}");

            let mut received = seals
                .encrypt_rtcp(&plain)
                .expect("webrtc-rs seals RTCP")
                .to_vec();
            let len = ours
                .unprotect_rtcp(&mut received)
                .expect("we open their RTCP");
            assert_eq!(&received[..len], &plain[..], "{profile:?} rtcp {i}");
        }
    }
}

#[test]
fn replays_and_packets_older_than_the_window_are_refused_reordering_is_not() {
    for profile in PROFILES {
        let k = keys(profile);
        let mut ours = session(&k);
        let (_, mut seals) = their_contexts(&k);
        let sealed: Vec<Vec<u8>> = (1000..1100u16)
            .map(|seq| seals.encrypt_rtp(&rtp(7, seq)).unwrap().to_vec())
            .collect();
        let open = |s: &mut SrtpSession, i: usize| s.unprotect_rtp(&mut sealed[i].clone());
        assert!(open(&mut ours, 10).is_ok());
        assert!(open(&mut ours, 12).is_ok());
        assert!(
            open(&mut ours, 11).is_ok(),
            "{profile:?}: reordered within the window"
        );
        assert_eq!(
            open(&mut ours, 11),
            Err(SrtpError::Replayed),
            "{profile:?}: replay"
        );
        assert!(open(&mut ours, 99).is_ok());
        assert_eq!(
            open(&mut ours, 20),
            Err(SrtpError::Replayed),
            "{profile:?}: 79 behind"
        );
        assert!(
            open(&mut ours, 40).is_ok(),
            "{profile:?}: 59 behind, never seen"
        );

        let rtcp_sealed = seals.encrypt_rtcp(&rtcp(9)).unwrap().to_vec();
        assert!(ours.unprotect_rtcp(&mut rtcp_sealed.clone()).is_ok());
        assert_eq!(
            ours.unprotect_rtcp(&mut rtcp_sealed.clone()),
            Err(SrtpError::Replayed),
            "{profile:?}: RTCP replay"
        );
    }
}

#[test]
fn a_changed_byte_anywhere_fails_authentication_and_changes_nothing() {
    for profile in PROFILES {
        let k = keys(profile);
        let mut ours = session(&k);
        let (_, mut seals) = their_contexts(&k);
        let good = seals.encrypt_rtp(&rtp(5, 1)).unwrap().to_vec();
        for at in [1, 3, 9, 20, 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            assert_eq!(
                ours.unprotect_rtp(&mut bad),
                Err(SrtpError::AuthFailed),
                "{profile:?} byte {at}"
            );
        }
        // The refusals left no trace: the genuine packet still opens, once.
        let len = ours.unprotect_rtp(&mut good.clone()).expect("genuine");
        assert_eq!(len, rtp(5, 1).len());

        let good = seals.encrypt_rtcp(&rtcp(5)).unwrap().to_vec();
        for at in [0, 5, 12, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(
                ours.unprotect_rtcp(&mut bad).is_err(),
                "{profile:?} rtcp byte {at}"
            );
        }
        // The E flag cleared (authenticated-only SRTCP) is refused before any crypto.
        let mut clear = good.clone();
        let flag_at = if matches!(profile, ProtectionProfile::AeadAes128Gcm) {
            clear.len() - 4
        } else {
            clear.len() - 14
        };
        clear[flag_at] &= 0x7f;
        assert_eq!(
            ours.unprotect_rtcp(&mut clear),
            Err(SrtpError::Unencrypted),
            "{profile:?}"
        );
        assert!(ours.unprotect_rtcp(&mut good.clone()).is_ok());

        // Another key: nothing authenticates.
        let mut other = keys(profile);
        other.keys.remote_master_key[0] ^= 1;
        let mut wrong = session(&other);
        assert_eq!(
            wrong.unprotect_rtp(&mut seals.encrypt_rtp(&rtp(5, 2)).unwrap().to_vec()),
            Err(SrtpError::AuthFailed)
        );
    }
}

#[test]
fn malformed_packets_and_small_buffers_are_errors_never_panics() {
    for profile in PROFILES {
        let mut ours = session(&keys(profile));
        let plain = rtp(1, 1);
        for cut in 0..plain.len() {
            let _ = ours.unprotect_rtp(&mut plain[..cut].to_vec());
            let _ = ours.unprotect_rtcp(&mut plain[..cut].to_vec());
            let mut buf = plain[..cut].to_vec();
            buf.resize(cut + MAX_RTCP_OVERHEAD, 0);
            let _ = ours.protect_rtp(&mut buf, cut);
            let _ = ours.protect_rtcp(&mut buf, cut);
        }
        // An extension that claims to run past the end; a bad version; a length past the buffer.
        let mut long_ext = plain.clone();
        long_ext[18] = 0xff;
        long_ext.resize(long_ext.len() + 16, 0);
        assert_eq!(
            ours.protect_rtp(&mut long_ext, plain.len()),
            Err(SrtpError::Malformed)
        );
        let mut v1 = plain.clone();
        v1[0] = 0x51;
        v1.resize(v1.len() + 16, 0);
        assert_eq!(
            ours.protect_rtp(&mut v1, plain.len()),
            Err(SrtpError::Malformed)
        );
        assert_eq!(
            ours.protect_rtp(&mut plain.clone(), plain.len() + 1),
            Err(SrtpError::Malformed)
        );
        // No room for the tag.
        assert_eq!(
            ours.protect_rtp(&mut plain.clone(), plain.len()),
            Err(SrtpError::NoRoom)
        );
        let r = rtcp(1);
        assert_eq!(
            ours.protect_rtcp(&mut r.clone(), r.len()),
            Err(SrtpError::NoRoom)
        );
        // Random bytes.
        let mut state = 0x9e37_79b9u32;
        for _ in 0..2000 {
            let len = (state % 200) as usize;
            let mut junk: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            if let Some(b) = junk.first_mut() {
                *b = 0x80 | (*b & 0x3f);
            }
            assert!(ours.unprotect_rtp(&mut junk.clone()).is_err());
            assert!(ours.unprotect_rtcp(&mut junk).is_err());
        }
    }
}

#[test]
fn only_supported_profiles_and_key_lengths_make_a_session() {
    let provider = crypto();
    let mut k = keys(ProtectionProfile::AeadAes128Gcm);
    k.profile = ProtectionProfile::AeadAes256Gcm;
    assert!(matches!(
        SrtpSession::new(&k, provider.crypto()),
        Err(SrtpError::UnsupportedProfile(_))
    ));
    let mut k = keys(ProtectionProfile::Aes128CmHmacSha1_80);
    k.keys.local_master_salt.pop();
    assert!(matches!(
        SrtpSession::new(&k, provider.crypto()),
        Err(SrtpError::BadKeys)
    ));
}

#[test]
fn the_key_derivation_matches_rfc_3711_appendix_b3() {
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let provider = crypto();
    let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
    let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
    let mut out = [0u8; 16];
    kdf(provider.crypto(), &key, &salt, 0, &mut out).unwrap();
    assert_eq!(
        out.to_vec(),
        hex("C61E7A93744F39EE10734AFE3FF7A087"),
        "cipher key"
    );
    let mut out = [0u8; 14];
    kdf(provider.crypto(), &key, &salt, 2, &mut out).unwrap();
    assert_eq!(
        out.to_vec(),
        hex("30CBBC08863D8C85D49DB34A9AE1"),
        "cipher salt"
    );
    let mut out = [0u8; 20];
    kdf(provider.crypto(), &key, &salt, 1, &mut out).unwrap();
    assert_eq!(
        out[..16].to_vec(),
        hex("CEBE321F6FF7716B6FD4AB49AF256A15"),
        "auth key"
    );
}

#[test]
fn the_index_estimate_follows_rfc_3711_appendix_a() {
    assert_eq!(estimate_index(0xffff, 0), 0x1_0000, "wrapped forward");
    assert_eq!(
        estimate_index(0x1_0002, 0xfffe),
        0xfffe,
        "late from the previous cycle"
    );
    assert_eq!(
        estimate_index(0x5, 0xfff0),
        0xfff0,
        "no cycle before the first"
    );
    assert_eq!(
        estimate_index(0x3_9000, 0x100),
        0x4_0100,
        "upper half: far below is the next cycle"
    );
    assert_eq!(
        estimate_index(0x3_8000, 0x100),
        0x3_0100,
        "upper half: within half a cycle below"
    );
    assert_eq!(estimate_index(0x3_9000, 0x8fff), 0x3_8fff);
}

#[test]
fn stream_tables_are_bounded_and_forget_the_least_recently_used() {
    let mut streams = Streams::default();
    for ssrc in 0..(MAX_STREAMS as u32 + 10) {
        streams.insert(ssrc, ssrc);
        if ssrc == 5 {
            continue;
        }
        // SSRC 0 stays in use.
        streams.insert(0, 0);
    }
    assert_eq!(streams.entries.len(), MAX_STREAMS);
    assert_eq!(streams.get(0), Some(&0), "the most used is kept");
    assert_eq!(
        streams.get(MAX_STREAMS as u32 + 9),
        Some(&(MAX_STREAMS as u32 + 9))
    );
    assert_eq!(streams.get(1), None, "the least recently used went first");
}
