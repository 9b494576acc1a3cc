//! A per-track cache of recent RTP packets, to answer subscribers' NACKs.
//!
//! One cache per published track (not per subscriber): a fixed ring indexed by sequence
//! number, holding reference-counted packets shared with the forwarding path.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use rtc::rtp;

/// Ring of the last `capacity` packets of one stream, keyed by sequence number.
#[derive(Debug)]
pub struct PacketCache {
    slots: Vec<Option<Arc<rtp::Packet>>>,
    /// Server-wide count of cached packets, kept exact for leak checks and metrics.
    counter: Arc<AtomicI64>,
}

impl PacketCache {
    /// A cache of `capacity` slots (rounded up to a power of two), counted in `counter`.
    pub fn new(capacity: usize, counter: Arc<AtomicI64>) -> Self {
        Self {
            slots: vec![None; capacity.next_power_of_two()],
            counter,
        }
    }

    fn index(&self, seq: u16) -> usize {
        seq as usize & (self.slots.len() - 1)
    }

    /// Stores a packet, evicting whatever occupied its slot.
    pub fn insert(&mut self, packet: Arc<rtp::Packet>) {
        let i = self.index(packet.header.sequence_number);
        if self.slots[i].replace(packet).is_none() {
            self.counter.fetch_add(1, Relaxed);
        }
    }

    /// The packet with sequence number `seq`, if still cached.
    pub fn get(&self, seq: u16) -> Option<Arc<rtp::Packet>> {
        self.slots[self.index(seq)]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
            .cloned()
    }

    /// Number of cached packets.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether the cache holds no packet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PacketCache {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.len() as i64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> Arc<rtp::Packet> {
        Arc::new(rtp::Packet {
            header: rtp::Header {
                sequence_number: seq,
                ..Default::default()
            },
            payload: vec![seq as u8].into(),
        })
    }

    #[test]
    fn stores_evicts_and_wraps() {
        let counter = Arc::new(AtomicI64::new(0));
        let mut c = PacketCache::new(4, counter.clone());
        for seq in [65534u16, 65535, 0, 1] {
            c.insert(packet(seq));
        }
        assert_eq!(c.get(65535).unwrap().payload[0], 255);
        assert_eq!(c.get(1).unwrap().header.sequence_number, 1);
        c.insert(packet(2)); // evicts 65534 (same slot)
        assert!(c.get(65534).is_none());
        assert!(c.get(3).is_none());
        assert_eq!(c.len(), 4);
        assert_eq!(counter.load(Relaxed), 4);
        drop(c);
        assert_eq!(counter.load(Relaxed), 0);
    }
}
