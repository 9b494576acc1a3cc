//! One synthetic participant, built from the test kit (`cascade-testkit`): over Cascade's
//! WebSocket protocol it is the kit's [`TestClient`] configured not to record (received payloads
//! go to a [`Receiver`], no trickled candidates, a keepalive `ping`); over WHIP/WHEP it is the
//! kit's peer connection with an HTTP offer/answer.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cascade_testkit::media::{AddedTrack, add_send_track};
use cascade_testkit::peer::{
    PayloadFn, PcState, PeerEvents, PeerOptions, add_receive_only, build_peer_connection,
    forward_payloads,
};
use cascade_testkit::{ClientConfig, LocalTrack, MediaKind, Received, TestClient, random_u32};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::http;
use crate::media::{Media, Pump};
use crate::stats::Receiver;

/// A joined participant.
pub struct Participant(Session);

/// How a participant talks to the server.
enum Session {
    /// Cascade's WebSocket protocol.
    Ws(TestClient),
    /// WHIP or WHEP.
    Http(HttpSession),
}

/// A WHIP or WHEP session.
struct HttpSession {
    pc: Arc<dyn PeerConnection>,
    state: PcState,
    /// Where the session resource lives: `host:port` and path (to delete when leaving).
    addr: String,
    location: String,
    /// Receives the peer connection's tracks.
    _events: Arc<Forwarder>,
}

/// Feeds the payloads of every remote track to a [`Receiver`], if any.
struct Forwarder(Option<PayloadFn>);

#[async_trait::async_trait]
impl PeerEvents for Forwarder {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(f) = self.0.clone() {
            tokio::spawn(forward_payloads(track, f));
        }
    }
}

/// Received payloads go to `receiver` for as long as it lives.
fn to_receiver(receiver: Option<&Arc<Receiver>>) -> Option<PayloadFn> {
    let receiver = Arc::downgrade(receiver?);
    Some(Arc::new(move |payload: &[u8]| {
        if let Some(r) = receiver.upgrade() {
            r.on_payload(payload);
        }
    }))
}

/// The peer connection options of every participant: like a browser's, without REMB.
fn peer_options() -> PeerOptions {
    PeerOptions {
        remb: false,
        ..PeerOptions::default()
    }
}

/// `stream_id` and one `(kind, SSRC, track id)` per entry of `media`, streams numbered from
/// `first_stream`.
fn track_specs(media: &[Media], first_stream: u32) -> (String, Vec<(MediaKind, u32, String)>) {
    let stream_id = format!("load-{first_stream}");
    let specs = media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // Non-zero, and distinct between the streams of one run.
            let ssrc = ((random_u32() | 1) << 16) | ((first_stream + i as u32) & 0xFFFF);
            (m.kind(), ssrc, format!("{stream_id}-{i}"))
        })
        .collect();
    (stream_id, specs)
}

/// The pumps of negotiated tracks (stream numbers from `first_stream`).
fn pumps(media: &[Media], tracks: Vec<Arc<LocalTrack>>, first_stream: u32) -> Vec<Pump> {
    (first_stream..)
        .zip(media.iter().zip(tracks))
        .map(|(stream, (&media, track))| Pump {
            media,
            track,
            stream,
        })
        .collect()
}

impl Participant {
    /// Connects to `url`, joins with `token` and answers server offers from then on;
    /// received media goes to `receiver` (none: received media is ignored).
    pub async fn join(
        url: &str,
        token: String,
        receiver: Option<&Arc<Receiver>>,
        timeout: Duration,
    ) -> Result<Self> {
        let config = ClientConfig {
            timeout,
            peer: peer_options(),
            trickle: false,
            // The server ends sessions silent for 60 s.
            keepalive: Some(Duration::from_secs(10)),
            received: to_receiver(receiver).map_or(Received::Ignore, Received::Forward),
            label: "cascade-load:".to_owned(),
            ..ClientConfig::default()
        };
        let client = TestClient::connect_with(url, config).await?;
        client
            .join(&token, receiver.is_some())
            .await
            .map_err(|e| anyhow!("join refused: {e}"))?;
        Ok(Self(Session::Ws(client)))
    }

