//! One synthetic participant: a WebSocket session speaking Cascade's protocol and one webrtc-rs
//! peer connection, negotiated as the **polite** peer (the server is impolite): a server offer
//! arriving while the client's own offer is outstanding rolls that offer back, is answered, and
//! the client offers again.
//!
//! The peer connection binds UDP on 127.0.0.1 only, has no ICE servers and mDNS off, so it works
//! inside `unshare -n`. It does not trickle candidates: the server (ICE-lite) learns the
//! client's address from its connectivity checks.

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cascade_signaling::protocol::{ClientMessage, JoinOptions, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpTransceiver};

use crate::http;
use crate::media::{Media, Pump, rand_u16};
use crate::stats::Receiver;

/// Opus payload type offered.
const OPUS_PT: u8 = 111;
/// VP8 payload type offered.
const VP8_PT: u8 = 96;
/// RTX payload type (for VP8) offered, as browsers do.
const RTX_PT: u8 = 97;

/// Inputs of the negotiation task.
enum SigEvent {
    /// A server offer.
    Offer(String),
    /// The server's answer to our offer.
    Answer(String),
    /// The server refused our offer.
    OfferRejected(String),
    /// Offer now; report when the answer is applied.
    Negotiate(oneshot::Sender<Result<()>>),
}

/// A joined participant.
pub struct Participant {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    signaling: Signaling,
}

/// How a participant talks to the server.
enum Signaling {
    /// Cascade's WebSocket protocol.
    Ws {
        ws_out: mpsc::UnboundedSender<Message>,
        sig_tx: mpsc::UnboundedSender<SigEvent>,
        /// Writes queued frames to the WebSocket.
        writer: JoinHandle<()>,
        /// Reads server messages and negotiates.
        readers: [JoinHandle<()>; 2],
    },
    /// WHIP or WHEP: the session resource (`host:port`, path) to delete when leaving.
    Http { addr: String, location: String },
}

/// A local track added to the peer connection, not negotiated yet.
struct Added {
    media: Media,
    ssrc: u32,
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
    mime: &'static str,
    default_pt: u8,
}

/// Receives the peer connection's events.
struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    receiver: Option<Weak<Receiver>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(receiver) = self.receiver.clone() {
            tokio::spawn(read_track(track, receiver));
        }
    }
}

/// Feeds every packet of a remote track to the participant's [`Receiver`].
async fn read_track(track: Arc<dyn TrackRemote>, receiver: Weak<Receiver>) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => match receiver.upgrade() {
                Some(r) => r.on_payload(&p.payload),
                None => return,
            },
            TrackRemoteEvent::OnEnded => return,
            _ => {}
        }
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8(feedback: bool) -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: if feedback {
            vec![
                fb("ccm", "fir"),
                fb("nack", ""),
                fb("nack", "pli"),
                fb("transport-cc", ""),
            ]
        } else {
            vec![]
        },
    }
}

/// Opus/111, VP8/96 with RTX/97, and webrtc-rs's default interceptors (NACK, RR/SR, TWCC).
fn media_engine() -> Result<(MediaEngine, Registry)> {
    let mut engine = MediaEngine::default();
    let codecs = [
        (opus(), OPUS_PT, RtpCodecKind::Audio),
        (vp8(true), VP8_PT, RtpCodecKind::Video),
        (
            RTCRtpCodec {
                mime_type: MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={VP8_PT}"),
                rtcp_feedback: vec![],
            },
            RTX_PT,
            RtpCodecKind::Video,
        ),
    ];
    for (rtp_codec, payload_type, kind) in codecs {
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            },
            kind,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut engine)?;
    Ok((engine, registry))
}

/// Serializes `msg`, with `reference` as its `ref` if given.
fn frame(msg: &ClientMessage, reference: Option<&str>) -> Message {
    let mut value = serde_json::to_value(msg).expect("client messages serialize");
    if let Some(r) = reference {
        value["ref"] = r.into();
    }
    Message::text(value.to_string())
}

