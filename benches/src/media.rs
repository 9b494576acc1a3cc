//! Synthetic media: well-formed VP8 and Opus-sized RTP payloads, each ending in a [`Stamp`]
//! (stream, sequence number, send time) that subscribers read back, and the pumps that send them
//! (the test kit's [`MediaPump`]).
//!
//! Payload layout (all integers big endian), the stamp last so that a rewritten codec header
//! at the front never moves it:
//!
//! ```text
//! video: VP8 payload descriptor (1 byte: S=1 on a frame's first packet, PID 0), on the first
//!        packet the VP8 frame tag (3 bytes) and, for a key frame, start code + 640x360
//!        (7 bytes); filler; stamp
//! audio: Opus TOC byte (CELT FB 20 ms, stereo, one frame); filler; stamp
//! stamp: stream u32 | sequence u32 | send time u64 (ns since the Unix epoch) | "CLD1"
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade_testkit::{Frame, FrameSource, LocalTrack, MediaKind, MediaPump};

use crate::stats::Collector;

/// Marks the end of a stamped payload.
const MAGIC: [u8; 4] = *b"CLD1";
/// Length of the stamp at the end of every payload.
pub const STAMP_LEN: usize = 20;
/// Largest RTP payload the video packetizer produces.
const MAX_VIDEO_PAYLOAD: usize = 1100;
/// Bytes of an Opus packet (about 40 kbit/s at 50 packets/s).
const AUDIO_PAYLOAD: usize = 100;
/// Opus TOC byte: config 31 (CELT fullband 20 ms), stereo, one frame.
const OPUS_TOC: u8 = 0xFC;
/// A key frame every this many seconds.
const KEYFRAME_SECS: u32 = 2;
/// VP8 descriptor byte of a frame's first packet: S=1, PID 0.
const VP8_START: u8 = 0x10;
/// Coded size announced in key frame headers.
const WIDTH: u16 = 640;
/// See [`WIDTH`].
const HEIGHT: u16 = 360;

/// What a payload's stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The stream (one per published track in the run).
    pub stream: u32,
    /// Per-stream packet number, from 0.
    pub seq: u32,
    /// Send time, ns since the Unix epoch.
    pub sent_ns: u64,
}

impl Stamp {
    /// Reads the stamp at the end of `payload`, if it has one.
    pub fn read(payload: &[u8]) -> Option<Self> {
        let t = payload.get(payload.len().checked_sub(STAMP_LEN)?..)?;
        (t[16..] == MAGIC).then(|| Self {
            stream: u32::from_be_bytes(t[0..4].try_into().expect("4 bytes")),
            seq: u32::from_be_bytes(t[4..8].try_into().expect("4 bytes")),
            sent_ns: u64::from_be_bytes(t[8..16].try_into().expect("8 bytes")),
        })
    }

    /// Writes the stamp over the last [`STAMP_LEN`] bytes of `payload`.
    fn write(self, payload: &mut [u8]) {
        let at = payload.len() - STAMP_LEN;
        let t = &mut payload[at..];
        t[0..4].copy_from_slice(&self.stream.to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..16].copy_from_slice(&self.sent_ns.to_be_bytes());
        t[16..].copy_from_slice(&MAGIC);
    }
}

/// Wall-clock time in ns since the Unix epoch (publishers and subscribers share the clock).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The payloads of one VP8 frame of `frame_bytes` bytes (unstamped: zeroed stamp space).
pub fn vp8_frame(frame_bytes: usize, keyframe: bool) -> Vec<Vec<u8>> {
    let header = if keyframe { 10 } else { 3 };
    let frame_bytes = frame_bytes.max(header + STAMP_LEN);
    let packets = frame_bytes.div_ceil(MAX_VIDEO_PAYLOAD - 1);
    let chunk = frame_bytes.div_ceil(packets);
    (0..packets)
        .map(|i| {
            let len = chunk
                .min(frame_bytes.saturating_sub(i * chunk))
                .max(STAMP_LEN);
            let mut p = Vec::with_capacity(1 + len);
            if i == 0 {
                p.push(VP8_START);
                // Frame tag (RFC 6386 §9.1): P (0 = key frame), version 0, show_frame,
                // first partition size.
                let size = (frame_bytes - header).min(0x7_FFFF) as u32;
                let tag = u32::from(!keyframe) | (1 << 4) | (size << 5);
                p.extend_from_slice(&tag.to_le_bytes()[..3]);
                if keyframe {
                    p.extend_from_slice(&[0x9d, 0x01, 0x2a]);
                    p.extend_from_slice(&WIDTH.to_le_bytes());
                    p.extend_from_slice(&HEIGHT.to_le_bytes());
                }
            } else {
                p.push(0x00);
            }
            p.resize(1 + len, 0xA5);
            p
        })
        .collect()
}

