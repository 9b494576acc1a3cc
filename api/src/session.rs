//! One participant's signaling session over a WebSocket.
//!
//! The session turns client messages into room and peer operations, relays the room's
//! [`SessionSignal`]s to the client, and drives offer/answer with the sans-I/O
//! [`Negotiation`] state machine (server impolite, client polite). When it ends, for whatever
//! reason, the participant leaves its room and every resource it held is freed.
//!
//! Every queue of a session is bounded: the room's signals ([`SESSION_QUEUE`]; a full queue
//! removes the participant as a slow reader), the peer's events ([`PEER_EVENT_QUEUE`]), and the
//! messages produced by one event (a handful, sent before the next event is taken). A message
//! the socket does not take within [`SEND_TIMEOUT`] ends the session as a slow reader. Nothing
//! per member (queues, peer) exists before a successful `join`, which must come within
//! [`JOIN_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cascade_sfu::PeerHandle;
use cascade_sfu::peer::{PEER_EVENT_QUEUE, PeerEvent};
use cascade_sfu::room::{
    JoinRequest, ParticipantKind, Permissions, SESSION_QUEUE, SLOW_READER, SessionSignal,
};
use cascade_signaling::ErrorCode;
use cascade_signaling::negotiation::{Negotiation, OfferAction};
use cascade_signaling::protocol::{
    ClientMessage, IceServer, JoinOptions, ServerMessage, parse_client,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::auth;
use crate::rate_limit::RateLimit;
use crate::server::AppState;

/// A session that sends nothing for this long is considered gone (clients ping every 10 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection that has not joined this long after it opened is closed (reason
/// [`JOIN_TIMEOUT_REASON`], close code [`CLOSE_JOIN_TIMEOUT`]).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The end reason (close frame reason) of a connection that did not join in time.
pub const JOIN_TIMEOUT_REASON: &str = "join_timeout";
/// A message the socket does not accept within this long ends the session as a slow reader.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing frame may take to leave before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// WebSocket close code of a session ended as a slow reader (reason `slow_reader`).
pub const CLOSE_SLOW_READER: u16 = 4003;
/// WebSocket close code of a connection that did not join within [`JOIN_TIMEOUT`].
pub const CLOSE_JOIN_TIMEOUT: u16 = 4008;
/// The `cascade_session_limits_total` label of messages dropped by a session rate limit.
const RATE_LIMITED: &str = "rate_limited";

struct Member {
    room: String,
    participant: String,
    peer: PeerHandle,
}

struct Session {
    state: Arc<AppState>,
    member: Option<Member>,
    negotiation: Negotiation,
    /// The room's signals for this member (created by `join`; the room holds the sender).
    signals: Option<mpsc::Receiver<SessionSignal>>,
    /// The member's peer events (created by `join`; the peer holds the sender).
    events: Option<mpsc::Receiver<PeerEvent>>,
    /// Replies to one event, sent before the next event is taken.
    out: Vec<ServerMessage>,
    /// Set when the session must end, with the reason the participant leaves for.
    end: Option<String>,
    /// Every message the client sends (`message_rate_limit`).
    message_rate: RateLimit,
    /// Bytes of the `data` messages the client sends (`data_rate_limit`).
    data_rate: RateLimit,
}

/// Serves one WebSocket until the client leaves or disconnects.
pub async fn run(socket: WebSocket, state: Arc<AppState>) {
    let _live = state.session_guard();
    let (mut sink, mut stream) = socket.split();
    let mut s = Session {
        state: state.clone(),
        member: None,
        negotiation: Negotiation::new(),
        signals: None,
        events: None,
        out: Vec::new(),
        end: None,
        message_rate: RateLimit::new(state.config.message_rate_limit),
        data_rate: {
            let rate = f64::from(state.config.data_rate_limit);
            RateLimit::with_burst(rate, rate * 4.0)
        },
    };
    let mut shutdown = state.shutdown_signal();
    let mut close_reason: Option<String> = None;
    let mut close_code = 1000;
    let mut idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let join_deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        tokio::select! {
            // Room signals first: a `Kick` queued before the peer closed must win over the
            // peer's `Closed` event, so the client learns why it was removed.
            biased;
            signal = next(&mut s.signals) => match signal {
                Some(SessionSignal::Send(msg)) => s.out.push(msg),
                Some(SessionSignal::Renegotiate) => {
                    s.negotiation.mark_needed();
                    s.maybe_offer().await;
                }
                Some(SessionSignal::Kick(reason)) => {
                    s.out.push(ServerMessage::Leave { reason: reason.clone() });
                    close_reason = Some(reason.clone());
                    s.end = Some(reason);
                }
                // The room let go of the member without a `Kick`: its queue was full.
                None => {
                    s.end.get_or_insert_with(|| SLOW_READER.into());
                }
            },
            event = next(&mut s.events) => s.on_peer_event(event).await,
            frame = stream.next() => {
                idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                match frame {
                    Some(Ok(Message::Text(text))) => s.on_text(&text).await,
                    Some(Ok(Message::Binary(_))) => {
                        if s.within_message_rate() {
                            s.reject(
                                ErrorCode::InvalidMessage,
                                "binary frames are not accepted; send JSON text".into(),
                                None,
                            );
                        }
                    }
                    Some(Ok(_)) => {} // ping/pong frames are handled by the library
                    Some(Err(e)) => {
                        // A frame over the transport limit ends the connection with 1009.
                        debug!("websocket error: {e}");
                        if is_capacity_error(&e) {
                            close_code = 1009;
                        }
                        s.end.get_or_insert_with(|| "disconnected".into());
                    }
                    None => {
                        s.end.get_or_insert_with(|| "disconnected".into());
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                s.end.get_or_insert_with(|| "timeout".into());
            }
            _ = tokio::time::sleep_until(join_deadline), if s.member.is_none() => {
                s.end.get_or_insert_with(|| JOIN_TIMEOUT_REASON.into());
            }
            _ = shutdown.changed() => {
                s.out.push(ServerMessage::Leave { reason: "server_shutdown".into() });
                close_reason = Some("server_shutdown".into());
                s.end = Some("server_shutdown".into());
            }
        }
        for msg in s.out.drain(..) {
            state.metrics.signaling_message("out", msg.kind());
            let text = serde_json::to_string(&msg).expect("server messages serialize");
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    s.end.get_or_insert_with(|| "disconnected".into());
                    break;
                }
                Err(_) => {
                    s.end = Some(SLOW_READER.into());
                    close_reason = None;
                    break;
                }
            }
        }
        if s.end.is_some() {
            break;
        }
    }
    let reason = s.end.take().unwrap_or_else(|| "disconnected".into());
    let limit_code = match reason.as_str() {
        SLOW_READER => Some(CLOSE_SLOW_READER),
        JOIN_TIMEOUT_REASON => Some(CLOSE_JOIN_TIMEOUT),
        _ => None,
    };
    if let Some(code) = limit_code {
        close_code = code;
        state.metrics.session_limit(&reason);
    }
    if let Some(m) = s.member.take() {
        // A replaced participant was already removed by the room.
        if reason != "replaced" {
            state.rooms.leave(&m.room, &m.participant, &reason);
        }
        info!(room = %m.room, participant = %m.participant, %reason, "participant left");
    }
    let frame = CloseFrame {
        code: close_code,
        reason: Utf8Bytes::from(close_reason.unwrap_or(reason)),
    };
    // A reader that stopped reading does not get to hold the session any longer.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    })
    .await;
}

