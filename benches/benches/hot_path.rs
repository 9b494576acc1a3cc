//! Per-packet work of the forwarding path that does not touch the network.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use cascade_sfu::downtrack::munger::Munger;
use cascade_sfu::net::Path;
use cascade_sfu::net::demux::{Demuxer, binding_request};
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
        let addr = Path::udp(
            format!("10.0.{}.{}:5000", i / 250, i % 250)
                .parse::<SocketAddr>()
                .unwrap(),
        );
        d.add_peer(format!("u{i}"), format!("p{i}"), i);
        addrs.push(addr);
    }
    // Bind addresses through their first (STUN) contact.
    for (i, a) in addrs.iter().enumerate() {
        d.route(*a, &binding_request(&format!("u{i}:x"), &format!("p{i}")));
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

criterion_group!(hot_path, munger, demux);
criterion_main!(hot_path);
