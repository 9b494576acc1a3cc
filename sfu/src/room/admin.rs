//! The room API's operations on the room model: listing, creating and deleting rooms,
//! removing participants, changing their permissions, muting their tracks, server data.

use std::time::{Duration, Instant};

use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::{ServerMessage, TrackInfo};
use tracing::info;

use super::events::{Observer, ParticipantSummary, RoomEvent, RoomSummary};
use super::{
    Participant, ParticipantSignal, Permissions, Room, RoomSettings, Rooms, remove_participant,
};

/// The `participant` and `identity` of data messages sent by the room API.
pub const SERVER_SENDER: &str = "server";

impl Rooms {
    /// Every room, sorted by name.
    pub fn list_rooms(&self) -> Vec<RoomSummary> {
        let mut list: Vec<_> = self.lock().values().map(Room::summary).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One room.
    pub fn room(&self, room: &str) -> Result<RoomSummary, (ErrorCode, String)> {
        self.lock()
            .get(room)
            .map(Room::summary)
            .ok_or_else(|| room_not_found(room))
    }

    /// Creates an empty room with the given settings (defaults where `None`); returns it and
    /// whether it was created. An existing room is returned unchanged. While the server drains
    /// a new room is refused with `server_draining`.
    pub fn create_room(
        &self,
        name: &str,
        max_participants: Option<u32>,
        empty_timeout: Option<Duration>,
    ) -> Result<(RoomSummary, bool), (ErrorCode, String)> {
        let defaults = self.default_settings();
        let settings = RoomSettings {
            max_participants: max_participants.unwrap_or(defaults.max_participants),
            empty_timeout: empty_timeout.unwrap_or(defaults.empty_timeout),
        };
        let mut rooms = self.lock();
        let (room, created) = self.open(&mut rooms, name, Some(settings))?;
        Ok((room.summary(), created))
    }

    /// Deletes a room: every participant gets `leave {reason: "room_deleted"}` and is removed.
    pub fn delete_room(&self, room: &str) -> Result<RoomSummary, (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| room_not_found(room))?;
        let ids: Vec<String> = r.participants.keys().cloned().collect();
        for id in ids {
            if let Some(p) = r.participants.get(&id) {
                p.signal(ParticipantSignal::Kick("room_deleted".into()));
            }
            remove_participant(r, &id, "room_deleted", &self.observer);
        }
        let r = rooms.remove(room).expect("present");
        info!(room = %room, "room deleted");
        let summary = r.summary();
        self.observer.emit(RoomEvent::RoomFinished {
            room: summary.clone(),
        });
        Ok(summary)
    }