/// The next item of a receiver that exists once joined; pending before.
async fn next<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether a WebSocket error is a message or frame over the size limit.
fn is_capacity_error(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}

impl Session {
    fn reject(&mut self, code: ErrorCode, message: String, reference: Option<Value>) {
        debug!(%code, %message, "request rejected");
        self.out
            .push(ServerMessage::error(code, message, reference));
    }

    /// Takes one message from the message rate limit; past it, queues a `rate_limited` error
    /// and returns false: the message is dropped.
    fn within_message_rate(&mut self) -> bool {
        match self.message_rate.take(std::time::Instant::now()) {
            Ok(()) => true,
            Err(wait) => {
                self.rate_limited(format!(
                    "more than {} messages per second; message dropped, retry in {} ms",
                    self.state.config.message_rate_limit,
                    wait.as_millis().max(1)
                ));
                false
            }
        }
    }

    fn rate_limited(&mut self, message: String) {
        self.state.metrics.session_limit(RATE_LIMITED);
        self.reject(ErrorCode::RateLimited, message, None);
    }

    async fn on_text(&mut self, text: &str) {
        if !self.within_message_rate() {
            return;
        }
        let (msg, reference) = match parse_client(text) {
            Ok(m) => m,
            Err(rejection) => {
                self.state.metrics.signaling_message("in", "invalid");
                self.out.push(rejection.into());
                return;
            }
        };
        self.state.metrics.signaling_message("in", msg.kind());
        if matches!(msg, ClientMessage::Data { .. })
            && let Err(wait) = self
                .data_rate
                .take_n(std::time::Instant::now(), text.len() as f64)
        {
            let message = format!(
                "data over {} bytes per second; message dropped, retry in {} ms",
                self.state.config.data_rate_limit,
                wait.as_millis().max(1)
            );
            self.state.metrics.session_limit(RATE_LIMITED);
            self.reject(ErrorCode::RateLimited, message, reference);
            return;
        }
        if let Err((code, message)) = self.handle(msg).await {
            if code == ErrorCode::TooManyCandidates {
                self.state.metrics.session_limit(code.as_str());
            }
            self.reject(code, message, reference);
        }
    }

