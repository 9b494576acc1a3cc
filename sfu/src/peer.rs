//! One participant's server-side peer connection, owned by a worker.
//!
//! A peer is both a publisher (its receivers feed [`PublishedTrack`]s) and a subscriber (its
//! down-tracks get other peers' packets, rewritten for this connection). It talks to its
//! signaling session through [`PeerCommand`]s (with replies) and [`PeerEvent`]s.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cascade_signaling::protocol::{IceCandidate, TrackKind};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent, RTCTrackEventInit};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId,
    RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, trace, warn};

use crate::candidate_budget::CandidateBudget;
use crate::error::MediaError;
use crate::munger::Munger;
use crate::server::Shared;
use crate::stats::MediaStats;
use crate::track::{HeaderExtension, PublishedTrack};
use crate::udp::SendBatch;
use crate::worker::{Fanout, PeerAddress, PeerId};

/// Header extensions never forwarded: they describe the publisher's transport or m-line, not
/// the media (TWCC sequence numbers, MID, RID), and would mislead the subscriber.
const TRANSPORT_EXTENSIONS: &[&str] = &[
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
];

/// Most [`PeerEvent`]s queued for a session. A peer whose session lets this many pile up is
/// closed (the session then sees its event channel close and ends).
pub const PEER_EVENT_QUEUE: usize = 256;

/// A server offer and the Cascade track carried by each forwarded m-line.
#[derive(Debug, Clone)]
pub struct ServerOffer {
    /// The SDP.
    pub sdp: String,
    /// mid -> track id.
    pub tracks: BTreeMap<String, String>,
}

/// What a session asks of its peer.
#[derive(Debug)]
pub enum PeerCommand {
    /// Apply a client offer and answer it. Refused with `PermissionDenied` if it sends media
    /// and `can_publish` is false (nothing is applied then).
    ApplyOffer {
        /// The SDP.
        sdp: String,
        /// Whether the participant may publish.
        can_publish: bool,
        /// The answer SDP.
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Apply a WHEP viewer's offer: one sending slot per offered audio/video kind (filled
    /// later by `Subscribe`), then answer. Refused with `PermissionDenied` if the offer sends.
    ApplyViewerOffer {
        /// The SDP.
        sdp: String,
        /// The answer SDP.
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Create and apply a server offer.
    CreateOffer {
        /// The offer.
        reply: oneshot::Sender<Result<ServerOffer, MediaError>>,
    },
    /// Apply the client's answer to the last server offer (rolled back if invalid).
    ApplyAnswer {
        /// The SDP.
        sdp: String,
        /// Result.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Add a trickled remote candidate.
    AddCandidate {
        /// The candidate.
        candidate: IceCandidate,
        /// Result.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Start forwarding a track to this peer (a renegotiation follows).
    Subscribe(Arc<PublishedTrack>),
    /// Stop forwarding a track to this peer (a renegotiation follows).
    Unsubscribe(String),
    /// Ask the publisher of one of this peer's tracks for a keyframe.
    RequestKeyframe(String),
    /// Close the peer connection and free everything.
    Close,
}

impl PeerCommand {
    /// Answers a command whose peer is already gone.
    pub(crate) fn refuse_closed(self) {
        match self {
            Self::ApplyOffer { reply, .. } | Self::ApplyViewerOffer { reply, .. } => {
                drop(reply.send(Err(MediaError::Closed)))
            }
            Self::CreateOffer { reply } => drop(reply.send(Err(MediaError::Closed))),
            Self::ApplyAnswer { reply, .. } | Self::AddCandidate { reply, .. } => {
                drop(reply.send(Err(MediaError::Closed)))
            }
            Self::Subscribe(_) | Self::Unsubscribe(_) | Self::RequestKeyframe(_) | Self::Close => {}
        }
    }
}

/// What a peer tells its session.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// The connection failed or closed; the peer is gone.
    Closed(String),
    /// The client started sending a new track.
    TrackPublished(Arc<PublishedTrack>),
    /// The client stopped sending a track (removed in a renegotiation).
    TrackUnpublished(String),
    /// A subscribed track was dropped (e.g. no common codec); the session should renegotiate.
    NegotiationNeeded,
}

struct UpTrack {
    track: Arc<PublishedTrack>,
    receiver: RTCRtpReceiverId,
    /// Whether the track is sent as simulcast layers (rid); only the first layer is forwarded.
    simulcast: bool,
}

struct DownTrack {
    track: Arc<PublishedTrack>,
    out: MLineSender,
    /// (payload type, extension id map) for this subscriber, computed on first packet and
    /// shared (not copied) by every packet after.
    mapping: Option<Arc<Mapping>>,
}

/// The sending side of one forwarded m-line.
struct MLineSender {
    transceiver: RTCRtpTransceiverId,
    sender: RTCRtpSenderId,
    ssrc: u32,
    munger: Munger,
    /// Set once the subscriber answered an offer carrying this m-line (or, for a slot, once
    /// the server answered the viewer's offer).
    negotiated: bool,
    /// A WHEP viewer's fixed m-line: on unsubscribe it goes back to the idle slots instead
    /// of being stopped, and the next track of its kind continues the same RTP stream.
    slot: Option<TrackKind>,
}

/// How a published track's packets map onto one subscriber's connection (public for the
/// fuzz harness, which drives [`rewrite`]).
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The publisher's payload type.
    pub source_pt: u8,
    /// The subscriber's payload type for the codec.
    pub pt: u8,
    /// Header extension ids: (publisher's, subscriber's); ids not listed are dropped.
    pub extensions: Vec<(u8, u8)>,
}

/// A participant's peer connection inside a worker.
pub struct Peer {
    /// Peer id.
    pub id: PeerId,
    /// Participant id, used as the media stream id of its tracks.
    participant: String,
    pc: RTCPeerConnection,
    local_addr: SocketAddr,
    me: PeerAddress,
    events: mpsc::Sender<PeerEvent>,
    shared: Arc<Shared>,
    /// Local ICE username fragment (the demux key).
    pub(crate) ufrag: String,
    published: HashMap<String, UpTrack>,
    down: HashMap<String, DownTrack>,
    /// WHEP slots that carry no track at the moment.
    idle_slots: Vec<MLineSender>,
    /// Down-tracks carried by the outstanding server offer.
    offered: Vec<String>,
    /// Packets received on published tracks, waiting for the worker to fan them out.
    fanout: Vec<Fanout>,
    /// Trickled candidates accepted so far (capped).
    candidates: CandidateBudget,
    connected: bool,
    closed: bool,
    deadline: Option<Instant>,
    /// When a datagram last counted as ICE liveness (see [`Peer::handle_datagram`]).
    liveness_at: Option<Instant>,
    /// Where the connection last sent a datagram: the remote address of its selected pair.
    sending_to: Option<SocketAddr>,
}

impl Peer {
    /// Wraps a freshly built peer connection.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: PeerId,
        participant: String,
        pc: RTCPeerConnection,
        local_addr: SocketAddr,
        me: PeerAddress,
        ufrag: String,
        events: mpsc::Sender<PeerEvent>,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            id,
            participant,
            pc,
            local_addr,
            me,
            events,
            shared,
            ufrag,
            published: HashMap::new(),
            down: HashMap::new(),
            idle_slots: Vec::new(),
            offered: Vec::new(),
            fanout: Vec::new(),
            candidates: CandidateBudget::default(),
            connected: false,
            closed: false,
            deadline: None,
            liveness_at: None,
            sending_to: None,
        }
    }

