//! The room model: rooms, their participants, published tracks and subscriptions.
//!
//! Signaling sessions call into [`Rooms`]; it decides who must be told what and who must
//! renegotiate, and reaches each participant's session through its [`SessionSignal`] outbox.
//! One mutex guards the model; it is held only for bookkeeping, never across I/O or awaits.
//! The media path never takes it: forwarding reads each track's own subscriber list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::{ParticipantInfo, ServerMessage, TrackInfo, TrackKind};
use tokio::sync::mpsc;
use tracing::info;

use crate::ids::new_id;
use crate::peer::PeerEvent;
use crate::server::{MediaServer, PeerHandle};
use crate::track::PublishedTrack;

/// What the room model asks of a participant's signaling session.
#[derive(Debug)]
pub enum SessionSignal {
    /// Send this message to the client.
    Send(ServerMessage),
    /// The set of forwarded tracks changed: offer when the negotiation state allows.
    Renegotiate,
    /// End the session: send `leave {reason}` and close.
    Kick(String),
}

/// Room limits and lifetimes.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Most participants in one room; 0 = unlimited.
    pub max_participants: u32,
    /// How long an empty room lives before it is closed.
    pub empty_timeout: Duration,
}

/// What a participant may do (from its token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// May publish tracks.
    pub can_publish: bool,
    /// May subscribe to tracks.
    pub can_subscribe: bool,
    /// May send `data` messages.
    pub can_publish_data: bool,
}

/// A join request.
pub struct JoinRequest {
    /// Room name.
    pub room: String,
    /// Identity, unique in the room.
    pub identity: String,
    /// Permissions.
    pub permissions: Permissions,
    /// Subscribe to every track automatically.
    pub auto_subscribe: bool,
    /// The session's outbox.
    pub outbox: mpsc::UnboundedSender<SessionSignal>,
    /// Where the peer's media events go.
    pub peer_events: mpsc::UnboundedSender<PeerEvent>,
}

/// A successful join.
pub struct Joined {
    /// The new participant's id.
    pub participant: String,
    /// Its peer.
    pub peer: PeerHandle,
    /// The `joined` message to send.
    pub message: ServerMessage,
}

struct Participant {
    info: ParticipantInfo,
    permissions: Permissions,
    auto_subscribe: bool,
    outbox: mpsc::UnboundedSender<SessionSignal>,
    peer: PeerHandle,
    subscriptions: HashSet<String>,
}

impl Participant {
    fn send(&self, msg: ServerMessage) {
        let _ = self.outbox.send(SessionSignal::Send(msg));
    }

    fn subscribe(&mut self, track: &Arc<PublishedTrack>) -> bool {
        if track.participant == self.info.id || !self.subscriptions.insert(track.id.clone()) {
            return false;
        }
        self.peer.subscribe(track.clone());
        true
    }

    fn unsubscribe(&mut self, track_id: &str) -> bool {
        if !self.subscriptions.remove(track_id) {
            return false;
        }
        self.peer.unsubscribe(track_id);
        true
    }

    fn renegotiate(&self) {
        let _ = self.outbox.send(SessionSignal::Renegotiate);
    }
}

#[derive(Default)]
struct Room {
    participants: BTreeMap<String, Participant>,
    tracks: BTreeMap<String, Arc<PublishedTrack>>,
    empty_since: Option<Instant>,
}

impl Room {
    fn broadcast(&self, except: &str, msg: &ServerMessage) {
        for (id, p) in &self.participants {
            if id != except {
                p.send(msg.clone());
            }
        }
    }

    /// Removes a track and everything that forwards it; tells the room.
    fn unpublish(&mut self, track_id: &str) {
        let Some(track) = self.tracks.remove(track_id) else {
            return;
        };
        for p in self.participants.values_mut() {
            if p.unsubscribe(track_id) {
                p.renegotiate();
            }
        }
        self.broadcast(
            &track.participant,
            &ServerMessage::TrackUnpublished {
                track: track.id.clone(),
                participant: track.participant.clone(),
            },
        );
    }
}

/// Counts for metrics and leak checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomCounts {
    /// Open rooms.
    pub rooms: u64,
    /// Participants in all rooms.
    pub participants: u64,
    /// Published audio tracks.
    pub audio_tracks: u64,
    /// Published video tracks.
    pub video_tracks: u64,
}

