//! What the room model reports to observers (webhooks) and the room API: events and the
//! summaries of rooms and participants they carry.

use std::time::SystemTime;

use cascade_signaling::protocol::{Permissions, TrackInfo};
use serde::Serialize;

use super::ParticipantKind;

/// Something that happened in a room, for observers such as webhooks.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A room was created (by a join or by the room API).
    RoomStarted {
        /// The room.
        room: RoomSummary,
    },
    /// A room was closed (empty timeout or deleted).
    RoomFinished {
        /// The room.
        room: RoomSummary,
    },
    /// A participant joined.
    ParticipantJoined {
        /// Room name.
        room: String,
        /// Who.
        participant: ParticipantSummary,
    },
    /// A participant left.
    ParticipantLeft {
        /// Room name.
        room: String,
        /// Who.
        participant: ParticipantSummary,
        /// Why (`leave`, `disconnected`, `removed`, ...).
        reason: String,
    },
    /// A track was published.
    TrackPublished {
        /// Room name.
        room: String,
        /// Publisher.
        participant: ParticipantSummary,
        /// The track.
        track: TrackInfo,
    },
    /// A track was unpublished.
    TrackUnpublished {
        /// Room name.
        room: String,
        /// Publisher.
        participant: ParticipantSummary,
        /// The track.
        track: TrackInfo,
    },
}

/// Receives every [`RoomEvent`]; called with the room lock held, so it must not block.
pub type RoomObserver = Box<dyn Fn(RoomEvent) + Send + Sync>;

/// A room as listed by the room API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomSummary {
    /// Room name.
    pub name: String,
    /// Participants now in the room.
    pub num_participants: u32,
    /// Tracks now published.
    pub num_tracks: u32,
    /// Most participants; 0 = unlimited.
    pub max_participants: u32,
    /// Seconds the room lives once empty.
    pub empty_timeout_secs: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// A participant as listed by the room API and webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantSummary {
    /// Server-assigned id.
    pub id: String,
    /// Identity from the token (unique in the room).
    pub identity: String,
    /// How it is connected.
    pub kind: ParticipantKind,
    /// What it may do.
    pub permissions: Permissions,
    /// Its published tracks.
    pub tracks: Vec<TrackInfo>,
    /// Join time, seconds since the Unix epoch.
    pub joined_at: u64,
}

/// The optional observer, called for every [`RoomEvent`].
#[derive(Default)]
pub(super) struct Observer(pub(super) Option<RoomObserver>);

impl Observer {
    pub(super) fn emit(&self, event: RoomEvent) {
        if let Some(f) = &self.0 {
            f(event);
        }
    }
}

/// Seconds since the Unix epoch.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
