//! [`TestClient`]: one WebSocket session speaking Cascade's protocol plus (after `join` or
//! `publish`) one webrtc-rs peer connection, negotiated as the polite peer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use cascade_signaling::protocol::{ClientMessage, IceCandidate, JoinOptions};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionIceEvent, RTCPeerConnectionState};

use crate::codec::MediaKind;
use crate::config::{ClientConfig, Received};
use crate::media::{LocalTrack, Published, add_send_track};
use crate::negotiator::{Event, NegotiationStats, Negotiator};
use crate::peer::{PcState, PeerEvents, PeerOptions, build_peer_connection, forward_payloads};
use crate::remote::{Recorder, record_remote_track};
use crate::socket::{CloseInfo, ErrorMsg, Inbox, Socket};
use crate::util::random_u32;
use crate::wire::WireRecorderHandle;

#[derive(Default)]
pub(crate) struct SigState {
    pub(crate) stats: NegotiationStats,
    errors: Vec<String>,
}

/// State shared by the client, its tasks and the peer connection's event handler.
pub(crate) struct Shared {
    pub(crate) config: ClientConfig,
    pub(crate) socket: Socket,
    inbox: Arc<Inbox>,
    pub(crate) media: Arc<Recorder>,
    pc_state: PcState,
    pc: Mutex<Option<Weak<dyn PeerConnection>>>,
    pub(crate) wire: WireRecorderHandle,
    pub(crate) local_ssrcs: Mutex<HashMap<u32, MediaKind>>,
    pub(crate) first_mid: Mutex<String>,
    pub(crate) sig: Mutex<SigState>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) rtcp_ssrc: u32,
    pub(crate) created: Instant,
}

impl Shared {
    pub(crate) fn sig_error(&self, err: String) {
        eprintln!("{} signaling error: {err}", self.config.label);
        self.sig.lock().expect("sig").errors.push(err);
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        self.tasks.lock().expect("tasks").push(handle);
    }
}

#[async_trait::async_trait]
impl PeerEvents for Shared {
    async fn on_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if !self.config.trickle {
            return;
        }
        let sent = event
            .candidate
            .to_json()
            .map_err(anyhow::Error::from)
            .and_then(|init| {
                let candidate = IceCandidate {
                    candidate: init.candidate,
                    sdp_mid: Some(self.first_mid.lock().expect("mid").clone()),
                    sdp_mline_index: Some(0),
                    username_fragment: None,
                };
                self.socket
                    .send_message(&ClientMessage::Candidate { candidate }, None)
            });
        if let Err(e) = sent {
            self.sig_error(format!("sending local candidate: {e:#}"));
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        match &self.config.received {
            Received::Record => {
                let pc = self.pc.lock().expect("pc").as_ref().and_then(Weak::upgrade);
                self.spawn(record_remote_track(self.media.clone(), pc, track));
            }
            Received::Forward(f) => self.spawn(forward_payloads(track, f.clone())),
            Received::Ignore => {}
        }
    }
}