    fn stats(&self) -> &MediaStats {
        &self.shared.stats
    }

    /// The next timer deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.closed { None } else { self.deadline }
    }

    /// Whether the peer is closed and may be dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Feeds a datagram from the socket (routed here by a bound address: the client's own).
    ///
    /// Any datagram counts as ICE liveness of the pair the connection sends on. The ICE-lite
    /// agent only notices STUN on that pair's remote address, but some clients (libnice:
    /// GStreamer webrtcbin) send no STUN for 25 s after connecting, longer than the
    /// disconnected timeout, and a client with several interfaces (Chromium) may keep its
    /// consent checks on a pair it nominated after the one the agent selected (which it never
    /// changes). So, at most once per [`LIVENESS_EVERY`], a datagram is followed by a STUN
    /// binding indication as if from the address the connection sends to (the agent marks
    /// that remote candidate seen; indications are not answered).
    pub(crate) fn handle_datagram(&mut self, from: SocketAddr, data: BytesMut, at: Instant) {
        if self.closed {
            return;
        }
        self.read(from, data, at);
        if self
            .liveness_at
            .is_none_or(|t| at.saturating_duration_since(t) >= LIVENESS_EVERY)
        {
            self.liveness_at = Some(at);
            let to = self.sending_to.unwrap_or(from);
            self.read(to, BytesMut::from(&BINDING_INDICATION[..]), at);
        }
    }

    fn read(&mut self, from: SocketAddr, data: BytesMut, at: Instant) {
        let msg = TaggedBytesMut {
            now: at,
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        };
        if let Err(e) = self.pc.handle_read(msg) {
            trace!(peer = self.id, "datagram rejected: {e}");
        }
    }

    /// Advances timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            debug!(peer = self.id, "timeout handling failed: {e}");
        }
    }

    /// Executes a session command.
    pub(crate) fn handle_command(&mut self, cmd: PeerCommand) {
        if self.closed {
            return cmd.refuse_closed();
        }
        match cmd {
            PeerCommand::ApplyOffer {
                sdp,
                can_publish,
                reply,
            } => {
                let _ = reply.send(self.apply_offer(sdp, can_publish));
            }
            PeerCommand::ApplyViewerOffer { sdp, reply } => {
                let _ = reply.send(self.apply_viewer_offer(sdp));
            }
            PeerCommand::CreateOffer { reply } => {
                let _ = reply.send(self.create_offer());
            }
            PeerCommand::ApplyAnswer { sdp, reply } => {
                let _ = reply.send(self.apply_answer(sdp));
            }
            PeerCommand::AddCandidate { candidate, reply } => {
                let _ = reply.send(self.add_candidate(candidate));
            }
            PeerCommand::Subscribe(track) => self.subscribe(track),
            PeerCommand::Unsubscribe(id) => self.unsubscribe(&id),
            PeerCommand::RequestKeyframe(id) => self.send_keyframe_request(&id),
            PeerCommand::Close => self.close(),
        }
    }

    fn apply_offer(&mut self, sdp: String, can_publish: bool) -> Result<String, MediaError> {
        if !can_publish && crate::sdp::offers_to_send(&sdp)? {
            return Err(MediaError::PermissionDenied(
                "this token may not publish: the offer carries a track to send".into(),
            ));
        }
        let ufrag = crate::sdp::ice_ufrag(&sdp).map(str::to_owned);
        let offer =
            RTCSessionDescription::offer(sdp).map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let now = Instant::now();
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| MediaError::from_rtc_sdp(&e))?;
        self.candidates.on_remote_ufrag(ufrag.as_deref());
        let answered = self.pc.create_answer(None).and_then(|answer| {
            self.pc.set_local_description(now, answer.clone())?;
            Ok(answer)
        });
        match answered {
            Ok(answer) => {
                self.prune_stopped_publications();
                Ok(crate::candidates::spread(&answer.sdp))
            }
            Err(e) => {
                // Back to stable: the offer is refused as a whole.
                if let Ok(rollback) = RTCSessionDescription::rollback(None) {
                    let _ = self.pc.set_remote_description(now, rollback);
                }
                Err(MediaError::InvalidSdp(format!("cannot answer: {e}")))
            }
        }
    }

    fn apply_viewer_offer(&mut self, sdp: String) -> Result<String, MediaError> {
        if crate::sdp::offers_to_send(&sdp)? {
            return Err(MediaError::InvalidSdp(
                "a WHEP offer must not send media: use recvonly m-lines".into(),
            ));
        }
        let kinds = crate::sdp::receiving_kinds(&sdp)?;
        if kinds.is_empty() {
            return Err(MediaError::InvalidSdp(
                "the offer receives no audio or video (WHEP offers are recvonly)".into(),
            ));
        }
        for kind in kinds {
            if let Err(e) = self.add_slot(kind) {
                return Err(MediaError::Internal(format!(
                    "cannot add a {kind:?} slot: {e}"
                )));
            }
        }
        let answer = self.apply_offer(sdp, false)?;
        for slot in &mut self.idle_slots {
            slot.negotiated = self
                .pc
                .rtp_transceiver(slot.transceiver)
                .is_some_and(|t| t.mid().is_some() && t.current_direction().has_send());
        }
        Ok(answer)
    }

    /// Adds an idle sending slot of `kind` (a transceiver with a placeholder track).
    fn add_slot(&mut self, kind: TrackKind) -> Result<(), rtc::shared::error::Error> {
        let placeholder = match kind {
            TrackKind::Audio => crate::codecs::default_codec(RtpCodecKind::Audio),
            TrackKind::Video => crate::codecs::default_codec(RtpCodecKind::Video),
        };
        let (transceiver, sender, ssrc) =
            self.add_sender(kind, &crate::ids::new_id("SL"), "cascade", placeholder)?;
        self.idle_slots.push(MLineSender {
            transceiver,
            sender,
            ssrc,
            munger: Munger::new(match kind {
                TrackKind::Audio => 48_000,
                TrackKind::Video => 90_000,
            }),
            negotiated: false,
            slot: Some(kind),
        });
        Ok(())
    }

    /// Adds a sendonly transceiver for a track (a new m-line; `add_track` would reuse the
    /// client's own publishing m-lines) with a random SSRC, plus an RTX SSRC for video.
    fn add_sender(
        &mut self,
        kind: TrackKind,
        track_id: &str,
        stream: &str,
        codec: RTCRtpCodec,
    ) -> Result<(RTCRtpTransceiverId, RTCRtpSenderId, u32), rtc::shared::error::Error> {
        let ssrc = rand::random::<u32>();
        let media = MediaStreamTrack::new(
            stream.to_owned(),
            track_id.to_owned(),
            track_id.to_owned(),
            match kind {
                TrackKind::Audio => RtpCodecKind::Audio,
                TrackKind::Video => RtpCodecKind::Video,
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    // Retransmissions go on their own SSRC when the subscriber negotiates RTX.
                    rtx: (kind == TrackKind::Video).then(|| RTCRtpRtxParameters {
                        ssrc: rand::random::<u32>(),
                    }),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            streams: vec![stream.to_owned()],
            send_encodings: vec![],
        };
        let transceiver = self.pc.add_transceiver_from_track(media, Some(init))?;
        let sender = self
            .pc
            .rtp_transceiver(transceiver)
            .and_then(|tr| tr.sender())
            .ok_or(rtc::shared::error::Error::ErrRTPSenderNotExisted)?;
        Ok((transceiver, sender, ssrc))
    }

    /// The transceiver of a receiver.
    fn transceiver_of(&mut self, receiver: RTCRtpReceiverId) -> Option<RTCRtpTransceiverId> {
        let ids: Vec<_> = self.pc.get_transceivers().collect();
        ids.into_iter().find(|t| {
            self.pc
                .rtp_transceiver(*t)
                .is_some_and(|tr| tr.receiver() == Some(receiver))
        })
    }

    /// Unpublishes tracks whose m-line no longer sends to us (the client removed the track or
    /// stopped the transceiver in its latest offer).
    fn prune_stopped_publications(&mut self) {
        let receivers: Vec<(String, RTCRtpReceiverId)> = self
            .published
            .iter()
            .map(|(k, p)| (k.clone(), p.receiver))
            .collect();
        for (key, receiver) in receivers {
            let receiving = self.transceiver_of(receiver).is_some_and(|t| {
                self.pc
                    .rtp_transceiver(t)
                    .is_some_and(|tr| tr.current_direction().has_recv())
            });
            if !receiving && let Some(p) = self.published.remove(&key) {
                self.emit(PeerEvent::TrackUnpublished(p.track.id.clone()));
            }
        }
    }

    fn create_offer(&mut self) -> Result<ServerOffer, MediaError> {
        let offer = self
            .pc
            .create_offer(None)
            .map_err(|e| MediaError::InvalidState(format!("create offer: {e}")))?;
        self.pc
            .set_local_description(Instant::now(), offer.clone())
            .map_err(|e| MediaError::InvalidState(format!("set local offer: {e}")))?;
        let mut tracks = BTreeMap::new();
        let transceivers: Vec<_> = self.pc.get_transceivers().collect();
        for t in transceivers {
            let Some(tr) = self.pc.rtp_transceiver(t) else {
                continue;
            };
            let (Some(mid), Some(sender)) = (tr.mid().clone(), tr.sender()) else {
                continue;
            };
            if let Some((id, _)) = self.down.iter().find(|(_, d)| d.out.sender == sender) {
                tracks.insert(mid, id.clone());
            }
        }
        self.offered = self.down.keys().cloned().collect();
        Ok(ServerOffer {
            sdp: crate::candidates::spread(&offer.sdp),
            tracks,
        })
    }

    fn apply_answer(&mut self, sdp: String) -> Result<(), MediaError> {
        let ufrag = crate::sdp::ice_ufrag(&sdp).map(str::to_owned);
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        if let Err(e) = self.pc.set_remote_description(Instant::now(), answer) {
            // Back to stable so that the next offer can be made.
            if let Ok(rollback) = RTCSessionDescription::rollback(None) {
                let _ = self.pc.set_local_description(Instant::now(), rollback);
            }
            return Err(MediaError::from_rtc_sdp(&e));
        }
        self.candidates.on_remote_ufrag(ufrag.as_deref());
        let now = Instant::now();
        for id in std::mem::take(&mut self.offered) {
            if let Some(d) = self.down.get_mut(&id) {
                let newly = !d.out.negotiated;
                d.out.negotiated = true;
                d.mapping = None;
                if newly && self.connected && d.track.kind == TrackKind::Video {
                    request_keyframe(&d.track, now);
                }
            }
        }
        Ok(())
    }

    fn add_candidate(&mut self, c: IceCandidate) -> Result<(), MediaError> {
        if c.candidate.is_empty() {
            return Ok(()); // end-of-candidates: nothing to do for an ICE-lite server
        }
        self.candidates.take()?;
        self.pc
            .add_remote_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                username_fragment: c.username_fragment,
                ..Default::default()
            })
            .map_err(|e| MediaError::InvalidCandidate(e.to_string()))
    }

    fn subscribe(&mut self, track: Arc<PublishedTrack>) {
        if self.down.contains_key(&track.id) || track.publisher.id == self.id {
            return;
        }
        // A WHEP viewer's idle slot of the kind takes the track: same m-line, same SSRC, the
        // munger continues sequence numbers and timestamps.
        if let Some(i) = self
            .idle_slots
            .iter()
            .position(|s| s.slot == Some(track.kind))
        {
            let out = self.idle_slots.swap_remove(i);
            track.add_subscriber(self.me.clone());
            if out.negotiated && self.connected {
                request_keyframe(&track, Instant::now());
            }
            self.down.insert(
                track.id.clone(),
                DownTrack {
                    track,
                    out,
                    mapping: None,
                },
            );
            return;
        }
        let added = self.add_sender(
            track.kind,
            &track.id,
            &track.participant,
            track.codec.clone(),
        );
        match added {
            Ok((transceiver, sender, ssrc)) => {
                track.add_subscriber(self.me.clone());
                self.down.insert(
                    track.id.clone(),
                    DownTrack {
                        out: MLineSender {
                            transceiver,
                            sender,
                            ssrc,
                            munger: Munger::new(track.codec.clock_rate),
                            negotiated: false,
                            slot: None,
                        },
                        track,
                        mapping: None,
                    },
                );
            }
            Err(e) => warn!(peer = self.id, track = %track.id, "cannot add down-track: {e}"),
        }
    }

    fn unsubscribe(&mut self, id: &str) {
        if let Some(d) = self.down.remove(id) {
            d.track.remove_subscriber(self.id);
            if d.out.slot.is_some() {
                self.idle_slots.push(d.out);
                return;
            }
            // Stopping the transceiver rejects its m-line (port 0) in the next offer.
            if let Some(mut t) = self.pc.rtp_transceiver(d.out.transceiver)
                && let Err(e) = t.stop()
            {
                debug!(peer = self.id, track = id, "stopping transceiver: {e}");
            }
            self.offered.retain(|t| t != id);
        }
    }

    /// Sends a PLI for one of this peer's published tracks.
    fn send_keyframe_request(&mut self, track_id: &str) {
        let Some(p) = self.published.values().find(|p| p.track.id == track_id) else {
            return;
        };
        let ssrc = p.track.source_ssrc();
        let receiver = p.receiver;
        if let Some(mut r) = self.pc.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            match r.write_rtcp(Instant::now(), vec![Box::new(pli)]) {
                Ok(()) => MediaStats::add(&self.stats().keyframe_requests_sent, 1),
                Err(e) => debug!(peer = self.id, "PLI not sent: {e}"),
            }
        }
    }

    /// Forwards one packet of a subscribed track to this peer.
    pub(crate) fn forward(&mut self, track: &PublishedTrack, packet: &rtp::Packet) {
        let now = Instant::now();
        let Some(d) = self.down.get_mut(&track.id) else {
            return;
        };
        // Until DTLS is up there is no SRTP context: the packet would only be dropped.
        if !d.out.negotiated || !self.connected || self.closed {
            return;
        }
        let Some(mapping) = d.mapping(&mut self.pc) else {
            return;
        };
        let mapping = &*mapping;
        if packet.header.payload_type != mapping.source_pt {
            return;
        }
        let (seq, ts) = d.out.munger.rewrite(
            packet.header.ssrc,
            packet.header.sequence_number,
            packet.header.timestamp,
            now,
        );
        let out = rewrite(packet, d.out.ssrc, mapping, seq, ts);
        let size = out.header.marshal_size() + out.payload.len();
        if let Some(mut s) = self.pc.rtp_sender(d.out.sender) {
            match s.write_rtp(now, out) {
                Ok(()) => {
                    MediaStats::add(&self.shared.stats.rtp_packets_out, 1);
                    MediaStats::add(&self.shared.stats.rtp_bytes_out, size as u64);
                }
                Err(e) => trace!(peer = self.id, "forward dropped: {e}"),
            }
        }
    }

    /// Pumps the connection: events, inbound media and feedback, then outbound datagrams.
    pub(crate) fn drive(&mut self, out: &mut SendBatch) {
        loop {
            let mut progressed = false;
            while let Some(ev) = self.pc.poll_event() {
                progressed = true;
                self.on_event(ev);
            }
            while let Some(msg) = self.pc.poll_read() {
                progressed = true;
                self.on_message(msg);
            }
            if !progressed {
                break;
            }
        }
        self.flush(out);
        self.deadline = self.pc.poll_timeout();
    }

    /// Moves the packets received since the last call, to be forwarded to subscribers, into
    /// `into`.
    pub(crate) fn take_fanout(&mut self, into: &mut Vec<Fanout>) {
        into.append(&mut self.fanout);
    }

    /// Queues every datagram the connection has to send.
    pub(crate) fn flush(&mut self, out: &mut SendBatch) {
        while let Some(msg) = self.pc.poll_write() {
            self.sending_to = Some(msg.transport.peer_addr);
            out.push(msg.transport.peer_addr, &msg.message);
        }
    }

    /// Closes the connection and detaches from every track.
    pub(crate) fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (_, d) in self.down.drain() {
            d.track.remove_subscriber(self.id);
        }
        let published: Vec<_> = self.published.drain().map(|(_, p)| p.track).collect();
        for track in published {
            self.emit(PeerEvent::TrackUnpublished(track.id.clone()));
        }
        if let Err(e) = self.pc.close() {
            debug!(peer = self.id, "close: {e}");
        }
        self.emit(PeerEvent::Closed("closed".into()));
    }

    /// Tells the session. If its queue is full the session has stopped serving this
    /// participant: the peer is closed rather than lose an event (see [`PEER_EVENT_QUEUE`]).
    fn emit(&mut self, event: PeerEvent) {
        if let Err(TrySendError::Full(_)) = self.events.try_send(event)
            && !self.closed
        {
            warn!(
                peer = self.id,
                "the session does not take its peer events: peer closed"
            );
            self.close();
        }
    }

    fn on_event(&mut self, ev: RTCPeerConnectionEvent) {
        match ev {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                debug!(peer = self.id, %state, "connection state");
                match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        self.emit(PeerEvent::Connected);
                        let now = Instant::now();
                        for d in self.down.values().filter(|d| d.out.negotiated) {
                            if d.track.kind == TrackKind::Video {
                                request_keyframe(&d.track, now);
                            }
                        }
                    }
                    RTCPeerConnectionState::Failed => {
                        MediaStats::add(&self.stats().peer_connection_failures, 1);
                        info!(peer = self.id, "peer connection failed");
                        self.close();
                    }
                    RTCPeerConnectionState::Closed => self.close(),
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(init)
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                if let Some(p) = self.published.remove(&track_id) {
                    self.emit(PeerEvent::TrackUnpublished(p.track.id.clone()));
                }
            }
            _ => {}
        }
    }

    fn on_track_open(&mut self, init: RTCTrackEventInit) {
        if self.published.contains_key(&init.track_id) {
            return; // another simulcast layer of a known track: not forwarded yet
        }
        let Some(mut receiver) = self.pc.rtp_receiver(init.receiver_id) else {
            return;
        };
        let (kind, codec) = {
            let t = receiver.track();
            (t.kind(), t.codec(init.ssrc).cloned())
        };
        let params = receiver.get_parameters().rtp_parameters.clone();
        let Some(codec) = codec else {
            warn!(peer = self.id, "track without codec ignored");
            return;
        };
        let Some(source_pt) = payload_type_for(&params.codecs, &codec) else {
            warn!(peer = self.id, "track codec has no payload type; ignored");
            return;
        };
        let kind = match kind {
            RtpCodecKind::Audio => TrackKind::Audio,
            _ => TrackKind::Video,
        };
        let extensions = params
            .header_extensions
            .iter()
            .filter(|e| !TRANSPORT_EXTENSIONS.contains(&e.uri.as_str()))
            .map(|e| HeaderExtension {
                id: e.id as u8,
                uri: e.uri.clone(),
            })
            .collect();
        let mid = self
            .transceiver_of(init.receiver_id)
            .and_then(|t| self.pc.rtp_transceiver(t).and_then(|tr| tr.mid().clone()));
        let track = Arc::new(PublishedTrack::new(
            crate::ids::new_id("TR"),
            self.participant.clone(),
            kind,
            codec,
            source_pt,
            mid,
            extensions,
            init.ssrc,
            self.me.clone(),
        ));
        debug!(peer = self.id, track = %track.id, ?kind, mime = %track.codec.mime_type, "track published");
        self.published.insert(
            init.track_id,
            UpTrack {
                track: track.clone(),
                receiver: init.receiver_id,
                simulcast: init.rid.is_some(),
            },
        );
        self.emit(PeerEvent::TrackPublished(track));
    }

    fn on_message(&mut self, msg: TaggedRTCMessage) {
        match msg.message {
            RTCMessage::RtpPacket(track_id, packet) => {
                let Some(p) = self.published.get(&track_id) else {
                    return;
                };
                if packet.header.ssrc != p.track.source_ssrc() {
                    if p.simulcast {
                        return; // another simulcast layer: not forwarded yet
                    }
                    p.track.set_source_ssrc(packet.header.ssrc);
                }
                let stats = &self.shared.stats;
                MediaStats::add(&stats.rtp_packets_in, 1);
                MediaStats::add(
                    &stats.rtp_bytes_in,
                    (packet.header.marshal_size() + packet.payload.len()) as u64,
                );
                if p.track.blocked() {
                    return; // muted by an administrator
                }
                // The worker fans it out after driving this peer (see `take_fanout`).
                self.fanout.push((p.track.clone(), Arc::new(packet)));
            }
            RTCMessage::RtcpPacket(track_id, packets) if self.down.contains_key(&track_id) => {
                self.on_subscriber_feedback(&track_id, &packets, msg.now);
            }
            _ => {}
        }
    }

    /// RTCP from this peer about a track it receives from us. NACKs are answered by the
    /// connection's NACK responder (RTX when negotiated); they are only counted here.
    fn on_subscriber_feedback(
        &self,
        track_id: &str,
        packets: &[Box<dyn rtcp::Packet>],
        now: Instant,
    ) {
        let Some(d) = self.down.get(track_id) else {
            return;
        };
        let stats = &self.shared.stats;
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() {
                MediaStats::add(&stats.plis_received, 1);
                request_keyframe(&d.track, now);
            } else if any.is::<FullIntraRequest>() {
                MediaStats::add(&stats.firs_received, 1);
                request_keyframe(&d.track, now);
            } else if any.is::<TransportLayerNack>() {
                MediaStats::add(&stats.nacks_received, 1);
            }
        }
    }
}