    fn member(&self) -> Result<&Member, (ErrorCode, String)> {
        self.member
            .as_ref()
            .ok_or((ErrorCode::NotJoined, "send `join` first".into()))
    }

    async fn handle(&mut self, msg: ClientMessage) -> Result<(), (ErrorCode, String)> {
        match msg {
            ClientMessage::Join {
                token,
                room,
                options,
            } => self.join(&token, room, options),
            ClientMessage::Ping => {
                self.out.push(ServerMessage::Pong);
                Ok(())
            }
            ClientMessage::Leave => {
                self.member()?;
                self.end = Some("leave".into());
                Ok(())
            }
            ClientMessage::Offer { sdp } => {
                let m = self.member()?;
                if self.negotiation.on_client_offer() == OfferAction::IgnoreGlare {
                    debug!("glare: client offer ignored, the server's offer stands");
                    return Ok(());
                }
                // Permissions can change live (room API): read them at each offer.
                let can_publish = self
                    .state
                    .rooms
                    .permissions(&m.room, &m.participant)
                    .is_some_and(|p| p.can_publish);
                let answer = m
                    .peer
                    .apply_offer(sdp, can_publish)
                    .await
                    .map_err(|e| (e.code(), e.to_string()))?;
                self.out.push(ServerMessage::Answer { sdp: answer });
                self.maybe_offer().await;
                Ok(())
            }
            ClientMessage::Answer { sdp } => {
                let peer = self.member()?.peer.clone();
                if !self.negotiation.on_client_answer() {
                    return Err((ErrorCode::InvalidState, "no server offer to answer".into()));
                }
                let applied = peer.apply_answer(sdp).await;
                if let Err(e) = applied {
                    self.negotiation.offer_failed();
                    self.maybe_offer().await;
                    return Err((e.code(), e.to_string()));
                }
                self.maybe_offer().await;
                Ok(())
            }
            ClientMessage::Candidate { candidate } => {
                let m = self.member()?;
                m.peer
                    .add_candidate(candidate)
                    .await
                    .map_err(|e| (e.code(), e.to_string()))
            }
            ClientMessage::Subscribe { tracks } => {
                let m = self.member()?;
                self.state.rooms.subscribe(&m.room, &m.participant, &tracks)
            }
            ClientMessage::Unsubscribe { tracks } => {
                let m = self.member()?;
                self.state
                    .rooms
                    .unsubscribe(&m.room, &m.participant, &tracks);
                Ok(())
            }
            ClientMessage::Data { payload } => {
                let m = self.member()?;
                self.state.rooms.send_data(&m.room, &m.participant, payload)
            }
            ClientMessage::Mute { track, muted } => {
                let m = self.member()?;
                self.state
                    .rooms
                    .mute(&m.room, &m.participant, &track, muted)
            }
        }
    }

