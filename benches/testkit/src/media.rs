//! Local tracks and what sends on them: [`LocalTrack`] (one send-only track with its own
//! sequence numbers and timestamps), [`Published`] (what [`crate::TestClient::publish`] added)
//! and [`MediaPump`] (a background sender of [`Frame`]s).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use rtc::rtcp;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use tokio::task::JoinHandle;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::PeerConnection;
use webrtc::rtp_transceiver::{
    RTCRtpTransceiverDirection, RTCRtpTransceiverInit, RtpSender, RtpTransceiver,
};

use crate::codec::MediaKind;
use crate::payload;
use crate::util::random_u32;

/// A send-only track added to a peer connection, not negotiated yet.
pub struct AddedTrack {
    kind: MediaKind,
    ssrc: u32,
    track_id: String,
    stream_id: String,
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
}

/// Adds a send-only track of `kind` sending with `ssrc`, msid `stream_id` `track_id`.
pub async fn add_send_track(
    pc: &Arc<dyn PeerConnection>,
    kind: MediaKind,
    ssrc: u32,
    stream_id: &str,
    track_id: String,
) -> Result<AddedTrack> {
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_owned(),
        track_id.clone(),
        track_id.clone(),
        kind.codec_kind(),
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: kind.track_codec(),
            ..Default::default()
        }],
    )));
    let transceiver = pc
        .add_transceiver_from_track(
            track.clone(),
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![stream_id.to_owned()],
                send_encodings: vec![],
            }),
        )
        .await
        .with_context(|| format!("adding the {kind} transceiver"))?;
    Ok(AddedTrack {
        kind,
        ssrc,
        track_id,
        stream_id: stream_id.to_owned(),
        track,
        transceiver,
    })
}

impl AddedTrack {
    /// Its kind.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Its SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The track, once negotiated: with its negotiated payload type and mid.
    pub async fn negotiated(self) -> Result<Arc<LocalTrack>> {
        let kind = self.kind;
        let sender = self
            .transceiver
            .sender()
            .await?
            .ok_or_else(|| anyhow!("{kind} transceiver has no sender"))?;
        let (mime, default_pt) = kind.mime_and_pt();
        let payload_type = sender
            .get_parameters()
            .await?
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
            .map_or(default_pt, |c| c.payload_type);
        let seq0 = (random_u32() % 30_000) as u16 + 1;
        Ok(Arc::new(LocalTrack {
            kind,
            ssrc: self.ssrc,
            payload_type,
            mid: self.transceiver.mid().await?,
            track_id: self.track_id,
            stream_id: self.stream_id,
            track: self.track,
            sender,
            next: Mutex::new((seq0, random_u32())),
        }))
    }
}

/// One frame to send: its packets' payloads, all with one timestamp.
pub struct Frame {
    /// The payloads, in order.
    pub payloads: Vec<Vec<u8>>,
    /// Whether the last packet carries the RTP marker bit.
    pub marker: bool,
    /// RTP timestamp step from this frame to the next.
    pub ts_step: u32,
}

impl Frame {
    /// A one-packet frame of test payload `payload` of `kind` (marker set for video).
    fn single(kind: MediaKind, payload: Bytes) -> Self {
        Self {
            payloads: vec![payload.to_vec()],
            marker: kind == MediaKind::Video,
            ts_step: kind.ts_step(),
        }
    }
}

/// A published local track.
pub struct LocalTrack {
    /// Audio or video.
    pub kind: MediaKind,
    /// The SSRC it sends with.
    pub ssrc: u32,
    /// The negotiated payload type (Opus or VP8).
    pub payload_type: u8,
    /// Its mid after negotiation.
    pub mid: Option<String>,
    /// Its msid track id (the client's, not Cascade's `TR_` id).
    pub track_id: String,
    /// Its msid stream id.
    pub stream_id: String,
    track: Arc<TrackLocalStaticRTP>,
    pub(crate) sender: Arc<dyn RtpSender>,
    /// Next (sequence number, timestamp).
    next: Mutex<(u16, u32)>,
}

impl LocalTrack {
    /// Sends one packet whose payload carries `counter` ([`payload::payload_for`]); for
    /// video, `counter % 30 == 0` is a key frame. Returns the packet's sequence number.
    pub async fn send(&self, counter: u32) -> Result<u16> {
        let frame = Frame::single(self.kind, payload::payload_for(self.kind, counter));
        self.send_frame_with(frame, |_| {}).await
    }

    /// Sends a video packet carrying `counter`, a key frame if `keyframe`.
    pub async fn send_frame(&self, counter: u32, keyframe: bool) -> Result<u16> {
        let payload = match self.kind {
            MediaKind::Audio => payload::audio_payload(counter),
            MediaKind::Video => payload::video_payload(counter, keyframe),
        };
        self.send_payload(payload, self.kind == MediaKind::Video)
            .await
    }

    /// Sends `payload` with the track's next sequence number and timestamp.
    pub async fn send_payload(&self, payload: Bytes, marker: bool) -> Result<u16> {
        let frame = Frame {
            marker,
            ..Frame::single(self.kind, payload)
        };
        self.send_frame_with(frame, |_| {}).await
    }

