//! An up-track (mediasoup's producer, LiveKit's receiver): one stream a publisher sends, for
//! Cascade's own engine (issue 11; the `RTCPeerConnection` path does not use it yet).
//! Sans-I/O.
//!
//! Each packet of the stream enters once: its sequence number extended ([`SeqUnwrapper`]),
//! counted for the receiver reports ([`ReceiveStats`]), gaps noted for NACKs
//! ([`NackGenerator`]), and kept in the track's one [`PacketCache`], which every subscriber's
//! NACKs are answered from. A retransmission that arrives as RTX is turned back into the
//! original packet ([`UpTrack::repair`]) and enters the same way; one that arrives twice is
//! reported a duplicate, so it is forwarded once. Keyframe requests to the publisher are
//! throttled to one per [`KEYFRAME_REQUEST_INTERVAL`].

use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use crate::rtp::view::{RtpError, RtpView, padding_len};
use crate::track::nack_generator::NackGenerator;
use crate::track::packet_cache::{PacketCache, SeqUnwrapper};
use crate::track::receive_stats::ReceiveStats;

/// Packets a video track's cache keeps (about 2 s of 720p video).
pub const CACHE_PACKETS: usize = 512;
/// Packets an audio track's cache keeps (audio is not retransmitted: the cache only tells a
/// duplicate).
pub const AUDIO_CACHE_PACKETS: usize = 64;
/// How long a missing packet waits before its first NACK, and between NACKs, until the
/// round-trip time is known.
pub const NACK_INTERVAL: Duration = Duration::from_millis(50);
/// Keyframe requests to one publisher track are sent at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// How one published stream is received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpTrackParams {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// Our SSRC as the sender of its receiver reports, NACKs and keyframe requests.
    pub local_ssrc: u32,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// RTX payload types and the media payload type each repairs (`apt`).
    pub rtx_payload_types: Vec<(u8, u8)>,
    /// Whether missing packets are NACKed (video).
    pub nack: bool,
    /// Packets its cache keeps ([`CACHE_PACKETS`] for video, [`AUDIO_CACHE_PACKETS`] for
    /// audio).
    pub cache: usize,
}

/// Why an RTX packet could not be repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RepairError {
    /// Not a valid RTP packet, or no original sequence number.
    #[error("not an RTX packet ({0:?})")]
    Rtp(RtpError),
    /// An RTX payload type not negotiated.
    #[error("RTX payload type {0} not negotiated")]
    PayloadType(u8),
    /// The output buffer is too small.
    #[error("no room in the output buffer")]
    NoRoom,
}

impl From<RtpError> for RepairError {
    fn from(e: RtpError) -> Self {
        Self::Rtp(e)
    }
}

/// What became of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// New: forward it; its extended sequence number.
    New(u64),
    /// Already received (a retransmission that crossed the original): do not forward.
    Duplicate,
}

/// One published stream.
#[derive(Debug)]
pub struct UpTrack {
    params: UpTrackParams,
    unwrapper: SeqUnwrapper,
    cache: PacketCache,
    stats: ReceiveStats,
    nack: NackGenerator,
    last_keyframe_request: Option<Instant>,
}

impl UpTrack {
    /// An up-track receiving with `params`.
    pub fn new(params: UpTrackParams) -> Self {
        Self {
            unwrapper: SeqUnwrapper::default(),
            cache: PacketCache::new(params.cache),
            stats: ReceiveStats::new(params.ssrc, params.clock_rate),
            nack: NackGenerator::new(params.local_ssrc, params.ssrc, NACK_INTERVAL),
            last_keyframe_request: None,
            params,
        }
    }

    /// How the stream is received.
    pub fn params(&self) -> &UpTrackParams {
        &self.params
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.params.ssrc
    }

    /// The track's cache, where subscribers' NACKs are answered from.
    pub fn cache(&self) -> &PacketCache {
        &self.cache
    }

    /// Takes a packet of the stream (decrypted, the stream's SSRC) that arrived at `now`.
    pub fn on_rtp(&mut self, packet: &[u8], now: Instant) -> Result<Arrival, RtpError> {
        if packet.len() < 12 {
            return Err(RtpError::TooShort);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let ext = self.unwrapper.unwrap(seq);
        if self.cache.get(ext).is_some() {
            return Ok(Arrival::Duplicate);
        }
        self.cache.insert(ext, packet);
        self.stats.on_packet(ext, ts, now);
        if self.params.nack {
            self.nack.on_packet(ext);
        }
        Ok(Arrival::New(ext))
    }

    /// Writes into `out` the original packet an RTX packet carries (RFC 4588: the original
    /// sequence number first in the payload, then the original payload); its length. Then give
    /// it to [`UpTrack::on_rtp`].
    pub fn repair(&self, rtx: &[u8], out: &mut [u8]) -> Result<usize, RepairError> {
        let mut copy = [0u8; crate::track::packet_cache::MAX_PACKET];
        let copy = copy.get_mut(..rtx.len()).ok_or(RepairError::NoRoom)?;
        copy.copy_from_slice(rtx);
        let view = RtpView::parse(copy)?;
        let payload = view.payload();
        let (osn, original) = match payload {
            [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
            _ => return Err(RtpError::TooShort.into()),
        };
        let media_pt = self
            .params
            .rtx_payload_types
            .iter()
            .find(|(rtx_pt, _)| *rtx_pt == view.payload_type())
            .map(|(_, media)| *media)
            .ok_or(RepairError::PayloadType(view.payload_type()))?;
        let header = rtx.len() - payload.len() - padding_len(rtx);
        let len = header + original.len();
        let out = out.get_mut(..len).ok_or(RepairError::NoRoom)?;
        out[..header].copy_from_slice(&rtx[..header]);
        out[header..].copy_from_slice(original);
        out[0] &= !0x20; // the RTX padding stays behind
        let mut view = RtpView::parse(out)?;
        view.set_payload_type(media_pt);
        view.set_seq(osn);
        view.set_ssrc(self.params.ssrc);
        Ok(len)
    }

    /// The NACK due at `now`, if packets are missing.
    pub fn poll_nack(&mut self, now: Instant) -> Option<TransportLayerNack> {
        self.nack.poll(now)
    }

    /// Missing packets still to be NACKed.
    pub fn missing(&self) -> usize {
        self.nack.missing()
    }

    /// Sets how long NACKs wait before being sent again (from the round-trip time).
    pub fn set_nack_interval(&mut self, interval: Duration) {
        self.nack.set_retry_interval(interval);
    }

    /// Notes the publisher's sender report (its NTP time's middle bits), arrived at `now`.
    pub fn on_sender_report(&mut self, ntp_middle: u32, now: Instant) {
        self.stats.on_sender_report(ntp_middle, now);
    }

    /// The reception report block for the next receiver report, once a packet arrived.
    pub fn reception_report(&mut self, now: Instant) -> Option<ReceptionReport> {
        self.stats.report(now)
    }

    /// A keyframe request (PLI) for the publisher, unless one went out less than
    /// [`KEYFRAME_REQUEST_INTERVAL`] ago.
    pub fn keyframe_request(&mut self, now: Instant) -> Option<PictureLossIndication> {
        if self
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return None;
        }
        self.last_keyframe_request = Some(now);
        Some(PictureLossIndication {
            sender_ssrc: self.params.local_ssrc,
            media_ssrc: self.params.ssrc,
        })
    }
}

#[cfg(test)]
#[path = "up_track_tests.rs"]
mod tests;