    fn join(
        &mut self,
        token: &str,
        room: Option<String>,
        options: JoinOptions,
    ) -> Result<(), (ErrorCode, String)> {
        if self.member.is_some() {
            return Err((ErrorCode::AlreadyJoined, "already joined".into()));
        }
        let config = &self.state.config;
        let claims = auth::verify(
            token,
            &config.api_key,
            &config.api_secret,
            SystemTime::now(),
        )
        .map_err(|e| (e.code(), e.to_string()))?;
        let grants = claims.video;
        if let Some(asked) = room
            && asked != grants.room
        {
            return Err((
                ErrorCode::PermissionDenied,
                format!("token is for room `{}`, not `{asked}`", grants.room),
            ));
        }
        let (outbox, signals) = mpsc::channel(SESSION_QUEUE);
        let (peer_events, events) = mpsc::channel(PEER_EVENT_QUEUE);
        let joined = self.state.rooms.join(JoinRequest {
            room: grants.room.clone(),
            identity: claims.sub,
            permissions: Permissions {
                can_publish: grants.can_publish,
                can_subscribe: grants.can_subscribe,
                can_publish_data: grants.can_publish_data,
            },
            auto_subscribe: options.auto_subscribe,
            kind: ParticipantKind::Websocket,
            outbox,
            peer_events,
        })?;
        self.signals = Some(signals);
        self.events = Some(events);
        let mut message = joined.message;
        if let ServerMessage::Joined { ice_servers, .. } = &mut message {
            *ice_servers = config
                .ice_servers
                .iter()
                .map(|url| IceServer {
                    urls: vec![url.clone()],
                    username: None,
                    credential: None,
                })
                .collect();
        }
        info!(room = %grants.room, participant = %joined.participant, "participant joined");
        self.out.push(message);
        self.member = Some(Member {
            room: grants.room,
            participant: joined.participant,
            peer: joined.peer,
        });
        Ok(())
    }

    /// Sends a server offer if one is needed and the negotiation state allows it.
    async fn maybe_offer(&mut self) {
        let Some(m) = &self.member else {
            return;
        };
        if !self.negotiation.should_offer() {
            return;
        }
        match m.peer.create_offer().await {
            Ok(offer) => {
                self.negotiation.offer_sent();
                self.out.push(ServerMessage::Offer {
                    sdp: offer.sdp,
                    tracks: offer.tracks,
                });
            }
            Err(e) => {
                // Most likely the client's own offer is being applied: retried after it.
                debug!("server offer deferred: {e}");
            }
        }
    }

    /// Handles a peer event; `None`: the peer is gone (its sender dropped).
    async fn on_peer_event(&mut self, event: Option<PeerEvent>) {
        let Some(m) = &self.member else {
            return;
        };
        match event {
            Some(PeerEvent::Connected) => debug!(participant = %m.participant, "media connected"),
            Some(PeerEvent::Closed(reason)) => {
                debug!(participant = %m.participant, %reason, "peer connection closed");
                self.end.get_or_insert_with(|| "disconnected".into());
            }
            None => {
                self.end.get_or_insert_with(|| "disconnected".into());
            }
            Some(PeerEvent::TrackPublished(track)) => {
                self.state.rooms.publish(&m.room, &m.participant, track)
            }
            Some(PeerEvent::TrackUnpublished(id)) => self.state.rooms.unpublish(&m.room, &id),
            Some(PeerEvent::NegotiationNeeded) => {
                self.negotiation.mark_needed();
                self.maybe_offer().await;
            }
        }
    }
}
