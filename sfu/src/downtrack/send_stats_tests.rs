//! Unit tests of the sender reports and the round-trip time from reception reports.

use super::*;
use crate::track::receive_stats::ReceiveStats;
use rtc::shared::marshal::{Marshal, Unmarshal};

#[test]
fn ntp_time_counts_from_1900_in_32_32_fixed_point() {
    assert_eq!(ntp_time(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
    let t = UNIX_EPOCH + Duration::from_millis(1_500);
    assert_eq!(
        ntp_time(t),
        ((NTP_UNIX_OFFSET + 1) << 32) | (1 << 31),
        "half a second is 0x8000_0000"
    );
    assert_eq!(
        ntp_middle(ntp_time(t)),
        (((NTP_UNIX_OFFSET + 1) as u32) << 16) | 0x8000
    );
}

#[test]
fn a_sender_report_projects_the_last_timestamp_to_now_and_counts_payload() {
    let mut s = SendStats::new(0x5555, 90_000);
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(s.sender_report(t0, wall), None, "nothing sent yet");
    s.on_packet(1_000, 1_200, t0);
    s.on_packet(4_000, 800, t0 + Duration::from_millis(33));
    // 100 ms after the last packet: 9000 ticks at 90 kHz.
    let sr = s
        .sender_report(t0 + Duration::from_millis(133), wall)
        .unwrap();
    assert_eq!(
        (sr.ssrc, sr.packet_count, sr.octet_count),
        (0x5555, 2, 2_000)
    );
    assert_eq!(sr.rtp_time, 13_000);
    assert_eq!(sr.ntp_time, ntp_time(wall));
    let bytes = sr.marshal().unwrap();
    assert_eq!(SenderReport::unmarshal(&mut &bytes[..]).unwrap(), sr);
}

#[test]
fn the_rtp_timestamp_wraps_like_on_the_wire() {
    let mut s = SendStats::new(1, 48_000);
    let t0 = Instant::now();
    s.on_packet(u32::MAX - 10, 100, t0);
    let sr = s
        .sender_report(t0 + Duration::from_millis(1), UNIX_EPOCH)
        .unwrap();
    assert_eq!(sr.rtp_time, 37, "48 ticks later, across the wrap");
}

#[test]
fn the_round_trip_time_comes_from_lsr_and_dlsr() {
    // The sender sends an SR at wall time w; the receiver holds it 250 ms, and its report
    // arrives back 330 ms after w: the round trip is 80 ms.
    let w = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let t0 = Instant::now();
    let mut rx = ReceiveStats::new(7, 48_000);
    rx.on_packet(1 << 16, 0, t0);
    rx.on_sender_report(ntp_middle(ntp_time(w)), t0);
    let block = rx.report(t0 + Duration::from_millis(250)).unwrap();
    let rtt = round_trip_time(&block, w + Duration::from_millis(330)).unwrap();
    assert!(
        rtt.abs_diff(Duration::from_millis(80)) < Duration::from_millis(1),
        "{rtt:?}"
    );
    // A block that answers no sender report, or arrives "before" it, gives nothing.
    let no_sr = ReceptionReport::default();
    assert_eq!(round_trip_time(&no_sr, w), None);
    assert_eq!(round_trip_time(&block, w), None);
}
