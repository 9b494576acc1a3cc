//! Session resume: a joined WebSocket session can be continued by another WebSocket that sends
//! `resume` with the single-use resume token of its latest `joined`. The session's state — the
//! member, its negotiation, the room's signal queue and the peer's event queue — moves to the
//! new connection, which goes on as the same participant; the others see no leave or join,
//! and media keeps flowing (the peer connection is untouched).
//!
//! Two cases:
//! - the old WebSocket dropped (closed, failed, or silent past the idle timeout): the session
//!   is *parked* for `resume_grace` (20 s by default); without a resume in time the participant
//!   leaves with the drop's reason, as it would have at once without resume. A parked
//!   participant whose peer connection closes (the media went too) leaves at once;
//! - the old WebSocket still looks alive to the server (its network went away without a
//!   word, which the server only learns at the idle timeout): the old session is told to hand
//!   its state over, and ends with reason `resumed`.
//!
//! Every live or parked session is in one table by token (see [`ResumeTable`]).
//!
//! Bounds: at most [`MAX_PARKED`] parked sessions (past it a dropped participant leaves at
//! once); a parked session's queues keep their bounds (a full signal queue removes the
//! participant as a slow reader, as for a live session; more than [`PEER_EVENT_QUEUE`] peer
//! events while parked end it); a hand-over that does not come within [`HANDOVER_TIMEOUT`]
//! fails the `resume`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cascade_sfu::room::ParticipantSignal;
use cascade_sfu::seam::{PEER_EVENT_QUEUE, PeerEvent};
use cascade_signaling::negotiation::Negotiation;
use cascade_signaling::protocol::ServerMessage;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::session::Member;
use crate::state::AppState;

/// Most sessions parked at once.
pub const MAX_PARKED: usize = 10_000;
/// How long a `resume` waits for the session it claims to hand its state over.
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(12);
/// The end reason of a live session that another connection resumed.
pub const RESUMED_ELSEWHERE: &str = "resumed";

/// What a session hands over to the WebSocket that resumes it.
pub(super) struct Parked {
    /// The participant.
    pub(super) member: Member,
    /// Its offer/answer state.
    pub(super) negotiation: Negotiation,
    /// The room's signals, queued meanwhile.
    pub(super) signals: mpsc::Receiver<ParticipantSignal>,
    /// The peer's events.
    pub(super) events: mpsc::Receiver<PeerEvent>,
    /// The peer's events that came while parked, to be handled on resume (at most
    /// [`PEER_EVENT_QUEUE`]).
    pub(super) stashed: Vec<PeerEvent>,
    /// The latest server offer, sent again on resume if it was not answered.
    pub(super) last_offer: Option<ServerMessage>,
}

/// Where a claimed session sends its state.
pub(super) type Handover = oneshot::Sender<Parked>;
/// How a session learns that it is claimed.
pub(super) type ClaimReceiver = oneshot::Receiver<Handover>;

/// One session in the table.
struct Entry {
    claim: oneshot::Sender<Handover>,
    parked: bool,
}

/// The live and parked WebSocket sessions, by resume token.
#[derive(Default)]
pub struct ResumeTable {
    table: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ResumeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResumeTable(parked: {})", self.parked())
    }
}

impl ResumeTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions parked now (their WebSocket dropped, waiting for a resume).
    pub fn parked(&self) -> usize {
        self.lock().values().filter(|e| e.parked).count()
    }

    /// Registers a live session under `token`; it is claimed through the receiver.
    pub(super) fn register(&self, token: String) -> ClaimReceiver {
        let (claim, claimed) = oneshot::channel();
        self.lock().insert(
            token,
            Entry {
                claim,
                parked: false,
            },
        );
        claimed
    }

    /// Forgets the session under `token` (it ended for good).
    pub(super) fn forget(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Takes over the session under `token` (once), live or parked; `None` if there is none,
    /// or it ended, or did not hand over within [`HANDOVER_TIMEOUT`].
    pub(super) async fn take(&self, token: &str) -> Option<Parked> {
        let entry = self.lock().remove(token)?;
        let (handover, parked) = oneshot::channel();
        entry.claim.send(handover).ok()?;
        tokio::time::timeout(HANDOVER_TIMEOUT, parked)
            .await
            .ok()?
            .ok()
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
        let mut table = state.resume.lock();
        if table.values().filter(|e| e.parked).count() >= MAX_PARKED {
            table.remove(&token);
            drop(table);
            state.rooms.leave(&room, &participant, &reason);
            info!(%room, %participant, %reason, "participant left (no room to park it)");
            return;
        }
        table.insert(
            token.clone(),
            Entry {
                claim,
                parked: true,
            },
        );
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
                handover = &mut claimed => {
                    // Handed over; or the claimer is gone, and with it the session.
                    if let Ok(handover) = handover && handover.send(parked).is_ok() {
                        return;
                    }
                    break "resume abandoned";
                }
            }
        };
        state.resume.forget(&token);
        state.rooms.leave(&room, &participant, &reason);
        info!(%room, %participant, %reason, why, "participant left");
    });
}