    /// Publishes one send-only track per entry of `media`, waits for the answer and the
    /// connection, and returns the pumps that will send on them (stream numbers from
    /// `first_stream`).
    pub async fn publish(&self, media: &[Media], first_stream: u32) -> Result<Vec<Pump>> {
        let Session::Ws(client) = &self.0 else {
            bail!("WHIP/WHEP sessions cannot renegotiate");
        };
        let (stream_id, specs) = track_specs(media, first_stream);
        let tracks = client.publish_tracks(&stream_id, specs).await?;
        Ok(pumps(media, tracks, first_stream))
    }

    /// Publishes `media` over WHIP (`POST /whip/{room}` at `addr`), like [`Self::publish`].
    pub async fn whip(
        addr: &str,
        room: &str,
        token: &str,
        media: &[Media],
        first_stream: u32,
        timeout: Duration,
    ) -> Result<(Self, Vec<Pump>)> {
        let mut session = HttpSession::new(addr, None).await?;
        let (stream_id, specs) = track_specs(media, first_stream);
        let mut added: Vec<AddedTrack> = vec![];
        for (kind, ssrc, track_id) in specs {
            added.push(add_send_track(&session.pc, kind, ssrc, &stream_id, track_id).await?);
        }
        session.offer(&format!("/whip/{room}"), token).await?;
        session.state.wait_connected(timeout).await?;
        let mut tracks = vec![];
        for a in added {
            tracks.push(a.negotiated().await?);
        }
        Ok((
            Self(Session::Http(session)),
            pumps(media, tracks, first_stream),
        ))
    }

    /// Watches the room over WHEP (`POST /whep/{room}` at `addr`): one audio and one video
    /// receive-only m-line; received media goes to `receiver`.
    pub async fn whep(
        addr: &str,
        room: &str,
        token: &str,
        receiver: &Arc<Receiver>,
        timeout: Duration,
    ) -> Result<Self> {
        let mut session = HttpSession::new(addr, Some(receiver)).await?;
        for kind in [MediaKind::Audio, MediaKind::Video] {
            add_receive_only(&session.pc, kind).await?;
        }
        session.offer(&format!("/whep/{room}"), token).await?;
        session.state.wait_connected(timeout).await?;
        Ok(Self(Session::Http(session)))
    }

    /// Waits until the peer connection is connected.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        match &self.0 {
            Session::Ws(client) => client.wait_connected(timeout).await,
            Session::Http(session) => session.state.wait_connected(timeout).await,
        }
    }

    /// Whether the peer connection is connected now.
    pub fn is_connected(&self) -> bool {
        let state = match &self.0 {
            Session::Ws(client) => client.connection_state(),
            Session::Http(session) => session.state.get(),
        };
        state == RTCPeerConnectionState::Connected
    }

    /// Leaves (`leave`, or `DELETE` of the WHIP/WHEP session) and closes the peer connection.
    pub async fn leave(self) {
        match self.0 {
            Session::Ws(client) => {
                let _ = client.leave().await;
            }
            Session::Http(session) => {
                let _ = http::request(&session.addr, "DELETE", &session.location, &[], "").await;
                let _ = session.pc.close().await;
            }
        }
    }
}

impl HttpSession {
    /// A peer connection for a session with the endpoint at `addr`; received media goes to
    /// `receiver`.
    async fn new(addr: &str, receiver: Option<&Arc<Receiver>>) -> Result<Self> {
        let events = Arc::new(Forwarder(to_receiver(receiver)));
        let state = PcState::default();
        let weak = Arc::downgrade(&events);
        let pc = build_peer_connection(&peer_options(), state.clone(), weak).await?;
        Ok(Self {
            pc,
            state,
            addr: addr.to_owned(),
            location: String::new(),
            _events: events,
        })
    }

    /// Posts the offer to the WHIP/WHEP endpoint `path` and applies the answer.
    async fn offer(&mut self, path: &str, token: &str) -> Result<()> {
        let offer = self.pc.create_offer(None).await?;
        let sdp = offer.sdp.clone();
        self.pc.set_local_description(offer).await?;
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/sdp"),
        ];
        let r = http::request(&self.addr, "POST", path, &headers, &sdp).await?;
        anyhow::ensure!(r.status == 201, "POST {path}: {} {}", r.status, r.body);
        self.location = r
            .header("location")
            .ok_or_else(|| anyhow!("POST {path}: no Location"))?
            .to_owned();
        self.pc
            .set_remote_description(RTCSessionDescription::answer(r.body)?)
            .await
            .context("applying the WHIP/WHEP answer")
    }
}
