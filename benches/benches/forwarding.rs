//! The forwarding hot path without the network: one publisher packet fanned out to N
//! subscribers (SRTP unprotect once, header rewrite + SRTP protect per subscriber, hand-off to
//! a per-subscriber send queue), a retransmission packet cache, and RTCP parsing/generation.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cascade_sfu::downtrack::munger::Munger;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtc::crypto::default_provider;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    TransportLayerCc,
};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp;
use rtc::shared::marshal::{Marshal, MarshalSize, Unmarshal};
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;

/// VP8-sized payload of the forwarded packet.
const PAYLOAD_LEN: usize = 1100;

/// An SRTP context for `profile` with a key derived from `seed`.
fn srtp(profile: ProtectionProfile, seed: u8) -> Context {
    let provider = default_provider().expect("a crypto provider");
    let key: Vec<u8> = (0..profile.key_len()).map(|i| seed ^ i as u8).collect();
    let salt: Vec<u8> = (0..profile.salt_len())
        .map(|i| seed ^ 0x5a ^ i as u8)
        .collect();
    Context::new(&key, &salt, profile, None, None, provider.crypto()).expect("SRTP context")
}

/// One subscriber's down-track: its SSRC and payload type, munger and SRTP context, and the
/// queue its datagrams are handed to (what the worker would pass to the socket).
struct DownTrack {
    ssrc: u32,
    payload_type: u8,
    munger: Munger,
    srtp: Context,
    queue: Vec<BytesMut>,
}

fn fanout(c: &mut Criterion) {
    let header = rtp::Header {
        version: 2,
        marker: true,
        payload_type: 96,
        sequence_number: 1000,
        timestamp: 90_000,
        ssrc: 0x1234_5678,
        ..Default::default()
    };
    let packet = rtp::Packet {
        header,
        payload: Bytes::from(vec![0xA5; PAYLOAD_LEN]),
    }
    .marshal()
    .expect("marshal");
    let profiles = [
        ("aead_aes_128_gcm", ProtectionProfile::AeadAes128Gcm),
        (
            "aes_cm_128_hmac_sha1_80",
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ];
    for (name, profile) in profiles {
        let mut group = c.benchmark_group(format!("fanout_{name}"));
        for n in [1usize, 10, 50] {
            let mut publisher_out = srtp(profile, 1);
            let datagram = publisher_out.encrypt_rtp(&packet).expect("encrypt");
            let mut inbound = srtp(profile, 1);
            let mut subs: Vec<DownTrack> = (0..n)
                .map(|i| DownTrack {
                    ssrc: 0x1000 + i as u32,
                    payload_type: 100,
                    munger: Munger::new(90_000),
                    srtp: srtp(profile, 2 + i as u8),
                    queue: Vec::with_capacity(64),
                })
                .collect();
            let now = Instant::now();
            let mut seq = 0u16;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    // Once per packet: unprotect; a new sequence number each time as on the wire.
                    let plain = inbound.decrypt_rtp(black_box(&datagram)).expect("decrypt");
                    let mut buf = &plain[..];
                    let mut h = rtp::Header::unmarshal(&mut buf).expect("header");
                    h.sequence_number = seq;
                    let payload = &plain[h.marshal_size()..];
                    for sub in &mut subs {
                        let (s, ts) =
                            sub.munger
                                .rewrite(h.ssrc, h.sequence_number, h.timestamp, now);
                        let out = rtp::Header {
                            ssrc: sub.ssrc,
                            payload_type: sub.payload_type,
                            sequence_number: s,
                            timestamp: ts,
                            ..h.clone()
                        };
                        let mut raw = BytesMut::with_capacity(out.marshal_size() + payload.len());
                        raw.resize(out.marshal_size(), 0);
                        out.marshal_to(&mut raw).expect("header fits");
                        raw.extend_from_slice(payload);
                        let protected = sub
                            .srtp
                            .encrypt_rtp_with_header(&raw, &out)
                            .expect("encrypt");
                        sub.queue.push(protected);
                        if sub.queue.len() == sub.queue.capacity() {
                            sub.queue.clear();
                        }
                    }
                })
            });
        }
        group.finish();
    }
}

