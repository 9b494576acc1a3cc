//! Per-packet work of the forwarding path that does not touch the network.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use cascade_sfu::demux::Demuxer;
use cascade_sfu::munger::Munger;
use criterion::{Criterion, criterion_group, criterion_main};

fn munger(c: &mut Criterion) {
    let now = Instant::now();
    let mut m = Munger::new(90_000);
    let mut seq = 0u16;
    c.bench_function("munger_rewrite", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            black_box(m.rewrite(1, black_box(seq), u32::from(seq) * 3000, now))
        })
    });
}

fn demux(c: &mut Criterion) {
    let mut d = Demuxer::default();
    let mut addrs = Vec::new();
    for i in 0..1000u32 {
        let addr: SocketAddr = format!("10.0.{}.{}:5000", i / 250, i % 250)
            .parse()
            .unwrap();
        d.add_peer(format!("u{i}"), i);
        addrs.push(addr);
    }
    // Bind addresses through their first (STUN) contact.
    for (i, a) in addrs.iter().enumerate() {
        d.route(*a, &stun_request(&format!("u{i}:x")));
    }
    let rtp = [0x80u8, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
    let mut i = 0;
    c.bench_function("demux_route_by_address_1000_peers", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            black_box(d.route(addrs[i], &rtp))
        })
    });
}

fn stun_request(username: &str) -> Vec<u8> {
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[0; 12]);
    m.extend_from_slice(&attr);
    m
}

criterion_group!(hot_path, munger, demux);
criterion_main!(hot_path);
