//! Unit tests of the NACK generator: gaps, retries, bounds, wrap-around.

use super::*;
use rtc::shared::marshal::{Marshal, Unmarshal};

const RETRY: Duration = Duration::from_millis(50);

/// The 16-bit sequence numbers a NACK asks for.
fn asked(nack: &TransportLayerNack) -> Vec<u16> {
    nack.nacks.iter().flat_map(|p| p.packet_list()).collect()
}

#[test]
fn a_gap_is_asked_for_again_after_the_retry_interval_until_it_arrives() {
    let mut g = NackGenerator::new(1, 0xAAAA, RETRY);
    let t0 = Instant::now();
    assert_eq!(g.poll(t0), None, "nothing received yet");
    for s in (100..110).filter(|s| *s != 105 && *s != 106) {
        g.on_packet(s);
    }
    let nack = g.poll(t0).unwrap();
    assert_eq!((nack.sender_ssrc, nack.media_ssrc), (1, 0xAAAA));
    assert_eq!(asked(&nack), vec![105, 106]);
    assert_eq!(
        g.poll(t0 + RETRY / 2),
        None,
        "not again before the retry interval"
    );
    g.on_packet(105); // retransmitted
    let nack = g.poll(t0 + RETRY).unwrap();
    assert_eq!(asked(&nack), vec![106]);
    let bytes = nack.marshal().unwrap();
    assert_eq!(
        TransportLayerNack::unmarshal(&mut &bytes[..]).unwrap(),
        nack
    );
}

#[test]
fn a_packet_is_asked_for_at_most_max_attempts_times() {
    let mut g = NackGenerator::new(1, 2, RETRY);
    let t0 = Instant::now();
    g.on_packet(1);
    g.on_packet(3);
    let mut times = 0;
    for i in 0..(MAX_ATTEMPTS as u32 + 5) {
        if g.poll(t0 + RETRY * i).is_some() {
            times += 1;
        }
    }
    assert_eq!(times, u32::from(MAX_ATTEMPTS));
    assert_eq!(g.missing(), 0, "given up");
}

#[test]
fn old_and_excess_missing_packets_are_bounded() {
    let mut g = NackGenerator::new(1, 2, RETRY);
    g.on_packet(10);
    g.on_packet(12); // 11 missing
    g.on_packet(12 + MAX_AGE + 1);
    assert!(g.missing() <= MAX_MISSING);
    assert!(
        g.poll(Instant::now())
            .is_some_and(|n| !asked(&n).contains(&11)),
        "too old to ask for"
    );
    // A long outage: only the newest MAX_MISSING of the gap are tracked.
    let mut g = NackGenerator::new(1, 2, RETRY);
    g.on_packet(0);
    g.on_packet(50_000);
    assert_eq!(g.missing(), MAX_MISSING);
    let nack = g.poll(Instant::now()).unwrap();
    assert_eq!(
        asked(&nack).first(),
        Some(&((50_000 - MAX_MISSING as u64) as u16))
    );
    assert_eq!(asked(&nack).last(), Some(&49_999));
}

#[test]
fn gaps_across_the_16_bit_wrap_are_asked_for_with_their_wire_numbers() {
    let mut g = NackGenerator::new(1, 2, RETRY);
    let base = 3 << 16;
    g.on_packet(base - 3); // 65533
    g.on_packet(base + 1); // 1: 65534, 65535 and 0 are missing
    let nack = g.poll(Instant::now()).unwrap();
    assert_eq!(asked(&nack), vec![65_534, 65_535, 0]);
}
