//! The signaling session of one WebSocket ([`SignalingSession`]): turns client messages into
//! room and peer operations and drives offer/answer with the sans-I/O [`Negotiation`] state
//! machine (server impolite, client polite). Its transport, the loop that feeds it, is
//! [`super::run`].

use std::sync::Arc;
use std::time::SystemTime;

use cascade_sfu::PeerHandle;
use cascade_sfu::room::{
    JoinRequest, ParticipantKind, ParticipantSignal, Permissions, SESSION_QUEUE,
};
use cascade_sfu::seam::{PEER_EVENT_QUEUE, PeerEvent};
use cascade_signaling::ErrorCode;
use cascade_signaling::negotiation::{Negotiation, OfferAction};
use cascade_signaling::protocol::{ClientMessage, JoinOptions, ServerMessage, parse_client};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::auth;
use crate::rate_limit::RateLimit;
use crate::state::AppState;
use crate::turn_credentials;

/// The `cascade_session_limits_total` label of messages dropped by a session rate limit.
const RATE_LIMITED: &str = "rate_limited";

/// The participant a session joined as.
pub(super) struct Member {
    /// Its room.
    pub(super) room: String,
    /// Its participant id.
    pub(super) participant: String,
    /// Its peer.
    pub(super) peer: PeerHandle,
}

/// One WebSocket's signaling session: the member it joined as, its negotiation state and
/// what it has to send.
pub(super) struct SignalingSession {
    /// The server.
    pub(super) state: Arc<AppState>,
    /// The member, once joined.
    pub(super) member: Option<Member>,
    /// Offer/answer state (server impolite, client polite).
    pub(super) negotiation: Negotiation,
    /// The room's signals for this member (created by `join`; the room holds the sender).
    pub(super) signals: Option<mpsc::Receiver<ParticipantSignal>>,
    /// The member's peer events (created by `join`; the peer holds the sender).
    pub(super) events: Option<mpsc::Receiver<PeerEvent>>,
    /// Replies to one event, sent before the next event is taken.
    pub(super) out: Vec<ServerMessage>,
    /// Set when the session must end, with the reason the participant leaves for.
    pub(super) end: Option<String>,
    /// Every message the client sends (`message_rate_limit`).
    message_rate: RateLimit,
    /// Bytes of the `data` messages the client sends (`data_rate_limit`).
    data_rate: RateLimit,
    /// The Host header of the WebSocket upgrade (for the embedded TURN server's URLs).
    pub(super) request_host: Option<String>,
    /// The resume token handed out in the latest `joined` (see [`super::resume`]).
    pub(super) resume_token: Option<String>,
    /// The latest server offer, sent again after a resume if it was not answered.
    pub(super) last_offer: Option<ServerMessage>,
    /// Set when the peer connection closed: such a session is not parked for resume.
    pub(super) peer_closed: bool,
    /// Resolves when another connection resumes this session (registered with the token).
    pub(super) claim: Option<super::resume::ClaimReceiver>,
    /// Where to hand the session over, once claimed.
    pub(super) handover: Option<super::resume::Handover>,
}

impl SignalingSession {
    /// A session that has not joined yet, with the configured rate limits.
    pub(super) fn new(state: Arc<AppState>) -> Self {
        let message_rate = RateLimit::new(state.config.message_rate_limit);
        let rate = f64::from(state.config.data_rate_limit);
        Self {
            member: None,
            negotiation: Negotiation::new(),
            signals: None,
            events: None,
            out: Vec::new(),
            end: None,
            message_rate,
            data_rate: RateLimit::with_burst(rate, rate * 4.0),
            request_host: None,
            resume_token: None,
            last_offer: None,
            peer_closed: false,
            claim: None,
            handover: None,
            state,
        }
    }

    /// Queues an error reply.
    pub(super) fn reject(&mut self, code: ErrorCode, message: String, reference: Option<Value>) {
        debug!(%code, %message, "request rejected");
        self.out
            .push(ServerMessage::error(code, message, reference));
    }

