//! Transport-wide congestion control, the sending side (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01), for the subscribers of Cascade's own transport (issue 11): every packet sent
//! to one peer gets the next transport-wide sequence number in its transport-cc header
//! extension, rewritten in place, and is remembered with its send time and size; the peer's
//! transport-cc feedback then says which of them arrived and when, the input of bandwidth
//! estimation (the next issue). Sans-I/O: callers pass the send times in.
//!
//! The history keeps the last [`HISTORY`] packets; feedback about older or unknown ones is
//! ignored. Arrival times are on the receiver's clock (the feedback's reference time plus its
//! deltas): only their differences mean something.

use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
};

use crate::rtp::view::RtpView;

/// Packets remembered for feedback (feedback comes every 50–100 ms: a second of a 10 Mbit/s
/// stream).
pub const HISTORY: usize = 1024;
/// The feedback's reference time unit.
const REFERENCE_UNIT: Duration = Duration::from_millis(64);

/// A packet the peer reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Extended transport-wide sequence number.
    pub seq: u64,
    /// When it was sent.
    pub sent_at: Instant,
    /// Its size in bytes.
    pub size: u32,
    /// When it arrived, on the receiver's clock; `None`: reported lost (or received without a
    /// time, a symbol browsers do not send).
    pub arrival: Option<Duration>,
}

/// One sent packet, kept small (a history per subscriber): the low 32 bits of its number,
/// its size and its send time in microseconds after the history's start.
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u32,
    size: u32,
    at_us: u64,
}

/// The transport-wide sequence numbers and send history of one peer.
#[derive(Debug, Default)]
pub struct TwccSender {
    next: u64,
    /// Empty until the first packet is stamped (a peer that receives nothing costs nothing).
    history: Vec<Option<Sent>>,
    /// When the first packet was stamped: send times count from it.
    start: Option<Instant>,
}

impl TwccSender {
    /// Writes the next transport-wide sequence number into `packet`'s transport-cc extension
    /// (negotiated id `ext_id`, two bytes) and remembers the packet (`size` bytes, sent `now`).
    /// `None`, and nothing counted, if the packet has no such extension.
    pub fn stamp(
        &mut self,
        packet: &mut RtpView<'_>,
        ext_id: u8,
        size: usize,
        now: Instant,
    ) -> Option<u16> {
        let data = packet.extension_mut(ext_id).filter(|d| d.len() == 2)?;
        let seq = self.next;
        self.next += 1;
        data.copy_from_slice(&(seq as u16).to_be_bytes());
        if self.history.is_empty() {
            self.history = vec![None; HISTORY];
        }
        let start = *self.start.get_or_insert(now);
        self.history[seq as usize % HISTORY] = Some(Sent {
            seq: seq as u32,
            size: size as u32,
            at_us: now.saturating_duration_since(start).as_micros() as u64,
        });
        Some(seq as u16)
    }

    /// The packets a feedback reports on, in order, that are still in the history.
    pub fn on_feedback(&self, fb: &TransportLayerCc) -> Vec<Delivery> {
        // The feedback's base is the most recent sent number with those 16 bits.
        let behind = (self.next as u16).wrapping_sub(fb.base_sequence_number);
        let Some(base) = self.next.checked_sub(u64::from(behind)) else {
            return Vec::new();
        };
        let statuses = fb
            .packet_chunks
            .iter()
            .flat_map(|chunk| -> Box<dyn Iterator<Item = SymbolTypeTcc> + '_> {
                match chunk {
                    PacketStatusChunk::RunLengthChunk(r) => Box::new(std::iter::repeat_n(
                        r.packet_status_symbol,
                        usize::from(r.run_length),
                    )),
                    PacketStatusChunk::StatusVectorChunk(v) => {
                        Box::new(v.symbol_list.iter().copied())
                    }
                }
            })
            .take(usize::from(fb.packet_status_count));
        let mut deltas = fb.recv_deltas.iter();
        let mut arrival = i64::from(fb.reference_time) * REFERENCE_UNIT.as_micros() as i64;
        let mut out = Vec::new();
        for (i, status) in statuses.enumerate() {
            let received = matches!(
                status,
                SymbolTypeTcc::PacketReceivedSmallDelta | SymbolTypeTcc::PacketReceivedLargeDelta
            );
            let at = if received {
                let Some(d) = deltas.next() else {
                    break; // a truncated feedback: the rest is unknown
                };
                arrival += d.delta;
                Some(Duration::from_micros(arrival.max(0) as u64))
            } else {
                None
            };
            let seq = base + i as u64;
            let (Some(start), Some(Some(sent))) =
                (self.start, self.history.get(seq as usize % HISTORY))
            else {
                continue;
            };
            if sent.seq == seq as u32 {
                out.push(Delivery {
                    seq,
                    sent_at: start + Duration::from_micros(sent.at_us),
                    size: sent.size,
                    arrival: at,
                });
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "twcc_tests.rs"]
mod tests;
