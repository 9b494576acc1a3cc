//! Send statistics of one outgoing RTP stream: the sender reports a down-track makes from its
//! own counters, and the round-trip time its subscriber's reception reports reveal (RFC 3550
//! §6.4.1), for Cascade's own transport (issue 11). Sans-I/O: callers pass the clocks in.
//!
//! A sender report pairs an NTP wall-clock time with the RTP timestamp of that same instant:
//! the last packet's timestamp projected forward by the time since it was sent, at the stream's
//! clock rate. The round-trip time is the reception report's arrival time minus its LSR (the
//! sender report it answers) minus its DLSR (how long the receiver held it), all in NTP's
//! middle 32 bits (1/65536 s).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// `t` as a 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
pub fn ntp_time(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u128::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac as u64
}

/// The middle 32 bits of an NTP timestamp (the LSR of reception reports).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Counters of one outgoing stream (one SSRC).
#[derive(Debug, Clone)]
pub struct SendStats {
    ssrc: u32,
    clock_rate: u32,
    packets: u32,
    octets: u32,
    /// The last packet's RTP timestamp and when it was sent.
    last: Option<(u32, Instant)>,
}

impl SendStats {
    /// Statistics for the stream `ssrc`, whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate,
            packets: 0,
            octets: 0,
            last: None,
        }
    }

    /// Counts a packet sent at `at` with RTP timestamp `rtp_ts` and `payload_len` payload
    /// octets (RFC 3550 counts payload only; both counters wrap, as on the wire).
    pub fn on_packet(&mut self, rtp_ts: u32, payload_len: usize, at: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.last = Some((rtp_ts, at));
    }

    /// The sender report at `now` (monotonic) and `wall` (the same instant on the wall clock);
    /// `None` before the first packet. Reception report blocks are the caller's to add.
    pub fn sender_report(&self, now: Instant, wall: SystemTime) -> Option<SenderReport> {
        let (ts, at) = self.last?;
        let elapsed = now.saturating_duration_since(at);
        let ticks = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time: ntp_time(wall),
            rtp_time: ts.wrapping_add(ticks as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

/// The round-trip time a reception report block shows, received at wall-clock `arrival`;
/// `None` if it answers no sender report (LSR 0) or the result would be negative.
pub fn round_trip_time(block: &ReceptionReport, arrival: SystemTime) -> Option<Duration> {
    if block.last_sender_report == 0 {
        return None;
    }
    let now = ntp_middle(ntp_time(arrival));
    let rtt = now
        .wrapping_sub(block.last_sender_report)
        .wrapping_sub(block.delay);
    // Above half the 16.16 range (9 hours) is a negative difference: clocks or a bogus block.
    if rtt > u32::MAX / 2 {
        return None;
    }
    Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536))
}

#[cfg(test)]
#[path = "send_stats_tests.rs"]
mod tests;