/// One Opus-sized audio payload (unstamped).
pub fn opus_packet() -> Vec<u8> {
    let mut p = vec![0x5A; AUDIO_PAYLOAD];
    p[0] = OPUS_TOC;
    p
}

/// Audio or video, with its rate.
#[derive(Debug, Clone, Copy)]
pub enum Media {
    /// Opus-sized packets, 50 per second.
    Audio,
    /// VP8 at `kbps` kbit/s and `fps` frames per second.
    Video {
        /// Bitrate in kbit/s.
        kbps: u32,
        /// Frames per second.
        fps: u32,
    },
}

impl Media {
    /// The kind of track it is sent on.
    pub fn kind(self) -> MediaKind {
        match self {
            Self::Audio => MediaKind::Audio,
            Self::Video { .. } => MediaKind::Video,
        }
    }
}

/// A negotiated local track to send synthetic media on.
pub struct Pump {
    /// What to send.
    pub media: Media,
    /// The track to write to.
    pub track: Arc<LocalTrack>,
    /// Stream number written into the stamps.
    pub stream: u32,
}

impl Pump {
    /// Starts sending until the pump is dropped, counting the packets in `collector.sent`.
    pub fn spawn(self, collector: &Collector) -> MediaPump {
        let period = match self.media {
            Media::Audio => Duration::from_millis(20),
            Media::Video { fps, .. } => Duration::from_secs(1) / fps,
        };
        let source = Stamped {
            media: self.media,
            stream: self.stream,
            next: 0,
        };
        MediaPump::start(self.track, period, u32::MAX, collector.sent.clone(), source)
    }
}

/// The frames of one stream, each payload stamped right before it is written.
struct Stamped {
    media: Media,
    stream: u32,
    /// Stamp sequence number of the next packet.
    next: u32,
}

impl FrameSource for Stamped {
    fn frame(&mut self, index: u32) -> Frame {
        let (payloads, ts_step) = match self.media {
            Media::Audio => (vec![opus_packet()], 960),
            Media::Video { kbps, fps } => (
                vp8_frame(
                    (kbps as usize * 1000 / 8 / fps as usize).max(1),
                    index.is_multiple_of(KEYFRAME_SECS * fps),
                ),
                90_000 / fps,
            ),
        };
        Frame {
            payloads,
            marker: true,
            ts_step,
        }
    }

    fn seal(&mut self, payload: &mut [u8]) {
        Stamp {
            stream: self.stream,
            seq: self.next,
            sent_ns: now_ns(),
        }
        .write(payload);
        self.next += 1;
    }

    fn stopped(&mut self, error: &anyhow::Error) {
        eprintln!("cascade-load: stream {} stopped: {error:#}", self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let mut p = opus_packet();
        let s = Stamp {
            stream: 7,
            seq: 123_456,
            sent_ns: 1_700_000_000_123_456_789,
        };
        s.write(&mut p);
        assert_eq!(p.len(), AUDIO_PAYLOAD);
        assert_eq!(p[0], OPUS_TOC);
        assert_eq!(Stamp::read(&p), Some(s));
        assert_eq!(Stamp::read(&p[..10]), None);
        assert_eq!(Stamp::read(&p[..p.len() - 1]), None);
    }

    #[test]
    fn vp8_key_and_inter_frames() {
        let key = vp8_frame(4166, true);
        assert_eq!(key.len(), 4);
        assert!(key.iter().all(|p| p.len() <= MAX_VIDEO_PAYLOAD));
        assert_eq!(key.iter().map(|p| p.len() - 1).sum::<usize>(), 4166);
        // First packet: S=1, PID 0; frame tag with P=0 (key frame) and show_frame; start code.
        assert_eq!(key[0][0], VP8_START);
        assert_eq!(key[0][1] & 0x01, 0);
        assert_eq!(key[0][1] & 0x10, 0x10);
        assert_eq!(&key[0][4..7], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([key[0][7], key[0][8]]), WIDTH);
        assert!(key[1..].iter().all(|p| p[0] == 0x00));
        let inter = vp8_frame(500, false);
        assert_eq!(inter.len(), 1);
        assert_eq!(inter[0][1] & 0x01, 1);
        // Tiny frames still have room for the header and the stamp.
        assert!(vp8_frame(1, true)[0].len() > 10 + STAMP_LEN);
    }
}