/// A bench-only retransmission cache (Cascade's `sfu` has none of its own yet: NACKs are
/// answered by rtc's per-subscriber NACK responder): a power-of-two ring of shared packets
/// indexed by sequence number.
struct PacketCache {
    slots: Vec<Option<(u16, Bytes)>>,
}

impl PacketCache {
    fn new(size: usize) -> Self {
        assert!(size.is_power_of_two());
        Self {
            slots: vec![None; size],
        }
    }

    fn insert(&mut self, seq: u16, packet: Bytes) {
        let i = usize::from(seq) & (self.slots.len() - 1);
        self.slots[i] = Some((seq, packet));
    }

    fn get(&self, seq: u16) -> Option<&Bytes> {
        match &self.slots[usize::from(seq) & (self.slots.len() - 1)] {
            Some((s, p)) if *s == seq => Some(p),
            _ => None,
        }
    }
}

fn packet_cache(c: &mut Criterion) {
    let packet = Bytes::from(vec![0u8; PAYLOAD_LEN + 12]);
    let mut cache = PacketCache::new(1024);
    let mut seq = 0u16;
    c.bench_function("packet_cache_insert", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            cache.insert(seq, black_box(packet.clone()));
        })
    });
    for s in 0..1024u16 {
        cache.insert(s, packet.clone());
    }
    let mut i = 0u16;
    c.bench_function("packet_cache_lookup_hit", |b| {
        b.iter(|| {
            i = (i + 7) & 1023;
            black_box(cache.get(black_box(i)).cloned())
        })
    });
    c.bench_function("packet_cache_lookup_miss", |b| {
        b.iter(|| black_box(cache.get(black_box(5000))))
    });
}

fn report(ssrc: u32) -> ReceptionReport {
    ReceptionReport {
        ssrc,
        fraction_lost: 3,
        total_lost: 17,
        last_sequence_number: 0x0001_2345,
        jitter: 90,
        last_sender_report: 0x1234_5678,
        delay: 6553,
    }
}

/// The RTCP packets a forwarding server sends and receives most.
fn rtcp_packets() -> Vec<(&'static str, Box<dyn rtcp::Packet>)> {
    let twcc = TransportLayerCc {
        sender_ssrc: 1,
        media_ssrc: 2,
        base_sequence_number: 100,
        packet_status_count: 20,
        reference_time: 4057,
        fb_pkt_count: 7,
        packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
            run_length: 20,
        })],
        recv_deltas: (0..20)
            .map(|_| RecvDelta {
                type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                delta: 1000,
            })
            .collect(),
    };
    vec![
        (
            "rr",
            Box::new(ReceiverReport {
                ssrc: 1,
                reports: vec![report(2)],
                ..Default::default()
            }),
        ),
        (
            "sr",
            Box::new(SenderReport {
                ssrc: 2,
                ntp_time: 0xE5F6_0000_1234_5678,
                rtp_time: 90_000,
                packet_count: 1000,
                octet_count: 1_100_000,
                reports: vec![],
                ..Default::default()
            }),
        ),
        (
            "pli",
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 2,
            }),
        ),
        (
            "nack",
            Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: 2,
                nacks: nack_pairs_from_sequence_numbers(&[100, 102, 105, 140, 141, 200]),
            }),
        ),
        ("twcc", Box::new(twcc)),
    ]
}

fn rtcp_bench(c: &mut Criterion) {
    let mut parse = c.benchmark_group("rtcp_parse");
    for (name, packet) in rtcp_packets() {
        let raw = packet.marshal().expect("marshal").freeze();
        let parsed = rtcp::packet::unmarshal(&mut raw.clone()).expect("round trip");
        assert_eq!(parsed.len(), 1, "{name}");
        parse.bench_function(name, |b| {
            b.iter(|| rtcp::packet::unmarshal(&mut black_box(raw.clone())).expect("parse"))
        });
    }
    parse.finish();
    let mut generate = c.benchmark_group("rtcp_generate");
    for (name, packet) in rtcp_packets() {
        generate.bench_function(name, |b| {
            b.iter(|| black_box(&packet).marshal().expect("marshal"))
        });
    }
    generate.finish();
}

criterion_group!(forwarding, fanout, packet_cache, rtcp_bench);
criterion_main!(forwarding);
