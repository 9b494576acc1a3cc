//! A down-track (mediasoup's consumer, LiveKit's DownTrack): one published track as one
//! subscriber receives it, for Cascade's own engine (issue 11; the `RTCPeerConnection` path
//! does not use it yet). Sans-I/O.
//!
//! A track's packet (as received and cached: the publisher's SSRC, payload types and extension
//! ids) is copied once into the subscriber's send buffer and rewritten there: payload type and
//! extension ids to the subscriber's negotiated ones, SSRC to the down-track's, sequence number
//! and timestamp continuous across source changes ([`Munger`]), the transport-wide sequence
//! number stamped. What was sent is remembered ([`SeqMap`]), so a NACK from the subscriber is
//! answered from the track's [`PacketCache`]: as RTX (RFC 4588) when negotiated, else resent
//! as it was. The sender report comes from the down-track's own counters ([`SendStats`]).

use std::time::{Instant, SystemTime};

use crate::downtrack::munger::Munger;
use crate::downtrack::send_stats::SendStats;
use crate::rtp::view::{RtpError, RtpView, padding_len};
use crate::track::packet_cache::{PacketCache, SeqMap};
use crate::transport::twcc::TwccSender;
use rtc::rtcp::sender_report::SenderReport;

/// Packets a down-track remembers for retransmission (its NACKs reach this far back).
pub const SENT_HISTORY: usize = 512;

/// A payload type of the track and what the subscriber negotiated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadMapping {
    /// The track's (publisher's) payload type.
    pub track: u8,
    /// The subscriber's payload type for the same codec.
    pub subscriber: u8,
    /// The subscriber's RTX payload type for it, if RTX is negotiated.
    pub rtx: Option<u8>,
}

/// How one subscriber receives one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownTrackParams {
    /// The SSRC the subscriber receives the track with.
    pub ssrc: u32,
    /// The SSRC of its retransmissions (used with RTX).
    pub rtx_ssrc: u32,
    /// The RTP clock rate of the track's codec.
    pub clock_rate: u32,
    /// Payload types: the track's to the subscriber's. A packet of another type is not sent.
    pub payload_types: Vec<PayloadMapping>,
    /// Header extension ids: the track's to the subscriber's; others are removed.
    pub extensions: Vec<(u8, u8)>,
    /// The subscriber's id of the transport-cc extension, if negotiated.
    pub transport_cc: Option<u8>,
}

/// Why a packet was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownTrackError {
    /// Not a valid RTP packet.
    #[error("not an RTP packet ({0:?})")]
    Rtp(RtpError),
    /// The output buffer is too small.
    #[error("no room in the output buffer")]
    NoRoom,
    /// A payload type the subscriber did not negotiate.
    #[error("payload type {0} not negotiated by the subscriber")]
    PayloadType(u8),
    /// A NACKed packet no longer (or never) sent or cached.
    #[error("packet not available for retransmission")]
    Unavailable,
}

impl From<RtpError> for DownTrackError {
    fn from(e: RtpError) -> Self {
        Self::Rtp(e)
    }
}

/// One track as one subscriber receives it.
#[derive(Debug)]
pub struct DownTrack {
    params: DownTrackParams,
    munger: Munger,
    sent: SeqMap,
    stats: SendStats,
    rtx_seq: u16,
}

impl DownTrack {
    /// A down-track sending with `params`.
    pub fn new(params: DownTrackParams) -> Self {
        Self {
            munger: Munger::new(params.clock_rate),
            sent: SeqMap::new(SENT_HISTORY),
            stats: SendStats::new(params.ssrc, params.clock_rate),
            rtx_seq: rand::random(),
            params,
        }
    }

    /// Sends another track from now on, with `params` (its SSRC unchanged): the munger keeps
    /// the subscriber's stream continuous; retransmissions of what was sent before are no longer
    /// possible (they were the other track's).
    pub fn retarget(&mut self, params: DownTrackParams) {
        self.params = DownTrackParams {
            ssrc: self.params.ssrc,
            rtx_ssrc: self.params.rtx_ssrc,
            ..params
        };
        self.sent = SeqMap::new(SENT_HISTORY);
    }

    /// The SSRC the subscriber receives.
    pub fn ssrc(&self) -> u32 {
        self.params.ssrc
    }

