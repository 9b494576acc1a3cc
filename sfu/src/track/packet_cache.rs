//! The packets a track sent lately, for retransmission (issue 11: one cache per published track,
//! shared by all its subscribers), and the sequence numbers that index it. Sans-I/O.
//!
//! - [`SeqUnwrapper`] extends 16-bit RTP sequence numbers to 64 bits across wrap-around, so that
//!   "which packet" has one answer for the life of a stream (late packets from before a wrap
//!   included).
//! - [`PacketCache`] keeps the last `capacity` packets of a track by extended sequence number in
//!   slots allocated once (no allocation per packet once warm); a packet older than the window,
//!   or one that never arrived, is simply absent.
//! - [`SeqMap`] remembers, for one subscriber, which track packet each of its own (rewritten)
//!   sequence numbers carried, so that its NACKs can be answered from the track's cache.

/// Largest packet a slot keeps (bigger ones are not cached).
pub const MAX_PACKET: usize = 1500;

/// Extends 16-bit sequence numbers to 64 bits.
#[derive(Debug, Default, Clone)]
pub struct SeqUnwrapper {
    /// The highest extended sequence number seen.
    highest: Option<u64>,
}

impl SeqUnwrapper {
    /// The extended number of `seq`: the one nearest the highest seen (a packet at most 32767
    /// behind is late, not a new cycle). Never below zero: a packet from before the first one
    /// seen, across a wrap, keeps the first cycle.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            // Start one cycle up, so that late packets from before a wrap stay positive.
            let first = (1 << 16) + u64::from(seq);
            self.highest = Some(first);
            return first;
        };
        let delta = seq.wrapping_sub(highest as u16) as i16;
        let ext = highest.saturating_add_signed(i64::from(delta));
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }
}

/// A slot: the extended sequence number it holds (if any) and the packet's bytes.
#[derive(Debug, Clone)]
struct Slot {
    seq: Option<u64>,
    len: usize,
    data: Box<[u8; MAX_PACKET]>,
}

/// The last packets of one track by extended sequence number.
#[derive(Debug)]
pub struct PacketCache {
    slots: Vec<Slot>,
}

impl PacketCache {
    /// A cache of `capacity` packets (rounded up to a power of two, at least 1); its memory is
    /// allocated here, once.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(1).next_power_of_two();
        let slot = Slot {
            seq: None,
            len: 0,
            data: Box::new([0; MAX_PACKET]),
        };
        Self {
            slots: vec![slot; n],
        }
    }

    /// How many packets it keeps.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Keeps `packet` as extended sequence number `seq`, replacing the packet `capacity` older;
    /// a packet over [`MAX_PACKET`] bytes is not kept (and its slot is emptied).
    pub fn insert(&mut self, seq: u64, packet: &[u8]) {
        let i = self.index(seq);
        let slot = &mut self.slots[i];
        if packet.len() > MAX_PACKET {
            slot.seq = None;
            return;
        }
        slot.data[..packet.len()].copy_from_slice(packet);
        slot.len = packet.len();
        slot.seq = Some(seq);
    }

    /// The packet with extended sequence number `seq`, if it is still kept.
    pub fn get(&self, seq: u64) -> Option<&[u8]> {
        let slot = &self.slots[self.index(seq)];
        (slot.seq == Some(seq)).then(|| &slot.data[..slot.len])
    }

    fn index(&self, seq: u64) -> usize {
        (seq as usize) & (self.slots.len() - 1)
    }
}

/// One subscriber's own sequence numbers back to the track's extended ones, with the
/// timestamp each was sent with (a retransmission carries the same).
#[derive(Debug)]
pub struct SeqMap {
    entries: Vec<Option<Sent>>,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    sent: u16,
    track_seq: u64,
    ts: u32,
}

impl SeqMap {
    /// A map of the last `capacity` packets sent (rounded up to a power of two, at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: vec![None; capacity.max(1).next_power_of_two()],
        }
    }

    /// Notes that the subscriber's packet `sent`, with timestamp `ts`, carried the track's
    /// packet `track_seq`.
    pub fn record(&mut self, sent: u16, track_seq: u64, ts: u32) {
        let i = usize::from(sent) & (self.entries.len() - 1);
        self.entries[i] = Some(Sent {
            sent,
            track_seq,
            ts,
        });
    }

    /// The track packet the subscriber's packet `sent` carried and its timestamp, if it is
    /// recent enough.
    pub fn lookup(&self, sent: u16) -> Option<(u64, u32)> {
        let i = usize::from(sent) & (self.entries.len() - 1);
        match self.entries[i] {
            Some(e) if e.sent == sent => Some((e.track_seq, e.ts)),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "packet_cache_tests.rs"]
mod tests;
