//! Cascade's own engine (issue 11) without the network: one publisher packet into its
//! up-track, then per subscriber the down-track's in-place rewrite into a reused buffer and
//! the in-place SRTP protect, the packet handed to a sink. The per-subscriber part is what the
//! router does for each subscription.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use cascade_sfu::downtrack::down_track::{DownTrack, DownTrackParams, PayloadMapping};
use cascade_sfu::track::up_track::{Arrival, UpTrack, UpTrackParams};
use cascade_sfu::transport::srtp::{MAX_RTP_OVERHEAD, SrtpKeys, SrtpSession};
use cascade_sfu::transport::twcc::TwccSender;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtc::crypto::default_provider;
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use rtc::srtp::protection_profile::ProtectionProfile;

/// VP8-sized payload of the forwarded packet.
const PAYLOAD_LEN: usize = 1100;

/// An SRTP session for `profile` with keys derived from `seed`.
fn session(profile: ProtectionProfile, seed: u8) -> SrtpSession {
    let material: Vec<u8> = (0..SrtpKeys::keying_material_len(profile))
        .map(|i| seed ^ i as u8)
        .collect();
    let keys = SrtpKeys::from_keying_material(profile, &material, false).expect("keys");
    let provider = default_provider().expect("a crypto provider");
    SrtpSession::new(&keys, provider.crypto()).expect("session")
}

/// A subscriber: its down-track, transport-wide counter and SRTP session.
struct Subscriber {
    down: DownTrack,
    twcc: TwccSender,
    srtp: SrtpSession,
}

fn fanout(c: &mut Criterion) {
    let mut header = rtp::Header {
        version: 2,
        marker: true,
        payload_type: 96,
        sequence_number: 1000,
        timestamp: 90_000,
        ssrc: 0x1234_5678,
        extension: true,
        extension_profile: 0xBEDE,
        ..Default::default()
    };
    header
        .set_extension(3, Bytes::from_static(&[0, 0]))
        .expect("extension");
    let mut packet = rtp::Packet {
        header,
        payload: Bytes::from(vec![0xA5; PAYLOAD_LEN]),
    }
    .marshal()
    .expect("marshal")
    .to_vec();
    let profiles = [
        ("gcm", ProtectionProfile::AeadAes128Gcm),
        ("cm80", ProtectionProfile::Aes128CmHmacSha1_80),
    ];
    for (name, profile) in profiles {
        let mut group = c.benchmark_group(format!("engine_fanout_{name}"));
        for n in [1usize, 10, 50] {
            let mut up = UpTrack::new(UpTrackParams {
                ssrc: 0x1234_5678,
                local_ssrc: 1,
                clock_rate: 90_000,
                rtx_payload_types: vec![(97, 96)],
                nack: true,
                cache: cascade_sfu::track::up_track::CACHE_PACKETS,
            });
            let mut subs: Vec<Subscriber> = (0..n)
                .map(|i| Subscriber {
                    down: DownTrack::new(DownTrackParams {
                        ssrc: 0x1000 + i as u32,
                        rtx_ssrc: 0x2000 + i as u32,
                        clock_rate: 90_000,
                        payload_types: vec![PayloadMapping {
                            track: 96,
                            subscriber: 100,
                            rtx: Some(101),
                        }],
                        extensions: vec![(3, 5)],
                        transport_cc: Some(5),
                    }),
                    twcc: TwccSender::default(),
                    srtp: session(profile, 2 + i as u8),
                })
                .collect();
            let mut out = vec![0u8; packet.len() + MAX_RTP_OVERHEAD + 2];
            let mut seq = 0u16;
            let mut sent = 0usize;
            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::from_parameter(n), |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    let now = Instant::now();
                    let Ok(Arrival::New(ext)) = up.on_rtp(black_box(&packet), now) else {
                        return;
                    };
                    for sub in &mut subs {
                        let len = sub
                            .down
                            .forward(&packet, ext, &mut out, &mut sub.twcc, now)
                            .expect("forward");
                        let len = sub.srtp.protect_rtp(&mut out, len).expect("protect");
                        sent += black_box(&out[..len]).len();
                    }
                })
            });
            black_box(sent);
        }
        group.finish();
    }
}

criterion_group!(engine, fanout);
criterion_main!(engine);
