//! WHIP and WHEP over HTTP with webrtc-rs clients: every error class of the endpoints and
//! session resources, a WHEP viewer that follows the room's publisher across a change of
//! publisher (one continuous RTP stream), ICE restart via PATCH, and DELETE.
//! (Interop with aiortc and Chromium is web-demo/tests/whip.test.mjs.)

mod server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use cascade_api::auth::{self, Grants};
use cascade_testkit::{DEFAULT_TIMEOUT, MediaKind, TestClient, payload_counter};
use reqwest::StatusCode;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use server::{KEY, SECRET, eventually, token, token_with, viewer_token};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    register_default_interceptors,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// One RTP packet a [`HttpPeer`] received.
#[derive(Debug, Clone)]
struct Got {
    kind: MediaKind,
    ssrc: u32,
    seq: u16,
    counter: Option<u32>,
}

#[derive(Default)]
struct Inbox {
    packets: Mutex<Vec<Got>>,
    state: Mutex<Option<RTCPeerConnectionState>>,
}

struct Events(Arc<Inbox>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        *self.0.state.lock().unwrap() = Some(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let inbox = self.0.clone();
        tokio::spawn(async move {
            let kind = match track.kind().await {
                RtpCodecKind::Audio => MediaKind::Audio,
                _ => MediaKind::Video,
            };
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    inbox.packets.lock().unwrap().push(Got {
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

/// A webrtc-rs peer connection signalled over WHIP/WHEP.
struct HttpPeer {
    pc: Arc<dyn PeerConnection>,
    inbox: Arc<Inbox>,
}

impl HttpPeer {
    /// A peer with audio and video transceivers of the given direction (`Recvonly` for WHEP,
    /// `Sendonly` for WHIP), on loopback.
    async fn new(direction: RTCRtpTransceiverDirection) -> Result<Self> {
        let mut engine = MediaEngine::default();
        engine.register_default_codecs()?;
        let registry = register_default_interceptors(Default::default(), &mut engine)?;
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_network_types(vec![NetworkType::Udp4])
            .with_include_loopback_candidate(true)
            .build();
        let inbox = Arc::new(Inbox::default());
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Events(inbox.clone())))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let init = || {
            Some(RTCRtpTransceiverInit {
                direction,
                streams: vec![],
                send_encodings: vec![],
            })
        };
        for (kind, mime, clock_rate, channels) in [
            (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2),
            (RtpCodecKind::Video, MIME_TYPE_VP8, 90_000, 0),
        ] {
            if direction == RTCRtpTransceiverDirection::Recvonly {
                pc.add_transceiver_from_kind(kind, init()).await?;
                continue;
            }
            // Sending needs a track (the tests only offer with it; no media is sent).
            let track = MediaStreamTrack::new(
                "whip-test".into(),
                format!("whip-test-{mime}"),
                format!("whip-test-{mime}"),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(rand_ssrc()),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: mime.into(),
                        clock_rate,
                        channels,
                        ..Default::default()
                    },
                    ..Default::default()
                }],
            );
            pc.add_transceiver_from_track(Arc::new(TrackLocalStaticRTP::new(track)), init())
                .await?;
        }
        Ok(Self { pc, inbox })
    }

    /// Creates and applies an offer (optionally an ICE restart); returns its SDP.
    async fn offer(&self, ice_restart: bool) -> Result<String> {
        let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self.pc.create_offer(options).await?;
        self.pc.set_local_description(offer.clone()).await?;
        Ok(offer.sdp)
    }

    async fn answer(&self, sdp: String) -> Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }

    fn packets(&self) -> Vec<Got> {
        self.inbox.packets.lock().unwrap().clone()
    }

    async fn wait_connected(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + DEFAULT_TIMEOUT;
        loop {
            let state = *self.inbox.state.lock().unwrap();
            if state == Some(RTCPeerConnectionState::Connected) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(anyhow!("not connected: {state:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a received video packet satisfies `f`.
    async fn wait_video(&self, what: &str, f: impl Fn(&Got) -> bool) -> Result<Got> {
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

fn rand_ssrc() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() | 1)
}

/// A created WHIP/WHEP session.
struct Session {
    url: String,
    etag: String,
    answer: String,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    let mut req = http()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("request")
}

/// Posts `offer` and expects 201.
async fn create(base: &str, path: &str, token: &str, offer: String) -> Result<Session> {
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

async fn error_code(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let body: serde_json::Value = res.json().await.expect("JSON error body");
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

fn expired_token(room: &str) -> String {
    let past = SystemTime::now() - Duration::from_secs(7200);
    auth::mint(
        KEY,
        SECRET,
        "late",
        Grants::new(room),
        Duration::from_secs(60),
        past,
    )
    .unwrap()
}

/// The ICE lines of an SDP fragment for an offer: credentials and its first m-section.
fn restart_fragment(offer: &str) -> String {
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
fn restarted_answer(answer: &str, fragment: &str) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_of_the_endpoints_and_resources() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);
    let whip = format!("{base}/whip/errs");
    let whep = format!("{base}/whep/errs");
    let publisher = HttpPeer::new(RTCRtpTransceiverDirection::Sendonly).await?;
    let offer = publisher.offer(false).await?;
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let recv_offer = viewer.offer(false).await?;

    let cases: Vec<(&str, reqwest::Response, StatusCode, &str)> = vec![
        (
            "no token",
            post(&whip, None, SDP, offer.clone()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "forged token",
            post(&whip, Some("a.b.c"), SDP, offer.clone()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "expired token",
            post(&whip, Some(&expired_token("errs")), SDP, offer.clone()).await,
            StatusCode::UNAUTHORIZED,
            "token_expired",
        ),
        (
            "other room",
            post(&whip, Some(&token("elsewhere", "p")), SDP, offer.clone()).await,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "viewer publishes",
            post(&whip, Some(&viewer_token("errs", "v")), SDP, offer.clone()).await,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "no subscribe grant",
            post(
                &whep,
                Some(&token_with("errs", "w", |g| g.can_subscribe = false)),
                SDP,
                recv_offer.clone(),
            )
            .await,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "wrong content type",
            post(
                &whip,
                Some(&token("errs", "p")),
                "text/plain",
                offer.clone(),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "garbage SDP",
            post(
                &whip,
                Some(&token("errs", "p")),
                SDP,
                "v=0\r\nthis is not sdp".into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
        ),
        (
            "oversized offer",
            post(&whip, Some(&token("errs", "p")), SDP, "a".repeat(70_000)).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "WHEP offer that sends",
            post(&whep, Some(&token("errs", "w")), SDP, offer.clone()).await,
            StatusCode::BAD_REQUEST,
            "invalid_sdp",
        ),
    ];
    for (what, res, status, code) in cases {
        assert_eq!(error_code(res).await, (status, code.to_owned()), "{what}");
    }
    // None of the refused requests left anything behind (an offer refused after the join
    // closes its peer, which its worker drops asynchronously).
    assert_eq!(srv.state.rooms.counts().participants, 0);
    eventually(DEFAULT_TIMEOUT, "refused sessions' peers to close", || {
        srv.state.media().peer_count() == 0
    })
    .await;

    // A good session, then every error of its resource.
    let s = create(&base, "/whep/errs", &token("errs", "w"), recv_offer).await?;
    let frag = "a=ice-ufrag:zzzz\r\n".to_owned();
    let patch = |url: String, if_match: Option<String>, ct: &'static str, body: String| async move {
        let mut req = http().patch(url).header("content-type", ct).body(body);
        if let Some(m) = if_match {
            req = req.header("if-match", m);
        }
        req.send().await.expect("request")
    };
    let unknown = format!("{base}/whep/errs/nosuchsession");
    let cases: Vec<(&str, reqwest::Response, StatusCode, &str)> = vec![
        (
            "unknown resource",
            patch(unknown.clone(), Some("*".into()), SDPFRAG, String::new()).await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "WHIP path of a WHEP session",
            patch(
                s.url.replace("/whep/", "/whip/"),
                Some(s.etag.clone()),
                SDPFRAG,
                String::new(),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "no If-Match",
            patch(s.url.clone(), None, SDPFRAG, String::new()).await,
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
        ),
        (
            "stale If-Match",
            patch(
                s.url.clone(),
                Some("\"stale\"".into()),
                SDPFRAG,
                String::new(),
            )
            .await,
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        ),
        (
            "wrong content type",
            patch(
                s.url.clone(),
                Some(s.etag.clone()),
                "application/sdp",
                String::new(),
            )
            .await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "half credentials",
            patch(s.url.clone(), Some("*".into()), SDPFRAG, frag).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "garbage fragment",
            patch(
                s.url.clone(),
                Some(s.etag.clone()),
                SDPFRAG,
                "garbage".into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad candidate",
            patch(
                s.url.clone(),
                Some(s.etag.clone()),
                SDPFRAG,
                "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:nonsense\r\n".into(),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_candidate",
        ),
        (
            "DELETE with a token for another room",
            http()
                .delete(&s.url)
                .bearer_auth(token("elsewhere", "x"))
                .send()
                .await?,
            StatusCode::FORBIDDEN,
            "permission_denied",
        ),
        (
            "DELETE unknown",
            http().delete(&unknown).send().await?,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (what, res, status, code) in cases {
        assert_eq!(error_code(res).await, (status, code.to_owned()), "{what}");
    }
    // An empty trickle with the right ETag is fine, and the session is still there.
    let res = patch(s.url.clone(), Some(s.etag.clone()), SDPFRAG, String::new()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.state.rooms.counts().participants, 1);

    // OPTIONS and a CORS preflight.
    let res = http()
        .request(reqwest::Method::OPTIONS, &whip)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["accept-post"], SDP);
    let res = http()
        .request(reqwest::Method::OPTIONS, &s.url)
        .header("origin", "https://example.com")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "if-match, content-type")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()?
        .to_owned();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );

    assert_eq!(http().delete(&s.url).send().await?.status(), StatusCode::OK);
    assert_eq!(
        http().delete(&s.url).send().await?.status(),
        StatusCode::NOT_FOUND
    );
    eventually(DEFAULT_TIMEOUT, "the viewer's peer to close", || {
        srv.state.media().peer_count() == 0 && srv.state.rest_sessions.is_empty()
    })
    .await;
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_follows_the_room_across_a_change_of_publisher() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);

    let alice = TestClient::connect(&srv.ws_url()).await?;
    alice
        .join(&token("live", "alice"), false)
        .await
        .map_err(|e| anyhow!("{e:?}"))?;
    let a = alice.publish(true, true).await?;
    let a_pump = a.pump(MediaKind::Video, 0, 10_000, Duration::from_millis(20))?;

    // Without ?participant the viewer follows the only publisher, alice.
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let s = create(
        &base,
        "/whep/live",
        &viewer_token("live", "v"),
        viewer.offer(false).await?,
    )
    .await?;
    viewer.answer(s.answer.clone()).await?;
    viewer.wait_connected().await?;
    // A viewer that waits for bob only.
    let bob_fan = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let sb = create(
        &base,
        "/whep/live?participant=bob",
        &viewer_token("live", "fan"),
        bob_fan.offer(false).await?,
    )
    .await?;
    bob_fan.answer(sb.answer.clone()).await?;
    bob_fan.wait_connected().await?;

    let first = viewer
        .wait_video("alice's video", |g| g.counter.is_some())
        .await?;
    assert!(first.counter.unwrap() < 1000, "alice's counters");

    // ICE restart of the viewer: the server answers with its fragment and a new ETag, and
    // media keeps flowing on the restarted session.
    let restart = viewer.offer(true).await?;
    let res = http()
        .patch(&s.url)
        .header("content-type", SDPFRAG)
        .header("if-match", "*")
        .body(restart_fragment(&restart))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::OK);
    let new_etag = res.headers()["etag"].to_str()?.to_owned();
    assert_ne!(new_etag, s.etag, "a new ICE session has a new ETag");
    let fragment = res.text().await?;
    assert!(
        fragment.contains("a=ice-ufrag:") && fragment.contains("a=candidate:"),
        "{fragment}"
    );
    viewer
        .answer(restarted_answer(&s.answer, &fragment))
        .await?;
    let seen = viewer.packets().len();
    eventually(DEFAULT_TIMEOUT, "video after the ICE restart", || {
        viewer.packets()[seen..]
            .iter()
            .any(|g| g.kind == MediaKind::Video)
    })
    .await;
    // The old ETag no longer matches.
    let res = http()
        .patch(&s.url)
        .header("content-type", SDPFRAG)
        .header("if-match", &s.etag)
        .body("")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);

    // Alice leaves; bob publishes with counters from 50_000: the viewer's same stream (SSRC)
    // continues with bob's packets, sequence numbers without a jump.
    a_pump.stop();
    alice.leave().await?;
    let before_switch = viewer
        .packets()
        .iter()
        .rfind(|g| g.kind == MediaKind::Video)
        .cloned()
        .context("alice's packets")?;
    let bob = TestClient::connect(&srv.ws_url()).await?;
    bob.join(&token("live", "bob"), false)
        .await
        .map_err(|e| anyhow!("{e:?}"))?;
    let b = bob.publish(true, true).await?;
    let b_pump = b.pump(MediaKind::Video, 50_000, 10_000, Duration::from_millis(20))?;
    let from_bob = viewer
        .wait_video("bob's video", |g| g.counter.is_some_and(|c| c >= 50_000))
        .await?;
    assert_eq!(from_bob.ssrc, before_switch.ssrc, "same outgoing stream");
    let bob_first = viewer
        .packets()
        .into_iter()
        .find(|g| g.kind == MediaKind::Video && g.counter.is_some_and(|c| c >= 50_000))
        .unwrap();
    assert_eq!(
        bob_first.seq,
        before_switch.seq.wrapping_add(1),
        "sequence numbers continue across publishers"
    );
    // The fan of bob got bob, and never alice.
    bob_fan
        .wait_video("bob's video at bob's fan", |g| {
            g.counter.is_some_and(|c| c >= 50_000)
        })
        .await?;
    assert!(
        bob_fan
            .packets()
            .iter()
            .all(|g| g.counter.is_none_or(|c| c >= 50_000)),
        "bob's fan saw only bob"
    );

    b_pump.stop();
    for url in [&s.url, &sb.url] {
        assert_eq!(http().delete(url).send().await?.status(), StatusCode::OK);
    }
    bob.leave().await?;
    eventually(DEFAULT_TIMEOUT, "everyone gone", || {
        srv.state.rooms.counts().participants == 0 && srv.state.media().peer_count() == 0
    })
    .await;
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_is_rate_limited_with_429_and_retry_after() -> Result<()> {
    // 1 per second after a burst of 2.
    let srv = server::start_with(|c| c.session_rate_limit = 1).await;
    let base = format!("http://{}", srv.http_addr);
    let mut offers = Vec::new();
    for _ in 0..6 {
        let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
        offers.push(viewer.offer(false).await?);
    }
    // Post back to back until refused: the burst of 2 passes, then at most one more per
    // second elapsed.
    let started = tokio::time::Instant::now();
    let mut created = Vec::new();
    let mut refused = None;
    for (i, offer) in offers.into_iter().enumerate() {
        let token = viewer_token("limited", &format!("v{i}"));
        let res = post(&format!("{base}/whep/limited"), Some(&token), SDP, offer).await;
        if res.status() == StatusCode::CREATED {
            created.push(format!("{base}{}", res.headers()["location"].to_str()?));
        } else {
            refused = Some(res);
            break;
        }
    }
    let elapsed = started.elapsed().as_secs();
    let res = refused.context("no request was refused")?;
    let retry_after: u64 = res.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned())
    );
    assert!(created.len() >= 2, "the burst passes");
    assert!(
        created.len() as u64 <= 2 + elapsed,
        "{} created in {elapsed} s",
        created.len()
    );
    assert_eq!(
        srv.state.rooms.counts().participants,
        created.len() as u64,
        "the refused one did not join"
    );
    for url in &created {
        assert_eq!(http().delete(url).send().await?.status(), StatusCode::OK);
    }
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_candidates_are_capped_with_400_too_many_candidates() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let s = create(
        &base,
        "/whep/cands",
        &viewer_token("cands", "fan"),
        viewer.offer(false).await?,
    )
    .await?;
    let fragment = |from: usize, n: usize| {
        let mut f = String::from("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n");
        for i in from..from + n {
            f.push_str(&format!(
                "a=candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host\r\n",
                30_000 + i
            ));
        }
        f
    };
    let patch = |body: String| {
        http()
            .patch(&s.url)
            .header("content-type", SDPFRAG)
            .header("if-match", &s.etag)
            .body(body)
            .send()
    };
    // 64 candidates in one ICE generation are accepted; the 65th is refused.
    for from in [0, 32] {
        assert_eq!(
            patch(fragment(from, 32)).await?.status(),
            StatusCode::NO_CONTENT
        );
    }
    let (status, code) = error_code(patch(fragment(64, 1)).await?).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "too_many_candidates")
    );
    assert_eq!(http().delete(&s.url).send().await?.status(), StatusCode::OK);
    srv.shutdown().await;
    Ok(())
}