/// A Cascade test client: one WebSocket session plus (after `join`/`publish`) one peer
/// connection.
pub struct TestClient {
    pub(crate) shared: Arc<Shared>,
    pc: tokio::sync::Mutex<Option<Arc<dyn PeerConnection>>>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
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
        let (events, events_rx) = mpsc::unbounded_channel();
        let inbox = Arc::new(Inbox::default());
        let signals = events.clone();
        let socket = Socket::connect(
            ws_url,
            config.timeout,
            config.keepalive,
            inbox.clone(),
            move |s| {
                let _ = signals.send(Event::Signal(s));
            },
        )
        .await?;
        let shared = Arc::new(Shared {
            config,
            socket,
            inbox,
            media: Arc::default(),
            pc_state: PcState::default(),
            pc: Mutex::new(None),
            wire: WireRecorderHandle::default(),
            local_ssrcs: Mutex::default(),
            first_mid: Mutex::new("0".to_owned()),
            sig: Mutex::default(),
            tasks: Mutex::default(),
            rtcp_ssrc: random_u32() | 1,
            created: Instant::now(),
        });
        Ok(Self {
            shared,
            pc: tokio::sync::Mutex::new(None),
            events,
            events_rx: Mutex::new(Some(events_rx)),
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
        let shared = &self.shared;
        let options = PeerOptions {
            wire: matches!(shared.config.received, Received::Record).then(|| shared.wire.clone()),
            ..shared.config.peer.clone()
        };
        let events: Weak<dyn PeerEvents> = Arc::downgrade(shared) as Weak<Shared>;
        let pc = build_peer_connection(&options, shared.pc_state.clone(), events).await?;
        *shared.pc.lock().expect("pc") = Some(Arc::downgrade(&pc));
        let rx = self
            .events_rx
            .lock()
            .expect("events")
            .take()
            .ok_or_else(|| anyhow!("negotiation task already started"))?;
        shared.spawn(Negotiator::new(pc.clone(), shared.clone()).run(rx));
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
        let join = ClientMessage::Join {
            token: token.to_owned(),
            room: room.map(str::to_owned),
            options: JoinOptions { auto_subscribe },
        };
        self.shared
            .socket
            .send_message(&join, Some(&reference))
            .map_err(ErrorMsg::client)?;
        let r = reference.as_str();
        let msg = self
            .next_message(
                move |m| {
                    m["type"] == "joined"
                        || (m["type"] == "error" && (m["ref"].is_null() || m["ref"] == r))
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
        let stream_id = format!("cascade-test-{:08x}", random_u32());
        let tracks: Vec<_> = [(audio, MediaKind::Audio), (video, MediaKind::Video)]
            .into_iter()
            .filter(|&(wanted, _)| wanted)
            .map(|(_, kind)| (kind, random_u32() | 1, format!("{stream_id}-{kind}")))
            .collect();
        let mut published = Published {
            audio: None,
            video: None,
        };
        for local in self.publish_tracks(&stream_id, tracks).await? {
            match local.kind {
                MediaKind::Audio => published.audio = Some(local),
                MediaKind::Video => published.video = Some(local),
            }
        }
        Ok(published)
    }

    /// Adds one send-only track per `(kind, SSRC, msid track id)` in the msid stream
    /// `stream_id`, offers, and waits for the answer and the connection (see
    /// [`TestClient::publish`]).
    pub async fn publish_tracks(
        &self,
        stream_id: &str,
        tracks: Vec<(MediaKind, u32, String)>,
    ) -> Result<Vec<Arc<LocalTrack>>> {
        let pc = self.ensure_peer_connection().await?;
        let mut added = vec![];
        for (kind, ssrc, track_id) in tracks {
            added.push(add_send_track(&pc, kind, ssrc, stream_id, track_id).await?);
            let mut local = self.shared.local_ssrcs.lock().expect("ssrcs");
            local.insert(ssrc, kind);
        }
        self.negotiate().await.context("publishing")?;
        self.wait_connected(self.shared.config.timeout).await?;
        let mut locals = vec![];
        for a in added {
            locals.push(a.negotiated().await?);
        }
        Ok(locals)
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
        self.offer_and_wait(false).await
    }

    /// Restarts ICE: sends an offer with new ICE credentials and waits for its answer.
    pub async fn restart_ice(&self) -> Result<()> {
        self.offer_and_wait(true).await
    }

    async fn offer_and_wait(&self, ice_restart: bool) -> Result<()> {
        self.ensure_peer_connection().await?;
        let (done, rx) = oneshot::channel();
        self.events
            .send(Event::Offer { done, ice_restart })
            .map_err(|_| anyhow!("negotiation task is gone"))?;
        let timeout = self.shared.config.timeout;
        tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| {
                anyhow!(
                    "timed out after {timeout:?} waiting for the server's answer; signaling errors: {:?}",
                    self.signaling_errors()
                )
            })?
            .map_err(|_| anyhow!("negotiation task is gone"))?
    }

    /// Waits until the peer connection is `Connected`; fails early if it is `Failed`/`Closed`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.shared.pc_state.wait_connected(timeout).await
    }

    /// Waits until the peer connection reaches `state`.
    pub async fn wait_pc_state(
        &self,
        state: RTCPeerConnectionState,
        timeout: Duration,
    ) -> Result<()> {
        self.shared.pc_state.wait_state(state, timeout).await
    }

    /// The peer connection's current state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        self.shared.pc_state.get()
    }