    /// The participants of a room, in joining order.
    pub fn participants(&self, room: &str) -> Result<Vec<ParticipantSummary>, (ErrorCode, String)> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| room_not_found(room))?;
        let mut list: Vec<&Participant> = r.participants.values().collect();
        list.sort_by_key(|p| p.seq);
        Ok(list.into_iter().map(|p| p.summary(&r.tracks)).collect())
    }

    /// One participant, by identity.
    pub fn participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<ParticipantSummary, (ErrorCode, String)> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(|| room_not_found(room))?;
        let id = r
            .find(identity)
            .ok_or_else(|| participant_not_found(identity))?;
        Ok(r.participants[&id].summary(&r.tracks))
    }

    /// Removes a participant by identity: it gets `leave {reason: "removed"}`.
    pub fn remove_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<ParticipantSummary, (ErrorCode, String)> {
        self.with_member(room, identity, |r, id, observer| {
            let p = &r.participants[&id];
            let summary = p.summary(&r.tracks);
            p.signal(ParticipantSignal::Kick("removed".into()));
            remove_participant(r, &id, "removed", observer);
            Ok(summary)
        })
    }

    /// Changes a participant's permissions live. Revoking `can_publish` unpublishes its
    /// tracks; revoking `can_subscribe` ends its subscriptions; granting `can_subscribe` to an
    /// auto-subscriber subscribes it to the room. The participant gets `permissions_changed`.
    pub fn set_permissions(
        &self,
        room: &str,
        identity: &str,
        permissions: Permissions,
    ) -> Result<ParticipantSummary, (ErrorCode, String)> {
        self.with_member(room, identity, |r, id, observer| {
            let p = r.participants.get_mut(&id).expect("found");
            let before = std::mem::replace(&mut p.permissions, permissions);
            p.info.can_publish = permissions.can_publish;
            p.send(ServerMessage::PermissionsChanged { permissions });
            if before.can_subscribe && !permissions.can_subscribe {
                let subs: Vec<String> = p.subscriptions.iter().cloned().collect();
                let mut any = false;
                for t in subs {
                    any |= p.unsubscribe(&t);
                }
                if any && p.follow.is_none() {
                    p.renegotiate();
                }
            }
            if before.can_publish && !permissions.can_publish {
                for t in r.tracks_of(&id) {
                    r.unpublish(&t, observer, None);
                }
            }
            if !before.can_subscribe && permissions.can_subscribe {
                let tracks: Vec<_> = r.tracks.values().cloned().collect();
                let p = r.participants.get_mut(&id).expect("found");
                if p.follow.is_some() {
                    r.fill_slots(&id);
                } else if p.auto_subscribe {
                    let mut any = false;
                    for t in &tracks {
                        any |= p.subscribe(t);
                    }
                    if any {
                        p.renegotiate();
                    }
                }
            }
            Ok(r.participants[&id].summary(&r.tracks))
        })
    }

    /// Mutes or unmutes a published track as an administrator. While muted this way the track
    /// is not forwarded and its publisher cannot unmute it; everyone, the publisher included,
    /// gets `track_muted`.
    pub fn admin_mute(
        &self,
        room: &str,
        identity: &str,
        track_id: &str,
        muted: bool,
    ) -> Result<TrackInfo, (ErrorCode, String)> {
        self.with_member(room, identity, |r, id, _| {
            let track = r
                .tracks
                .get(track_id)
                .filter(|t| t.participant == id)
                .ok_or_else(|| {
                    (
                        ErrorCode::TrackNotFound,
                        format!("`{identity}` publishes no track `{track_id}`"),
                    )
                })?;
            track.set_blocked(muted);
            if track.set_muted(muted) {
                r.broadcast(
                    "",
                    &ServerMessage::TrackMuted {
                        track: track.id.clone(),
                        participant: id,
                        muted,
                    },
                );
            }
            if !muted {
                track.request_keyframe(Instant::now());
            }
            Ok(track.info())
        })
    }

    /// Sends a data message from the server to a room: to every participant, or to those with
    /// the given identities. Returns how many received it.
    pub fn send_server_data(
        &self,
        room: &str,
        identities: &[String],
        payload: serde_json::Value,
    ) -> Result<usize, (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| room_not_found(room))?;
        let msg = ServerMessage::Data {
            participant: SERVER_SENDER.to_owned(),
            identity: SERVER_SENDER.to_owned(),
            payload,
        };
        let mut sent = 0;
        for p in r.participants.values() {
            if identities.is_empty() || identities.contains(&p.info.identity) {
                p.send(msg.clone());
                sent += 1;
            }
        }
        r.evict_slow(&self.observer);
        Ok(sent)
    }

    /// Runs `edit` on the room `room` and the id of its participant `identity` (errors
    /// `room_not_found` / `participant_not_found`), then evicts whoever that made a slow reader.
    fn with_member<T>(
        &self,
        room: &str,
        identity: &str,
        edit: impl FnOnce(&mut Room, String, &Observer) -> Result<T, (ErrorCode, String)>,
    ) -> Result<T, (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| room_not_found(room))?;
        let id = r
            .find(identity)
            .ok_or_else(|| participant_not_found(identity))?;
        let result = edit(r, id, &self.observer);
        r.evict_slow(&self.observer);
        result
    }
}

fn room_not_found(room: &str) -> (ErrorCode, String) {
    (ErrorCode::RoomNotFound, format!("no room `{room}`"))
}

fn participant_not_found(identity: &str) -> (ErrorCode, String) {
    (
        ErrorCode::ParticipantNotFound,
        format!("no participant `{identity}` in this room"),
    )
}
