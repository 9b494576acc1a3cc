//! The task of one WHIP or WHEP session resource, from its creation until `DELETE`, a kick,
//! the loss of its peer, or the server's shutdown.

use std::sync::Arc;

use cascade_sfu::room::{ParticipantSignal, SLOW_READER};
use cascade_sfu::seam::PeerEvent;
use tokio::sync::mpsc;
use tracing::info;

use super::resource::WhipResource;
use crate::state::AppState;

/// Keeps a resource's participant in its room: publishes the tracks its peer receives, and
/// ends the session (leaving the room, dropping the resource) when the peer closes, the room
/// removes it, or the server shuts down.
pub(super) async fn run(
    state: Arc<AppState>,
    id: String,
    resource: Arc<WhipResource>,
    mut signals: mpsc::Receiver<ParticipantSignal>,
    mut events: mpsc::Receiver<PeerEvent>,
) {
    let _live = state.session_guard();
    let mut shutdown = state.shutdown_signal();
    let (room, participant) = (&resource.room, &resource.participant);
    let reason = loop {
        tokio::select! {
            biased;
            signal = signals.recv() => match signal {
                Some(ParticipantSignal::Kick(reason)) => break reason,
                // No signaling channel: room messages and renegotiation requests do not apply.
                Some(ParticipantSignal::Send(_) | ParticipantSignal::Renegotiate) => {}
                // The room let go of the participant without a `Kick`: its queue was full.
                None => break SLOW_READER.to_owned(),
            },
            event = events.recv() => {
                if state.rooms.apply_peer_event(room, participant, event).is_err() {
                    break "disconnected".to_owned();
                }
            }
            _ = shutdown.changed() => break "server_shutdown".to_owned(),
        }
    };
    // Gone from the registry already: the client ended it with DELETE.
    let reason = match state.whip_resources.remove(&id) {
        Some(_) => reason,
        None => "leave".to_owned(),
    };
    // A no-op when the room already removed it (kicked, replaced, room deleted, DELETE).
    state.rooms.leave(room, participant, &reason);
    info!(protocol = resource.protocol.as_str(), %room, %participant, %reason, "session ended");
}