    // ---- messages ----------------------------------------------------------------------

    /// Sends a JSON message.
    pub async fn send_json(&self, value: &Value) -> Result<()> {
        self.send_text(&value.to_string()).await
    }

    /// Sends a raw text frame (for bad-input tests).
    pub async fn send_text(&self, raw: &str) -> Result<()> {
        self.shared.socket.send(Message::text(raw.to_owned()))
    }

    /// Sends a raw binary frame.
    pub async fn send_binary(&self, data: Vec<u8>) -> Result<()> {
        self.shared.socket.send(Message::binary(data))
    }

    /// Sends `subscribe` for `tracks`.
    pub async fn subscribe(&self, tracks: &[&str]) -> Result<()> {
        let tracks = tracks.iter().map(|&t| t.to_owned()).collect();
        self.shared
            .socket
            .send_message(&ClientMessage::Subscribe { tracks }, None)
    }

    /// Sends `unsubscribe` for `tracks`.
    pub async fn unsubscribe(&self, tracks: &[&str]) -> Result<()> {
        let tracks = tracks.iter().map(|&t| t.to_owned()).collect();
        self.shared
            .socket
            .send_message(&ClientMessage::Unsubscribe { tracks }, None)
    }

    /// Waits for the first buffered or future server message matching `pred` and removes it
    /// from the buffer (messages that do not match stay buffered for later calls). Fails on
    /// timeout, or once the WebSocket is closed and no buffered message matches.
    pub async fn next_message(
        &self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        self.shared.inbox.next(pred, timeout).await
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
            Ok(m) => anyhow::bail!("unexpected message: {m}"),
            Err(_) => Ok(()),
        }
    }

    /// Every server message received so far, in order (consumed or not).
    pub fn messages(&self) -> Vec<Value> {
        self.shared.inbox.history()
    }

    /// Buffered messages not yet taken by [`TestClient::next_message`].
    pub fn pending_messages(&self) -> Vec<Value> {
        self.shared.inbox.pending()
    }

    /// How the WebSocket was closed, if it is.
    pub fn closed(&self) -> Option<CloseInfo> {
        self.shared.inbox.closed()
    }

    /// Waits until the server closes the WebSocket (or it breaks).
    pub async fn wait_closed(&self, timeout: Duration) -> Result<CloseInfo> {
        self.shared.inbox.wait_closed(timeout).await
    }

    // ---- leaving -----------------------------------------------------------------------

    /// Sends `leave`, waits for the server to close the WebSocket, then closes the peer
    /// connection.
    pub async fn leave(&self) -> Result<CloseInfo> {
        self.shared
            .socket
            .send_message(&ClientMessage::Leave, None)?;
        let closed = self.wait_closed(self.shared.config.timeout).await;
        self.close_peer_connection().await;
        closed.context("the server did not close the WebSocket after leave")
    }

    /// Closes the WebSocket with a close frame and closes the peer connection.
    pub async fn close(&self) -> Result<()> {
        let _ = self.shared.socket.send(Message::Close(None));
        let _ = self.wait_closed(Duration::from_secs(2)).await;
        self.close_peer_connection().await;
        Ok(())
    }

    /// Drops the WebSocket without `leave` or a close frame (the TCP connection just ends)
    /// and stops the peer connection. `PeerConnection::close` is still called, because a
    /// merely dropped webrtc-rs peer connection keeps its driver (and ICE consent replies)
    /// running; so the server may see a DTLS close alert.
    pub async fn close_abruptly(&self) {
        self.drop_websocket();
        self.close_peer_connection().await;
    }

    /// Drops the WebSocket without a word (as a network loss would); the peer connection goes
    /// on.
    pub fn drop_websocket(&self) {
        self.shared.socket.abort();
    }

    /// Closes the peer connection only; the WebSocket stays open.
    pub async fn close_peer_connection(&self) {
        let pc = self.pc.lock().await.clone();
        if let Some(pc) = pc {
            let _ = pc.close().await;
        }
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
        self.shared.socket.abort();
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