impl Participant {
    /// Connects to `url`, joins with `token` and answers server offers from then on;
    /// received media goes to `receiver` (none: received media is ignored).
    pub async fn join(
        url: &str,
        token: String,
        receiver: Option<&Arc<Receiver>>,
        timeout: Duration,
    ) -> Result<Self> {
        let (ws, _) = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url))
            .await
            .context("timed out connecting")?
            .with_context(|| format!("connecting to {url}"))?;
        let (mut sink, mut stream) = ws.split();
        let (ws_out, mut ws_rx) = mpsc::unbounded_channel::<Message>();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let (joined_tx, joined_rx) = oneshot::channel::<Result<()>>();
        let (pc, state) = peer_connection(receiver).await?;

        let writer = tokio::spawn(async move {
            // Keepalive: the server ends sessions silent for 60 s.
            let mut ping = tokio::time::interval(Duration::from_secs(10));
            loop {
                let msg = tokio::select! {
                    msg = ws_rx.recv() => match msg {
                        Some(msg) => msg,
                        None => return,
                    },
                    _ = ping.tick() => frame(&ClientMessage::Ping, None),
                };
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
        });
        let reader_sig = sig_tx.clone();
        let reader = tokio::spawn(async move {
            let mut joined = Some(joined_tx);
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(msg) = serde_json::from_str::<ServerMessage>(text.as_str()) else {
                    continue;
                };
                let event = match msg {
                    ServerMessage::Joined { .. } => {
                        if let Some(tx) = joined.take() {
                            let _ = tx.send(Ok(()));
                        }
                        None
                    }
                    ServerMessage::Offer { sdp, .. } => Some(SigEvent::Offer(sdp)),
                    ServerMessage::Answer { sdp } => Some(SigEvent::Answer(sdp)),
                    ServerMessage::Error {
                        code,
                        message,
                        reference,
                    } => {
                        let err = format!("{code}: {message}");
                        match (joined.take(), reference.as_ref().and_then(|r| r.as_str())) {
                            (Some(tx), Some("join")) => {
                                let _ = tx.send(Err(anyhow!("join refused: {err}")));
                                None
                            }
                            (j, Some("offer")) => {
                                joined = j;
                                Some(SigEvent::OfferRejected(err))
                            }
                            (j, _) => {
                                joined = j;
                                eprintln!("cascade-load: server error: {err}");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                if let Some(event) = event {
                    let _ = reader_sig.send(event);
                }
            }
        });
        let negotiator = tokio::spawn(
            Negotiator {
                pc: pc.clone(),
                ws_out: ws_out.clone(),
                outstanding: false,
                want_offer: false,
                pending: vec![],
                inflight: vec![],
            }
            .run(sig_rx),
        );

        let join = ClientMessage::Join {
            token,
            room: None,
            options: JoinOptions {
                auto_subscribe: receiver.is_some(),
            },
        };
        ws_out
            .send(frame(&join, Some("join")))
            .map_err(|_| anyhow!("WebSocket writer is gone"))?;
        let participant = Self {
            pc,
            state,
            signaling: Signaling::Ws {
                ws_out,
                sig_tx,
                writer,
                readers: [reader, negotiator],
            },
        };
        tokio::time::timeout(timeout, joined_rx)
            .await
            .context("timed out waiting for `joined`")?
            .map_err(|_| anyhow!("the WebSocket closed before `joined`"))??;
        Ok(participant)
    }

    /// Publishes one send-only track per entry of `media`, waits for the answer and the
    /// connection, and returns the pumps that will send on them (stream numbers from
    /// `first_stream`).
    pub async fn publish(
        &self,
        media: &[Media],
        first_stream: u32,
        timeout: Duration,
    ) -> Result<Vec<Pump>> {
        let added = self.add_tracks(media, first_stream).await?;
        self.negotiate(timeout).await.context("publishing")?;
        self.wait_connected(timeout).await?;
        pumps(added, first_stream).await
    }

    /// Publishes `media` over WHIP (`POST /whip/{room}` at `addr`), like [`Self::publish`].
    pub async fn whip(
        addr: &str,
        room: &str,
        token: &str,
        media: &[Media],
        first_stream: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<Pump>)> {
        let (pc, state) = peer_connection(None).await?;
        let mut p = Self {
            pc,
            state,
            signaling: Signaling::Http {
                addr: addr.to_owned(),
                location: String::new(),
            },
        };
        let added = p.add_tracks(media, first_stream).await?;
        p.http_offer(addr, &format!("/whip/{room}"), token).await?;
        p.wait_connected(timeout).await?;
        let pumps = pumps(added, first_stream).await?;
        Ok((p, pumps))
    }

    /// Watches the room over WHEP (`POST /whep/{room}` at `addr`): one audio and one video
    /// receive-only m-line; received media goes to `receiver`.
    pub async fn whep(
        addr: &str,
        room: &str,
        token: &str,
        receiver: &Arc<Receiver>,
        timeout: Duration,
    ) -> Result<Self> {
        let (pc, state) = peer_connection(Some(receiver)).await?;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await
            .context("adding a receive-only transceiver")?;
        }
        let mut p = Self {
            pc,
            state,
            signaling: Signaling::Http {
                addr: addr.to_owned(),
                location: String::new(),
            },
        };
        p.http_offer(addr, &format!("/whep/{room}"), token).await?;
        p.wait_connected(timeout).await?;
        Ok(p)
    }

    /// Posts the offer to a WHIP/WHEP endpoint and applies the answer.
    async fn http_offer(&mut self, addr: &str, path: &str, token: &str) -> Result<()> {
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/sdp"),
        ];
        let r = http::request(addr, "POST", path, &headers, &sdp).await?;
        anyhow::ensure!(r.status == 201, "POST {path}: {} {}", r.status, r.body);
        let location = r
            .header("location")
            .ok_or_else(|| anyhow!("POST {path}: no Location"))?
            .to_owned();
        self.pc
            .set_remote_description(RTCSessionDescription::answer(r.body)?)
            .await
            .context("applying the WHIP/WHEP answer")?;
        if let Signaling::Http { location: l, .. } = &mut self.signaling {
            *l = location;
        }
        Ok(())
    }

    /// Adds one send-only track per entry of `media`.
    async fn add_tracks(&self, media: &[Media], first_stream: u32) -> Result<Vec<Added>> {
        let stream_id = format!("load-{first_stream}");
        let mut added = vec![];
        for (i, &m) in media.iter().enumerate() {
            let (kind, codec, mime, default_pt) = match m {
                Media::Audio => (RtpCodecKind::Audio, opus(), MIME_TYPE_OPUS, OPUS_PT),
                Media::Video { .. } => (RtpCodecKind::Video, vp8(false), MIME_TYPE_VP8, VP8_PT),
            };
            // Non-zero, and distinct between the streams of one run.
            let ssrc = ((u32::from(rand_u16()) | 1) << 16) | ((first_stream + i as u32) & 0xFFFF);
            let track_id = format!("{stream_id}-{i}");
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                stream_id.clone(),
                track_id.clone(),
                track_id,
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )));
            let transceiver = self
                .pc
                .add_transceiver_from_track(
                    track.clone(),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![stream_id.clone()],
                        send_encodings: vec![],
                    }),
                )
                .await
                .context("adding a transceiver")?;
            added.push(Added {
                media: m,
                ssrc,
                track,
                transceiver,
                mime,
                default_pt,
            });
        }
        Ok(added)
    }

    /// Sends an offer and waits until the server's answer is applied.
    async fn negotiate(&self, timeout: Duration) -> Result<()> {
        let Signaling::Ws { sig_tx, .. } = &self.signaling else {
            bail!("WHIP/WHEP sessions cannot renegotiate");
        };
        let (tx, rx) = oneshot::channel();
        sig_tx
            .send(SigEvent::Negotiate(tx))
            .map_err(|_| anyhow!("negotiation task is gone"))?;
        tokio::time::timeout(timeout, rx)
            .await
            .context("timed out waiting for the server's answer")?
            .map_err(|_| anyhow!("negotiation task is gone"))?
    }

    /// Waits until the peer connection is connected.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        });
        let s = *tokio::time::timeout(timeout, wait)
            .await
            .context("timed out waiting for the peer connection")?
            .map_err(|_| anyhow!("peer connection handler is gone"))?;
        if s != RTCPeerConnectionState::Connected {
            bail!("peer connection is {s}");
        }
        Ok(())
    }

    /// Whether the peer connection is connected now.
    pub fn is_connected(&self) -> bool {
        *self.state.borrow() == RTCPeerConnectionState::Connected
    }

    /// Stops negotiating, leaves (`leave`, or `DELETE` of the WHIP/WHEP session) and closes
    /// the peer connection.
    pub async fn leave(self) {
        match self.signaling {
            Signaling::Ws {
                ws_out,
                writer,
                readers,
                ..
            } => {
                for t in &readers {
                    t.abort();
                }
                let _ = ws_out.send(frame(&ClientMessage::Leave, None));
                let _ = self.pc.close().await;
                // Let the writer flush `leave` before it goes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                writer.abort();
            }
            Signaling::Http { addr, location } => {
                let _ = http::request(&addr, "DELETE", &location, &[], "").await;
                let _ = self.pc.close().await;
            }
        }
    }
}

