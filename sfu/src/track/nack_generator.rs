//! Which packets of an incoming stream to ask its sender to retransmit (RFC 4585 generic NACK),
//! for the up-tracks of Cascade's own transport (issue 11; today webrtc-rs's interceptor asks).
//! Sans-I/O: callers pass arrival times in and poll for the NACK to send.
//!
//! A gap in the extended sequence numbers makes its packets *missing*. Each missing packet is
//! asked for at most [`MAX_ATTEMPTS`] times, no more often than every `retry_interval` (about a
//! round trip), and forgotten once it arrives, once asked for that often, or once it is more
//! than [`MAX_AGE`] packets behind the newest (too late to be useful to a decoder). At most
//! [`MAX_MISSING`] packets are tracked: a bigger gap (a long outage) asks for its newest part
//! only; the decoder will need a keyframe anyway.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};

/// Times one packet is asked for.
pub const MAX_ATTEMPTS: u8 = 10;
/// Packets tracked as missing at once.
pub const MAX_MISSING: usize = 256;
/// How far behind the newest packet a missing one is still asked for.
pub const MAX_AGE: u64 = 1_000;

/// The missing packets of one stream.
#[derive(Debug)]
pub struct NackGenerator {
    sender_ssrc: u32,
    media_ssrc: u32,
    retry_interval: Duration,
    highest: Option<u64>,
    /// Extended sequence number -> (attempts so far, last asked at).
    missing: BTreeMap<u64, (u8, Option<Instant>)>,
}

impl NackGenerator {
    /// Tracks the stream `media_ssrc`; NACKs are sent as `sender_ssrc`, a packet asked for
    /// again after `retry_interval`.
    pub fn new(sender_ssrc: u32, media_ssrc: u32, retry_interval: Duration) -> Self {
        Self {
            sender_ssrc,
            media_ssrc,
            retry_interval,
            highest: None,
            missing: BTreeMap::new(),
        }
    }

    /// Sets the retry interval (e.g. from the measured round-trip time).
    pub fn set_retry_interval(&mut self, retry_interval: Duration) {
        self.retry_interval = retry_interval;
    }

    /// Notes the arrival of packet `seq` (extended).
    pub fn on_packet(&mut self, seq: u64) {
        let Some(highest) = self.highest else {
            self.highest = Some(seq);
            return;
        };
        if seq <= highest {
            // Late or retransmitted: no longer missing.
            self.missing.remove(&seq);
            return;
        }
        // The gap, newest part only past the bound.
        let from = (highest + 1).max(seq.saturating_sub(MAX_MISSING as u64));
        for s in from..seq {
            self.missing.insert(s, (0, None));
        }
        self.highest = Some(seq);
        let too_old = seq.saturating_sub(MAX_AGE);
        self.missing.retain(|&s, _| s >= too_old);
        while self.missing.len() > MAX_MISSING {
            self.missing.pop_first();
        }
    }

    /// Packets tracked as missing.
    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The NACK to send at `now`, if any packet is due: those never asked for, or asked for
    /// `retry_interval` ago; a packet asked for [`MAX_ATTEMPTS`] times is dropped.
    pub fn poll(&mut self, now: Instant) -> Option<TransportLayerNack> {
        let mut due = Vec::new();
        self.missing.retain(|&seq, (attempts, last)| {
            if last.is_some_and(|t| now.saturating_duration_since(t) < self.retry_interval) {
                return true;
            }
            if *attempts >= MAX_ATTEMPTS {
                return false;
            }
            *attempts += 1;
            *last = Some(now);
            due.push(seq as u16);
            true
        });
        if due.is_empty() {
            return None;
        }
        Some(TransportLayerNack {
            sender_ssrc: self.sender_ssrc,
            media_ssrc: self.media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(&due),
        })
    }
}

#[cfg(test)]
#[path = "nack_generator_tests.rs"]
mod tests;
