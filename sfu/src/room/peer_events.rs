//! What a participant's peer tells the room: the one place peer events change the room model.

use tracing::debug;

use super::Rooms;
use crate::seam::PeerEvent;

impl Rooms {
    /// Applies an event of `participant`'s peer in `room` (`None`: the peer's channel closed):
    /// a new track is published to the room (announced, and subscribed per each participant's
    /// rules), an ended one unpublished. `Err` with the reason when the peer is gone: the
    /// participant's session then ends.
    pub fn apply_peer_event(
        &self,
        room: &str,
        participant: &str,
        event: Option<PeerEvent>,
    ) -> Result<(), String> {
        match event {
            Some(PeerEvent::Connected) => debug!(%room, %participant, "media connected"),
            Some(PeerEvent::TrackPublished(track)) => self.publish(room, participant, track),
            Some(PeerEvent::TrackUnpublished(id)) => self.unpublish(room, &id),
            Some(PeerEvent::Closed(reason)) => {
                debug!(%room, %participant, %reason, "peer connection closed");
                return Err(reason);
            }
            None => return Err("peer gone".to_owned()),
        }
        Ok(())
    }
}