impl DownTrack {
    /// The payload type and extension-id mapping for this subscriber, once negotiated.
    fn mapping(&mut self, pc: &mut RTCPeerConnection) -> Option<Arc<Mapping>> {
        if let Some(m) = &self.mapping {
            return Some(m.clone());
        }
        let mut sender = pc.rtp_sender(self.out.sender)?;
        let params = sender.get_parameters().rtp_parameters.clone();
        let pt = payload_type_for(&params.codecs, &self.track.codec)?;
        let extensions = self
            .track
            .extensions
            .iter()
            .filter_map(|src| {
                params
                    .header_extensions
                    .iter()
                    .find(|e| e.uri == src.uri)
                    .map(|e| (src.id, e.id as u8))
            })
            .collect();
        let m = Arc::new(Mapping {
            source_pt: self.track.source_pt,
            pt,
            extensions,
        });
        self.mapping = Some(m.clone());
        Some(m)
    }
}

/// The payload type negotiated for `codec`: same mime type and fmtp line, else same mime type.
fn payload_type_for(negotiated: &[RTCRtpCodecParameters], codec: &RTCRtpCodec) -> Option<u8> {
    let same_mime =
        |c: &&RTCRtpCodecParameters| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type);
    negotiated
        .iter()
        .filter(same_mime)
        .find(|c| c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line)
        .or_else(|| negotiated.iter().find(same_mime))
        .map(|c| c.payload_type)
}

