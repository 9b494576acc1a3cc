//! Per-subscriber rewriting of RTP sequence numbers and timestamps.
//!
//! A subscriber sees one continuous stream per forwarded track even when the source behind it
//! changes (a republished track, later a simulcast layer switch): on a source switch the next
//! sequence number follows the last one sent, and the timestamp advances by the wall-clock
//! time elapsed since the last packet sent. Sans-I/O: callers pass the time in.

use std::time::Instant;

/// Rewrites `(seq, ts)` of one source stream into the subscriber's stream.
#[derive(Debug, Clone)]
pub struct Munger {
    clock_rate: u32,
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last: Option<Sent>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u16,
    ts: u32,
    at: Instant,
}

impl Munger {
    /// A munger for a stream with the given RTP clock rate (Hz); the first source passes through
    /// unchanged.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last: None,
        }
    }

    /// Maps a packet of source `ssrc` received at `now` to the subscriber's `(seq, ts)`.
    pub fn rewrite(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) -> (u16, u32) {
        if self.source != Some(ssrc) {
            self.switch_to(ssrc, seq, ts, now);
        }
        let out = (
            seq.wrapping_add(self.seq_offset),
            ts.wrapping_add(self.ts_offset),
        );
        let newer = self
            .last
            .is_none_or(|l| (out.0.wrapping_sub(l.seq) as i16) > 0);
        if newer {
            self.last = Some(Sent {
                seq: out.0,
                ts: out.1,
                at: now,
            });
        }
        out
    }

    fn switch_to(&mut self, ssrc: u32, seq: u16, ts: u32, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last.at);
            let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000).max(1);
            self.seq_offset = last.seq.wrapping_add(1).wrapping_sub(seq);
            self.ts_offset = last.ts.wrapping_add(ticks as u32).wrapping_sub(ts);
        }
        self.source = Some(ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_source_passes_through_and_wraps() {
        let t = Instant::now();
        let mut m = Munger::new(90_000);
        assert_eq!(m.rewrite(1, 65535, 10, t), (65535, 10));
        assert_eq!(m.rewrite(1, 0, 3010, t), (0, 3010));
    }

    /// A munger of `clock` Hz that has rewritten `packets` (SSRC, seq, ts) at one instant.
    fn fed(clock: u32, packets: &[(u32, u16, u32)]) -> (Instant, Munger) {
        let t = Instant::now();
        let mut m = Munger::new(clock);
        for &(ssrc, seq, ts) in packets {
            m.rewrite(ssrc, seq, ts, t);
        }
        (t, m)
    }

    #[test]
    fn source_switch_keeps_seq_and_ts_continuous() {
        let (t, mut m) = fed(90_000, &[(1, 100, 1000), (1, 101, 4000)]);
        // Republished: new SSRC, unrelated seq/ts, 100 ms later.
        let later = t + Duration::from_millis(100);
        let (seq, ts) = m.rewrite(2, 5000, 777_777, later);
        assert_eq!(seq, 102);
        assert_eq!(ts, 4000 + 9000);
        assert_eq!(
            m.rewrite(2, 5001, 777_777 + 3000, later),
            (103, 4000 + 12000)
        );
    }

    #[test]
    fn reordered_packet_does_not_move_last_sent() {
        let (t, mut m) = fed(48_000, &[(1, 10, 0), (1, 12, 1920), (1, 11, 960)]);
        let (seq, _) = m.rewrite(9, 0, 0, t + Duration::from_millis(20));
        assert_eq!(seq, 13);
    }
}