/// Every room of the server.
pub struct Rooms {
    media: Arc<MediaServer>,
    config: RoomConfig,
    rooms: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    /// An empty registry over a media server.
    pub fn new(media: Arc<MediaServer>, config: RoomConfig) -> Self {
        Self {
            media,
            config,
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The media server.
    pub fn media(&self) -> &Arc<MediaServer> {
        &self.media
    }

    /// Adds a participant, creating the room if needed. A participant already in the room
    /// with the same identity is replaced: it gets `leave {reason: "replaced"}` and is removed.
    pub fn join(&self, req: JoinRequest) -> Result<Joined, (ErrorCode, String)> {
        let mut rooms = self.lock();
        let room = rooms.entry(req.room.clone()).or_insert_with(|| {
            info!(room = %req.room, "room created");
            Room::default()
        });
        let replaced = room
            .participants
            .iter()
            .find(|(_, p)| p.info.identity == req.identity)
            .map(|(id, _)| id.clone());
        if replaced.is_none()
            && self.config.max_participants > 0
            && room.participants.len() >= self.config.max_participants as usize
        {
            return Err((
                ErrorCode::RoomFull,
                format!(
                    "room `{}` is full ({} participants)",
                    req.room, self.config.max_participants
                ),
            ));
        }
        if let Some(old) = replaced {
            if let Some(p) = room.participants.get(&old) {
                let _ = p.outbox.send(SessionSignal::Kick("replaced".into()));
            }
            remove_participant(room, &old, "replaced");
        }
        let id = new_id("PA");
        let peer = self
            .media
            .create_peer(&id, req.peer_events)
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        let info = ParticipantInfo {
            id: id.clone(),
            identity: req.identity,
            can_publish: req.permissions.can_publish,
        };
        let mut participant = Participant {
            info: info.clone(),
            permissions: req.permissions,
            auto_subscribe: req.auto_subscribe,
            outbox: req.outbox,
            peer: peer.clone(),
            subscriptions: HashSet::new(),
        };
        let message = ServerMessage::Joined {
            participant: info.clone(),
            room: req.room.clone(),
            participants: room.participants.values().map(|p| p.info.clone()).collect(),
            tracks: room.tracks.values().map(|t| t.info()).collect(),
            ice_servers: Vec::new(),
        };
        if participant.auto_subscribe && participant.permissions.can_subscribe {
            let mut any = false;
            for t in room.tracks.values() {
                any |= participant.subscribe(t);
            }
            if any {
                participant.renegotiate();
            }
        }
        room.broadcast(&id, &ServerMessage::ParticipantJoined { participant: info });
        room.participants.insert(id.clone(), participant);
        room.empty_since = None;
        Ok(Joined {
            participant: id,
            peer,
            message,
        })
    }

    /// Removes a participant: closes its peer, unpublishes its tracks, tells the others.
    pub fn leave(&self, room: &str, participant: &str, reason: &str) {
        let mut rooms = self.lock();
        if let Some(r) = rooms.get_mut(room) {
            remove_participant(r, participant, reason);
        }
    }

    /// A participant's peer started receiving a new track: publish it to the room.
    pub fn publish(&self, room: &str, participant: &str, track: Arc<PublishedTrack>) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        if !r.participants.contains_key(participant) {
            return;
        }
        let msg = ServerMessage::TrackPublished {
            track: track.info(),
        };
        r.tracks.insert(track.id.clone(), track.clone());
        for (id, p) in r.participants.iter_mut() {
            if id == participant {
                p.send(ServerMessage::TrackPublished {
                    track: track.info_for_publisher(),
                });
                continue;
            }
            p.send(msg.clone());
            if p.auto_subscribe && p.permissions.can_subscribe && p.subscribe(&track) {
                p.renegotiate();
            }
        }
    }

    /// A participant's track ended.
    pub fn unpublish(&self, room: &str, track_id: &str) {
        if let Some(r) = self.lock().get_mut(room) {
            r.unpublish(track_id);
        }
    }

    /// Subscribes a participant to tracks by id.
    pub fn subscribe(
        &self,
        room: &str,
        participant: &str,
        track_ids: &[String],
    ) -> Result<(), (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(not_joined)?;
        let tracks: Vec<_> = track_ids
            .iter()
            .map(|id| {
                r.tracks.get(id).cloned().ok_or((
                    ErrorCode::TrackNotFound,
                    format!("no track `{id}` in this room"),
                ))
            })
            .collect::<Result<_, _>>()?;
        let p = r.participants.get_mut(participant).ok_or_else(not_joined)?;
        if !p.permissions.can_subscribe {
            return Err((
                ErrorCode::PermissionDenied,
                "this token may not subscribe".into(),
            ));
        }
        let mut any = false;
        for t in &tracks {
            any |= p.subscribe(t);
        }
        if any {
            p.renegotiate();
        }
        Ok(())
    }

    /// Unsubscribes a participant from tracks by id (unknown ids are ignored).
    pub fn unsubscribe(&self, room: &str, participant: &str, track_ids: &[String]) {
        let mut rooms = self.lock();
        let Some(p) = rooms
            .get_mut(room)
            .and_then(|r| r.participants.get_mut(participant))
        else {
            return;
        };
        let mut any = false;
        for id in track_ids {
            any |= p.unsubscribe(id);
        }
        if any {
            p.renegotiate();
        }
    }

    /// Sets the muted state of one of the participant's own tracks and tells the room.
    pub fn mute(
        &self,
        room: &str,
        participant: &str,
        track_id: &str,
        muted: bool,
    ) -> Result<(), (ErrorCode, String)> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(not_joined)?;
        let track = r
            .tracks
            .get(track_id)
            .filter(|t| t.participant == participant)
            .ok_or((
                ErrorCode::TrackNotFound,
                format!("you publish no track `{track_id}`"),
            ))?;
        if track.set_muted(muted) {
            r.broadcast(
                participant,
                &ServerMessage::TrackMuted {
                    track: track.id.clone(),
                    participant: participant.to_owned(),
                    muted,
                },
            );
        }
        Ok(())
    }

