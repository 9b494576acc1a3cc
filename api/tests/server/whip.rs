//! webrtc-rs peer connections signalled over WHIP/WHEP, and the HTTP side of those
//! endpoints: creating sessions, error codes, ICE-restart fragments.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cascade_testkit::media::add_send_track;
use cascade_testkit::peer::{
    PcState, PeerEvents, PeerOptions, add_receive_only, build_peer_connection,
};
use cascade_testkit::{DEFAULT_TIMEOUT, MediaKind, payload_counter, random_u32};
use reqwest::{Response, StatusCode};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
pub use webrtc::rtp_transceiver::RTCRtpTransceiverDirection;

/// The content type of SDP offers and answers.
pub const SDP: &str = "application/sdp";
/// The content type of trickle-ICE fragments.
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// One RTP packet a [`HttpPeer`] received.
#[derive(Debug, Clone)]
pub struct Got {
    /// The kind of the track it arrived on.
    pub kind: MediaKind,
    /// Its SSRC.
    pub ssrc: u32,
    /// Its sequence number.
    pub seq: u16,
    /// The payload counter it carries, if any.
    pub counter: Option<u32>,
}

/// The event sink of a [`HttpPeer`]: records every packet of its remote tracks.
struct Inbox {
    packets: Arc<Mutex<Vec<Got>>>,
}

#[async_trait::async_trait]
impl PeerEvents for Inbox {
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let packets = self.packets.clone();
        tokio::spawn(async move {
            let kind = match track.kind().await {
                RtpCodecKind::Audio => MediaKind::Audio,
                _ => MediaKind::Video,
            };
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    packets.lock().unwrap().push(Got {
                        kind,
                        ssrc: p.header.ssrc,
                        seq: p.header.sequence_number,
                        counter: payload_counter(kind, &p.payload),
                    });
                }
            }
        });
    }
}

/// A webrtc-rs peer connection (the test kit's) signalled over WHIP/WHEP.
pub struct HttpPeer {
    pc: Arc<dyn PeerConnection>,
    state: PcState,
    /// Keeps the event sink alive (the peer connection holds it weakly).
    _events: Arc<dyn PeerEvents>,
    packets: Arc<Mutex<Vec<Got>>>,
}

impl HttpPeer {
    /// A peer with audio and video transceivers of the given direction (`Recvonly` for WHEP,
    /// `Sendonly` for WHIP), on loopback.
    pub async fn new(direction: RTCRtpTransceiverDirection) -> Result<Self> {
        let packets = Arc::new(Mutex::new(Vec::new()));
        let inbox: Arc<dyn PeerEvents> = Arc::new(Inbox {
            packets: packets.clone(),
        });
        let state = PcState::default();
        let pc = build_peer_connection(
            &PeerOptions::default(),
            state.clone(),
            Arc::downgrade(&inbox),
        )
        .await?;
        for kind in [MediaKind::Audio, MediaKind::Video] {
            if direction == RTCRtpTransceiverDirection::Recvonly {
                add_receive_only(&pc, kind).await?;
            } else {
                // Sending needs a track (the tests only offer with it; no media is sent).
                add_send_track(
                    &pc,
                    kind,
                    random_u32() | 1,
                    "whip-test",
                    format!("whip-test-{kind}"),
                )
                .await?;
            }
        }
        Ok(Self {
            pc,
            state,
            _events: inbox,
            packets,
        })
    }

    /// Creates and applies an offer (optionally an ICE restart); returns its SDP.
    pub async fn offer(&self, ice_restart: bool) -> Result<String> {
        let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self.pc.create_offer(options).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(offer.sdp)
    }