    /// Sends `frame` with the track's next sequence numbers and timestamp, passing each payload
    /// to `seal` right before it is written. Returns the first packet's sequence number.
    pub async fn send_frame_with(
        &self,
        frame: Frame,
        mut seal: impl FnMut(&mut [u8]),
    ) -> Result<u16> {
        let (seq, ts) = {
            let mut next = self.next.lock().expect("seq");
            let cur = *next;
            let packets = frame.payloads.len() as u16;
            *next = (
                cur.0.wrapping_add(packets),
                cur.1.wrapping_add(frame.ts_step),
            );
            cur
        };
        let last = frame.payloads.len().saturating_sub(1);
        for (i, mut payload) in frame.payloads.into_iter().enumerate() {
            seal(&mut payload);
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    marker: frame.marker && i == last,
                    payload_type: self.payload_type,
                    sequence_number: seq.wrapping_add(i as u16),
                    timestamp: ts,
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                payload: Bytes::from(payload),
            };
            self.send_raw(packet).await?;
        }
        Ok(seq)
    }

    /// Writes `packet` as is, except that its SSRC is set to the track's (webrtc-rs drops
    /// packets whose SSRC is not the sender's). The payload type must be a negotiated one.
    /// The track's own sequence/timestamp counters are not touched.
    pub async fn send_raw(&self, mut packet: rtp::Packet) -> Result<()> {
        packet.header.ssrc = self.ssrc;
        self.track
            .write_rtp(packet)
            .await
            .with_context(|| format!("write_rtp on the {} track", self.kind))
    }

    /// The sequence number and timestamp the next [`LocalTrack::send`] uses.
    pub fn next_seq_ts(&self) -> (u16, u32) {
        *self.next.lock().expect("seq")
    }

    /// Sets the sequence number and timestamp of the next packet (e.g. to test wrap-around).
    pub fn set_next_seq_ts(&self, seq: u16, ts: u32) {
        *self.next.lock().expect("seq") = (seq, ts);
    }

    /// Writes RTCP on this track's sender (e.g. a sender report of your own).
    pub async fn write_rtcp(&self, packets: Vec<Box<dyn rtcp::Packet>>) -> Result<()> {
        self.track.write_rtcp(packets).await.context("write_rtcp")
    }
}

/// The tracks a [`crate::TestClient::publish`] added.
pub struct Published {
    /// The audio track, if published.
    pub audio: Option<Arc<LocalTrack>>,
    /// The video track, if published.
    pub video: Option<Arc<LocalTrack>>,
}

impl Published {
    /// The track of `kind`, or an error if it was not published.
    pub fn track(&self, kind: MediaKind) -> Result<&Arc<LocalTrack>> {
        match kind {
            MediaKind::Audio => self.audio.as_ref(),
            MediaKind::Video => self.video.as_ref(),
        }
        .ok_or_else(|| anyhow!("no {kind} track was published"))
    }

    /// Sends an audio packet carrying `counter`.
    pub async fn send_audio(&self, counter: u32) -> Result<u16> {
        self.send(MediaKind::Audio, counter).await
    }

    /// Sends a video packet carrying `counter` (a key frame when `counter % 30 == 0`).
    pub async fn send_video(&self, counter: u32) -> Result<u16> {
        self.send(MediaKind::Video, counter).await
    }

    /// Sends a packet of `kind` carrying `counter`.
    pub async fn send(&self, kind: MediaKind, counter: u32) -> Result<u16> {
        self.track(kind)?.send(counter).await
    }

    /// Writes a hand-made packet on the `kind` track (SSRC forced to the track's).
    pub async fn send_rtp_raw(&self, kind: MediaKind, packet: rtp::Packet) -> Result<()> {
        self.track(kind)?.send_raw(packet).await
    }

    /// Starts a background task sending `count` packets of `kind` with counters `first..`, one
    /// every `period`. Stops when done, on [`MediaPump::stop`], or when the pump is dropped.
    pub fn pump(
        &self,
        kind: MediaKind,
        first: u32,
        count: u32,
        period: Duration,
    ) -> Result<MediaPump> {
        let frames =
            move |i: u32| Frame::single(kind, payload::payload_for(kind, first.wrapping_add(i)));
        let track = self.track(kind)?.clone();
        Ok(MediaPump::start(
            track,
            period,
            count,
            Arc::default(),
            frames,
        ))
    }
}

/// What a [`MediaPump`] sends.
pub trait FrameSource: Send + 'static {
    /// Frame number `index` (from 0).
    fn frame(&mut self, index: u32) -> Frame;
    /// Finishes a payload right before it is written (e.g. stamps the send time).
    fn seal(&mut self, _payload: &mut [u8]) {}
    /// The pump stopped because a write failed.
    fn stopped(&mut self, _error: &anyhow::Error) {}
}

impl<F: FnMut(u32) -> Frame + Send + 'static> FrameSource for F {
    fn frame(&mut self, index: u32) -> Frame {
        self(index)
    }
}

/// A background sender of frames on one [`LocalTrack`].
pub struct MediaPump {
    task: JoinHandle<()>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl MediaPump {
    /// Sends `frames` frames from `source` on `track`, one every `period` (the first right
    /// away), counting packets in `sent`. Stops when done, when a write fails, on
    /// [`MediaPump::stop`], or when the pump is dropped.
    pub fn start(
        track: Arc<LocalTrack>,
        period: Duration,
        frames: u32,
        sent: Arc<AtomicU64>,
        mut source: impl FrameSource,
    ) -> Self {
        let failed = Arc::new(AtomicBool::new(false));
        let (s, f) = (sent.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for i in 0..frames {
                tick.tick().await;
                let frame = source.frame(i);
                let packets = frame.payloads.len() as u64;
                if let Err(e) = track.send_frame_with(frame, |p| source.seal(p)).await {
                    f.store(true, Ordering::Relaxed);
                    source.stopped(&e);
                    return;
                }
                s.fetch_add(packets, Ordering::Relaxed);
            }
        });
        Self { task, sent, failed }
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.sent.load(Ordering::Relaxed) as u32
    }

    /// Whether a write failed (the pump then stopped).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether it has stopped.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for MediaPump {
    fn drop(&mut self) {
        self.task.abort();
    }
}
