//! Session resume: when a joined WebSocket drops (closed, failed, or silent past the idle
//! timeout), its participant is not removed at once. The session's state — the member, its
//! negotiation, the room's signal queue and the peer's event queue — is parked under the
//! single-use resume token of its latest `joined`, for `resume_grace` (20 s by default). Media keeps flowing
//! meanwhile (the peer connection is untouched) and the others see no leave. A new WebSocket
//! that sends `resume` with that token takes the state over and goes on as the same
//! participant; the room's signals queued meanwhile are delivered then. Without a resume in
//! time the participant leaves with the drop's reason, as it would have at once before.
//!
//! A parked participant whose peer connection closes (the media went too) leaves at once.
//!
//! Bounds: at most [`MAX_PARKED`] parked sessions (past it a dropped participant leaves at
//! once); a parked session's queues keep their bounds (a full signal queue removes the
//! participant as a slow reader, as for a live session; more than [`PEER_EVENT_QUEUE`] peer
//! events while parked end it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cascade_sfu::peer::{PEER_EVENT_QUEUE, PeerEvent};
use cascade_sfu::room::ParticipantSignal;
use cascade_signaling::negotiation::Negotiation;
use cascade_signaling::protocol::ServerMessage;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::session::Member;
use crate::state::AppState;

/// Most sessions parked at once.
pub const MAX_PARKED: usize = 10_000;

/// What a dropped session leaves for the WebSocket that resumes it.
pub(super) struct Parked {
    /// The participant.
    pub(super) member: Member,
    /// Its offer/answer state.
    pub(super) negotiation: Negotiation,
    /// The room's signals, queued while parked.
    pub(super) signals: mpsc::Receiver<ParticipantSignal>,
    /// The peer's events.
    pub(super) events: mpsc::Receiver<PeerEvent>,
    /// The peer's events that came while parked, to be handled on resume (at most
    /// [`PEER_EVENT_QUEUE`]).
    pub(super) stashed: Vec<PeerEvent>,
    /// The latest server offer, sent again on resume if it was not answered.
    pub(super) last_offer: Option<ServerMessage>,
}

/// A request for a parked session: where to send it.
type Claim = oneshot::Sender<oneshot::Sender<Parked>>;

/// The parked sessions, by resume token: each is held by its own task (see [`park`]), which
/// hands it over when claimed.
#[derive(Default)]
pub struct ParkedSessions {
    table: Mutex<HashMap<String, Claim>>,
}

impl std::fmt::Debug for ParkedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParkedSessions({})", self.len())
    }
}

impl ParkedSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claim>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parked sessions now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the session parked under `token` (once); `None` if there is none, or it ended
    /// while being claimed.
    pub(super) async fn take(&self, token: &str) -> Option<Parked> {
        let claim = self.lock().remove(token)?;
        let (reply, parked) = oneshot::channel();
        claim.send(reply).ok()?;
        parked.await.ok()
    }
}

/// A new resume token: 128 random bits, base64url.
pub(super) fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Parks `parked` under `token` until it is claimed, for at most `resume_grace`; the
/// participant leaves with `reason` after it, at once if the server shuts down or its peer
/// connection closes (the media is gone too, so there is nothing to resume), and at once when
/// [`MAX_PARKED`] sessions are parked already.
pub(super) fn park(state: &Arc<AppState>, token: String, mut parked: Parked, reason: String) {
    let (room, participant) = (
        parked.member.room.clone(),
        parked.member.participant.clone(),
    );
    let (claim, mut claimed) = oneshot::channel();
    {
        let mut table = state.parked.lock();
        if table.len() >= MAX_PARKED {
            drop(table);
            state.rooms.leave(&room, &participant, &reason);
            info!(%room, %participant, %reason, "participant left (no room to park it)");
            return;
        }
        table.insert(token.clone(), claim);
    }
    let grace = state.config.resume_grace;
    info!(%room, %participant, %reason, ?grace, "websocket dropped: participant parked for resume");
    let state = state.clone();
    tokio::spawn(async move {
        let mut shutdown = state.shutdown_signal();
        let grace = tokio::time::sleep(grace);
        tokio::pin!(grace);
        let why = loop {
            tokio::select! {
                _ = &mut grace => break "not resumed",
                _ = shutdown.changed() => break "server shutting down",
                event = parked.events.recv() => match event {
                    Some(PeerEvent::Closed(_)) | None => break "peer connection closed",
                    Some(_) if parked.stashed.len() >= PEER_EVENT_QUEUE => break "too many peer events",
                    Some(event) => parked.stashed.push(event),
                },
                reply = &mut claimed => {
                    // Handed over; or the claimer is gone, and with it the session.
                    if let Ok(reply) = reply && reply.send(parked).is_ok() {
                        return;
                    }
                    state.rooms.leave(&room, &participant, &reason);
                    info!(%room, %participant, %reason, "participant left (resume abandoned)");
                    return;
                }
            }
        };
        state.parked.lock().remove(&token);
        state.rooms.leave(&room, &participant, &reason);
        info!(%room, %participant, %reason, why, "participant left");
    });
}
