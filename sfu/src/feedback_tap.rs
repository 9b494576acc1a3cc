//! An interceptor that lets subscribers' keyframe requests and NACKs reach Cascade, and counts
//! retransmissions.
//!
//! The `rtc` interceptor chain ends inbound RTCP at its terminus unless a packet is marked
//! [`Attribute::DeliverToApplication`]. This interceptor marks compound packets that carry a
//! PLI, FIR or generic NACK, and leaves reports to the chain's own report interceptors. Sitting
//! wire-ward of the NACK responder, it also sees (and counts) the retransmissions it sends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use crate::stats::MediaStats;

/// Position in the chain: between the pacer (3 000) and the NACK responder (4 000).
pub const FEEDBACK_TAP_SLOT: usize = 3_500;

/// Marks inbound RTCP feedback for the application; passes everything else through.
pub struct FeedbackTap {
    stats: Arc<MediaStats>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl FeedbackTap {
    /// A tap counting retransmissions into `stats`.
    pub fn new(stats: Arc<MediaStats>) -> Self {
        Self {
            stats,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }
}

/// Whether a compound RTCP packet carries feedback Cascade acts on.
pub fn is_feedback(packets: &[Box<dyn rtcp::Packet>]) -> bool {
    packets.iter().any(|p| {
        let any = p.as_any();
        any.is::<PictureLossIndication>()
            || any.is::<FullIntraRequest>()
            || any.is::<TransportLayerNack>()
    })
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && is_feedback(packets)
            && !msg.message.has(&Attribute::DeliverToApplication)
        {
            msg.message.attributes.push(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        if msg.message.has(&Attribute::Retransmission) {
            MediaStats::add(&self.stats.retransmissions, 1);
            MediaStats::add(&self.stats.rtp_packets_out, 1);
        }
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::receiver_report::ReceiverReport;

    #[test]
    fn only_feedback_is_marked() {
        let pli: Vec<Box<dyn rtcp::Packet>> = vec![
            Box::new(ReceiverReport::default()),
            Box::new(PictureLossIndication::default()),
        ];
        let rr: Vec<Box<dyn rtcp::Packet>> = vec![Box::new(ReceiverReport::default())];
        assert!(is_feedback(&pli));
        assert!(!is_feedback(&rr));
    }
}
