//! A scriptable Cascade client for the integration tests: Cascade's WebSocket JSON protocol
//! plus a webrtc-rs (`webrtc = 0.21`, tokio) peer connection.
//!
//! ```ignore
//! let alice = TestClient::connect(&ws_url).await?;
//! alice.join(&token_a, true).await?;
//! let published = alice.publish(true, true).await?;
//! published.send_video(0).await?; // counter 0: a key frame
//!
//! let bob = TestClient::connect(&ws_url).await?;
//! bob.join(&token_b, true).await?;
//! let pkts = bob.wait_for_packets(&track_id, 1, DEFAULT_TIMEOUT).await?;
//! assert_eq!(pkts[0].counter(), Some(0));
//! ```
//!
//! Use a multi-threaded runtime: `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
//!
//! Negotiation follows Cascade's perfect negotiation with the client as the **polite** peer: a
//! server offer that arrives while the client's own offer is outstanding rolls that offer
//! back, is answered, and the client then offers again. Every wait has a timeout; errors are
//! `anyhow::Error`s with context.
//!
//! The peer connection binds one UDP socket on `127.0.0.1:0` (so it only ever produces a
//! loopback host candidate, which is what the tests inside `unshare -n` need), has no ICE
//! servers, and restricts ICE to UDP over IPv4.
//!
//! Payload layout: see [`payload`].

#![allow(dead_code)]

pub mod payload;
pub mod relay;
pub mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender};

#[allow(unused_imports)]
pub use payload::{is_keyframe_counter, payload_counter, vp8_is_keyframe};
#[allow(unused_imports)]
pub use wire::{RtcpRecord, RtcpType, RtpRecord};

