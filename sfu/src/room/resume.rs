//! What a resumed participant is told: the room as it is now, for a participant that is still
//! in it (its WebSocket dropped and a new one continues it).

use cascade_signaling::protocol::ServerMessage;

use super::Rooms;

impl Rooms {
    /// The `joined` message (with `resumed: true`) that continues `participant` of `room`: the
    /// other participants and the tracks as they are now. `None` if it is no longer there (it
    /// was removed or replaced meanwhile).
    pub fn resumed(&self, room: &str, participant: &str) -> Option<ServerMessage> {
        let rooms = self.lock();
        let r = rooms.get(room)?;
        let me = r.participants.get(participant)?;
        Some(ServerMessage::Joined {
            participant: me.info.clone(),
            room: room.to_owned(),
            participants: r
                .participants
                .values()
                .filter(|p| p.info.id != participant)
                .map(|p| p.info.clone())
                .collect(),
            tracks: r.tracks.values().map(|t| t.info()).collect(),
            ice_servers: Vec::new(),
            resume_token: None,
            resumed: true,
        })
    }
}