    /// Applies the server's answer.
    pub async fn answer(&self, sdp: String) -> Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }

    /// The packets received so far.
    pub fn packets(&self) -> Vec<Got> {
        self.packets.lock().unwrap().clone()
    }

    /// Waits until the peer connection is connected.
    pub async fn wait_connected(&self) -> Result<()> {
        self.state.wait_connected(DEFAULT_TIMEOUT).await
    }

    /// Waits until a received video packet satisfies `f`.
    pub async fn wait_video(&self, what: &str, f: impl Fn(&Got) -> bool) -> Result<Got> {
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            if let Some(g) = self
                .packets()
                .into_iter()
                .find(|g| g.kind == MediaKind::Video && f(g))
            {
                return Ok(g);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!("timed out waiting for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A created WHIP/WHEP session.
pub struct Session {
    /// The session resource's URL.
    pub url: String,
    /// Its ETag.
    pub etag: String,
    /// The SDP answer.
    pub answer: String,
}

/// An HTTP client with a 10 s timeout.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Sends `req` with `body` as `content_type`, and the `header` (name, value) if any.
async fn send(
    req: reqwest::RequestBuilder,
    content_type: &str,
    body: String,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = req.header("content-type", content_type).body(body);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.expect("request")
}

/// POSTs `body` as `ct`, with a bearer `token` if any.
pub async fn post(url: &str, token: Option<&str>, ct: &str, body: String) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let header = auth.as_deref().map(|a| ("authorization", a));
    send(http().post(url), ct, body, header).await
}

/// PATCHes `url` with `body` as `ct`, with an `If-Match` header if any.
pub async fn patch(url: &str, if_match: Option<&str>, ct: &str, body: String) -> Response {
    let header = if_match.map(|m| ("if-match", m));
    send(http().patch(url), ct, body, header).await
}

/// DELETEs the session resource at `url`; returns the status.
pub async fn delete(url: &str) -> Result<StatusCode> {
    Ok(http().delete(url).send().await?.status())
}

/// A receive-only peer whose WHEP session at `base` + `path` is created and connected.
pub async fn whep_viewer(base: &str, path: &str, token: &str) -> Result<(HttpPeer, Session)> {
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let s = create(base, path, token, viewer.offer(false).await?).await?;
    viewer.answer(s.answer.clone()).await?;
    viewer.wait_connected().await?;
    Ok((viewer, s))
}

/// Posts `offer` and expects 201.
pub async fn create(base: &str, path: &str, token: &str, offer: String) -> Result<Session> {
    let res = post(&format!("{base}{path}"), Some(token), SDP, offer).await;
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{path}: {status} {body}");
    let header = |name: &str| -> Result<String> {
        Ok(headers
            .get(name)
            .with_context(|| format!("no {name}"))?
            .to_str()?
            .to_owned())
    };
    assert_eq!(header("content-type")?, SDP);
    assert_eq!(header("accept-patch")?, SDPFRAG);
    Ok(Session {
        url: format!("{base}{}", header("location")?),
        etag: header("etag")?,
        answer: body,
    })
}

/// Asserts that `res` is an error of `status` with `code` (`what` names the case).
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str, what: &str) {
    let status = StatusCode::from_u16(status).unwrap();
    assert_eq!(error_code(res).await, (status, code.to_owned()), "{what}");
}

/// The status and `error.code` of an error response.
pub async fn error_code(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("JSON error body");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// The ICE lines of an SDP fragment for an offer: credentials and its first m-section.
pub fn restart_fragment(offer: &str) -> String {
    let mut out = String::new();
    for l in offer.lines() {
        if (l.starts_with("a=ice-ufrag:") || l.starts_with("a=ice-pwd:")) && !out.contains(&l[..8])
        {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    let m = offer.lines().find(|l| l.starts_with("m=")).unwrap();
    out.push_str(m);
    out.push_str("\r\na=mid:0\r\n");
    out
}

/// The current remote answer with the server's credentials from an ICE-restart fragment.
pub fn restarted_answer(answer: &str, fragment: &str) -> String {
    let find = |p: &str| {
        fragment
            .lines()
            .find(|l| l.starts_with(p))
            .unwrap()
            .to_owned()
    };
    let (ufrag, pwd) = (find("a=ice-ufrag:"), find("a=ice-pwd:"));
    answer
        .lines()
        .map(|l| {
            if l.starts_with("a=ice-ufrag:") {
                ufrag.clone()
            } else if l.starts_with("a=ice-pwd:") {
                pwd.clone()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}
