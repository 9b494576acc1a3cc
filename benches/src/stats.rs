//! What the subscribers measure: packets, loss, jitter, one-way latency, time to first packet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::media::{Stamp, now_ns};

/// Run-wide counters shared by all clients.
#[derive(Default)]
pub struct Collector {
    /// Latency samples are kept only while this is set (the measurement window).
    pub measuring: AtomicBool,
    /// Stamped packets received by all participants (duplicates included).
    pub received: AtomicU64,
    /// Packets written by all publishers.
    pub sent: Arc<AtomicU64>,
}

/// Per-stream counts at one instant: (unique packets received, sequence numbers spanned from
/// the first one seen to the highest).
pub type Counts = HashMap<u32, (u64, u64)>;

/// One received stream.
struct StreamStats {
    /// First sequence number seen; earlier ones are ignored.
    base: u32,
    /// Bitmap of the sequence numbers seen, from `base`.
    seen: Vec<u64>,
    /// Unique packets.
    received: u64,
    highest: u32,
    /// RFC 3550 interarrival jitter, ns.
    jitter_ns: f64,
    /// Previous transit time (arrival - send), ns.
    last_transit: Option<i64>,
}

impl StreamStats {
    fn new(base: u32) -> Self {
        Self {
            base,
            seen: Vec::new(),
            received: 0,
            highest: base,
            jitter_ns: 0.0,
            last_transit: None,
        }
    }

    /// Records one packet; false if it is a duplicate or older than the first one seen.
    fn record(&mut self, stamp: Stamp, arrived_ns: u64) -> bool {
        let Some(idx) = stamp.seq.checked_sub(self.base) else {
            return false;
        };
        let (word, bit) = (idx as usize / 64, idx % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            return false;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        self.highest = self.highest.max(stamp.seq);
        let transit = arrived_ns as i64 - stamp.sent_ns as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(transit);
        true
    }
}

#[derive(Default)]
struct Inner {
    streams: HashMap<u32, StreamStats>,
    /// One-way latencies measured in the window, us.
    latencies_us: Vec<u32>,
}

/// What one receiving participant saw.
pub struct Receiver {
    collector: Arc<Collector>,
    started: Instant,
    first_packet: OnceLock<Duration>,
    inner: Mutex<Inner>,
}

impl Receiver {
    /// A receiver whose time to first packet counts from now (the start of its join).
    pub fn new(collector: Arc<Collector>) -> Self {
        Self {
            collector,
            started: Instant::now(),
            first_packet: OnceLock::new(),
            inner: Mutex::default(),
        }
    }

    /// Records a received RTP payload; payloads without a stamp are ignored.
    pub fn on_payload(&self, payload: &[u8]) {
        let arrived = now_ns();
        let Some(stamp) = Stamp::read(payload) else {
            return;
        };
        self.first_packet.get_or_init(|| self.started.elapsed());
        self.collector.received.fetch_add(1, Ordering::Relaxed);
        let measuring = self.collector.measuring.load(Ordering::Relaxed);
        let mut inner = self.inner.lock().expect("receiver stats");
        let stream = inner
            .streams
            .entry(stamp.stream)
            .or_insert_with(|| StreamStats::new(stamp.seq));
        if stream.record(stamp, arrived) && measuring {
            let us = arrived.saturating_sub(stamp.sent_ns) / 1000;
            inner
                .latencies_us
                .push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }

    /// Time from the start of the join to the first media packet, once there was one.
    pub fn time_to_first_packet(&self) -> Option<Duration> {
        self.first_packet.get().copied()
    }

    /// Streams that have delivered at least one packet.
    pub fn streams(&self) -> usize {
        self.inner.lock().expect("receiver stats").streams.len()
    }

    /// Per-stream counts now.
    pub fn counts(&self) -> Counts {
        let inner = self.inner.lock().expect("receiver stats");
        inner
            .streams
            .iter()
            .map(|(&id, s)| (id, (s.received, u64::from(s.highest - s.base) + 1)))
            .collect()
    }

    /// Each stream's current interarrival jitter, ms.
    pub fn jitters_ms(&self) -> Vec<f64> {
        let inner = self.inner.lock().expect("receiver stats");
        inner.streams.values().map(|s| s.jitter_ns / 1e6).collect()
    }

    /// Takes the latency samples gathered so far, us.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut self.inner.lock().expect("receiver stats").latencies_us)
    }
}

/// Packets received and expected between two [`Counts`] of the same receiver.
pub fn window_counts(before: &Counts, after: &Counts) -> (u64, u64) {
    after
        .iter()
        .fold((0, 0), |(got, expected), (id, &(r1, s1))| {
            let (r0, s0) = before.get(id).copied().unwrap_or_default();
            (
                got + r1.saturating_sub(r0),
                expected + s1.saturating_sub(s0),
            )
        })
}

/// The `p`-th percentile (0..=100, nearest rank) of sorted `values`, 0 if empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u32, sent_ns: u64) -> Stamp {
        Stamp {
            stream: 1,
            seq,
            sent_ns,
        }
    }

    #[test]
    fn duplicates_loss_and_jitter() {
        let mut s = StreamStats::new(10);
        assert!(s.record(stamp(10, 0), 1_000));
        assert!(!s.record(stamp(10, 0), 1_000), "duplicate");
        assert!(!s.record(stamp(9, 0), 1_000), "before the first");
        assert!(s.record(stamp(12, 100), 1_100 + 1_600));
        assert!(s.record(stamp(200, 100), 1_100));
        assert_eq!((s.received, s.highest), (3, 200));
        assert_eq!(s.jitter_ns, 100.0 + (1600.0 - 100.0) / 16.0);
    }

    #[test]
    fn window_counts_and_percentiles() {
        let before = Counts::from([(1, (10, 20))]);
        let after = Counts::from([(1, (108, 120)), (2, (5, 6))]);
        // Stream 1: 98 of 100; stream 2 started in the window: 5 of 6.
        assert_eq!(window_counts(&before, &after), (103, 106));
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