/// A peer connection on 127.0.0.1 (no ICE servers, mDNS off) whose remote tracks feed
/// `receiver`, and its connection state.
async fn peer_connection(
    receiver: Option<&Arc<Receiver>>,
) -> Result<(
    Arc<dyn PeerConnection>,
    watch::Receiver<RTCPeerConnectionState>,
)> {
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (engine, registry) = media_engine()?;
    // mDNS off: joining its multicast group fails inside `unshare -n`.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![NetworkType::Udp4])
        .with_include_loopback_candidate(true)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler {
            state: state_tx,
            receiver: receiver.map(Arc::downgrade),
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .context("building the peer connection")?;
    Ok((Arc::new(pc), state))
}

/// The pumps of negotiated tracks (stream numbers from `first_stream`).
async fn pumps(added: Vec<Added>, first_stream: u32) -> Result<Vec<Pump>> {
    let mut pumps = vec![];
    for (i, a) in added.into_iter().enumerate() {
        let sender = a
            .transceiver
            .sender()
            .await?
            .ok_or_else(|| anyhow!("transceiver without a sender"))?;
        let payload_type = sender
            .get_parameters()
            .await?
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(a.mime))
            .map_or(a.default_pt, |c| c.payload_type);
        pumps.push(Pump {
            media: a.media,
            track: a.track,
            ssrc: a.ssrc,
            payload_type,
            stream: first_stream + i as u32,
        });
    }
    Ok(pumps)
}