/// Default timeout of every wait (used by `join`, `publish`, `leave`, ...).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opus payload type the client registers.
pub const OPUS_PT: u8 = 111;
/// VP8 payload type the client registers.
pub const VP8_PT: u8 = 96;
/// RTX (for VP8) payload type the client registers when [`ClientConfig::rtx`] is set.
pub const RTX_PT: u8 = 97;

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// Audio (Opus).
    Audio,
    /// Video (VP8).
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as in Cascade's protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    fn codec_kind(self) -> RtpCodecKind {
        match self {
            Self::Audio => RtpCodecKind::Audio,
            Self::Video => RtpCodecKind::Video,
        }
    }

    fn from_codec_kind(kind: RtpCodecKind) -> Option<Self> {
        match kind {
            RtpCodecKind::Audio => Some(Self::Audio),
            RtpCodecKind::Video => Some(Self::Video),
            _ => None,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of a [`TestClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Timeout of the built-in waits (`join`, `publish`, `leave`, `close`).
    pub timeout: Duration,
    /// Register RTX (`video/rtx` PT 97, `apt=96`). On by default, like browsers: without RTX a
    /// retransmission reuses the original SSRC and sequence number, and the client's SRTP replay
    /// protection drops it if the original was received.
    pub rtx: bool,
    /// Local UDP address the peer connection binds; the only host candidate it gathers.
    pub udp_addr: String,
    /// `(from, to)`: replaces `from` with `to` in every server SDP before it is applied (e.g.
    /// to send media through a [`relay::Relay`] by rewriting the server's candidate).
    pub rewrite_server_sdp: Option<(String, String)>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            rtx: true,
            udp_addr: "127.0.0.1:0".to_owned(),
            rewrite_server_sdp: None,
        }
    }
}

impl ClientConfig {
    /// A server SDP as this client applies it (see `rewrite_server_sdp`).
    fn rewrite(&self, sdp: String) -> String {
        match &self.rewrite_server_sdp {
            Some((from, to)) => sdp.replace(from.as_str(), to),
            None => sdp,
        }
    }
}

/// A server `error` message, or (code `client_error`) a failure on the client's side.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorMsg {
    /// The error code (`unauthorized`, `room_full`, ...), or `client_error`.
    pub code: String,
    /// The explanation.
    pub message: String,
    /// The echoed `ref`, if any.
    pub reference: Option<Value>,
    /// The whole message (`Value::Null` for a client-side failure).
    pub raw: Value,
}

impl ErrorMsg {
    /// Code of client-side failures (timeouts, closed connection, webrtc errors).
    pub const CLIENT_ERROR: &'static str = "client_error";

    /// Reads a server `error` message; `None` if `msg` is not one.
    pub fn from_message(msg: &Value) -> Option<Self> {
        (msg["type"] == "error").then(|| Self {
            code: msg["code"].as_str().unwrap_or_default().to_owned(),
            message: msg["message"].as_str().unwrap_or_default().to_owned(),
            reference: msg.get("ref").filter(|r| !r.is_null()).cloned(),
            raw: msg.clone(),
        })
    }

    /// Wraps a client-side failure.
    pub fn client(err: anyhow::Error) -> Self {
        Self {
            code: Self::CLIENT_ERROR.to_owned(),
            message: format!("{err:#}"),
            reference: None,
            raw: Value::Null,
        }
    }

    /// Whether this came from the server (not a client-side failure).
    pub fn is_server_error(&self) -> bool {
        self.code != Self::CLIENT_ERROR
    }
}

impl fmt::Display for ErrorMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ErrorMsg {}

/// How the WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// Close code of the server's close frame; `None` if the stream ended without one.
    pub code: Option<u16>,
    /// Close reason, or a description of how the stream ended.
    pub reason: String,
}

/// One RTP packet received on a remote (forwarded) track, as the application sees it (after
/// SRTP and RTX de-encapsulation).
#[derive(Debug, Clone)]
pub struct ReceivedPacket {
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// Kind of the track it arrived on.
    pub kind: MediaKind,
    /// Mid of the m-line it arrived on, if known.
    pub mid: Option<String>,
    /// Whether a packet with the same sequence number had already arrived on this track
    /// (e.g. a retransmission).
    pub duplicate: bool,
    /// When it arrived.
    pub at: Instant,
}

impl ReceivedPacket {
    /// The counter the test client wrote (see [`payload`]), if it is one of its payloads.
    pub fn counter(&self) -> Option<u32> {
        payload_counter(self.kind, &self.payload)
    }

    /// For video, whether the payload starts a VP8 key frame.
    pub fn is_keyframe(&self) -> bool {
        self.kind == MediaKind::Video && vp8_is_keyframe(&self.payload) == Some(true)
    }
}

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

/// Counters of the client's offer/answer exchanges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NegotiationStats {
    /// Offers the client sent.
    pub offers_sent: u32,
    /// Server answers applied.
    pub answers_applied: u32,
    /// Server offers answered.
    pub server_offers_answered: u32,
    /// Client offers rolled back because a server offer arrived (glare).
    pub rollbacks: u32,
}

/// A remote track as delivered by `on_track`.
struct RemoteTrack {
    track: Arc<dyn TrackRemote>,
    msid: String,
    stream_id: String,
    kind: MediaKind,
    mid: Option<String>,
    ssrc: Option<u32>,
    ended: bool,
    /// (SSRC, sequence number) of every packet received, to flag duplicates.
    seen: std::collections::HashSet<(u32, u16)>,
}

#[derive(Default)]
struct MediaState {
    /// mid -> Cascade track id, from the latest server offer (set before it is answered).
    mid_map: BTreeMap<String, String>,
    /// The same, from the latest server offer the client has answered.
    answered_map: BTreeMap<String, String>,
    remotes: Vec<RemoteTrack>,
    packets: HashMap<String, Vec<ReceivedPacket>>,
}

impl MediaState {
    /// The Cascade track id a remote track currently stands for: via its mid and the latest
    /// server offer's `tracks`, else its msid track id, else its stream id.
    fn key_of(&self, remote: &RemoteTrack) -> String {
        remote
            .mid
            .as_ref()
            .and_then(|mid| self.mid_map.get(mid))
            .cloned()
            .or_else(|| (!remote.msid.is_empty()).then(|| remote.msid.clone()))
            .unwrap_or_else(|| remote.stream_id.clone())
    }
}

#[derive(Default)]
struct MessageState {
    pending: VecDeque<Value>,
    history: Vec<Value>,
    closed: Option<CloseInfo>,
}

#[derive(Default)]
struct SigState {
    stats: NegotiationStats,
    errors: Vec<String>,
}

/// State shared by the client, its tasks and the peer connection's event handler.
struct Shared {
    config: ClientConfig,
    ws_out: mpsc::UnboundedSender<Message>,
    messages: Mutex<MessageState>,
    messages_changed: watch::Sender<u64>,
    media: Mutex<MediaState>,
    media_changed: watch::Sender<u64>,
    pc_state: watch::Sender<RTCPeerConnectionState>,
    pc: Mutex<Option<Weak<dyn PeerConnection>>>,
    wire: wire::WireRecorderHandle,
    local_ssrcs: Mutex<HashMap<u32, MediaKind>>,
    first_mid: Mutex<String>,
    sig: Mutex<SigState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    rtcp_ssrc: u32,
    created: Instant,
}

impl Shared {
    fn send_json(&self, value: &Value) -> Result<()> {
        self.ws_out
            .send(Message::text(value.to_string()))
            .map_err(|_| anyhow!("WebSocket writer is gone"))
    }

    fn sig_error(&self, err: String) {
        eprintln!("[test client] signaling error: {err}");
        self.sig.lock().expect("sig").errors.push(err);
    }

    fn push_message(&self, value: Value) {
        {
            let mut m = self.messages.lock().expect("messages");
            m.history.push(value.clone());
            m.pending.push_back(value);
        }
        self.messages_changed.send_modify(|g| *g += 1);
    }

    fn set_closed(&self, info: CloseInfo) {
        {
            let mut m = self.messages.lock().expect("messages");
            if m.closed.is_none() {
                m.closed = Some(info);
            }
        }
        self.messages_changed.send_modify(|g| *g += 1);
    }

    fn pc(&self) -> Option<Arc<dyn PeerConnection>> {
        self.pc.lock().expect("pc").as_ref().and_then(Weak::upgrade)
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        self.tasks.lock().expect("tasks").push(handle);
    }
}

/// Waits until `check` returns `Some`, re-checking whenever `changed` is bumped.
async fn wait_for<T, W>(
    changed: &watch::Sender<W>,
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut rx = changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        rx.borrow_and_update();
        if let Some(v) = check()? {
            return Ok(v);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("{}: client dropped", what()),
            Err(_) => bail!("timed out after {timeout:?} waiting for {}", what()),
        }
    }
}

/// A pseudo-random `u32` (std only: hashes the time with a randomly keyed hasher).
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

/// The first `a=mid:` of an SDP.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn vp8_codec() -> RTCRtpCodec {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![
            fb("goog-remb", ""),
            fb("ccm", "fir"),
            fb("nack", ""),
            fb("nack", "pli"),
            fb("transport-cc", ""),
        ],
    }
}

/// The media engine and interceptors of the client: Opus/111, VP8/96 (nack, nack pli,
/// ccm fir, goog-remb, transport-cc), optionally RTX/97; webrtc-rs's default interceptors
/// (NACK generator/responder, RR/SR, TWCC receiver, simulcast header extensions) plus the
/// [`wire::WireRecorder`] nearest the wire.
fn media_setup(
    config: &ClientConfig,
    wire: &wire::WireRecorderHandle,
) -> Result<(MediaEngine, Registry)> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PT,
        },
        RtpCodecKind::Audio,
    )?;
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8_codec(),
            payload_type: VP8_PT,
        },
        RtpCodecKind::Video,
    )?;
    if config.rtx {
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={VP8_PT}"),
                    rtcp_feedback: vec![],
                },
                payload_type: RTX_PT,
            },
            RtpCodecKind::Video,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut engine)?
        .with(Slot::Custom(100), wire.interceptor());
    Ok((engine, registry))
}

/// Receives the peer connection's events.
struct Handler {
    shared: Weak<Shared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        match event.candidate.to_json() {
            Ok(init) => {
                let mid = shared.first_mid.lock().expect("mid").clone();
                let msg = json!({
                    "type": "candidate",
                    "candidate": {
                        "candidate": init.candidate,
                        "sdp_mid": mid,
                        "sdp_mline_index": 0,
                    },
                });
                if let Err(e) = shared.send_json(&msg) {
                    shared.sig_error(format!("sending local candidate: {e:#}"));
                }
            }
            Err(e) => shared.sig_error(format!("local candidate to_json: {e}")),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Some(shared) = self.shared.upgrade() {
            shared.pc_state.send_replace(state);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(shared) = self.shared.upgrade() {
            let weak = Arc::downgrade(&shared);
            shared.spawn(read_remote_track(weak, track));
        }
    }
}

/// The mid of the transceiver whose receiver carries `track`.
async fn mid_of(pc: &Arc<dyn PeerConnection>, track: &Arc<dyn TrackRemote>) -> Option<String> {
    for t in pc.get_transceivers().await {
        let Ok(Some(r)) = t.receiver().await else {
            continue;
        };
        if std::ptr::addr_eq(Arc::as_ptr(r.track()), Arc::as_ptr(track)) {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

/// Records every packet of one remote track, keyed by Cascade track id.
async fn read_remote_track(shared: Weak<Shared>, track: Arc<dyn TrackRemote>) {
    let kind = MediaKind::from_codec_kind(track.kind().await).unwrap_or(MediaKind::Video);
    let msid = track.track_id().await.to_string();
    let stream_id = track.stream_id().await.to_string();
    let pc = shared.upgrade().and_then(|s| s.pc());
    let mid = match &pc {
        Some(pc) => mid_of(pc, &track).await,
        None => None,
    };
    drop(pc);
    let index = {
        let Some(s) = shared.upgrade() else { return };
        let index = {
            let mut media = s.media.lock().expect("media");
            media.remotes.push(RemoteTrack {
                track: track.clone(),
                msid,
                stream_id,
                kind,
                mid,
                ssrc: None,
                ended: false,
                seen: Default::default(),
            });
            media.remotes.len() - 1
        };
        s.media_changed.send_modify(|g| *g += 1);
        index
    };
    while let Some(event) = track.poll().await {
        let Some(s) = shared.upgrade() else { return };
        match event {
            TrackRemoteEvent::OnOpen(init) => {
                let mut media = s.media.lock().expect("media");
                media.remotes[index].ssrc.get_or_insert(init.ssrc);
            }
            TrackRemoteEvent::OnRtpPacket(p) => {
                let mut media = s.media.lock().expect("media");
                let key = media.key_of(&media.remotes[index]);
                let remote = &mut media.remotes[index];
                // The latest SSRC: a reused m-line may carry a new source.
                remote.ssrc = Some(p.header.ssrc);
                let duplicate = !remote
                    .seen
                    .insert((p.header.ssrc, p.header.sequence_number));
                let packet = ReceivedPacket {
                    seq: p.header.sequence_number,
                    ts: p.header.timestamp,
                    ssrc: p.header.ssrc,
                    pt: p.header.payload_type,
                    marker: p.header.marker,
                    payload: p.payload,
                    kind,
                    mid: remote.mid.clone(),
                    duplicate,
                    at: Instant::now(),
                };
                media.packets.entry(key).or_default().push(packet);
            }
            TrackRemoteEvent::OnEnded => {
                s.media.lock().expect("media").remotes[index].ended = true;
                s.media_changed.send_modify(|g| *g += 1);
                return;
            }
            _ => continue,
        }
        s.media_changed.send_modify(|g| *g += 1);
    }
}

/// Inputs of the negotiation task.
enum SigEvent {
    ServerOffer {
        sdp: String,
        tracks: BTreeMap<String, String>,
    },
    ServerAnswer {
        sdp: String,
    },
    ServerCandidate(Value),
    /// The server answered one of the client's offers with an `error` (matched by `ref`).
    OfferRejected(ErrorMsg),
    /// Send an offer; report when its answer is applied.
    Negotiate(oneshot::Sender<Result<()>>),
    /// Send an ICE-restart offer (new local credentials); report when its answer is applied.
    RestartIce(oneshot::Sender<Result<()>>),
}

/// The polite side of perfect negotiation.
struct Negotiator {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    offer_outstanding: bool,
    offer_ref: String,
    offers: u32,
    want_offer: bool,
    /// Waiters not yet covered by a sent offer.
    pending: Vec<oneshot::Sender<Result<()>>>,
    /// Waiters covered by the outstanding offer.
    inflight: Vec<oneshot::Sender<Result<()>>>,
    have_remote: bool,
    queued_candidates: Vec<RTCIceCandidateInit>,
    /// The next offer restarts ICE.
    restart_ice: bool,
}

impl Negotiator {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SigEvent>) {
        while let Some(event) = rx.recv().await {
            match event {
                SigEvent::Negotiate(done) => {
                    self.pending.push(done);
                    self.want_offer = true;
                }
                SigEvent::RestartIce(done) => {
                    self.pending.push(done);
                    self.want_offer = true;
                    self.restart_ice = true;
                }
                SigEvent::ServerOffer { sdp, tracks } => self.on_server_offer(sdp, tracks).await,
                SigEvent::ServerAnswer { sdp } => self.on_server_answer(sdp).await,
                SigEvent::ServerCandidate(c) => self.on_server_candidate(c).await,
                SigEvent::OfferRejected(err) => self.on_offer_rejected(err).await,
            }
            if self.want_offer && !self.offer_outstanding {
                self.send_offer().await;
            }
        }
    }

    fn fail(waiters: &mut Vec<oneshot::Sender<Result<()>>>, err: &anyhow::Error) {
        for w in waiters.drain(..) {
            let _ = w.send(Err(anyhow!("{err:#}")));
        }
    }

    async fn rollback(&mut self) -> Result<()> {
        self.offer_outstanding = false;
        self.want_offer = true;
        let mut inflight = std::mem::take(&mut self.inflight);
        inflight.append(&mut self.pending);
        self.pending = inflight;
        self.pc
            .set_local_description(RTCSessionDescription::rollback(None)?)
            .await
            .context("rolling back the client's offer")
    }

    async fn on_server_offer(&mut self, sdp: String, tracks: BTreeMap<String, String>) {
        if self.offer_outstanding {
            // Glare: the server (impolite) ignores our offer; we roll ours back.
            if let Err(e) = self.rollback().await {
                self.shared.sig_error(format!("{e:#}"));
            }
            self.shared.sig.lock().expect("sig").stats.rollbacks += 1;
        }
        {
            self.shared.media.lock().expect("media").mid_map = tracks.clone();
        }
        self.shared.media_changed.send_modify(|g| *g += 1);
        let result: Result<()> = async {
            let sdp = self.shared.config.rewrite(sdp);
            let offer = RTCSessionDescription::offer(sdp).context("parsing the server offer")?;
            self.pc
                .set_remote_description(offer)
                .await
                .context("applying the server offer")?;
            self.have_remote = true;
            self.flush_candidates().await;
            let answer = self.pc.create_answer(None).await.context("create_answer")?;
            if let Some(mid) = first_mid(&answer.sdp) {
                *self.shared.first_mid.lock().expect("mid") = mid;
            }
            let sdp = answer.sdp.clone();
            self.pc
                .set_local_description(answer)
                .await
                .context("applying the local answer")?;
            self.offers += 1;
            self.shared.send_json(&json!({
                "type": "answer",
                "sdp": sdp,
                "ref": format!("answer-{}", self.offers),
            }))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.shared
                    .sig
                    .lock()
                    .expect("sig")
                    .stats
                    .server_offers_answered += 1;
                self.shared.media.lock().expect("media").answered_map = tracks;
                self.shared.media_changed.send_modify(|g| *g += 1);
            }
            Err(e) => self.shared.sig_error(format!("{e:#}")),
        }
    }

    async fn on_server_answer(&mut self, sdp: String) {
        if !self.offer_outstanding {
            self.shared
                .sig_error("server answer without an outstanding client offer".to_owned());
            return;
        }
        self.offer_outstanding = false;
        let result: Result<()> = async {
            let sdp = self.shared.config.rewrite(sdp);
            let answer = RTCSessionDescription::answer(sdp).context("parsing the server answer")?;
            self.pc
                .set_remote_description(answer)
                .await
                .context("applying the server answer")
        }
        .await;
        match result {
            Ok(()) => {
                self.have_remote = true;
                self.flush_candidates().await;
                self.shared.sig.lock().expect("sig").stats.answers_applied += 1;
                for w in self.inflight.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => {
                self.shared.sig_error(format!("{e:#}"));
                Self::fail(&mut self.inflight, &e);
                if let Err(e) = self.rollback().await {
                    self.shared.sig_error(format!("{e:#}"));
                }
                self.want_offer = false;
                Self::fail(&mut self.pending, &anyhow!("previous offer failed"));
            }
        }
    }

    async fn on_offer_rejected(&mut self, err: ErrorMsg) {
        if !self.offer_outstanding || err.reference != Some(Value::from(self.offer_ref.clone())) {
            return;
        }
        let e = anyhow::Error::new(err).context("the server rejected the client's offer");
        Self::fail(&mut self.inflight, &e);
        if let Err(e) = self.rollback().await {
            self.shared.sig_error(format!("{e:#}"));
        }
        // Only waiters that arrived after the rejected offer get a new one.
        self.want_offer = !self.pending.is_empty();
    }

    async fn on_server_candidate(&mut self, c: Value) {
        let candidate = c["candidate"].as_str().unwrap_or_default().to_owned();
        if candidate.is_empty() {
            return; // end-of-candidates
        }
        let init = RTCIceCandidateInit {
            candidate,
            sdp_mid: c["sdp_mid"].as_str().map(str::to_owned),
            sdp_mline_index: c["sdp_mline_index"].as_u64().map(|i| i as u16),
            username_fragment: c["username_fragment"].as_str().map(str::to_owned),
            ..Default::default()
        };
        if self.have_remote {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                self.shared.sig_error(format!("add_ice_candidate: {e}"));
            }
        } else {
            self.queued_candidates.push(init);
        }
    }

    async fn flush_candidates(&mut self) {
        for init in std::mem::take(&mut self.queued_candidates) {
            if let Err(e) = self.pc.add_ice_candidate(init).await {
                self.shared.sig_error(format!("add_ice_candidate: {e}"));
            }
        }
    }

    async fn send_offer(&mut self) {
        self.want_offer = false;
        let result: Result<()> = async {
            let options = std::mem::take(&mut self.restart_ice).then_some(
                rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true },
            );
            let offer = self
                .pc
                .create_offer(options)
                .await
                .context("create_offer")?;
            if let Some(mid) = first_mid(&offer.sdp) {
                *self.shared.first_mid.lock().expect("mid") = mid;
            }
            let sdp = offer.sdp.clone();
            self.pc
                .set_local_description(offer)
                .await
                .context("applying the local offer")?;
            self.offers += 1;
            self.offer_ref = format!("offer-{}", self.offers);
            self.shared
                .send_json(&json!({"type": "offer", "sdp": sdp, "ref": self.offer_ref}))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                self.offer_outstanding = true;
                self.shared.sig.lock().expect("sig").stats.offers_sent += 1;
                self.inflight.append(&mut self.pending);
            }
            Err(e) => {
                self.shared.sig_error(format!("{e:#}"));
                Self::fail(&mut self.pending, &e);
            }
        }
    }
}

/// Reads server frames: buffers every message and forwards signaling to the negotiator.
async fn read_ws(
    shared: Arc<Shared>,
    mut stream: SplitStream<WsStream>,
    sig_tx: mpsc::UnboundedSender<SigEvent>,
) {
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(Message::Text(text)) => {
                let value: Value = match serde_json::from_str(text.as_str()) {
                    Ok(v) => v,
                    Err(_) => json!({"type": "<not json>", "raw": text.as_str()}),
                };
                let event = match value["type"].as_str() {
                    Some("offer") => Some(SigEvent::ServerOffer {
                        sdp: value["sdp"].as_str().unwrap_or_default().to_owned(),
                        tracks: value["tracks"]
                            .as_object()
                            .map(|o| {
                                o.iter()
                                    .map(|(k, v)| {
                                        (k.clone(), v.as_str().unwrap_or_default().to_owned())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    }),
                    Some("answer") => Some(SigEvent::ServerAnswer {
                        sdp: value["sdp"].as_str().unwrap_or_default().to_owned(),
                    }),
                    Some("candidate") => {
                        Some(SigEvent::ServerCandidate(value["candidate"].clone()))
                    }
                    Some("error")
                        if value["ref"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("offer-")) =>
                    {
                        ErrorMsg::from_message(&value).map(SigEvent::OfferRejected)
                    }
                    _ => None,
                };
                if let Some(event) = event {
                    let _ = sig_tx.send(event);
                }
                shared.push_message(value);
            }
            Ok(Message::Binary(b)) => {
                shared.push_message(json!({"type": "<binary>", "len": b.len()}))
            }
            Ok(Message::Close(frame)) => {
                shared.set_closed(CloseInfo {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.set_closed(CloseInfo {
                    code: None,
                    reason: format!("WebSocket error: {e}"),
                });
                return;
            }
        }
    }
    shared.set_closed(CloseInfo {
        code: None,
        reason: "WebSocket stream ended without a close frame".to_owned(),
    });
}

/// Writes queued frames to the WebSocket.
async fn write_ws(
    mut sink: SplitSink<WsStream, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    while let Some(msg) = rx.recv().await {
        let close = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || close {
            return;
        }
    }
}

/// A published local track.
pub struct LocalTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRC it sends with.
    pub ssrc: u32,
    /// The negotiated payload type (Opus or VP8).
    pub payload_type: u8,
    /// Its mid after negotiation.
    pub mid: Option<String>,
    /// Its msid track id (the client's, not Cascade's `TR_` id).
    pub track_id: String,
    /// Its msid stream id.
    pub stream_id: String,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    /// Next (sequence number, timestamp).
    next: Mutex<(u16, u32)>,
}

impl LocalTrack {
    /// Sends one packet whose payload carries `counter` ([`payload::payload_for`]); for
    /// video, `counter % 30 == 0` is a key frame. Returns the packet's sequence number.
    pub async fn send(&self, counter: u32) -> Result<u16> {
        self.send_payload(
            payload::payload_for(self.kind, counter),
            self.kind == MediaKind::Video,
        )
        .await
    }

    /// Sends a video packet carrying `counter`, a key frame if `keyframe`.
    pub async fn send_frame(&self, counter: u32, keyframe: bool) -> Result<u16> {
        let payload = match self.kind {
            MediaKind::Audio => payload::audio_payload(counter),
            MediaKind::Video => payload::video_payload(counter, keyframe),
        };
        self.send_payload(payload, self.kind == MediaKind::Video)
            .await
    }

    /// Sends `payload` with the track's next sequence number and timestamp.
    pub async fn send_payload(&self, payload: Bytes, marker: bool) -> Result<u16> {
        let step = match self.kind {
            MediaKind::Audio => payload::AUDIO_TS_STEP,
            MediaKind::Video => payload::VIDEO_TS_STEP,
        };
        let (seq, ts) = {
            let mut next = self.next.lock().expect("seq");
            let cur = *next;
            *next = (cur.0.wrapping_add(1), cur.1.wrapping_add(step));
            cur
        };
        let packet = rtp::Packet {
            header: rtp::Header {
                version: 2,
                marker,
                payload_type: self.payload_type,
                sequence_number: seq,
                timestamp: ts,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        self.send_raw(packet).await?;
        Ok(seq)
    }

    /// Writes `packet` as is, except that its SSRC is set to the track's (webrtc-rs drops
    /// packets whose SSRC is not the sender's). The payload type must be a negotiated one.
    /// The track's own sequence/timestamp counters are not touched.
    pub async fn send_raw(&self, mut packet: rtp::Packet) -> Result<()> {
        packet.header.ssrc = self.ssrc;
        self.track
            .write_rtp(packet)
            .await
            .with_context(|| format!("write_rtp on the {} track", self.kind))
    }

    /// The sequence number and timestamp the next [`LocalTrack::send`] uses.
    pub fn next_seq_ts(&self) -> (u16, u32) {
        *self.next.lock().expect("seq")
    }

    /// Sets the sequence number and timestamp of the next packet (e.g. to test wrap-around).
    pub fn set_next_seq_ts(&self, seq: u16, ts: u32) {
        *self.next.lock().expect("seq") = (seq, ts);
    }

    /// Writes RTCP on this track's sender (e.g. a sender report of your own).
    pub async fn write_rtcp(&self, packets: Vec<Box<dyn rtcp::Packet>>) -> Result<()> {
        self.track.write_rtcp(packets).await.context("write_rtcp")
    }
}

/// The tracks a [`TestClient::publish`] added.
pub struct Published {
    /// The audio track, if published.
    pub audio: Option<Arc<LocalTrack>>,
    /// The video track, if published.
    pub video: Option<Arc<LocalTrack>>,
}

impl Published {
    /// The track of `kind`, or an error if it was not published.
    pub fn track(&self, kind: MediaKind) -> Result<&Arc<LocalTrack>> {
        match kind {
            MediaKind::Audio => self.audio.as_ref(),
            MediaKind::Video => self.video.as_ref(),
        }
        .ok_or_else(|| anyhow!("no {kind} track was published"))
    }

    /// Sends an audio packet carrying `counter`.
    pub async fn send_audio(&self, counter: u32) -> Result<u16> {
        self.track(MediaKind::Audio)?.send(counter).await
    }

    /// Sends a video packet carrying `counter` (a key frame when `counter % 30 == 0`).
    pub async fn send_video(&self, counter: u32) -> Result<u16> {
        self.track(MediaKind::Video)?.send(counter).await
    }

    /// Sends a packet of `kind` carrying `counter`.
    pub async fn send(&self, kind: MediaKind, counter: u32) -> Result<u16> {
        self.track(kind)?.send(counter).await
    }

    /// Writes a hand-made packet on the `kind` track (SSRC forced to the track's).
    pub async fn send_rtp_raw(&self, kind: MediaKind, packet: rtp::Packet) -> Result<()> {
        self.track(kind)?.send_raw(packet).await
    }

    /// Starts a background task sending `count` packets of `kind` with counters `first..`, one
    /// every `period`. Stops when done, on [`MediaPump::stop`], or when the pump is dropped.
    pub fn pump(
        &self,
        kind: MediaKind,
        first: u32,
        count: u32,
        period: Duration,
    ) -> Result<MediaPump> {
        let track = self.track(kind)?.clone();
        let sent = Arc::new(AtomicU32::new(0));
        let failed = Arc::new(AtomicBool::new(false));
        let (s, f) = (sent.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for i in 0..count {
                tick.tick().await;
                if track.send(first.wrapping_add(i)).await.is_err() {
                    f.store(true, Ordering::Relaxed);
                    return;
                }
                s.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(MediaPump { task, sent, failed })
    }
}

/// A background sender started by [`Published::pump`].
pub struct MediaPump {
    task: JoinHandle<()>,
    sent: Arc<AtomicU32>,
    failed: Arc<AtomicBool>,
}

impl MediaPump {
    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether a write failed (the pump then stopped).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether it has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for MediaPump {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Cascade test client: one WebSocket session plus (after `join`/`publish`) one peer
/// connection.
pub struct TestClient {
    shared: Arc<Shared>,
    pc: tokio::sync::Mutex<Option<Arc<dyn PeerConnection>>>,
    sig_tx: mpsc::UnboundedSender<SigEvent>,
    sig_rx: Mutex<Option<mpsc::UnboundedReceiver<SigEvent>>>,
    ws_tasks: Vec<JoinHandle<()>>,
    joins: AtomicU32,
}

impl TestClient {
    /// Opens the WebSocket at `ws_url` (e.g. `ws://127.0.0.1:PORT/ws`) with the default
    /// [`ClientConfig`].
    pub async fn connect(ws_url: &str) -> Result<Self> {
        Self::connect_with(ws_url, ClientConfig::default()).await
    }

    /// Opens the WebSocket at `ws_url` with `config`.
    pub async fn connect_with(ws_url: &str, config: ClientConfig) -> Result<Self> {
        let (ws, _response) =
            tokio::time::timeout(config.timeout, tokio_tungstenite::connect_async(ws_url))
                .await
                .with_context(|| format!("timed out connecting to {ws_url}"))?
                .with_context(|| format!("WebSocket connect to {ws_url}"))?;
        let (sink, stream) = ws.split();
        let (ws_out, ws_rx) = mpsc::unbounded_channel();
        let (sig_tx, sig_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            ws_out,
            messages: Mutex::default(),
            messages_changed: watch::channel(0).0,
            media: Mutex::default(),
            media_changed: watch::channel(0).0,
            pc_state: watch::channel(RTCPeerConnectionState::New).0,
            pc: Mutex::new(None),
            wire: wire::WireRecorderHandle::new(),
            local_ssrcs: Mutex::default(),
            first_mid: Mutex::new("0".to_owned()),
            sig: Mutex::default(),
            tasks: Mutex::default(),
            rtcp_ssrc: random_u32() | 1,
            created: Instant::now(),
        });
        let ws_tasks = vec![
            tokio::spawn(write_ws(sink, ws_rx)),
            tokio::spawn(read_ws(shared.clone(), stream, sig_tx.clone())),
        ];
        Ok(Self {
            shared,
            pc: tokio::sync::Mutex::new(None),
            sig_tx,
            sig_rx: Mutex::new(Some(sig_rx)),
            ws_tasks,
            joins: AtomicU32::new(0),
        })
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Creates the peer connection (and starts negotiating with the server) if not done yet.
    /// `join` and `publish` call this; call it yourself before a hand-made `join` sent with
    /// [`TestClient::send_json`] if the server's offers must be answered.
    pub async fn ensure_peer_connection(&self) -> Result<Arc<dyn PeerConnection>> {
        let mut guard = self.pc.lock().await;
        if let Some(pc) = guard.as_ref() {
            return Ok(pc.clone());
        }
        let (engine, registry) = media_setup(&self.shared.config, &self.shared.wire)?;
        // mDNS off: its default (query-only) joins a multicast group, which fails with ENODEV
        // inside `unshare -n` (loopback only) and aborts the peer connection's construction.
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(vec![NetworkType::Udp4])
            .with_include_loopback_candidate(true)
            .build();
        let handler = Arc::new(Handler {
            shared: Arc::downgrade(&self.shared),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(vec![self.shared.config.udp_addr.clone()])
            .build()
            .await
            .context("building the peer connection")?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        *self.shared.pc.lock().expect("pc") = Some(Arc::downgrade(&pc));
        let rx = self
            .sig_rx
            .lock()
            .expect("sig_rx")
            .take()
            .ok_or_else(|| anyhow!("negotiation task already started"))?;
        let negotiator = Negotiator {
            pc: pc.clone(),
            shared: self.shared.clone(),
            offer_outstanding: false,
            offer_ref: String::new(),
            offers: 0,
            want_offer: false,
            pending: vec![],
            inflight: vec![],
            have_remote: false,
            queued_candidates: vec![],
            restart_ice: false,
        };
        self.shared.spawn(negotiator.run(rx));
        *guard = Some(pc.clone());
        Ok(pc)
    }

    /// Sends `join` (with a `ref`) and waits for `joined`, or for an `error` that carries that
    /// `ref` or none. A server error comes back as its [`ErrorMsg`]; a client-side failure as
    /// an `ErrorMsg` with code `client_error`.
    pub async fn join(&self, token: &str, auto_subscribe: bool) -> Result<Value, ErrorMsg> {
        self.join_inner(token, None, auto_subscribe).await
    }

    /// [`TestClient::join`] naming the expected `room` as well.
    pub async fn join_room(
        &self,
        token: &str,
        room: &str,
        auto_subscribe: bool,
    ) -> Result<Value, ErrorMsg> {
        self.join_inner(token, Some(room), auto_subscribe).await
    }

    async fn join_inner(
        &self,
        token: &str,
        room: Option<&str>,
        auto_subscribe: bool,
    ) -> Result<Value, ErrorMsg> {
        self.ensure_peer_connection()
            .await
            .map_err(ErrorMsg::client)?;
        let reference = format!("join-{}", self.joins.fetch_add(1, Ordering::Relaxed) + 1);
        let mut join = json!({
            "type": "join",
            "token": token,
            "auto_subscribe": auto_subscribe,
            "ref": reference,
        });
        if let Some(room) = room {
            join["room"] = Value::from(room);
        }
        self.send_json(&join).await.map_err(ErrorMsg::client)?;
        let r = reference.clone();
        let msg = self
            .next_message(
                move |m| {
                    m["type"] == "joined"
                        || (m["type"] == "error" && (m["ref"].is_null() || m["ref"] == r.as_str()))
                },
                self.shared.config.timeout,
            )
            .await
            .map_err(|e| ErrorMsg::client(e.context("waiting for joined")))?;
        match ErrorMsg::from_message(&msg) {
            Some(err) => Err(err),
            None => Ok(msg),
        }
    }

    /// Adds a send-only Opus and/or VP8 track (`TrackLocalStaticRTP`, random SSRC), offers,
    /// waits for the server's answer to be applied and for the peer connection to be
    /// connected (packets written before DTLS/SRTP is up would be dropped silently).
    ///
    /// A server `error` answering the offer fails this with that [`ErrorMsg`] in the chain
    /// (`err.downcast_ref::<ErrorMsg>()`).
    pub async fn publish(&self, audio: bool, video: bool) -> Result<Published> {
        let pc = self.ensure_peer_connection().await?;
        let stream_id = format!("cascade-test-{:08x}", random_u32());
        let mut added = vec![];
        for (wanted, kind) in [(audio, MediaKind::Audio), (video, MediaKind::Video)] {
            if !wanted {
                continue;
            }
            let ssrc = random_u32() | 1;
            let codec = match kind {
                MediaKind::Audio => opus_codec(),
                MediaKind::Video => RTCRtpCodec {
                    rtcp_feedback: vec![],
                    ..vp8_codec()
                },
            };
            let track_id = format!("{stream_id}-{kind}");
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                stream_id.clone(),
                track_id.clone(),
                track_id.clone(),
                kind.codec_kind(),
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec,
                    ..Default::default()
                }],
            )));
            let transceiver = pc
                .add_transceiver_from_track(
                    track.clone(),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        streams: vec![stream_id.clone()],
                        send_encodings: vec![],
                    }),
                )
                .await
                .with_context(|| format!("adding the {kind} transceiver"))?;
            self.shared
                .local_ssrcs
                .lock()
                .expect("ssrcs")
                .insert(ssrc, kind);
            added.push((kind, ssrc, track_id, track, transceiver));
        }
        self.negotiate().await.context("publishing")?;
        self.wait_connected(self.shared.config.timeout).await?;

        let mut published = Published {
            audio: None,
            video: None,
        };
        for (kind, ssrc, track_id, track, transceiver) in added {
            let sender = transceiver
                .sender()
                .await?
                .ok_or_else(|| anyhow!("{kind} transceiver has no sender"))?;
            let (mime, default_pt) = match kind {
                MediaKind::Audio => (MIME_TYPE_OPUS, OPUS_PT),
                MediaKind::Video => (MIME_TYPE_VP8, VP8_PT),
            };
            let payload_type = sender
                .get_parameters()
                .await?
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map_or(default_pt, |c| c.payload_type);
            let seq0 = (random_u32() % 30_000) as u16 + 1;
            let local = Arc::new(LocalTrack {
                kind,
                ssrc,
                payload_type,
                mid: transceiver.mid().await?,
                track_id,
                stream_id: stream_id.clone(),
                track,
                sender,
                next: Mutex::new((seq0, random_u32())),
            });
            match kind {
                MediaKind::Audio => published.audio = Some(local),
                MediaKind::Video => published.video = Some(local),
            }
        }
        Ok(published)
    }

    /// Removes a published track (`remove_track`) and renegotiates.
    pub async fn unpublish(&self, track: &LocalTrack) -> Result<()> {
        let pc = self.ensure_peer_connection().await?;
        pc.remove_track(&track.sender)
            .await
            .context("remove_track")?;
        self.negotiate().await.context("unpublishing")
    }

    /// Sends a client offer and waits (with the configured timeout) until the server's answer
    /// is applied. Glare is handled politely (rollback, answer, re-offer).
    pub async fn negotiate(&self) -> Result<()> {
        self.offer_and_wait(SigEvent::Negotiate).await
    }

    /// Restarts ICE: sends an offer with new ICE credentials and waits for its answer.
    pub async fn restart_ice(&self) -> Result<()> {
        self.offer_and_wait(SigEvent::RestartIce).await
    }

    async fn offer_and_wait(
        &self,
        event: fn(oneshot::Sender<Result<()>>) -> SigEvent,
    ) -> Result<()> {
        self.ensure_peer_connection().await?;
        let (tx, rx) = oneshot::channel();
        self.sig_tx
            .send(event(tx))
            .map_err(|_| anyhow!("negotiation task is gone"))?;
        tokio::time::timeout(self.shared.config.timeout, rx)
            .await
            .map_err(|_| {
                anyhow!(
                    "timed out after {:?} waiting for the server's answer; signaling errors: {:?}",
                    self.shared.config.timeout,
                    self.signaling_errors()
                )
            })?
            .map_err(|_| anyhow!("negotiation task is gone"))?
    }

    /// Waits until the peer connection is `Connected`; fails early if it is `Failed`/`Closed`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let shared = &self.shared;
        wait_for(
            &shared.pc_state,
            timeout,
            || {
                format!(
                    "peer connection Connected (now {})",
                    *shared.pc_state.borrow()
                )
            },
            || match *shared.pc_state.borrow() {
                RTCPeerConnectionState::Connected => Ok(Some(())),
                s @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                    bail!("peer connection is {s}")
                }
                _ => Ok(None),
            },
        )
        .await
    }

    /// Waits until the peer connection reaches `state`.
    pub async fn wait_pc_state(
        &self,
        state: RTCPeerConnectionState,
        timeout: Duration,
    ) -> Result<()> {
        let shared = &self.shared;
        wait_for(
            &shared.pc_state,
            timeout,
            || {
                format!(
                    "peer connection {state} (now {})",
                    *shared.pc_state.borrow()
                )
            },
            || Ok((*shared.pc_state.borrow() == state).then_some(())),
        )
        .await
    }

    /// The peer connection's current state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.shared.pc_state.borrow()
    }

    // ---- messages ----------------------------------------------------------------------

    /// Sends a JSON message.
    pub async fn send_json(&self, value: &Value) -> Result<()> {
        self.shared.send_json(value)
    }

    /// Sends a raw text frame (for bad-input tests).
    pub async fn send_text(&self, raw: &str) -> Result<()> {
        self.shared
            .ws_out
            .send(Message::text(raw.to_owned()))
            .map_err(|_| anyhow!("WebSocket writer is gone"))
    }

    /// Sends a raw binary frame.
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<()> {
        self.shared
            .ws_out
            .send(Message::binary(data))
            .map_err(|_| anyhow!("WebSocket writer is gone"))
    }

    /// Sends `subscribe` for `tracks`.
    pub async fn subscribe(&self, tracks: &[&str]) -> Result<()> {
        self.send_json(&json!({"type": "subscribe", "tracks": tracks}))
            .await
    }

    /// Sends `unsubscribe` for `tracks`.
    pub async fn unsubscribe(&self, tracks: &[&str]) -> Result<()> {
        self.send_json(&json!({"type": "unsubscribe", "tracks": tracks}))
            .await
    }

    /// Waits for the first buffered or future server message matching `pred` and removes it
    /// from the buffer (messages that do not match stay buffered for later calls). Fails on
    /// timeout, or once the WebSocket is closed and no buffered message matches.
    pub async fn next_message(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        let shared = &self.shared;
        wait_for(
            &shared.messages_changed,
            timeout,
            || {
                let m = shared.messages.lock().expect("messages");
                let types: Vec<_> = m.pending.iter().map(|v| v["type"].to_string()).collect();
                format!("a matching server message (unmatched buffered: {types:?})")
            },
            || {
                let mut m = shared.messages.lock().expect("messages");
                if let Some(i) = m.pending.iter().position(&pred) {
                    return Ok(m.pending.remove(i));
                }
                if let Some(c) = &m.closed {
                    bail!("WebSocket closed ({c:?}) before a matching message arrived");
                }
                Ok(None)
            },
        )
        .await
    }

    /// [`TestClient::next_message`] for a message of type `ty`.
    pub async fn next_message_of_type(&self, ty: &str, timeout: Duration) -> Result<Value> {
        self.next_message(|m| m["type"] == ty, timeout)
            .await
            .with_context(|| format!("waiting for a `{ty}` message"))
    }

    /// Succeeds if no message matching `pred` is buffered or arrives within `within`.
    pub async fn expect_no_message(
        &self,
        pred: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<()> {
        match self.next_message(&pred, within).await {
            Ok(m) => bail!("unexpected message: {m}"),
            Err(_) => Ok(()),
        }
    }

    /// Every server message received so far, in order (consumed or not).
    pub fn messages(&self) -> Vec<Value> {
        self.shared
            .messages
            .lock()
            .expect("messages")
            .history
            .clone()
    }

    /// Buffered messages not yet taken by [`TestClient::next_message`].
    pub fn pending_messages(&self) -> Vec<Value> {
        let m = self.shared.messages.lock().expect("messages");
        m.pending.iter().cloned().collect()
    }

    /// How the WebSocket was closed, if it is.
    pub fn closed(&self) -> Option<CloseInfo> {
        self.shared
            .messages
            .lock()
            .expect("messages")
            .closed
            .clone()
    }

    /// Waits until the server closes the WebSocket (or it breaks).
    pub async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo> {
        let shared = &self.shared;
        wait_for(
            &shared.messages_changed,
            timeout,
            || "the WebSocket to close".to_owned(),
            || Ok(shared.messages.lock().expect("messages").closed.clone()),
        )
        .await
    }

    // ---- leaving -----------------------------------------------------------------------

    /// Sends `leave`, waits for the server to close the WebSocket, then closes the peer
    /// connection.
    pub async fn leave(&self) -> Result<CloseInfo> {
        self.send_json(&json!({"type": "leave"})).await?;
        let closed = self.wait_closed(self.shared.config.timeout).await;
        self.close_peer_connection().await;
        closed.context("the server did not close the WebSocket after leave")
    }

    /// Closes the WebSocket with a close frame and closes the peer connection.
    pub async fn close(&self) -> Result<()> {
        let _ = self.shared.ws_out.send(Message::Close(None));
        let _ = self.wait_closed(Duration::from_secs(2)).await;
        self.close_peer_connection().await;
        Ok(())
    }

    /// Drops the WebSocket without `leave` or a close frame (the TCP connection just ends)
    /// and stops the peer connection. `PeerConnection::close` is still called, because a
    /// merely dropped webrtc-rs peer connection keeps its driver (and ICE consent replies)
    /// running; so the server may see a DTLS close alert.
    pub async fn close_abruptly(&self) {
        for t in &self.ws_tasks {
            t.abort();
        }
        self.close_peer_connection().await;
    }

    /// Closes the peer connection only; the WebSocket stays open.
    pub async fn close_peer_connection(&self) {
        let pc = self.pc.lock().await.clone();
        if let Some(pc) = pc {
            let _ = pc.close().await;
        }
    }

    // ---- receiving -----------------------------------------------------------------------

    /// Packets received so far on the remote track that is Cascade track `track_id`.
    pub fn received(&self, track_id: &str) -> Vec<ReceivedPacket> {
        let media = self.shared.media.lock().expect("media");
        media.packets.get(track_id).cloned().unwrap_or_default()
    }

    /// Waits until at least `n` packets were received for `track_id`; returns all of them.
    pub async fn wait_for_packets(
        &self,
        track_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedPacket>> {
        let shared = &self.shared;
        wait_for(
            &shared.media_changed,
            timeout,
            || {
                let media = shared.media.lock().expect("media");
                let have: BTreeMap<_, _> = media
                    .packets
                    .iter()
                    .map(|(k, v)| (k.clone(), v.len()))
                    .collect();
                format!(
                    "{n} packets on track {track_id} (packets per track: {have:?}, offered: {:?})",
                    media.mid_map
                )
            },
            || {
                let media = shared.media.lock().expect("media");
                Ok(media
                    .packets
                    .get(track_id)
                    .filter(|p| p.len() >= n)
                    .cloned())
            },
        )
        .await
    }

    /// Waits until a packet carrying `counter` arrives on `track_id`; returns it.
    pub async fn wait_for_counter(
        &self,
        track_id: &str,
        counter: u32,
        timeout: Duration,
    ) -> Result<ReceivedPacket> {
        let shared = &self.shared;
        wait_for(
            &shared.media_changed,
            timeout,
            || format!("counter {counter} on track {track_id}"),
            || {
                let media = shared.media.lock().expect("media");
                Ok(media
                    .packets
                    .get(track_id)
                    .and_then(|p| p.iter().find(|p| p.counter() == Some(counter)))
                    .cloned())
            },
        )
        .await
    }

    /// Cascade track ids of the remote tracks that delivered media (resolved through the
    /// latest server offer's `tracks`), sorted.
    pub fn remote_track_ids(&self) -> Vec<String> {
        let media = self.shared.media.lock().expect("media");
        let mut ids: Vec<String> = media.remotes.iter().map(|r| media.key_of(r)).collect();
        ids.extend(media.packets.keys().cloned());
        ids.sort();
        ids.dedup();
        ids
    }

    /// The `tracks` map (mid -> Cascade track id) of the latest server offer the client has
    /// answered.
    pub fn offered_tracks(&self) -> BTreeMap<String, String> {
        self.shared
            .media
            .lock()
            .expect("media")
            .answered_map
            .clone()
    }

    /// Waits until the client has answered a server offer whose `tracks` satisfy `pred`.
    pub async fn wait_for_offered(
        &self,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>> {
        let shared = &self.shared;
        wait_for(
            &shared.media_changed,
            timeout,
            || {
                format!(
                    "an answered server offer with the wanted tracks (last answered: {:?})",
                    shared.media.lock().expect("media").answered_map
                )
            },
            || {
                let map = shared.media.lock().expect("media").answered_map.clone();
                Ok(pred(&map).then_some(map))
            },
        )
        .await
    }

    /// The remote track currently standing for `track_id` and its media SSRC.
    fn remote_for(&self, track_id: &str) -> Result<(Arc<dyn TrackRemote>, u32)> {
        let media = self.shared.media.lock().expect("media");
        let remote = media
            .remotes
            .iter()
            .rev()
            .filter(|r| media.key_of(r) == track_id)
            .min_by_key(|r| r.ended)
            .ok_or_else(|| {
                anyhow!(
                    "no remote track {track_id} (remote tracks: {:?})",
                    media
                        .remotes
                        .iter()
                        .map(|r| media.key_of(r))
                        .collect::<Vec<_>>()
                )
            })?;
        let ssrc = remote
            .ssrc
            .ok_or_else(|| anyhow!("remote track {track_id} has no known SSRC yet"))?;
        Ok((remote.track.clone(), ssrc))
    }

    /// Writes RTCP on the receiver of remote track `track_id`.
    pub async fn write_rtcp(
        &self,
        track_id: &str,
        packets: Vec<Box<dyn rtcp::Packet>>,
    ) -> Result<()> {
        let (track, _) = self.remote_for(track_id)?;
        track.write_rtcp(packets).await.context("write_rtcp")
    }

    /// Sends a PLI for remote track `track_id` (media SSRC = the SSRC it arrives with).
    pub async fn send_pli(&self, track_id: &str) -> Result<()> {
        let (track, media_ssrc) = self.remote_for(track_id)?;
        let pli = PictureLossIndication {
            sender_ssrc: self.shared.rtcp_ssrc,
            media_ssrc,
        };
        track
            .write_rtcp(vec![Box::new(pli)])
            .await
            .context("sending PLI")
    }

    /// Sends a FIR for remote track `track_id`.
    pub async fn send_fir(&self, track_id: &str, fir_seq: u8) -> Result<()> {
        let (track, media_ssrc) = self.remote_for(track_id)?;
        let fir = FullIntraRequest {
            sender_ssrc: self.shared.rtcp_ssrc,
            media_ssrc,
            fir: vec![FirEntry {
                ssrc: media_ssrc,
                sequence_number: fir_seq,
            }],
        };
        track
            .write_rtcp(vec![Box::new(fir)])
            .await
            .context("sending FIR")
    }

    /// Sends a generic NACK for `seqs` (sequence numbers as received) of remote track
    /// `track_id`.
    pub async fn send_nack(&self, track_id: &str, seqs: &[u16]) -> Result<()> {
        let (track, media_ssrc) = self.remote_for(track_id)?;
        let nack = TransportLayerNack {
            sender_ssrc: self.shared.rtcp_ssrc,
            media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(seqs),
        };
        track
            .write_rtcp(vec![Box::new(nack)])
            .await
            .context("sending NACK")
    }

    // ---- RTCP seen by the publisher ------------------------------------------------------

    /// RTCP the server sent about this client's published tracks, oldest first (one entry per
    /// packet and local SSRC it names; receiver reports included).
    pub fn publisher_rtcp(&self) -> Vec<PublisherRtcp> {
        let local = self.shared.local_ssrcs.lock().expect("ssrcs").clone();
        let log = self.shared.wire.log.lock().expect("wire");
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
        wait_for(
            &self.shared.wire.changed,
            timeout,
            || {
                let seen: Vec<_> = self
                    .publisher_rtcp()
                    .iter()
                    .map(|r| format!("{}:{}", r.kind, r.packet_type.name()))
                    .collect();
                format!(
                    "{} about the {kind} track (publisher RTCP so far: {seen:?})",
                    packet_type.name()
                )
            },
            || {
                Ok(self
                    .publisher_rtcp()
                    .into_iter()
                    .find(|r| r.kind == kind && r.packet_type == packet_type && r.at >= since))
            },
        )
        .await
    }

    /// Waits for a PLI about the local `kind` track (any received since the client connected;
    /// use [`TestClient::wait_for_rtcp`] with a `since` to ignore earlier ones).
    pub async fn wait_for_pli(&self, kind: MediaKind, timeout: Duration) -> Result<PublisherRtcp> {
        self.wait_for_rtcp(kind, RtcpType::Pli, self.shared.created, timeout)
            .await
    }

    /// Every inbound RTCP packet (about any SSRC), oldest first.
    pub fn inbound_rtcp(&self) -> Vec<RtcpRecord> {
        self.shared.wire.log.lock().expect("wire").rtcp.clone()
    }

    /// Summaries of inbound RTP as it came off the wire (RTX packets still wrapped), oldest
    /// first; capped at the last 50 000.
    pub fn inbound_rtp(&self) -> Vec<RtpRecord> {
        let log = self.shared.wire.log.lock().expect("wire");
        log.rtp.iter().copied().collect()
    }

    // ---- diagnostics -----------------------------------------------------------------------

    /// Negotiation counters.
    pub fn negotiation_stats(&self) -> NegotiationStats {
        self.shared.sig.lock().expect("sig").stats.clone()
    }

    /// Signaling failures so far (bad SDP, unexpected answers, ...).
    pub fn signaling_errors(&self) -> Vec<String> {
        self.shared.sig.lock().expect("sig").errors.clone()
    }

    /// The peer connection, if created.
    pub async fn peer_connection(&self) -> Option<Arc<dyn PeerConnection>> {
        self.pc.lock().await.clone()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        for t in &self.ws_tasks {
            t.abort();
        }
        for t in self.shared.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
        let pc = self.pc.get_mut().take();
        if let (Some(pc), Ok(rt)) = (pc, tokio::runtime::Handle::try_current()) {
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}
