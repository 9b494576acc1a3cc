//! Checks the test kit's pure helpers: payloads, server error messages, RTCP classification.

use cascade_testkit::payload::{
    AUDIO_PAYLOAD_LEN, VIDEO_PAYLOAD_LEN, audio_payload, payload_for, video_payload,
    vp8_descriptor_len,
};
use cascade_testkit::{
    ErrorMsg, MediaKind, RtcpType, is_keyframe_counter, payload_counter, vp8_is_keyframe,
};

#[test]
fn audio_payload_round_trips_its_counter() {
    for counter in [0, 1, 29, 30, 0x0102_0304, u32::MAX] {
        let p = audio_payload(counter);
        assert_eq!(p.len(), AUDIO_PAYLOAD_LEN);
        assert_eq!(&p[..4], &counter.to_be_bytes(), "counter first, big endian");
        assert_eq!(payload_counter(MediaKind::Audio, &p), Some(counter));
    }
}

#[test]
fn video_payload_has_vp8_descriptor_keyframe_bit_and_counter() {
    for counter in [0u32, 1, 29, 30, 31, 60, 12345] {
        let p = payload_for(MediaKind::Video, counter);
        assert_eq!(p.len(), VIDEO_PAYLOAD_LEN);
        assert_eq!(p[0], 0x10, "S=1, PID=0 descriptor");
        let key = counter.is_multiple_of(30);
        assert_eq!(is_keyframe_counter(counter), key);
        assert_eq!(p[1] & 1 == 0, key, "P bit of the frame tag");
        assert_eq!(vp8_is_keyframe(&p), Some(key));
        if key {
            assert_eq!(&p[4..7], &[0x9d, 0x01, 0x2a], "key frame start code");
        }
        assert_eq!(&p[11..15], &counter.to_be_bytes());
        assert_eq!(payload_counter(MediaKind::Video, &p), Some(counter));
    }
}

#[test]
fn decoder_survives_a_rewritten_vp8_descriptor() {
    // X=1, I=1 with a 15-bit picture id, L=1 (TL0PICIDX), T=1 (TID byte): 6-byte descriptor.
    let original = video_payload(77, true);
    let mut p = vec![0x90, 0xE0, 0x80 | 0x12, 0x34, 0x05, 0x20];
    p.extend_from_slice(&original[1..]);
    assert_eq!(vp8_descriptor_len(&p), Some(6));
    assert_eq!(vp8_is_keyframe(&p), Some(true));
    assert_eq!(payload_counter(MediaKind::Video, &p), Some(77));
}

#[test]
fn foreign_or_truncated_payloads_are_rejected() {
    assert_eq!(payload_counter(MediaKind::Audio, &[0, 0, 0, 1]), None);
    assert_eq!(
        payload_counter(MediaKind::Audio, &[0; 24]),
        None,
        "no magic"
    );
    let v = video_payload(5, false);
    assert_eq!(payload_counter(MediaKind::Video, &v[..14]), None);
    assert_eq!(payload_counter(MediaKind::Audio, &v), None, "kind matters");
    assert_eq!(vp8_is_keyframe(&[]), None);
    assert_eq!(vp8_is_keyframe(&[0x80]), None, "truncated extension");
    // Not the start of partition 0: never a key frame.
    let mut cont = video_payload(0, true).to_vec();
    cont[0] = 0x00;
    assert_eq!(vp8_is_keyframe(&cont), Some(false));
}

#[test]
fn error_messages_are_read_from_server_json() {
    let msg = serde_json::json!({
        "type": "error", "code": "room_full", "message": "full", "ref": "join-1"
    });
    let e = ErrorMsg::from_message(&msg).expect("an error message");
    assert_eq!(e.code, "room_full");
    assert_eq!(e.reference, Some(serde_json::Value::from("join-1")));
    assert!(e.is_server_error());
    assert!(ErrorMsg::from_message(&serde_json::json!({"type": "joined"})).is_none());
    assert!(!ErrorMsg::client(anyhow::anyhow!("boom")).is_server_error());
}

#[test]
fn rtcp_packets_are_classified() {
    use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
        TransportLayerNack, nack_pairs_from_sequence_numbers,
    };
    let pli = PictureLossIndication {
        sender_ssrc: 1,
        media_ssrc: 2,
    };
    assert_eq!(RtcpType::of(&pli), RtcpType::Pli);
    assert_eq!(RtcpType::of(&FullIntraRequest::default()), RtcpType::Fir);
    assert_eq!(
        RtcpType::of(&ReceiverReport::default()),
        RtcpType::ReceiverReport
    );
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: 2,
        nacks: nack_pairs_from_sequence_numbers(&[10, 12, 40]),
    };
    assert_eq!(RtcpType::of(&nack), RtcpType::Nack);
    assert_eq!(RtcpType::Nack.name(), "nack");
}
