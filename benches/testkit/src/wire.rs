//! An interceptor that records what arrives on the wire (after SRTP), before any other
//! interceptor can act on it or swallow it.
//!
//! webrtc-rs 0.21 hands inbound RTCP to the application only when an interceptor marks it
//! `DeliverToApplication` (a default chain ends in a `NoopInterceptor` that drops it), and
//! `RTPSender::read_rtcp` no longer exists. Recording at the wire end of the chain sees every
//! inbound RTCP packet (PLI, FIR, NACK, RR, SR, REMB, TWCC, ...) plus a summary of every
//! inbound RTP packet, including RTX packets before they are de-encapsulated.

use std::collections::VecDeque;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::header::PacketType;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::util::Watched;

/// Most inbound RTP summaries kept (oldest dropped first).
const MAX_RTP_RECORDS: usize = 50_000;

/// The kind of an RTCP packet, from its header (packet type and FMT/count field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpType {
    /// Sender report (PT 200).
    SenderReport,
    /// Receiver report (PT 201).
    ReceiverReport,
    /// Source description (PT 202).
    SourceDescription,
    /// BYE (PT 203).
    Goodbye,
    /// Generic NACK (PT 205, FMT 1).
    Nack,
    /// Transport-wide congestion control feedback (PT 205, FMT 15).
    TransportCc,
    /// Picture loss indication (PT 206, FMT 1).
    Pli,
    /// Full intra request (PT 206, FMT 4).
    Fir,
    /// REMB / application-layer feedback (PT 206, FMT 15).
    Remb,
    /// Anything else: (packet type, FMT/count).
    Other(u8, u8),
}

impl RtcpType {
    /// Classifies a parsed RTCP packet.
    pub fn of(packet: &dyn rtcp::Packet) -> Self {
        let h = packet.header();
        match (h.packet_type, h.count) {
            (PacketType::SenderReport, _) => Self::SenderReport,
            (PacketType::ReceiverReport, _) => Self::ReceiverReport,
            (PacketType::SourceDescription, _) => Self::SourceDescription,
            (PacketType::Goodbye, _) => Self::Goodbye,
            (PacketType::TransportSpecificFeedback, 1) => Self::Nack,
            (PacketType::TransportSpecificFeedback, 15) => Self::TransportCc,
            (PacketType::PayloadSpecificFeedback, 1) => Self::Pli,
            (PacketType::PayloadSpecificFeedback, 4) => Self::Fir,
            (PacketType::PayloadSpecificFeedback, 15) => Self::Remb,
            (pt, count) => Self::Other(pt as u8, count),
        }
    }

    /// A short lowercase name: `sr`, `rr`, `sdes`, `bye`, `nack`, `twcc`, `pli`, `fir`, `remb`,
    /// `other`.
    pub fn name(self) -> &'static str {
        match self {
            Self::SenderReport => "sr",
            Self::ReceiverReport => "rr",
            Self::SourceDescription => "sdes",
            Self::Goodbye => "bye",
            Self::Nack => "nack",
            Self::TransportCc => "twcc",
            Self::Pli => "pli",
            Self::Fir => "fir",
            Self::Remb => "remb",
            Self::Other(..) => "other",
        }
    }
}

/// One inbound RTCP packet (one element of a compound packet).
#[derive(Debug, Clone)]
pub struct RtcpRecord {
    /// When it was recorded.
    pub at: Instant,
    /// Its kind.
    pub packet_type: RtcpType,
    /// The media SSRCs it is about (`rtcp::Packet::destination_ssrc`).
    pub media_ssrcs: Vec<u32>,
    /// For a NACK, every sequence number it asks for; empty otherwise.
    pub nack_seqs: Vec<u16>,
    /// The packet, human-readable.
    pub text: String,
}

/// Summary of one inbound RTP packet as it came off the wire (RTX not yet unwrapped).
#[derive(Debug, Clone, Copy)]
pub struct RtpRecord {
    /// When it was recorded.
    pub at: Instant,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Payload length in bytes.
    pub payload_len: usize,
}

/// What the recorder saw, shared with the client.
#[derive(Debug, Default)]
pub struct WireLog {
    /// Inbound RTCP, oldest first.
    pub rtcp: Vec<RtcpRecord>,
    /// Inbound RTP summaries, oldest first (capped).
    pub rtp: VecDeque<RtpRecord>,
}

/// Shared handle to a [`WireLog`] plus a change signal for waiters.
#[derive(Debug, Clone, Default)]
pub struct WireRecorderHandle(Arc<Watched<WireLog>>);

impl WireRecorderHandle {
    /// The log, locked.
    pub fn log(&self) -> MutexGuard<'_, WireLog> {
        self.0.lock()
    }

    /// Waits until `check` finds what it looks for in the log (see [`Watched::wait`]).
    pub(crate) async fn wait<R>(
        &self,
        timeout: Duration,
        what: impl Fn(&WireLog) -> String,
        check: impl FnMut(&mut WireLog) -> anyhow::Result<Option<R>>,
    ) -> anyhow::Result<R> {
        self.0.wait(timeout, what, check).await
    }

    /// The interceptor that fills this log; register it nearest the wire.
    pub fn interceptor(&self) -> WireRecorder {
        WireRecorder {
            handle: self.clone(),
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn record(&self, packet: &Packet) {
        let now = Instant::now();
        if !matches!(packet, Packet::Rtp(_) | Packet::Rtcp(_)) {
            return;
        }
        self.0.update(|log| match packet {
            Packet::Rtp(p) => {
                if log.rtp.len() >= MAX_RTP_RECORDS {
                    log.rtp.pop_front();
                }
                log.rtp.push_back(RtpRecord {
                    at: now,
                    ssrc: p.header.ssrc,
                    pt: p.header.payload_type,
                    seq: p.header.sequence_number,
                    ts: p.header.timestamp,
                    payload_len: p.payload.len(),
                });
            }
            Packet::Rtcp(packets) => {
                for p in packets {
                    let packet_type = RtcpType::of(p.as_ref());
                    let nack_seqs = p
                        .as_any()
                        .downcast_ref::<TransportLayerNack>()
                        .map(|n| n.nacks.iter().flat_map(|pair| pair.packet_list()).collect())
                        .unwrap_or_default();
                    log.rtcp.push(RtcpRecord {
                        at: now,
                        packet_type,
                        media_ssrcs: p.destination_ssrc(),
                        nack_seqs,
                        text: p.to_string(),
                    });
                }
            }
            _ => {}
        });
    }
}

/// Pass-through interceptor that copies inbound packets into a [`WireLog`].
pub struct WireRecorder {
    handle: WireRecorderHandle,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for WireRecorder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.handle.record(&msg.message.packet);
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for WireRecorder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
