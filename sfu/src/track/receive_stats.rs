//! Receive statistics of one incoming RTP stream and the reception report block they make (RFC
//! 3550 §6.4.1 and appendix A.3, A.8), for the receiver reports Cascade will send its
//! publishers from its own transport (issue 11). Sans-I/O: callers pass arrival times in.
//!
//! Packets are counted by extended sequence number ([`crate::track::packet_cache::SeqUnwrapper`]):
//! expected is highest − first + 1, lost is expected − received (duplicates count as received,
//! so it may go below zero, as the RFC says), and the fraction lost is that of the interval
//! since the previous report. Jitter is the RFC's running estimate of the interarrival-time
//! variation in RTP timestamp units. The last sender report's middle NTP bits and the delay
//! since it arrived fill LSR and DLSR.

use std::time::Instant;

use rtc::rtcp::reception_report::ReceptionReport;

/// Receive statistics of one stream (one SSRC).
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    ssrc: u32,
    clock_rate: u32,
    /// When the first packet arrived: arrival times are measured from it.
    start: Option<Instant>,
    first_seq: u64,
    highest_seq: u64,
    /// The extended number of the first packet's cycle: reported numbers count cycles from it.
    cycle_base: u64,
    received: u64,
    /// Expected and received at the previous report.
    prior: (u64, u64),
    /// The previous packet's transit time (arrival − RTP timestamp), in RTP units.
    last_transit: Option<i64>,
    /// Jitter × 16 (appendix A.8 keeps it scaled to avoid rounding).
    jitter16: u64,
    /// The middle 32 bits of the last sender report's NTP time, and when it arrived.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// Statistics for the stream `ssrc`, whose RTP clock runs at `clock_rate` Hz.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        Self {
            ssrc,
            clock_rate: clock_rate.max(1),
            start: None,
            first_seq: 0,
            highest_seq: 0,
            cycle_base: 0,
            received: 0,
            prior: (0, 0),
            last_transit: None,
            jitter16: 0,
            last_sr: None,
        }
    }

    /// Counts a packet: extended sequence number `seq`, RTP timestamp `rtp_ts`, arrived at `at`.
    pub fn on_packet(&mut self, seq: u64, rtp_ts: u32, at: Instant) {
        let start = *self.start.get_or_insert(at);
        if self.received == 0 {
            self.first_seq = seq;
            self.highest_seq = seq;
            self.cycle_base = seq & !0xFFFF;
        }
        self.received += 1;
        self.first_seq = self.first_seq.min(seq);
        self.highest_seq = self.highest_seq.max(seq);
        // Arrival in RTP units; transit differences are what matter, so 32-bit wrap of the
        // timestamp is undone by taking the difference as a signed 32-bit number.
        let elapsed = at.saturating_duration_since(start);
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = i64::from(arrival.wrapping_sub(rtp_ts) as i32);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs();
            // J += (|D| - J) / 16, kept as 16·J.
            self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Notes a sender report: the middle 32 bits of its NTP time, received at `at`.
    pub fn on_sender_report(&mut self, ntp_middle: u32, at: Instant) {
        self.last_sr = Some((ntp_middle, at));
    }

    /// The reception report block at `now`, and the start of the next report interval.
    /// `None` before the first packet.
    pub fn report(&mut self, now: Instant) -> Option<ReceptionReport> {
        if self.received == 0 {
            return None;
        }
        let expected = self.highest_seq - self.first_seq + 1;
        let lost = expected as i64 - self.received as i64;
        // 24-bit signed, clamped, in two's complement.
        let total_lost = (lost.clamp(-0x80_0000, 0x7F_FFFF) as i32 as u32) & 0xFF_FFFF;
        let (expected_prior, received_prior) = self.prior;
        let expected_interval = expected - expected_prior.min(expected);
        let received_interval = self.received - received_prior.min(self.received);
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        self.prior = (expected, self.received);
        let (last_sender_report, delay) = match self.last_sr {
            Some((ntp, at)) => {
                let since = now.saturating_duration_since(at);
                (
                    ntp,
                    (since.as_micros() * 65_536 / 1_000_000).min(u128::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        Some(ReceptionReport {
            ssrc: self.ssrc,
            fraction_lost,
            total_lost,
            last_sequence_number: self.highest_seq.wrapping_sub(self.cycle_base) as u32,
            jitter: (self.jitter16 >> 4) as u32,
            last_sender_report,
            delay,
        })
    }
}

#[cfg(test)]
#[path = "receive_stats_tests.rs"]
mod tests;
