//! A published track as the room model and the workers share it: its identity, the engine's
//! description of it, its subscribers (and the workers they live on), its mute flags and its
//! keyframe-request throttle.
//!
//! It is created by the publisher's worker when the track's first packet arrives and shared,
//! reference-counted, with the room and every subscriber's worker. The subscriber list is
//! written only on subscribe/unsubscribe; the publisher's worker reads the workers' bit mask
//! per packet (no lock). Simulcast layers (rid) become more sources of the same track later.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use cascade_signaling::protocol::{TrackInfo, TrackKind};

use super::{PeerAddress, PeerCommand};
use crate::engine::peer::TrackInfo as EngineTrackInfo;
use crate::track::up_track::KEYFRAME_REQUEST_INTERVAL;

/// One track published into a room.
#[derive(Debug)]
pub struct PublishedTrack {
    /// Cascade track id (`TR_…`).
    pub id: String,
    /// Publishing participant id (`PA_…`).
    pub participant: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec the publisher sends, as a MIME type (`video/VP8`).
    pub mime: String,
    /// The publisher's m-line (mid) carrying it.
    pub mid: Option<String>,
    /// The publisher's peer, where keyframe requests go.
    pub publisher: PeerAddress,
    /// How the engine receives it on another worker: the publisher's negotiated codecs and
    /// header extensions.
    pub engine: EngineTrackInfo,
    muted: AtomicBool,
    blocked: AtomicBool,
    subscribers: RwLock<Vec<PeerAddress>>,
    /// Bit `w % 64` set: worker `w` has a subscriber.
    workers: AtomicU64,
    last_keyframe_request: Mutex<Option<Instant>>,
}

impl PublishedTrack {
    /// A track with no subscriber.
    pub fn new(
        id: String,
        participant: String,
        kind: TrackKind,
        mime: String,
        mid: Option<String>,
        publisher: PeerAddress,
        engine: EngineTrackInfo,
    ) -> Self {
        Self {
            id,
            participant,
            kind,
            mime,
            mid,
            publisher,
            engine,
            muted: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            subscribers: RwLock::new(Vec::new()),
            workers: AtomicU64::new(0),
            last_keyframe_request: Mutex::new(None),
        }
    }

    /// The track as announced to clients.
    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.clone(),
            participant: self.participant.clone(),
            kind: self.kind,
            codec: Some(self.mime.clone()),
            muted: self.muted(),
            mid: None,
        }
    }

    /// The track as announced to its own publisher (with the publisher's mid).
    pub fn info_for_publisher(&self) -> TrackInfo {
        TrackInfo {
            mid: self.mid.clone(),
            ..self.info()
        }
    }

    /// Whether the publisher muted it.
    pub fn muted(&self) -> bool {
        self.muted.load(Relaxed)
    }

    /// Sets the muted flag; returns whether it changed.
    pub fn set_muted(&self, muted: bool) -> bool {
        self.muted.swap(muted, Relaxed) != muted
    }

    /// Whether an administrator muted it: its packets are not forwarded.
    pub fn blocked(&self) -> bool {
        self.blocked.load(Relaxed)
    }

    /// Blocks or resumes forwarding (administrator mute).
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Relaxed);
    }

    /// Adds a subscriber (idempotent).
    pub fn add_subscriber(&self, peer: PeerAddress) {
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        if !subs.iter().any(|p| p.id == peer.id) {
            subs.push(peer);
        }
        self.update_workers(&subs);
    }

    /// Removes a subscriber.
    pub fn remove_subscriber(&self, peer_id: u64) {
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|p| p.id != peer_id);
        self.update_workers(&subs);
    }

    /// Bit `w % 64` set: worker `w` has a subscriber.
    pub fn subscriber_workers(&self) -> u64 {
        self.workers.load(Relaxed)
    }

    fn update_workers(&self, subs: &[PeerAddress]) {
        let mask = subs.iter().fold(0, |m, p| m | 1u64 << (p.worker % 64));
        self.workers.store(mask, Relaxed);
    }

    /// Whether a keyframe request may be sent now (throttled to one per
    /// [`KEYFRAME_REQUEST_INTERVAL`]); records it if so.
    pub fn take_keyframe_request_slot(&self, now: Instant) -> bool {
        let mut last = self
            .last_keyframe_request
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *last {
            Some(t) if now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Asks the publisher for a keyframe of this track, throttled (best effort: not queued if
    /// the publisher's worker is saturated).
    pub fn request_keyframe(&self, now: Instant) {
        if self.kind == TrackKind::Video && self.take_keyframe_request_slot(now) {
            self.publisher
                .try_command(PeerCommand::RequestKeyframe(self.id.clone()));
        }
    }
}
