//! The room model: rooms, their participants, published tracks and subscriptions.
//!
//! Signaling sessions call into [`Rooms`]; it decides who must be told what and who must
//! renegotiate, and reaches each participant's session through its [`ParticipantSignal`] outbox.
//! One mutex guards the model; it is held only for bookkeeping, never across I/O or awaits.
//! The media path never takes it: forwarding reads each track's own subscriber list.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cascade_signaling::ErrorCode;
use cascade_signaling::names;
pub use cascade_signaling::protocol::Permissions;
use cascade_signaling::protocol::{ParticipantInfo, ServerMessage, TrackInfo, TrackKind};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::info;

mod admin;
mod events;
mod peer_events;
mod resume;
#[cfg(test)]
mod tests;

pub use admin::SERVER_SENDER;
use events::{Observer, unix_secs};
pub use events::{ParticipantSummary, RoomEvent, RoomObserver, RoomSummary};

use crate::ids::new_id;
use crate::seam::{PeerEvent, PeerFactory, PeerHandle, PublishedTrack};

/// What the room model asks of a participant's signaling session.
#[derive(Debug)]
pub enum ParticipantSignal {
    /// Send this message to the client.
    Send(ServerMessage),
    /// The set of forwarded tracks changed: offer when the negotiation state allows.
    Renegotiate,
    /// End the session: send `leave {reason}` and close.
    Kick(String),
}

/// Most [`ParticipantSignal`]s queued for one session. The room never waits for a session: when a
/// session's queue is full, the participant is removed as a slow reader ([`SLOW_READER`]), and
/// its session, whose queue then closes, ends.
pub const SESSION_QUEUE: usize = 128;

/// The `participant_left` reason of a participant whose session could not keep up with what
/// the room sent it (its queue of [`SESSION_QUEUE`] signals was full, or its socket accepted
/// nothing for a while).
pub const SLOW_READER: &str = "slow_reader";

/// Room limits and lifetimes.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Most participants in one room; 0 = unlimited.
    pub max_participants: u32,
    /// How long an empty room lives before it is closed.
    pub empty_timeout: Duration,
}

/// How a participant is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantKind {
    /// The WebSocket signaling protocol.
    Websocket,
    /// A WHIP publisher (one offer, no renegotiation).
    Whip,
    /// A WHEP viewer: fixed audio and video slots that follow the room's publishers.
    Whep,
}

/// Which publisher a WHEP viewer's slots follow.
#[derive(Debug, Clone, Default)]
pub struct Follow {
    /// Only this identity's tracks; `None` = the earliest-joined publisher of each kind.
    pub identity: Option<String>,
}

/// Per-room settings (from the server configuration or the room API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    /// Most participants; 0 = unlimited.
    pub max_participants: u32,
    /// How long the room lives once empty.
    pub empty_timeout: Duration,
}

/// A join request.
pub struct JoinRequest {
    /// Room name.
    pub room: String,
    /// Identity, unique in the room.
    pub identity: String,
    /// Permissions.
    pub permissions: Permissions,
    /// Subscribe to every track automatically (ignored for WHEP viewers, which follow).
    pub auto_subscribe: bool,
    /// How it connects.
    pub kind: ParticipantKind,
    /// The session's outbox, of capacity [`SESSION_QUEUE`] (the room keeps the only sender).
    pub outbox: mpsc::Sender<ParticipantSignal>,
    /// Where the peer's media events go (see [`crate::seam::PEER_EVENT_QUEUE`]).
    pub peer_events: mpsc::Sender<PeerEvent>,
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
    kind: ParticipantKind,
    outbox: mpsc::Sender<ParticipantSignal>,
    /// Set when a signal found the outbox full: the participant is removed as a slow reader.
    slow: Cell<bool>,
    peer: PeerHandle,
    subscriptions: HashSet<String>,
    /// Order of joining within the room (WHEP viewers follow the earliest publisher).
    seq: u64,
    joined_at: SystemTime,
    /// Set once a WHEP viewer's slots exist: which publisher they follow.
    follow: Option<Follow>,
}

