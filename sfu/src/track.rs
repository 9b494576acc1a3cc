//! A published track: the unit of forwarding.
//!
//! It is owned by the publisher's peer (which feeds it) and shared, reference-counted, with the
//! room and with every subscriber's down-track. The subscriber list is read on every packet
//! (read lock) and written only on subscribe/unsubscribe. Designed so that simulcast layers
//! (rid) become more sources of the same track later.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use cascade_signaling::protocol::{TrackInfo, TrackKind};
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;

use crate::worker::PeerAddress;

/// Keyframe requests to one publisher track are sent at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A header extension negotiated with the publisher: its id and URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderExtension {
    /// Id on the wire.
    pub id: u8,
    /// Extension URI.
    pub uri: String,
}

/// One track published into a room.
#[derive(Debug)]
pub struct PublishedTrack {
    /// Cascade track id (`TR_…`).
    pub id: String,
    /// Publishing participant id (`PA_…`).
    pub participant: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// The codec the publisher sends.
    pub codec: RTCRtpCodec,
    /// The payload type the publisher uses for it.
    pub source_pt: u8,
    /// The publisher's m-line (mid) carrying it.
    pub mid: Option<String>,
    /// The header extensions negotiated with the publisher.
    pub extensions: Vec<HeaderExtension>,
    /// The publisher's current SSRC for this track.
    source_ssrc: AtomicU32,
    /// The publisher's peer, where keyframe requests go.
    pub publisher: PeerAddress,
    muted: AtomicBool,
    blocked: AtomicBool,
    subscribers: RwLock<Vec<PeerAddress>>,
    /// Bit `w % 64` set: worker `w` has a subscriber (read per packet by Cascade's engine).
    workers: AtomicU64,
    last_keyframe_request: Mutex<Option<Instant>>,
    /// What Cascade's engine needs to receive it on another worker (its codecs and header
    /// extensions as the publisher negotiated them); `None` on the `RTCPeerConnection` path.
    pub engine: Option<crate::engine::peer::TrackInfo>,
}

impl PublishedTrack {
    /// Creates a track with no subscriber.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        participant: String,
        kind: TrackKind,
        codec: RTCRtpCodec,
        source_pt: u8,
        mid: Option<String>,
        extensions: Vec<HeaderExtension>,
        source_ssrc: u32,
        publisher: PeerAddress,
    ) -> Self {
        Self {
            id,
            participant,
            kind,
            codec,
            source_pt,
            mid,
            extensions,
            source_ssrc: AtomicU32::new(source_ssrc),
            publisher,
            muted: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            subscribers: RwLock::new(Vec::new()),
            workers: AtomicU64::new(0),
            last_keyframe_request: Mutex::new(None),
            engine: None,
        }
    }

    /// The same track, received by Cascade's engine as `info` describes.
    pub fn with_engine(self, info: crate::engine::peer::TrackInfo) -> Self {
        Self {
            engine: Some(info),
            ..self
        }
    }

    /// Bit `w % 64` set: worker `w` has a subscriber.
    pub fn subscriber_workers(&self) -> u64 {
        self.workers.load(Relaxed)
    }

    fn update_workers(&self, subs: &[PeerAddress]) {
        let mask = subs.iter().fold(0, |m, p| m | 1u64 << (p.worker % 64));
        self.workers.store(mask, Relaxed);
    }

    /// The track as announced to clients.
    pub fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.clone(),
            participant: self.participant.clone(),
            kind: self.kind,
            codec: Some(self.codec.mime_type.clone()),
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

    /// The publisher's current SSRC for this track.
    pub fn source_ssrc(&self) -> u32 {
        self.source_ssrc.load(Relaxed)
    }

    /// Records that the publisher now sends this track on another SSRC (its stream restarted
    /// on the same m-line); subscribers' mungers keep their streams continuous.
    pub fn set_source_ssrc(&self, ssrc: u32) {
        self.source_ssrc.store(ssrc, Relaxed);
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

    /// Adds a forwarding target (idempotent).
    pub fn add_subscriber(&self, peer: PeerAddress) {
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        if !subs.iter().any(|p| p.id == peer.id) {
            subs.push(peer);
        }
        self.update_workers(&subs);
    }

    /// Removes a forwarding target.
    pub fn remove_subscriber(&self, peer_id: u64) {
        let mut subs = self.subscribers.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(|p| p.id != peer_id);
        self.update_workers(&subs);
    }

    /// Number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Calls `f` for every subscriber, under the read lock.
    pub fn for_each_subscriber(&self, mut f: impl FnMut(&PeerAddress)) {
        for p in self
            .subscribers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            f(p)
        }
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
}
