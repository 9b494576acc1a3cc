//! RTCP of a [`TestClient`]: feedback it sends about remote tracks (PLI, FIR, NACK) and what the
//! server sent about its published tracks (recorded by [`crate::wire::WireRecorder`]).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};

use crate::client::TestClient;
use crate::codec::MediaKind;
use crate::wire::{RtcpRecord, RtcpType, RtpRecord, WireLog};

/// An RTCP packet the server sent about one of this client's published tracks.
#[derive(Debug, Clone)]
pub struct PublisherRtcp {
    /// Which local track it is about.
    pub kind: MediaKind,
    /// The local SSRC it names.
    pub ssrc: u32,
    /// Its kind (`RtcpType::name()` gives `pli`, `fir`, `nack`, `rr`, ...).
    pub packet_type: RtcpType,
    /// For a NACK, the sequence numbers asked for.
    pub nack_seqs: Vec<u16>,
    /// When it arrived.
    pub at: Instant,
}

impl TestClient {
    /// Writes RTCP on the receiver of remote track `track_id`.
    pub async fn write_rtcp(
        &self,
        track_id: &str,
        packets: Vec<Box<dyn rtcp::Packet>>,
    ) -> Result<()> {
        let (track, _) = self.remote_for(track_id)?;
        track.write_rtcp(packets).await.context("write_rtcp")
    }

    /// Sends the feedback `build(sender SSRC, media SSRC)` for remote track `track_id` (media
    /// SSRC = the SSRC it arrives with).
    async fn send_feedback(
        &self,
        track_id: &str,
        what: &str,
        build: impl FnOnce(u32, u32) -> Box<dyn rtcp::Packet>,
    ) -> Result<()> {
        let (track, media_ssrc) = self.remote_for(track_id)?;
        let packet = build(self.shared.rtcp_ssrc, media_ssrc);
        track
            .write_rtcp(vec![packet])
            .await
            .with_context(|| format!("sending {what}"))
    }

    /// Sends a PLI for remote track `track_id`.
    pub async fn send_pli(&self, track_id: &str) -> Result<()> {
        self.send_feedback(track_id, "PLI", |sender_ssrc, media_ssrc| {
            Box::new(PictureLossIndication {
                sender_ssrc,
                media_ssrc,
            })
        })
        .await
    }

    /// Sends a FIR for remote track `track_id`.
    pub async fn send_fir(&self, track_id: &str, fir_seq: u8) -> Result<()> {
        self.send_feedback(track_id, "FIR", |sender_ssrc, media_ssrc| {
            Box::new(FullIntraRequest {
                sender_ssrc,
                media_ssrc,
                fir: vec![FirEntry {
                    ssrc: media_ssrc,
                    sequence_number: fir_seq,
                }],
            })
        })
        .await
    }

    /// Sends a generic NACK for `seqs` (sequence numbers as received) of remote track
    /// `track_id`.
    pub async fn send_nack(&self, track_id: &str, seqs: &[u16]) -> Result<()> {
        self.send_feedback(track_id, "NACK", |sender_ssrc, media_ssrc| {
            Box::new(TransportLayerNack {
                sender_ssrc,
                media_ssrc,
                nacks: nack_pairs_from_sequence_numbers(seqs),
            })
        })
        .await
    }

    /// RTCP the server sent about this client's published tracks, oldest first (one entry per
    /// packet and local SSRC it names; receiver reports included).
    pub fn publisher_rtcp(&self) -> Vec<PublisherRtcp> {
        self.publisher_rtcp_in(&self.shared.wire.log())
    }

    /// [`TestClient::publisher_rtcp`] of `log`.
    fn publisher_rtcp_in(&self, log: &WireLog) -> Vec<PublisherRtcp> {
        let local = self.shared.local_ssrcs.lock().expect("ssrcs").clone();
        log.rtcp
            .iter()
            .flat_map(|r| {
                r.media_ssrcs.iter().filter_map(|ssrc| {
                    local.get(ssrc).map(|&kind| PublisherRtcp {
                        kind,
                        ssrc: *ssrc,
                        packet_type: r.packet_type,
                        nack_seqs: r.nack_seqs.clone(),
                        at: r.at,
                    })
                })
            })
            .collect()
    }

    /// Waits for an RTCP packet of `packet_type` about the local `kind` track that arrived at
    /// or after `since`.
    pub async fn wait_for_rtcp(
        &self,
        kind: MediaKind,
        packet_type: RtcpType,
        since: Instant,
        timeout: Duration,
    ) -> Result<PublisherRtcp> {
        let what = |log: &WireLog| {
            let seen: Vec<_> = self
                .publisher_rtcp_in(log)
                .iter()
                .map(|r| format!("{}:{}", r.kind, r.packet_type.name()))
                .collect();
            let name = packet_type.name();
            format!("{name} about the {kind} track (publisher RTCP so far: {seen:?})")
        };
        let check = |log: &mut WireLog| {
            let mut all = self.publisher_rtcp_in(log).into_iter();
            Ok(all.find(|r| r.kind == kind && r.packet_type == packet_type && r.at >= since))
        };
        self.shared.wire.wait(timeout, what, check).await
    }

    /// Waits for a PLI about the local `kind` track (any received since the client connected;
    /// use [`TestClient::wait_for_rtcp`] with a `since` to ignore earlier ones).
    pub async fn wait_for_pli(&self, kind: MediaKind, timeout: Duration) -> Result<PublisherRtcp> {
        self.wait_for_rtcp(kind, RtcpType::Pli, self.shared.created, timeout)
            .await
    }

    /// Every inbound RTCP packet (about any SSRC), oldest first.
    pub fn inbound_rtcp(&self) -> Vec<RtcpRecord> {
        self.shared.wire.log().rtcp.clone()
    }

    /// Summaries of inbound RTP as it came off the wire (RTX packets still wrapped), oldest
    /// first; capped at the last 50 000.
    pub fn inbound_rtp(&self) -> Vec<RtpRecord> {
        self.shared.wire.log().rtp.iter().copied().collect()
    }
}
