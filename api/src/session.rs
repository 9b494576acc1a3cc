//! One participant's signaling session over a WebSocket.
//!
//! The session turns client messages into room and peer operations, relays the room's
//! [`SessionSignal`]s to the client, and drives offer/answer with the sans-I/O
//! [`Negotiation`] state machine (server impolite, client polite). When it ends, for whatever
//! reason, the participant leaves its room and every resource it held is freed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use cascade_sfu::PeerHandle;
use cascade_sfu::peer::PeerEvent;
use cascade_sfu::room::{JoinRequest, ParticipantKind, Permissions, SessionSignal};
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
use crate::server::AppState;

/// A session that sends nothing for this long is considered gone (clients ping every 10 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Member {
    room: String,
    participant: String,
    peer: PeerHandle,
}

struct Session {
    state: Arc<AppState>,
    member: Option<Member>,
    negotiation: Negotiation,
    outbox: mpsc::UnboundedSender<SessionSignal>,
    peer_events: mpsc::UnboundedSender<PeerEvent>,
    out: Vec<ServerMessage>,
    /// Set when the session must end, with the reason the participant leaves for.
    end: Option<String>,
}

/// Serves one WebSocket until the client leaves or disconnects.
pub async fn run(socket: WebSocket, state: Arc<AppState>) {
    let _live = state.session_guard();
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut signals) = mpsc::unbounded_channel();
    let (peer_events, mut events) = mpsc::unbounded_channel();
    let mut s = Session {
        state: state.clone(),
        member: None,
        negotiation: Negotiation::new(),
        outbox,
        peer_events,
        out: Vec::new(),
        end: None,
    };
    let mut shutdown = state.shutdown_signal();
    let mut close_reason: Option<String> = None;
    let mut close_code = 1000;
    let mut idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
    loop {
        tokio::select! {
            // Room signals first: a `Kick` queued before the peer closed must win over the
            // peer's `Closed` event, so the client learns why it was removed.
            biased;
            Some(signal) = signals.recv() => match signal {
                SessionSignal::Send(msg) => s.out.push(msg),
                SessionSignal::Renegotiate => {
                    s.negotiation.mark_needed();
                    s.maybe_offer().await;
                }
                SessionSignal::Kick(reason) => {
                    s.out.push(ServerMessage::Leave { reason: reason.clone() });
                    close_reason = Some(reason.clone());
                    s.end = Some(reason);
                }
            },
            Some(event) = events.recv() => s.on_peer_event(event).await,
            frame = stream.next() => {
                idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                match frame {
                    Some(Ok(Message::Text(text))) => s.on_text(&text).await,
                    Some(Ok(Message::Binary(_))) => s.reject(
                        ErrorCode::InvalidMessage,
                        "binary frames are not accepted; send JSON text".into(),
                        None,
                    ),
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
            _ = shutdown.changed() => {
                s.out.push(ServerMessage::Leave { reason: "server_shutdown".into() });
                close_reason = Some("server_shutdown".into());
                s.end = Some("server_shutdown".into());
            }
        }
        for msg in s.out.drain(..) {
            state.metrics.signaling_message("out", msg.kind());
            let text = serde_json::to_string(&msg).expect("server messages serialize");
            if sink.send(Message::Text(text.into())).await.is_err() {
                s.end.get_or_insert_with(|| "disconnected".into());
                break;
            }
        }
        if s.end.is_some() {
            break;
        }
    }
    let reason = s.end.take().unwrap_or_else(|| "disconnected".into());
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
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
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

    async fn on_text(&mut self, text: &str) {
        let (msg, reference) = match parse_client(text) {
            Ok(m) => m,
            Err(rejection) => {
                self.state.metrics.signaling_message("in", "invalid");
                self.out.push(rejection.into());
                return;
            }
        };
        self.state.metrics.signaling_message("in", msg.kind());
        if let Err((code, message)) = self.handle(msg).await {
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
            outbox: self.outbox.clone(),
            peer_events: self.peer_events.clone(),
        })?;
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

    async fn on_peer_event(&mut self, event: PeerEvent) {
        let Some(m) = &self.member else {
            return;
        };
        match event {
            PeerEvent::Connected => debug!(participant = %m.participant, "media connected"),
            PeerEvent::Closed(reason) => {
                debug!(participant = %m.participant, %reason, "peer connection closed");
                self.end.get_or_insert_with(|| "disconnected".into());
            }
            PeerEvent::TrackPublished(track) => {
                self.state.rooms.publish(&m.room, &m.participant, track)
            }
            PeerEvent::TrackUnpublished(id) => self.state.rooms.unpublish(&m.room, &id),
            PeerEvent::NegotiationNeeded => {
                self.negotiation.mark_needed();
                self.maybe_offer().await;
            }
        }
    }
}