    /// Relays an application message from a participant to the others of its room.
    pub fn send_data(
        &self,
        room: &str,
        participant: &str,
        payload: serde_json::Value,
    ) -> Result<(), (ErrorCode, String)> {
        let rooms = self.lock();
        let r = rooms.get(room).ok_or_else(not_joined)?;
        let p = r.participants.get(participant).ok_or_else(not_joined)?;
        if !p.permissions.can_publish_data {
            return Err((
                ErrorCode::PermissionDenied,
                "this token may not send data".into(),
            ));
        }
        r.broadcast(
            participant,
            &ServerMessage::Data {
                participant: participant.to_owned(),
                identity: p.info.identity.clone(),
                payload,
            },
        );
        Ok(())
    }

    /// Tells every participant of every room to leave (server shutdown).
    pub fn kick_all(&self, reason: &str) {
        for r in self.lock().values() {
            for p in r.participants.values() {
                let _ = p.outbox.send(SessionSignal::Kick(reason.to_owned()));
            }
        }
    }

    /// Closes rooms that have been empty for longer than the empty timeout.
    pub fn reap_empty(&self, now: Instant) {
        let timeout = self.config.empty_timeout;
        self.lock().retain(|name, r| {
            let keep = !r.participants.is_empty()
                || r.empty_since
                    .is_none_or(|t| now.saturating_duration_since(t) < timeout);
            if !keep {
                info!(room = %name, "empty room closed");
            }
            keep
        });
    }

    /// Counts of rooms, participants and tracks.
    pub fn counts(&self) -> RoomCounts {
        let rooms = self.lock();
        let mut c = RoomCounts {
            rooms: rooms.len() as u64,
            ..Default::default()
        };
        for r in rooms.values() {
            c.participants += r.participants.len() as u64;
            for t in r.tracks.values() {
                match t.kind {
                    TrackKind::Audio => c.audio_tracks += 1,
                    TrackKind::Video => c.video_tracks += 1,
                }
            }
        }
        c
    }

    /// The tracks of a room (for tests and the REST API).
    pub fn tracks(&self, room: &str) -> Vec<TrackInfo> {
        self.lock()
            .get(room)
            .map(|r| r.tracks.values().map(|t| t.info()).collect())
            .unwrap_or_default()
    }
}

fn remove_participant(room: &mut Room, participant: &str, reason: &str) {
    let Some(mut p) = room.participants.remove(participant) else {
        return;
    };
    p.peer.close();
    p.subscriptions.clear();
    let own: Vec<String> = room
        .tracks
        .values()
        .filter(|t| t.participant == participant)
        .map(|t| t.id.clone())
        .collect();
    for id in own {
        room.unpublish(&id);
    }
    room.broadcast(
        participant,
        &ServerMessage::ParticipantLeft {
            participant: participant.to_owned(),
            reason: reason.to_owned(),
        },
    );
    if room.participants.is_empty() {
        room.empty_since = Some(Instant::now());
    }
}

/// The error of a request from a session that is not (or no longer) in the room.
fn not_joined() -> (ErrorCode, String) {
    (ErrorCode::NotJoined, "not in a room".to_owned())
}