/// The polite side of perfect negotiation, one task per participant.
struct Negotiator {
    pc: Arc<dyn PeerConnection>,
    ws_out: mpsc::UnboundedSender<Message>,
    /// Our offer awaits the server's answer.
    outstanding: bool,
    /// An offer is to be sent once none is outstanding.
    want_offer: bool,
    /// Waiters for an offer not sent yet.
    pending: Vec<oneshot::Sender<Result<()>>>,
    /// Waiters for the outstanding offer.
    inflight: Vec<oneshot::Sender<Result<()>>>,
}

impl Negotiator {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SigEvent>) {
        while let Some(event) = rx.recv().await {
            let result = match event {
                SigEvent::Negotiate(done) => {
                    self.pending.push(done);
                    self.want_offer = true;
                    Ok(())
                }
                SigEvent::Offer(sdp) => self.on_offer(sdp).await,
                SigEvent::Answer(sdp) => self.on_answer(sdp).await,
                SigEvent::OfferRejected(err) => self.on_rejected(err).await,
            };
            if let Err(e) = result {
                eprintln!("cascade-load: negotiation: {e:#}");
            }
            if self.want_offer
                && !self.outstanding
                && let Err(e) = self.send_offer().await
            {
                for w in self.pending.drain(..) {
                    let _ = w.send(Err(anyhow!("sending the offer: {e:#}")));
                }
            }
        }
    }

    /// Withdraws our outstanding offer; its waiters wait for the next one.
    async fn rollback(&mut self) -> Result<()> {
        self.outstanding = false;
        self.want_offer = true;
        let mut waiters = std::mem::take(&mut self.inflight);
        waiters.append(&mut self.pending);
        self.pending = waiters;
        self.pc
            .set_local_description(RTCSessionDescription::rollback(None)?)
            .await
            .context("rolling back our offer")
    }

    async fn on_offer(&mut self, sdp: String) -> Result<()> {
        if self.outstanding {
            self.rollback().await?;
        }
        self.pc
            .set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await
            .context("applying the server offer")?;
        let answer = self.pc.create_answer(None).await?;
        let sdp = answer.sdp.clone();
        self.pc.set_local_description(answer).await?;
        self.send(&ClientMessage::Answer { sdp }, None)
    }

    async fn on_answer(&mut self, sdp: String) -> Result<()> {
        if !self.outstanding {
            return Ok(());
        }
        self.outstanding = false;
        let applied = self
            .pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await;
        for w in self.inflight.drain(..) {
            let _ = w.send(match &applied {
                Ok(()) => Ok(()),
                Err(e) => Err(anyhow!("applying the server answer: {e}")),
            });
        }
        Ok(applied?)
    }

    async fn on_rejected(&mut self, err: String) -> Result<()> {
        if !self.outstanding {
            return Ok(());
        }
        for w in self.inflight.drain(..) {
            let _ = w.send(Err(anyhow!("the server refused the offer: {err}")));
        }
        self.rollback().await?;
        self.want_offer = !self.pending.is_empty();
        Ok(())
    }

    async fn send_offer(&mut self) -> Result<()> {
        self.want_offer = false;
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        self.send(&ClientMessage::Offer { sdp }, Some("offer"))?;
        self.outstanding = true;
        self.inflight.append(&mut self.pending);
        Ok(())
    }

    fn send(&self, msg: &ClientMessage, reference: Option<&str>) -> Result<()> {
        self.ws_out
            .send(frame(msg, reference))
            .map_err(|_| anyhow!("WebSocket writer is gone"))
    }
}
