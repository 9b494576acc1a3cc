//! Unit tests of the transport-wide sequence stamping and the feedback reading.

use super::*;
use bytes::Bytes;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk, SymbolSizeTypeTcc,
};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};

/// The transport-cc extension id of these tests.
const TCC: u8 = 5;

/// A marshalled packet, with a transport-cc extension (value 0xFFFF) if `with_tcc`.
fn packet(with_tcc: bool) -> Vec<u8> {
    let mut header = Header {
        version: 2,
        payload_type: 96,
        extension: with_tcc,
        extension_profile: crate::rtp::view::PROFILE_ONE_BYTE,
        ..Default::default()
    };
    if with_tcc {
        header
            .set_extension(TCC, Bytes::from_static(&[0xFF, 0xFF]))
            .unwrap();
        header
            .set_extension(2, Bytes::from_static(&[1, 2, 3]))
            .unwrap();
    }
    Packet {
        header,
        payload: Bytes::from_static(b"media"),
    }
    .marshal()
    .unwrap()
    .to_vec()
}

/// Stamps `n` packets sent 1 ms apart from `t0`; returns the sender.
fn sent(n: u64, t0: Instant) -> TwccSender {
    let mut s = TwccSender::default();
    for i in 0..n {
        let mut buf = packet(true);
        let mut v = RtpView::parse(&mut buf).unwrap();
        s.stamp(
            &mut v,
            TCC,
            1000 + i as usize,
            t0 + Duration::from_millis(i),
        )
        .unwrap();
    }
    s
}

#[test]
fn packets_get_consecutive_numbers_in_their_extension_and_others_are_left_alone() {
    let mut s = TwccSender::default();
    let now = Instant::now();
    for expected in 0..3u16 {
        let mut buf = packet(true);
        let size = buf.len();
        let mut v = RtpView::parse(&mut buf).unwrap();
        assert_eq!(s.stamp(&mut v, TCC, size, now), Some(expected));
        let p = Packet::unmarshal(&mut &buf[..]).unwrap();
        assert_eq!(
            p.header.get_extension(TCC).as_deref(),
            Some(&expected.to_be_bytes()[..])
        );
        assert_eq!(
            p.header.get_extension(2).as_deref(),
            Some(&[1, 2, 3][..]),
            "other extensions untouched"
        );
    }
    let mut buf = packet(false);
    let original = buf.clone();
    let mut v = RtpView::parse(&mut buf).unwrap();
    assert_eq!(s.stamp(&mut v, TCC, 10, now), None);
    assert_eq!(buf, original);
}

/// Feedback as a browser sends it, through marshal and unmarshal; a delta is large if a run of
/// large deltas is among the chunks or it does not fit a small one.
fn feedback(
    base: u16,
    count: u16,
    chunks: Vec<PacketStatusChunk>,
    deltas_us: &[i64],
) -> TransportLayerCc {
    let large = chunks.iter().any(|c| {
        matches!(c, PacketStatusChunk::RunLengthChunk(r)
            if r.packet_status_symbol == SymbolTypeTcc::PacketReceivedLargeDelta)
    });
    let fb = TransportLayerCc {
        sender_ssrc: 1,
        media_ssrc: 2,
        base_sequence_number: base,
        packet_status_count: count,
        reference_time: 100,
        fb_pkt_count: 0,
        packet_chunks: chunks,
        recv_deltas: deltas_us
            .iter()
            .map(|&delta| RecvDelta {
                type_tcc_packet: if !large && (0..=63_750).contains(&delta) {
                    SymbolTypeTcc::PacketReceivedSmallDelta
                } else {
                    SymbolTypeTcc::PacketReceivedLargeDelta
                },
                delta,
            })
            .collect(),
    };
    let bytes = fb.marshal().unwrap();
    TransportLayerCc::unmarshal(&mut &bytes[..]).unwrap()
}

fn run(symbol: SymbolTypeTcc, run_length: u16) -> PacketStatusChunk {
    PacketStatusChunk::RunLengthChunk(RunLengthChunk {
        type_tcc: StatusChunkTypeTcc::RunLengthChunk,
        packet_status_symbol: symbol,
        run_length,
    })
}

#[test]
fn feedback_says_which_packets_arrived_when_and_which_were_lost() {
    let t0 = Instant::now();
    let s = sent(10, t0);
    // Packets 4..10: 4 and 5 arrived 1 ms apart, 6 lost, 7 arrived 2 ms later, 8 and 9 not reported.
    let vector = PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
        type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
        symbol_size: SymbolSizeTypeTcc::TwoBit,
        symbol_list: vec![
            SymbolTypeTcc::PacketReceivedSmallDelta,
            SymbolTypeTcc::PacketReceivedSmallDelta,
            SymbolTypeTcc::PacketNotReceived,
            SymbolTypeTcc::PacketReceivedSmallDelta,
            SymbolTypeTcc::PacketNotReceived,
            SymbolTypeTcc::PacketNotReceived,
            SymbolTypeTcc::PacketNotReceived,
        ],
    });
    let got = s.on_feedback(&feedback(4, 4, vec![vector], &[250, 1000, 2000]));
    let reference = Duration::from_millis(6_400);
    assert_eq!(
        got.iter()
            .map(|d| (d.seq, d.size, d.arrival))
            .collect::<Vec<_>>(),
        vec![
            (4, 1004, Some(reference + Duration::from_micros(250))),
            (5, 1005, Some(reference + Duration::from_micros(1_250))),
            (6, 1006, None),
            (7, 1007, Some(reference + Duration::from_micros(3_250))),
        ]
    );
    assert_eq!(got[0].sent_at, t0 + Duration::from_millis(4));
}

#[test]
fn feedback_across_the_16_bit_wrap_and_about_unknown_packets() {
    let t0 = Instant::now();
    let s = sent(65_540, t0);
    // 65_534..65_538 (wire numbers 65534, 65535, 0, 1): all arrived, a large delta among them.
    let got = s.on_feedback(&feedback(
        65_534,
        4,
        vec![run(SymbolTypeTcc::PacketReceivedLargeDelta, 4)],
        &[-1_000, 70_000, 250, 250],
    ));
    assert_eq!(
        got.iter().map(|d| d.seq).collect::<Vec<_>>(),
        vec![65_534, 65_535, 65_536, 65_537]
    );
    assert_eq!(
        got[1].arrival.unwrap() - got[0].arrival.unwrap(),
        Duration::from_millis(70)
    );
    // Far older than the history, or never sent: nothing.
    assert!(
        s.on_feedback(&feedback(
            100,
            2,
            vec![run(SymbolTypeTcc::PacketReceivedSmallDelta, 2)],
            &[250, 250]
        ))
        .is_empty()
    );
    let fresh = TwccSender::default();
    assert!(
        fresh
            .on_feedback(&feedback(
                0,
                1,
                vec![run(SymbolTypeTcc::PacketReceivedSmallDelta, 1)],
                &[250]
            ))
            .is_empty()
    );
}
