//! Unit tests of the receive statistics: RFC 3550's loss, sequence, jitter and LSR/DLSR math.

use super::*;
use crate::track::packet_cache::SeqUnwrapper;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::shared::marshal::{Marshal, Unmarshal};
use std::time::Duration;

/// Feeds packets `seqs` (16-bit), 20 ms apart, 960 RTP units apart (48 kHz audio).
fn feed(
    stats: &mut ReceiveStats,
    u: &mut SeqUnwrapper,
    t0: Instant,
    seqs: impl IntoIterator<Item = u16>,
) {
    for (i, seq) in seqs.into_iter().enumerate() {
        let at = t0 + Duration::from_millis(20 * i as u64);
        stats.on_packet(u.unwrap(seq), 960 * i as u32, at);
    }
}

#[test]
fn nothing_lost_nothing_reported_lost_and_no_report_before_a_packet() {
    let mut stats = ReceiveStats::new(0xABCD, 48_000);
    let t0 = Instant::now();
    assert_eq!(stats.report(t0), None);
    feed(&mut stats, &mut SeqUnwrapper::default(), t0, 1000..1100);
    let r = stats.report(t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(
        (
            r.ssrc,
            r.fraction_lost,
            r.total_lost,
            r.last_sequence_number
        ),
        (0xABCD, 0, 0, 1099)
    );
    assert_eq!(r.jitter, 0, "perfectly paced");
    assert_eq!(
        (r.last_sender_report, r.delay),
        (0, 0),
        "no sender report yet"
    );
}

#[test]
fn loss_is_reported_per_interval_and_in_total() {
    let mut stats = ReceiveStats::new(1, 48_000);
    let mut u = SeqUnwrapper::default();
    let t0 = Instant::now();
    // 100 expected, 10 lost.
    feed(&mut stats, &mut u, t0, (0..100).filter(|s| s % 10 != 5));
    let r = stats.report(t0).unwrap();
    assert_eq!(r.total_lost, 10);
    assert_eq!(r.fraction_lost, (10 * 256 / 100) as u8);
    // The next interval loses nothing: fraction 0, the total stays.
    feed(&mut stats, &mut u, t0, 100..200);
    let r = stats.report(t0).unwrap();
    assert_eq!((r.fraction_lost, r.total_lost), (0, 10));
}

#[test]
fn duplicates_make_the_total_negative_in_24_bits_and_it_marshals() {
    let mut stats = ReceiveStats::new(1, 48_000);
    let t0 = Instant::now();
    feed(
        &mut stats,
        &mut SeqUnwrapper::default(),
        t0,
        [1, 2, 2, 3, 3],
    );
    let r = stats.report(t0).unwrap();
    assert_eq!(
        (r.total_lost, r.fraction_lost),
        (0xFF_FFFE, 0),
        "-2 in two's complement, 24 bits"
    );
    let rr = ReceiverReport {
        ssrc: 9,
        reports: vec![r.clone()],
        ..Default::default()
    };
    let bytes = rr.marshal().unwrap();
    let back = ReceiverReport::unmarshal(&mut &bytes[..]).unwrap();
    assert_eq!(back.reports, vec![r]);
}

#[test]
fn the_highest_sequence_number_counts_cycles_from_the_first_packet() {
    let mut stats = ReceiveStats::new(1, 48_000);
    let t0 = Instant::now();
    feed(
        &mut stats,
        &mut SeqUnwrapper::default(),
        t0,
        (65_500..=65_535).chain(0..10),
    );
    let r = stats.report(t0).unwrap();
    assert_eq!(r.last_sequence_number, (1 << 16) | 9, "one cycle, then 9");
    assert_eq!(r.total_lost, 0);
}

#[test]
fn jitter_follows_the_interarrival_variation() {
    // Video at 90 kHz, 30 fps: packets alternate 10 ms early and late, a transit change of
    // 20 ms = 1800 RTP units each time; the estimate converges to it.
    let mut stats = ReceiveStats::new(1, 90_000);
    let mut u = SeqUnwrapper::default();
    let t0 = Instant::now() + Duration::from_millis(10);
    for i in 0..400u32 {
        let nominal = t0 + Duration::from_micros(33_333 * u64::from(i));
        let at = if i % 2 == 0 {
            nominal - Duration::from_millis(10)
        } else {
            nominal + Duration::from_millis(10)
        };
        stats.on_packet(u.unwrap(i as u16), 3000 * i, at);
    }
    let j = stats.report(t0).unwrap().jitter;
    assert!((1750..=1800).contains(&j), "jitter {j}, want about 1800");
}

#[test]
fn lsr_and_dlsr_tell_the_sender_when_its_report_arrived() {
    let mut stats = ReceiveStats::new(1, 48_000);
    let t0 = Instant::now();
    feed(&mut stats, &mut SeqUnwrapper::default(), t0, 0..5);
    stats.on_sender_report(0x1234_5678, t0);
    let r = stats.report(t0 + Duration::from_millis(500)).unwrap();
    assert_eq!(r.last_sender_report, 0x1234_5678);
    assert_eq!(r.delay, 32_768, "half a second in 1/65536 s");
}