impl Participant {
    fn summary(&self, tracks: &BTreeMap<String, Arc<PublishedTrack>>) -> ParticipantSummary {
        ParticipantSummary {
            id: self.info.id.clone(),
            identity: self.info.identity.clone(),
            kind: self.kind,
            permissions: self.permissions,
            tracks: tracks
                .values()
                .filter(|t| t.participant == self.info.id)
                .map(|t| t.info())
                .collect(),
            joined_at: unix_secs(self.joined_at),
        }
    }

    /// The track this WHEP viewer's slot of `kind` carries.
    fn slot(
        &self,
        kind: TrackKind,
        tracks: &BTreeMap<String, Arc<PublishedTrack>>,
    ) -> Option<String> {
        self.subscriptions
            .iter()
            .find(|id| tracks.get(*id).is_some_and(|t| t.kind == kind))
            .cloned()
    }

    /// Queues a signal without waiting; a full queue marks the participant slow (see
    /// [`Room::evict_slow`]). A closed queue means the session is ending anyway.
    fn signal(&self, signal: ParticipantSignal) {
        if let Err(TrySendError::Full(_)) = self.outbox.try_send(signal) {
            self.slow.set(true);
        }
    }

    fn send(&self, msg: ServerMessage) {
        self.signal(ParticipantSignal::Send(msg));
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
        self.signal(ParticipantSignal::Renegotiate);
    }
}

struct Room {
    name: String,
    settings: RoomSettings,
    created_at: SystemTime,
    participants: BTreeMap<String, Participant>,
    tracks: BTreeMap<String, Arc<PublishedTrack>>,
    empty_since: Option<Instant>,
    next_seq: u64,
}

impl Room {
    fn new(name: &str, settings: RoomSettings) -> Self {
        Self {
            name: name.to_owned(),
            settings,
            created_at: SystemTime::now(),
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            empty_since: Some(Instant::now()),
            next_seq: 0,
        }
    }

    fn summary(&self) -> RoomSummary {
        RoomSummary {
            name: self.name.clone(),
            num_participants: self.participants.len() as u32,
            num_tracks: self.tracks.len() as u32,
            max_participants: self.settings.max_participants,
            empty_timeout_secs: self.settings.empty_timeout.as_secs(),
            created_at: unix_secs(self.created_at),
        }
    }

    /// The ids of the tracks a participant publishes.
    fn tracks_of(&self, participant: &str) -> Vec<String> {
        self.tracks
            .values()
            .filter(|t| t.participant == participant)
            .map(|t| t.id.clone())
            .collect()
    }

    /// The participant id of an identity.
    fn find(&self, identity: &str) -> Option<String> {
        self.participants
            .iter()
            .find(|(_, p)| p.info.identity == identity)
            .map(|(id, _)| id.clone())
    }

    /// Fills a WHEP viewer's empty slots with the room's tracks it follows.
    fn fill_slots(&mut self, viewer: &str) {
        let Some(p) = self.participants.get(viewer) else {
            return;
        };
        let Some(follow) = p.follow.clone() else {
            return;
        };
        if !p.permissions.can_subscribe {
            return;
        }
        let mut picks = Vec::new();
        let bound: Vec<String> = [TrackKind::Audio, TrackKind::Video]
            .iter()
            .filter_map(|k| p.slot(*k, &self.tracks))
            .filter_map(|id| self.tracks.get(&id).map(|t| t.participant.clone()))
            .collect();
        for kind in [TrackKind::Audio, TrackKind::Video] {
            if p.slot(kind, &self.tracks).is_some() {
                continue;
            }
            // The publisher already followed on the other slot first, then the earliest joined.
            let pick = self
                .tracks
                .values()
                .filter(|t| t.kind == kind && t.participant != viewer)
                .filter_map(|t| {
                    let publisher = self.participants.get(&t.participant)?;
                    let wanted = follow
                        .identity
                        .as_ref()
                        .is_none_or(|i| *i == publisher.info.identity);
                    let rank = (!bound.contains(&t.participant), publisher.seq);
                    wanted.then_some((rank, t.clone()))
                })
                .min_by_key(|(rank, _)| *rank)
                .map(|(_, t)| t);
            picks.extend(pick);
        }
        if let Some(p) = self.participants.get_mut(viewer) {
            for t in &picks {
                p.subscribe(t);
            }
        }
    }