    /// Takes one message from the message rate limit; past it, queues a `rate_limited` error
    /// and returns false: the message is dropped.
    pub(super) fn within_message_rate(&mut self) -> bool {
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

    /// Handles one text message of the client.
    pub(super) async fn on_text(&mut self, text: &str) {
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
            ClientMessage::Resume { token } => self.resume(&token).await,
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
                self.last_offer = None;
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
        let ice_servers = self.ice_servers(&claims.sub);
        let (signal_sender, signals) = mpsc::channel(SESSION_QUEUE);
        let (peer_events, events) = mpsc::channel(PEER_EVENT_QUEUE);
        let joined = self.state.rooms.join(JoinRequest {
            room: grants.room.clone(),
            identity: claims.sub,
            permissions: Permissions::from(&grants),
            auto_subscribe: options.auto_subscribe,
            kind: ParticipantKind::Websocket,
            outbox: signal_sender,
            peer_events,
        })?;
        self.signals = Some(signals);
        self.events = Some(events);
        let mut message = joined.message;
        self.complete_joined(&mut message, ice_servers);
        info!(room = %grants.room, participant = %joined.participant, "participant joined");
        self.out.push(message);
        self.member = Some(Member {
            room: grants.room,
            participant: joined.participant,
            peer: joined.peer,
        });
        Ok(())
    }

    /// Continues the participant parked under `token` (see [`super::resume`]): its state
    /// becomes this session's, and it is told the room as it is now; a server offer it had
    /// not answered is sent again.
    async fn resume(&mut self, token: &str) -> Result<(), (ErrorCode, String)> {
        if self.member.is_some() {
            return Err((ErrorCode::AlreadyJoined, "already joined".into()));
        }
        let failed = |why: &str| (ErrorCode::ResumeFailed, format!("{why}: join again"));
        let parked = self.state.resume.take(token).await.ok_or_else(|| {
            failed("no participant to resume with this token (unknown, used or expired)")
        })?;
        let member = parked.member;
        let mut message = self
            .state
            .rooms
            .resumed(&member.room, &member.participant)
            .ok_or_else(|| failed("the participant has left the room meanwhile"))?;
        let identity = match &message {
            ServerMessage::Joined { participant, .. } => participant.identity.clone(),
            _ => unreachable!("Rooms::resumed returns a joined message"),
        };
        let ice_servers = self.ice_servers(&identity);
        self.complete_joined(&mut message, ice_servers);
        info!(room = %member.room, participant = %member.participant, "participant resumed");
        self.out.push(message);
        self.negotiation = parked.negotiation;
        self.signals = Some(parked.signals);
        self.events = Some(parked.events);
        self.last_offer = parked.last_offer;
        if self.negotiation.offer_outstanding()
            && let Some(offer) = &self.last_offer
        {
            self.out.push(offer.clone());
        }
        self.member = Some(member);
        for event in parked.stashed {
            self.on_peer_event(Some(event)).await;
        }
        Ok(())
    }

    /// The ICE servers of `identity`'s peer connection, with minted TURN credentials.
    fn ice_servers(&self, identity: &str) -> Vec<cascade_signaling::protocol::IceServer> {
        let turn_urls = self.state.embedded_turn_urls(self.request_host.as_deref());
        turn_credentials::ice_servers(&self.state.config, &turn_urls, identity, SystemTime::now())
    }

    /// Fills in what the room model leaves out of a `joined` message: the ICE servers and a
    /// new resume token (which replaces the previous one).
    fn complete_joined(
        &mut self,
        message: &mut ServerMessage,
        servers: Vec<cascade_signaling::protocol::IceServer>,
    ) {
        let token = super::resume::new_token();
        if let ServerMessage::Joined {
            ice_servers,
            resume_token,
            ..
        } = message
        {
            *ice_servers = servers;
            *resume_token = Some(token.clone());
        }
        self.claim = Some(self.state.resume.register(token.clone()));
        self.resume_token = Some(token);
    }

    /// Sends a server offer if one is needed and the negotiation state allows it.
    pub(super) async fn maybe_offer(&mut self) {
        let Some(m) = &self.member else {
            return;
        };
        if !self.negotiation.should_offer() {
            return;
        }
        match m.peer.create_offer().await {
            Ok(offer) => {
                self.negotiation.offer_sent();
                let offer = ServerMessage::Offer {
                    sdp: offer.sdp,
                    tracks: offer.tracks,
                };
                self.last_offer = Some(offer.clone());
                self.out.push(offer);
            }
            Err(e) => {
                // Most likely the client's own offer is being applied: retried after it.
                debug!("server offer deferred: {e}");
            }
        }
    }

    /// Handles a peer event; `None`: the peer is gone (its sender dropped).
    pub(super) async fn on_peer_event(&mut self, event: Option<PeerEvent>) {
        let Some(m) = &self.member else {
            return;
        };
        let applied = self
            .state
            .rooms
            .apply_peer_event(&m.room, &m.participant, event);
        if applied.is_err() {
            self.peer_closed = true;
            self.end.get_or_insert_with(|| "disconnected".into());
        }
    }
}
