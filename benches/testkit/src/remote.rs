//! Received media: every packet of every remote (forwarded) track, keyed by the Cascade track id
//! it stands for, and [`TestClient`]'s queries and waits on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use bytes::Bytes;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::PeerConnection;

use crate::client::TestClient;
use crate::codec::MediaKind;
use crate::payload::{payload_counter, vp8_is_keyframe};
use crate::util::Watched;

/// One RTP packet received on a remote (forwarded) track, as the application sees it (after
/// SRTP and RTX de-encapsulation).
#[derive(Debug, Clone)]
pub struct ReceivedPacket {
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Payload.
    pub payload: Bytes,
    /// Kind of the track it arrived on.
    pub kind: MediaKind,
    /// Mid of the m-line it arrived on, if known.
    pub mid: Option<String>,
    /// Whether a packet with the same sequence number had already arrived on this track
    /// (e.g. a retransmission).
    pub duplicate: bool,
    /// When it arrived.
    pub at: Instant,
}

impl ReceivedPacket {
    /// The counter the test client wrote (see [`crate::payload`]), if it is one of its payloads.
    pub fn counter(&self) -> Option<u32> {
        payload_counter(self.kind, &self.payload)
    }

    /// For video, whether the payload starts a VP8 key frame.
    pub fn is_keyframe(&self) -> bool {
        self.kind == MediaKind::Video && vp8_is_keyframe(&self.payload) == Some(true)
    }
}

/// A remote track as delivered by `on_track`.
struct RemoteTrack {
    track: Arc<dyn TrackRemote>,
    msid: String,
    stream_id: String,
    mid: Option<String>,
    ssrc: Option<u32>,
    ended: bool,
    /// (SSRC, sequence number) of every packet received, to flag duplicates.
    seen: HashSet<(u32, u16)>,
}

#[derive(Default)]
struct MediaState {
    /// mid -> Cascade track id, from the latest server offer (set before it is answered).
    mid_map: BTreeMap<String, String>,
    /// The same, from the latest server offer the client has answered.
    answered_map: BTreeMap<String, String>,
    remotes: Vec<RemoteTrack>,
    packets: HashMap<String, Vec<ReceivedPacket>>,
}

impl MediaState {
    /// The Cascade track id a remote track currently stands for: via its mid and the latest
    /// server offer's `tracks`, else its msid track id, else its stream id.
    fn key_of(&self, remote: &RemoteTrack) -> String {
        remote
            .mid
            .as_ref()
            .and_then(|mid| self.mid_map.get(mid))
            .cloned()
            .or_else(|| (!remote.msid.is_empty()).then(|| remote.msid.clone()))
            .unwrap_or_else(|| remote.stream_id.clone())
    }
}

/// The received media of one client.
#[derive(Default)]
pub(crate) struct Recorder(Watched<MediaState>);

impl Recorder {
    /// A server offer with `tracks` is being applied.
    pub(crate) fn offered(&self, tracks: BTreeMap<String, String>) {
        self.0.update(|m| m.mid_map = tracks);
    }

    /// The server offer with `tracks` was answered.
    pub(crate) fn answered(&self, tracks: BTreeMap<String, String>) {
        self.0.update(|m| m.answered_map = tracks);
    }

    /// Waits until `check` finds what it looks for in the received media.
    async fn wait<T>(
        &self,
        timeout: Duration,
        what: impl Fn(&MediaState) -> String,
        check: impl Fn(&MediaState) -> Option<T>,
    ) -> Result<T> {
        self.0.wait(timeout, what, |m| Ok(check(m))).await
    }
}

/// The mid of the transceiver whose receiver carries `track`.
async fn mid_of(pc: &Arc<dyn PeerConnection>, track: &Arc<dyn TrackRemote>) -> Option<String> {
    for t in pc.get_transceivers().await {
        let Ok(Some(r)) = t.receiver().await else {
            continue;
        };
        if std::ptr::addr_eq(Arc::as_ptr(r.track()), Arc::as_ptr(track)) {
            return t.mid().await.ok().flatten();
        }
    }
    None
}