    /// Gives `track` to every participant that should receive it (auto-subscribers and WHEP
    /// viewers with an empty slot).
    fn offer_track(&mut self, track: &Arc<PublishedTrack>) {
        let mut viewers = Vec::new();
        for (id, p) in self.participants.iter_mut() {
            if *id == track.participant || !p.permissions.can_subscribe {
                continue;
            }
            if p.follow.is_some() {
                viewers.push(id.clone());
            } else if p.auto_subscribe && p.subscribe(track) {
                p.renegotiate();
            }
        }
        for v in viewers {
            self.fill_slots(&v);
        }
    }

    /// Removes every participant whose outbox overflowed, with reason [`SLOW_READER`]. Telling
    /// the others may overflow another queue: repeated until none is slow (at most once per
    /// participant). Called by every operation that signals participants.
    fn evict_slow(&mut self, observer: &Observer) {
        while let Some(id) = self
            .participants
            .iter()
            .find(|(_, p)| p.slow.get())
            .map(|(id, _)| id.clone())
        {
            info!(room = %self.name, participant = %id, "slow reader removed");
            remove_participant(self, &id, SLOW_READER, observer);
        }
    }

    fn broadcast(&self, except: &str, msg: &ServerMessage) {
        for (id, p) in &self.participants {
            if id != except {
                p.send(msg.clone());
            }
        }
    }

