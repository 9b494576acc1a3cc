//! Synthetic RTP payloads that carry a recognisable counter, and their decoder.
//!
//! # Layout
//!
//! Every payload carries a 4-byte big-endian `counter` immediately followed by the 4-byte
//! magic [`MAGIC`] (`b"CSCD"`), then filler bytes ([`FILLER`]) up to a fixed total length.
//!
//! **Audio** (Opus, PT 111), [`AUDIO_PAYLOAD_LEN`] = 24 bytes:
//!
//! ```text
//! offset  0..4   counter (u32, big endian)
//!         4..8   magic "CSCD"
//!         8..24  filler 0xA5
//! ```
//!
//! **Video** (VP8, PT 96), [`VIDEO_PAYLOAD_LEN`] = 40 bytes:
//!
//! ```text
//! offset  0      VP8 payload descriptor (RFC 7741 §4.2), 1 byte: 0x10 = X=0, N=0, S=1
//!                (start of partition), PID=0
//!         1..4   VP8 frame tag (RFC 6386 §9.1), 3 bytes little endian:
//!                key frame   0x10 0x00 0x00  (bit 0 P=0 key frame, version 0, show_frame=1)
//!                inter frame 0x11 0x00 0x00  (bit 0 P=1 inter frame)
//!         4..11  key frame:   start code 0x9d 0x01 0x2a, width 320 (LE u16, scale 0),
//!                             height 240 (LE u16, scale 0)
//!                inter frame: seven 0x00 bytes
//!         11..15 counter (u32, big endian)
//!         15..19 magic "CSCD"
//!         19..40 filler 0xA5
//! ```
//!
//! [`send_video`](crate::Published::send_video) marks `counter % 30 == 0` as key frames
//! ([`is_keyframe_counter`]). Every video packet is a whole frame: the sender sets the RTP
//! marker bit and advances the timestamp by 3000 (90 kHz, 30 fps); audio advances it by 960
//! (48 kHz, 20 ms).
//!
//! The decoders ([`payload_counter`], [`vp8_is_keyframe`]) parse the VP8 payload descriptor in
//! full (X/I/M/L/T/K extensions), so they still work if the server rewrites the descriptor
//! into a longer one (e.g. adds a picture id).

use bytes::Bytes;

use crate::MediaKind;

/// Marks a payload as produced by the test client; follows the counter.
pub const MAGIC: [u8; 4] = *b"CSCD";
/// Filler byte after the magic.
pub const FILLER: u8 = 0xA5;
/// Total length of an audio payload.
pub const AUDIO_PAYLOAD_LEN: usize = 24;
/// Total length of a video payload.
pub const VIDEO_PAYLOAD_LEN: usize = 40;
/// The VP8 payload descriptor the client writes: S=1 (start of partition), PID 0.
pub const VP8_DESCRIPTOR: u8 = 0x10;
/// Every `KEYFRAME_INTERVAL`-th video counter (`counter % 30 == 0`) is sent as a key frame.
pub const KEYFRAME_INTERVAL: u32 = 30;
/// RTP timestamp increment per audio packet (20 ms at 48 kHz).
pub const AUDIO_TS_STEP: u32 = 960;
/// RTP timestamp increment per video packet (one frame at 30 fps, 90 kHz).
pub const VIDEO_TS_STEP: u32 = 3000;

/// Bytes of the VP8 payload (after the descriptor) that precede the counter.
const VP8_HEADER_LEN: usize = 10;

/// Whether [`crate::Published::send_video`] sends `counter` as a key frame.
pub fn is_keyframe_counter(counter: u32) -> bool {
    counter.is_multiple_of(KEYFRAME_INTERVAL)
}

/// The audio payload carrying `counter` (see the module docs for the layout).
pub fn audio_payload(counter: u32) -> Bytes {
    let mut p = Vec::with_capacity(AUDIO_PAYLOAD_LEN);
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend_from_slice(&MAGIC);
    p.resize(AUDIO_PAYLOAD_LEN, FILLER);
    Bytes::from(p)
}

/// The VP8 payload carrying `counter`, a key frame if `keyframe` (see the module docs).
pub fn video_payload(counter: u32, keyframe: bool) -> Bytes {
    let mut p = Vec::with_capacity(VIDEO_PAYLOAD_LEN);
    p.push(VP8_DESCRIPTOR);
    if keyframe {
        // Frame tag (P=0, version 0, show_frame 1, first partition size 0), start code,
        // 320x240 with no scaling.
        p.extend_from_slice(&[0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    } else {
        p.extend_from_slice(&[0x11, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0]);
    }
    p.extend_from_slice(&counter.to_be_bytes());
    p.extend_from_slice(&MAGIC);
    p.resize(VIDEO_PAYLOAD_LEN, FILLER);
    Bytes::from(p)
}

/// The payload [`crate::Published::send`] writes for `kind` and `counter`.
pub fn payload_for(kind: MediaKind, counter: u32) -> Bytes {
    match kind {
        MediaKind::Audio => audio_payload(counter),
        MediaKind::Video => video_payload(counter, is_keyframe_counter(counter)),
    }
}

/// Length of the VP8 payload descriptor at the start of `payload` (RFC 7741 §4.2), or `None`
/// if it is truncated.
pub fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    let mut len = 1;
    if first & 0x80 != 0 {
        // X: extension byte with I, L, T, K flags.
        let ext = *payload.get(1)?;
        len += 1;
        if ext & 0x80 != 0 {
            // I: picture id, 7 or 15 bits (M flag).
            let pid = *payload.get(len)?;
            len += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            // L: TL0PICIDX.
            len += 1;
        }
        if ext & 0x30 != 0 {
            // T or K: TID/Y/KEYIDX byte.
            len += 1;
        }
    }
    (len <= payload.len()).then_some(len)
}

/// Whether a VP8 RTP payload starts a key frame: S=1, PID=0 and P=0 in the frame tag.
/// `None` if the payload is too short to tell.
pub fn vp8_is_keyframe(payload: &[u8]) -> Option<bool> {
    let d = vp8_descriptor_len(payload)?;
    let tag = *payload.get(d)?;
    let start_of_partition0 = payload[0] & 0x10 != 0 && payload[0] & 0x07 == 0;
    Some(start_of_partition0 && tag & 0x01 == 0)
}

/// Decodes the counter written by [`payload_for`] / [`audio_payload`] / [`video_payload`];
/// `None` if `payload` is not one of the client's payloads (wrong length, no magic).
pub fn payload_counter(kind: MediaKind, payload: &[u8]) -> Option<u32> {
    let at = match kind {
        MediaKind::Audio => 0,
        MediaKind::Video => vp8_descriptor_len(payload)? + VP8_HEADER_LEN,
    };
    let counter = payload.get(at..at + 4)?;
    let magic = payload.get(at + 4..at + 8)?;
    (magic == MAGIC).then(|| u32::from_be_bytes(counter.try_into().expect("4 bytes")))
}