/// How often a datagram may stand in for ICE liveness (see [`Peer::handle_datagram`]).
const LIVENESS_EVERY: Duration = Duration::from_secs(1);
/// A STUN binding indication without attributes (RFC 8489: type 0x0011, magic cookie).
const BINDING_INDICATION: [u8; 20] = [
    0x00, 0x11, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0x43, 0x61, 0x73, 0x63, 0x61, 0x64, 0x65, 0x4C,
    0x69, 0x76, 0x65, 0x21,
];

/// Asks a track's publisher for a keyframe, throttled per track (best effort: not queued if
/// the publisher's worker is saturated).
pub(crate) fn request_keyframe(track: &PublishedTrack, now: Instant) {
    if track.kind == TrackKind::Video && track.take_keyframe_request_slot(now) {
        track
            .publisher
            .try_command(PeerCommand::RequestKeyframe(track.id.clone()));
    }
}

/// The subscriber's copy of a packet: its SSRC, payload type, sequence number, timestamp and
/// extension ids; the payload is shared, not copied.
pub fn rewrite(packet: &rtp::Packet, ssrc: u32, m: &Mapping, seq: u16, ts: u32) -> rtp::Packet {
    let source = &packet.header;
    let mut header = rtp::Header {
        version: source.version,
        padding: source.padding,
        marker: source.marker,
        payload_type: m.pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        csrc: source.csrc.clone(),
        ..Default::default()
    };
    // Rebuilt through `set_extension`, which keeps the extension block's padding consistent.
    // Empty elements (legal only in the publisher's two-byte form) are dropped: the one-byte
    // form `set_extension` may pick cannot encode them, and `rtp` would mis-marshal them.
    for e in source.extensions.iter().filter(|e| !e.payload.is_empty()) {
        if let Some((_, dst)) = m.extensions.iter().find(|(src, _)| *src == e.id) {
            let _ = header.set_extension(*dst, e.payload.clone());
        }
    }
    rtp::Packet {
        header,
        payload: packet.payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::{Marshal, Unmarshal};

    /// The subscriber's copy of an Opus packet with `header` and a payload of `len` bytes
    /// 0xAB: SSRC 99, PT 111 → 109, extension ids 1 → 10 and 4 → 2 (the rest dropped).
    fn rewrite_audio(header: rtp::Header, len: usize) -> rtp::Packet {
        let packet = rtp::Packet {
            header,
            payload: vec![0xAB; len].into(),
        };
        let m = Mapping {
            source_pt: 111,
            pt: 109,
            extensions: vec![(1, 10), (4, 2)],
        };
        rewrite(&packet, 99, &m, 500, 48_000)
    }

    #[test]
    fn rewrite_remaps_ids_drops_the_rest_and_marshals_consistently() {
        let mut header = rtp::Header {
            version: 2,
            payload_type: 111,
            sequence_number: 7,
            timestamp: 960,
            ssrc: 1,
            ..Default::default()
        };
        header.set_extension(1, vec![0x90].into()).unwrap(); // audio level
        header.set_extension(3, vec![1, 2].into()).unwrap(); // TWCC: not forwarded
        header.set_extension(4, vec![5, 6, 7].into()).unwrap(); // abs-send-time
        let out = rewrite_audio(header, 21);
        assert_eq!((out.header.ssrc, out.header.payload_type), (99, 109));
        assert_eq!(
            (out.header.sequence_number, out.header.timestamp),
            (500, 48_000)
        );
        let ids: Vec<(u8, Vec<u8>)> = out
            .header
            .extensions
            .iter()
            .map(|e| (e.id, e.payload.to_vec()))
            .collect();
        assert_eq!(ids, vec![(10, vec![0x90]), (2, vec![5, 6, 7])]);
        let bytes = out.marshal().expect("marshals");
        assert_eq!(bytes.len(), out.marshal_size());
        assert_eq!(
            &bytes[bytes.len() - 21..],
            &[0xAB; 21][..],
            "payload intact"
        );
    }

    /// Found by `cascade-fuzz --target rtp`: an empty two-byte-form element on a forwarded id
    /// made the rewritten header a one-byte form with a zero-length element, which `rtp`
    /// marshals with `len - 1` (overflow: a panic with overflow checks, a corrupt header
    /// without).
    #[test]
    fn rewrite_drops_empty_extension_elements() {
        let mut header = rtp::Header {
            version: 2,
            payload_type: 111,
            extension: true,
            extension_profile: 0x1000,
            ..Default::default()
        };
        header.extensions.push(rtp::header::Extension {
            id: 1,
            payload: bytes::Bytes::new(),
        });
        header.extensions.push(rtp::header::Extension {
            id: 4,
            payload: vec![5, 6, 7].into(),
        });
        let out = rewrite_audio(header, 4);
        let bytes = out.marshal().expect("marshals");
        let back = rtp::Packet::unmarshal(&mut &bytes[..]).expect("parses back");
        assert_eq!(
            back.header.get_extension(2).as_deref(),
            Some(&[5u8, 6, 7][..])
        );
        assert_eq!(back.header.get_extension(10), None);
        assert_eq!(&back.payload[..], &[0xAB; 4][..]);
    }

    #[test]
    fn payload_type_prefers_the_same_fmtp_then_the_same_mime() {
        let codec = |mime: &str, fmtp: &str, pt: u8| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: mime.into(),
                clock_rate: 90_000,
                sdp_fmtp_line: fmtp.into(),
                ..Default::default()
            },
            payload_type: pt,
        };
        let negotiated = [
            codec("video/H264", "profile-level-id=42001f", 102),
            codec("video/h264", "profile-level-id=42e01f", 108),
            codec("video/VP8", "", 96),
        ];
        let want =
            |mime: &str, fmtp: &str| payload_type_for(&negotiated, &codec(mime, fmtp, 0).rtp_codec);
        assert_eq!(want("video/H264", "profile-level-id=42e01f"), Some(108));
        assert_eq!(want("video/H264", "other"), Some(102));
        assert_eq!(want("video/vp8", ""), Some(96));
        assert_eq!(want("video/AV1", ""), None);
    }
}