    /// Removes a track and everything that forwards it; tells the room. WHEP viewers that
    /// carried it move on to another track of the kind they follow, if any.
    fn unpublish(&mut self, track_id: &str, observer: &Observer, leaving: Option<&Participant>) {
        let Some(track) = self.tracks.remove(track_id) else {
            return;
        };
        let mut viewers = Vec::new();
        for (id, p) in self.participants.iter_mut() {
            if p.unsubscribe(track_id) {
                if p.follow.is_some() {
                    viewers.push(id.clone());
                } else {
                    p.renegotiate();
                }
            }
        }
        for v in viewers {
            self.fill_slots(&v);
        }
        if let Some(publisher) = leaving.or_else(|| self.participants.get(&track.participant)) {
            observer.emit(RoomEvent::TrackUnpublished {
                room: self.name.clone(),
                participant: publisher.summary(&self.tracks),
                track: track.info(),
            });
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
    peers: Arc<dyn PeerFactory>,
    config: RoomConfig,
    observer: Observer,
    rooms: Mutex<HashMap<String, Room>>,
    /// Set once the server drains: joins and new rooms are refused.
    draining: AtomicBool,
}

impl Rooms {
    /// An empty registry whose participants' peers `peers` creates (the media server).
    pub fn new(peers: Arc<dyn PeerFactory>, config: RoomConfig) -> Self {
        Self {
            peers,
            config,
            observer: Observer::default(),
            rooms: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
        }
    }

    /// Sets the function that receives every [`RoomEvent`].
    pub fn with_observer(mut self, observer: RoomObserver) -> Self {
        self.observer = Observer(Some(observer));
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn default_settings(&self) -> RoomSettings {
        RoomSettings {
            max_participants: self.config.max_participants,
            empty_timeout: self.config.empty_timeout,
        }
    }

    /// Starts draining: from now on every join and every new room is refused with
    /// `server_draining`; rooms that exist go on. Returns false if it was draining already.
    pub fn drain(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// Whether the server is draining (see [`Rooms::drain`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The room, created (and announced) if needed; no new room while draining.
    fn open<'a>(
        &self,
        rooms: &'a mut HashMap<String, Room>,
        name: &str,
        settings: Option<RoomSettings>,
    ) -> Result<(&'a mut Room, bool), (ErrorCode, String)> {
        let created = !rooms.contains_key(name);
        if created && self.is_draining() {
            return Err(draining());
        }
        let room = rooms.entry(name.to_owned()).or_insert_with(|| {
            info!(room = %name, "room created");
            Room::new(name, settings.unwrap_or_else(|| self.default_settings()))
        });
        if created {
            self.observer.emit(RoomEvent::RoomStarted {
                room: room.summary(),
            });
        }
        Ok((room, created))
    }

    /// Adds a participant, creating the room if needed. A participant already in the room
    /// with the same identity is replaced: it gets `leave {reason: "replaced"}` and is removed.
    /// The room name and identity must follow the name rule (`invalid_name`); refused with
    /// `server_draining` while the server drains.
    pub fn join(&self, req: JoinRequest) -> Result<Joined, (ErrorCode, String)> {
        names::validate("room name", &req.room)?;
        names::validate("identity", &req.identity)?;
        if self.is_draining() {
            return Err(draining());
        }
        let mut rooms = self.lock();
        let (room, _) = self.open(&mut rooms, &req.room, None)?;
        let replaced = room.find(&req.identity);
        let max = room.settings.max_participants;
        if replaced.is_none() && max > 0 && room.participants.len() >= max as usize {
            return Err((
                ErrorCode::RoomFull,
                format!("room `{}` is full ({max} participants)", req.room),
            ));
        }
        if let Some(old) = replaced {
            if let Some(p) = room.participants.get(&old) {
                p.signal(ParticipantSignal::Kick("replaced".into()));
            }
            remove_participant(room, &old, "replaced", &self.observer);
        }
        let id = new_id("PA");
        let peer = self
            .peers
            .create_peer(&id, req.peer_events)
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?;
        let info = ParticipantInfo {
            id: id.clone(),
            identity: req.identity,
            can_publish: req.permissions.can_publish,
        };
        room.next_seq += 1;
        let mut participant = Participant {
            info: info.clone(),
            permissions: req.permissions,
            auto_subscribe: req.auto_subscribe && req.kind != ParticipantKind::Whep,
            kind: req.kind,
            outbox: req.outbox,
            slow: Cell::new(false),
            peer: peer.clone(),
            subscriptions: HashSet::new(),
            seq: room.next_seq,
            joined_at: SystemTime::now(),
            follow: None,
        };
        let message = ServerMessage::Joined {
            participant: info.clone(),
            room: req.room.clone(),
            participants: room.participants.values().map(|p| p.info.clone()).collect(),
            tracks: room.tracks.values().map(|t| t.info()).collect(),
            ice_servers: Vec::new(),
            resume_token: None,
            resumed: false,
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
        self.observer.emit(RoomEvent::ParticipantJoined {
            room: req.room.clone(),
            participant: participant.summary(&room.tracks),
        });
        room.participants.insert(id.clone(), participant);
        room.empty_since = None;
        room.evict_slow(&self.observer);
        Ok(Joined {
            participant: id,
            peer,
            message,
        })
    }

    /// Starts a WHEP viewer's slots following the room's publishers (call once its peer has
    /// answered the viewer's offer, so that the slots exist).
    pub fn follow(&self, room: &str, participant: &str, follow: Follow) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        if let Some(p) = r.participants.get_mut(participant) {
            p.follow = Some(follow);
            r.fill_slots(participant);
        }
        r.evict_slow(&self.observer);
    }

    /// Removes a participant: closes its peer, unpublishes its tracks, tells the others.
    pub fn leave(&self, room: &str, participant: &str, reason: &str) {
        let mut rooms = self.lock();
        if let Some(r) = rooms.get_mut(room) {
            remove_participant(r, participant, reason, &self.observer);
            r.evict_slow(&self.observer);
        }
    }

    /// A participant's peer started receiving a new track: publish it to the room. Ignored if
    /// the participant may no longer publish.
    pub fn publish(&self, room: &str, participant: &str, track: Arc<PublishedTrack>) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        let Some(p) = r.participants.get(participant) else {
            return;
        };
        if !p.permissions.can_publish {
            return;
        }
        r.tracks.insert(track.id.clone(), track.clone());
        p.send(ServerMessage::TrackPublished {
            track: track.info_for_publisher(),
        });
        self.observer.emit(RoomEvent::TrackPublished {
            room: room.to_owned(),
            participant: p.summary(&r.tracks),
            track: track.info(),
        });
        r.broadcast(
            participant,
            &ServerMessage::TrackPublished {
                track: track.info(),
            },
        );
        r.offer_track(&track);
        r.evict_slow(&self.observer);
    }

    /// A participant's track ended.
    pub fn unpublish(&self, room: &str, track_id: &str) {
        if let Some(r) = self.lock().get_mut(room) {
            r.unpublish(track_id, &self.observer, None);
            r.evict_slow(&self.observer);
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
        r.evict_slow(&self.observer);
        Ok(())
    }

    /// Unsubscribes a participant from tracks by id (unknown ids are ignored).
    pub fn unsubscribe(&self, room: &str, participant: &str, track_ids: &[String]) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        let Some(p) = r.participants.get_mut(participant) else {
            return;
        };
        let mut any = false;
        for id in track_ids {
            any |= p.unsubscribe(id);
        }
        if any {
            p.renegotiate();
        }
        r.evict_slow(&self.observer);
    }

    /// Sets the muted state of one of the participant's own tracks and tells the room. A track
    /// muted by an administrator cannot be unmuted by its publisher.
    pub fn mute(
        &self,
        room: &str,
        participant: &str,
        track_id: &str,
        muted: bool,
    ) -> Result<(), (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(not_joined)?;
        let track = r
            .tracks
            .get(track_id)
            .filter(|t| t.participant == participant)
            .ok_or((
                ErrorCode::TrackNotFound,
                format!("you publish no track `{track_id}`"),
            ))?;
        if !muted && track.blocked() {
            return Err((
                ErrorCode::PermissionDenied,
                "an administrator muted this track".into(),
            ));
        }
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
        r.evict_slow(&self.observer);
        Ok(())
    }

    /// Relays an application message from a participant to the others of its room.
    pub fn send_data(
        &self,
        room: &str,
        participant: &str,
        payload: serde_json::Value,
    ) -> Result<(), (ErrorCode, String)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(not_joined)?;
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
        r.evict_slow(&self.observer);
        Ok(())
    }

    /// The current permissions of a participant, if it is in the room.
    pub fn permissions(&self, room: &str, participant: &str) -> Option<Permissions> {
        self.lock()
            .get(room)
            .and_then(|r| r.participants.get(participant))
            .map(|p| p.permissions)
    }

    /// Tells every participant of every room to leave (server shutdown).
    pub fn kick_all(&self, reason: &str) {
        for r in self.lock().values_mut() {
            for p in r.participants.values() {
                p.signal(ParticipantSignal::Kick(reason.to_owned()));
            }
            r.evict_slow(&self.observer);
        }
    }

    /// Closes rooms that have been empty for longer than their empty timeout.
    pub fn reap_empty(&self, now: Instant) {
        self.lock().retain(|name, r| {
            let keep = !r.participants.is_empty()
                || r.empty_since
                    .is_none_or(|t| now.saturating_duration_since(t) < r.settings.empty_timeout);
            if !keep {
                info!(room = %name, "empty room closed");
                self.observer
                    .emit(RoomEvent::RoomFinished { room: r.summary() });
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

    /// The tracks of a room.
    pub fn tracks(&self, room: &str) -> Vec<TrackInfo> {
        self.lock()
            .get(room)
            .map(|r| r.tracks.values().map(|t| t.info()).collect())
            .unwrap_or_default()
    }
}

fn remove_participant(room: &mut Room, participant: &str, reason: &str, observer: &Observer) {
    let Some(mut p) = room.participants.remove(participant) else {
        return;
    };
    p.peer.close();
    p.subscriptions.clear();
    for id in room.tracks_of(participant) {
        room.unpublish(&id, observer, Some(&p));
    }
    let summary = p.summary(&room.tracks);
    room.broadcast(
        participant,
        &ServerMessage::ParticipantLeft {
            participant: participant.to_owned(),
            reason: reason.to_owned(),
        },
    );
    observer.emit(RoomEvent::ParticipantLeft {
        room: room.name.clone(),
        participant: summary,
        reason: reason.to_owned(),
    });
    if room.participants.is_empty() {
        room.empty_since = Some(Instant::now());
    }
}

/// The error of a request from a session that is not (or no longer) in the room.
fn draining() -> (ErrorCode, String) {
    (
        ErrorCode::ServerDraining,
        "the server is shutting down and takes no new participants or rooms".to_owned(),
    )
}

fn not_joined() -> (ErrorCode, String) {
    (ErrorCode::NotJoined, "not in a room".to_owned())
}
