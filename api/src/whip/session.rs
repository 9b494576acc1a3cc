//! WHIP and WHEP sessions: the HTTP resources created by a `POST`, and the task that keeps
//! each one's participant in its room until `DELETE`, a kick, or the loss of its peer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cascade_sfu::PeerHandle;
use cascade_sfu::peer::PeerEvent;
use cascade_sfu::room::{SLOW_READER, SessionSignal};
use tokio::sync::mpsc;
use tracing::info;

use crate::rate_limit::RateLimit;
use crate::server::AppState;

/// Which protocol created a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WHIP: the client publishes.
    Whip,
    /// WHEP: the client watches.
    Whep,
}

impl Protocol {
    /// The path segment and name, `whip` or `whep`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whip => "whip",
            Self::Whep => "whep",
        }
    }
}

/// The negotiation state of one session, changed by `PATCH` (one at a time).
#[derive(Debug)]
pub struct Negotiated {
    /// The entity tag of the current ICE session.
    pub etag: String,
    /// The client's last offer, the base of an ICE restart.
    pub offer: String,
    /// The client's current ICE username fragment.
    pub remote_ufrag: String,
}

/// One WHIP or WHEP session resource.
#[derive(Debug)]
pub struct RestSession {
    /// Which protocol.
    pub protocol: Protocol,
    /// Its room.
    pub room: String,
    /// Its participant id.
    pub participant: String,
    /// Its peer.
    pub peer: PeerHandle,
    /// Negotiation state, locked for the duration of a `PATCH`.
    pub negotiated: tokio::sync::Mutex<Negotiated>,
}

/// Every live WHIP and WHEP session, by resource id, and the rate limit of their creation.
#[derive(Debug)]
pub struct RestSessions {
    map: Mutex<HashMap<String, Arc<RestSession>>>,
    /// How fast sessions may be created.
    pub rate_limit: RateLimit,
}

impl RestSessions {
    /// No session yet; at most `per_second` creations per second (0 = unlimited).
    pub fn new(per_second: u32) -> Self {
        Self {
            map: Mutex::default(),
            rate_limit: RateLimit::new(per_second),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<RestSession>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session under `id`.
    pub fn insert(&self, id: String, session: Arc<RestSession>) {
        self.lock().insert(id, session);
    }

    /// The session `id` of `protocol` in `room`, if it is live.
    pub fn get(&self, protocol: Protocol, room: &str, id: &str) -> Option<Arc<RestSession>> {
        self.lock()
            .get(id)
            .filter(|s| s.protocol == protocol && s.room == room)
            .cloned()
    }

    /// Removes and returns a session.
    pub fn remove(&self, id: &str) -> Option<Arc<RestSession>> {
        self.lock().remove(id)
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no live session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a session's participant in its room: publishes the tracks its peer receives, and
/// ends the session (leaving the room, dropping the resource) when the peer closes, the room
/// removes it, or the server shuts down.
pub async fn watch(
    state: Arc<AppState>,
    id: String,
    session: Arc<RestSession>,
    mut signals: mpsc::Receiver<SessionSignal>,
    mut events: mpsc::Receiver<PeerEvent>,
) {
    let _live = state.session_guard();
    let mut shutdown = state.shutdown_signal();
    let (room, participant) = (&session.room, &session.participant);
    let reason = loop {
        tokio::select! {
            biased;
            signal = signals.recv() => match signal {
                Some(SessionSignal::Kick(reason)) => break reason,
                // No signaling channel: room messages and renegotiation requests do not apply.
                Some(SessionSignal::Send(_) | SessionSignal::Renegotiate) => {}
                // The room let go of the participant without a `Kick`: its queue was full.
                None => break SLOW_READER.to_owned(),
            },
            event = events.recv() => match event {
                Some(PeerEvent::TrackPublished(track)) => {
                    state.rooms.publish(room, participant, track)
                }
                Some(PeerEvent::TrackUnpublished(track)) => state.rooms.unpublish(room, &track),
                Some(PeerEvent::Closed(_)) | None => break "disconnected".to_owned(),
                Some(PeerEvent::Connected | PeerEvent::NegotiationNeeded) => {}
            },
            _ = shutdown.changed() => break "server_shutdown".to_owned(),
        }
    };
    // Gone from the registry already: the client ended it with DELETE.
    let reason = match state.rest_sessions.remove(&id) {
        Some(_) => reason,
        None => "leave".to_owned(),
    };
    // A no-op when the room already removed it (kicked, replaced, room deleted, DELETE).
    state.rooms.leave(room, participant, &reason);
    info!(protocol = session.protocol.as_str(), %room, %participant, %reason, "session ended");
}