/// Records every packet of one remote track, keyed by Cascade track id.
pub(crate) async fn record_remote_track(
    recorder: Arc<Recorder>,
    pc: Option<Arc<dyn PeerConnection>>,
    track: Arc<dyn TrackRemote>,
) {
    let kind = MediaKind::from_codec_kind(track.kind().await).unwrap_or(MediaKind::Video);
    let msid = track.track_id().await.to_string();
    let stream_id = track.stream_id().await.to_string();
    let mid = match &pc {
        Some(pc) => mid_of(pc, &track).await,
        None => None,
    };
    drop(pc);
    let index = recorder.0.update(|media| {
        media.remotes.push(RemoteTrack {
            track: track.clone(),
            msid,
            stream_id,
            mid,
            ssrc: None,
            ended: false,
            seen: HashSet::new(),
        });
        media.remotes.len() - 1
    });
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnOpen(init) => recorder.0.update(|media| {
                media.remotes[index].ssrc.get_or_insert(init.ssrc);
            }),
            TrackRemoteEvent::OnRtpPacket(p) => recorder.0.update(|media| {
                let key = media.key_of(&media.remotes[index]);
                let remote = &mut media.remotes[index];
                // The latest SSRC: a reused m-line may carry a new source.
                remote.ssrc = Some(p.header.ssrc);
                let duplicate = !remote
                    .seen
                    .insert((p.header.ssrc, p.header.sequence_number));
                let packet = ReceivedPacket {
                    seq: p.header.sequence_number,
                    ts: p.header.timestamp,
                    ssrc: p.header.ssrc,
                    pt: p.header.payload_type,
                    marker: p.header.marker,
                    payload: p.payload,
                    kind,
                    mid: remote.mid.clone(),
                    duplicate,
                    at: Instant::now(),
                };
                media.packets.entry(key).or_default().push(packet);
            }),
            TrackRemoteEvent::OnEnded => {
                recorder.0.update(|media| media.remotes[index].ended = true);
                return;
            }
            _ => {}
        }
    }
}

impl TestClient {
    fn media(&self) -> std::sync::MutexGuard<'_, MediaState> {
        self.shared.media.0.lock()
    }

    /// Packets received so far on the remote track that is Cascade track `track_id`.
    pub fn received(&self, track_id: &str) -> Vec<ReceivedPacket> {
        self.media()
            .packets
            .get(track_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until at least `n` packets were received for `track_id`; returns all of them.
    pub async fn wait_for_packets(
        &self,
        track_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedPacket>> {
        let what = |media: &MediaState| {
            let have: BTreeMap<_, _> = media
                .packets
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect();
            format!(
                "{n} packets on track {track_id} (packets per track: {have:?}, offered: {:?})",
                media.mid_map
            )
        };
        let check = |media: &MediaState| {
            media
                .packets
                .get(track_id)
                .filter(|p| p.len() >= n)
                .cloned()
        };
        self.shared.media.wait(timeout, what, check).await
    }

    /// Waits until a packet carrying `counter` arrives on `track_id`; returns it.
    pub async fn wait_for_counter(
        &self,
        track_id: &str,
        counter: u32,
        timeout: Duration,
    ) -> Result<ReceivedPacket> {
        let what = |_: &MediaState| format!("counter {counter} on track {track_id}");
        let check = |media: &MediaState| {
            let packets = media.packets.get(track_id)?;
            packets
                .iter()
                .find(|p| p.counter() == Some(counter))
                .cloned()
        };
        self.shared.media.wait(timeout, what, check).await
    }

    /// Cascade track ids of the remote tracks that delivered media (resolved through the
    /// latest server offer's `tracks`), sorted.
    pub fn remote_track_ids(&self) -> Vec<String> {
        let media = self.media();
        let mut ids: Vec<String> = media.remotes.iter().map(|r| media.key_of(r)).collect();
        ids.extend(media.packets.keys().cloned());
        ids.sort();
        ids.dedup();
        ids
    }

    /// The `tracks` map (mid -> Cascade track id) of the latest server offer the client has
    /// answered.
    pub fn offered_tracks(&self) -> BTreeMap<String, String> {
        self.media().answered_map.clone()
    }

    /// Waits until the client has answered a server offer whose `tracks` satisfy `pred`.
    pub async fn wait_for_offered(
        &self,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>> {
        let what = |media: &MediaState| {
            format!(
                "an answered server offer with the wanted tracks (last answered: {:?})",
                media.answered_map
            )
        };
        let check =
            |media: &MediaState| pred(&media.answered_map).then(|| media.answered_map.clone());
        self.shared.media.wait(timeout, what, check).await
    }

    /// The remote track currently standing for `track_id` and its media SSRC.
    pub(crate) fn remote_for(&self, track_id: &str) -> Result<(Arc<dyn TrackRemote>, u32)> {
        let media = self.media();
        let remote = media
            .remotes
            .iter()
            .rev()
            .filter(|r| media.key_of(r) == track_id)
            .min_by_key(|r| r.ended)
            .ok_or_else(|| {
                let ids: Vec<_> = media.remotes.iter().map(|r| media.key_of(r)).collect();
                anyhow!("no remote track {track_id} (remote tracks: {ids:?})")
            })?;
        let ssrc = remote
            .ssrc
            .ok_or_else(|| anyhow!("remote track {track_id} has no known SSRC yet"))?;
        Ok((remote.track.clone(), ssrc))
    }
}