    /// Writes the track's packet `packet` (extended sequence number `track_seq`) into `out`
    /// rewritten for the subscriber; its length. `out` must hold the packet (and the SRTP tag
    /// to come).
    pub fn forward(
        &mut self,
        packet: &[u8],
        track_seq: u64,
        out: &mut [u8],
        twcc: &mut TwccSender,
        now: Instant,
    ) -> Result<usize, DownTrackError> {
        let len = packet.len();
        out.get_mut(..len)
            .ok_or(DownTrackError::NoRoom)?
            .copy_from_slice(packet);
        let mut view = RtpView::parse(&mut out[..len])?;
        let mapping = self.mapping(view.payload_type())?;
        let (seq, ts) = self
            .munger
            .rewrite(view.ssrc(), view.seq(), view.timestamp(), now);
        view.set_payload_type(mapping.subscriber);
        view.set_seq(seq);
        view.set_timestamp(ts);
        view.set_ssrc(self.params.ssrc);
        self.finish(&mut view, len, twcc, now);
        self.sent.record(seq, track_seq, ts);
        self.stats.on_packet(ts, view.payload().len(), now);
        Ok(len)
    }

    /// Writes into `out` the retransmission of the subscriber's packet `seq` (from a NACK),
    /// taken from the track's `cache`: RTX when negotiated for its payload type (the original
    /// sequence number first in the payload), else the packet as it was sent; its length.
    pub fn retransmit(
        &mut self,
        seq: u16,
        cache: &PacketCache,
        out: &mut [u8],
        twcc: &mut TwccSender,
        now: Instant,
    ) -> Result<usize, DownTrackError> {
        let (track_seq, ts) = self.sent.lookup(seq).ok_or(DownTrackError::Unavailable)?;
        let packet = cache.get(track_seq).ok_or(DownTrackError::Unavailable)?;
        let track_pt = packet.get(1).ok_or(RtpError::TooShort)? & 0x7f;
        let mapping = self.mapping(track_pt)?;
        let len = packet.len();
        let total = if mapping.rtx.is_some() { len + 2 } else { len };
        if out.len() < total {
            return Err(DownTrackError::NoRoom);
        }
        out[..len].copy_from_slice(packet);
        if let Some(rtx_pt) = mapping.rtx {
            // RFC 4588: the original sequence number, then the original payload.
            let start = {
                let view = RtpView::parse(&mut out[..len])?;
                len - view.payload().len() - padding_len(&out[..len])
            };
            out.copy_within(start..len, start + 2);
            out[start..start + 2].copy_from_slice(&seq.to_be_bytes());
            let mut view = RtpView::parse(&mut out[..total])?;
            self.rtx_seq = self.rtx_seq.wrapping_add(1);
            view.set_payload_type(rtx_pt);
            view.set_seq(self.rtx_seq);
            view.set_timestamp(ts);
            view.set_ssrc(self.params.rtx_ssrc);
            self.finish(&mut view, total, twcc, now);
        } else {
            let mut view = RtpView::parse(&mut out[..len])?;
            view.set_payload_type(mapping.subscriber);
            view.set_seq(seq);
            view.set_timestamp(ts);
            view.set_ssrc(self.params.ssrc);
            self.finish(&mut view, len, twcc, now);
        }
        Ok(total)
    }

    /// The sender report of this down-track, once it has sent something.
    pub fn sender_report(&self, now: Instant, wall: SystemTime) -> Option<SenderReport> {
        self.stats.sender_report(now, wall)
    }

    fn mapping(&self, track_pt: u8) -> Result<PayloadMapping, DownTrackError> {
        self.params
            .payload_types
            .iter()
            .find(|m| m.track == track_pt)
            .copied()
            .ok_or(DownTrackError::PayloadType(track_pt))
    }

    /// Extension ids to the subscriber's, and the transport-wide sequence number.
    fn finish(&self, view: &mut RtpView<'_>, size: usize, twcc: &mut TwccSender, now: Instant) {
        let extensions = &self.params.extensions;
        view.remap_extensions(|id| extensions.iter().find(|(t, _)| *t == id).map(|(_, s)| *s));
        if let Some(id) = self.params.transport_cc {
            twcc.stamp(view, id, size, now);
        }
    }
}

#[cfg(test)]
#[path = "down_track_tests.rs"]
mod tests;
