//! Bad input: malformed frames, bad tokens, out-of-order signaling, room limits, duplicate
//! identities and garbage UDP. Each is refused with its documented error code (`ref` echoed),
//! the offending session survives where it should (it still answers `ping`), and a healthy
//! publisher/subscriber pair in the same room keeps receiving media throughout.

use crate::server;

use std::net::UdpSocket;
use std::time::{Duration, SystemTime};

use cascade_api::auth::{self, Grants};
use cascade_api::config::Config;
use cascade_api::server::ServerHandle;
use cascade_testkit::{MediaKind, TestClient};
use serde_json::{Value, json};
use server::clients::{Publisher, VIDEO, join, participant_id, publisher, track_of};

const T: Duration = Duration::from_secs(15);

/// A publisher streaming VP8 to an auto-subscribed subscriber in `room`, on a server of its
/// own.
struct Pair {
    srv: ServerHandle,
    room: String,
    publisher: Publisher,
    subscriber: TestClient,
    track: String,
}

impl Pair {
    /// Starts a server with the test config tweaked by `f`, and the pair in `room`.
    async fn start(room: &str, f: impl FnOnce(&mut Config)) -> Self {
        let srv = server::start_with(f).await;
        let url = srv.ws_url();
        let token = server::token(room, "healthy-pub");
        let publisher = publisher(&url, &token, VIDEO, VIDEO, T).await;
        let subscriber = join(&url, &server::token(room, "healthy-sub"), true).await;
        let track = track_of(&srv, room, &publisher.id, T).await;
        let pair = Self {
            srv,
            room: room.to_owned(),
            publisher,
            subscriber,
            track,
        };
        pair.assert_flowing("at start").await;
        pair
    }

    /// A new connection to the pair's server, not joined.
    async fn connect(&self) -> TestClient {
        TestClient::connect(&self.srv.ws_url()).await.unwrap()
    }

    /// A new connection that joined the pair's room as `identity`, and its `joined`.
    async fn join(&self, identity: &str, auto_subscribe: bool) -> (TestClient, Value) {
        let c = self.connect().await;
        let token = server::token(&self.room, identity);
        let joined = c.join(&token, auto_subscribe).await.unwrap();
        (c, joined)
    }

    /// Asserts that media still flows (`when`), then shuts the server down.
    async fn finish(self, when: &str) {
        self.assert_flowing(when).await;
        self.srv.shutdown().await;
    }

    /// The subscriber receives newer payload counters, and both sessions answer `ping`.
    async fn assert_flowing(&self, when: &str) {
        let before = self.subscriber.received(&self.track);
        let last = before.iter().filter_map(|p| p.counter()).max();
        let after = self
            .subscriber
            .wait_for_packets(&self.track, before.len() + 20, T)
            .await
            .unwrap_or_else(|e| panic!("healthy pair stalled {when}: {e:#}"));
        let now = after.iter().filter_map(|p| p.counter()).max();
        assert!(
            now > last,
            "payload counters stopped {when}: {last:?} -> {now:?}"
        );
        let pump = &self.publisher.pumps[0];
        assert!(!pump.failed(), "the publisher's pump failed {when}");
        assert_alive(&self.publisher.client).await;
        assert_alive(&self.subscriber).await;
    }
}

/// Takes the next `error` message and checks its code; returns it.
async fn expect_error(c: &TestClient, code: &str) -> Value {
    let err = c
        .next_message(|m| m["type"] == "error", T)
        .await
        .unwrap_or_else(|e| panic!("expected a `{code}` error: {e:#}"));
    assert_eq!(err["code"], code, "wrong error: {err}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {err}"
    );
    err
}

/// The session is alive: `ping` is answered by `pong`.
async fn assert_alive(c: &TestClient) {
    c.send_json(&json!({"type": "ping"})).await.unwrap();
    c.next_message_of_type("pong", T)
        .await
        .unwrap_or_else(|e| panic!("session no longer answers ping: {e:#}"));
}

/// Sends `msg` (carrying a `ref`), expects `code` with that `ref` echoed, and a live session.
async fn expect_rejected(c: &TestClient, msg: Value, code: &str) {
    c.send_json(&msg).await.unwrap();
    let err = expect_error(c, code).await;
    assert_eq!(err["ref"], msg["ref"], "`ref` not echoed for {msg}: {err}");
    assert_alive(c).await;
}

/// The `error` code a failed join got.
async fn join_error(c: &TestClient, token: &str, room: Option<&str>) -> String {
    let result = match room {
        Some(room) => c.join_room(token, room, true).await,
        None => c.join(token, true).await,
    };
    match result {
        Ok(joined) => panic!("join should have failed: {joined}"),
        Err(e) => {
            assert!(e.is_server_error(), "{e}");
            e.code
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_refused_and_the_session_survives() {
    let pair = Pair::start("frames", |_| {}).await;
    let unjoined = pair.connect().await;
    let (joined, _) = pair.join("mallory", false).await;
    let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(70 * 1024));
    let cases = [
        ("hello, not json", "invalid_message", Value::Null),
        ("[1, 2, 3]", "invalid_message", Value::Null),
        ("\"a string\"", "invalid_message", Value::Null),
        (r#"{"ref": "no-type"}"#, "invalid_message", json!("no-type")),
        (r#"{"type": 7, "ref": 1}"#, "invalid_message", json!(1)),
        (
            r#"{"type":"dance","ref":"r2"}"#,
            "unknown_message_type",
            json!("r2"),
        ),
        (
            r#"{"type":"dance","ref":{"n":3}}"#,
            "unknown_message_type",
            json!({"n": 3}),
        ),
        (big.as_str(), "message_too_large", Value::Null),
    ];
    for c in [&unjoined, &joined] {
        for (frame, code, reference) in &cases {
            c.send_text(frame).await.unwrap();
            let err = expect_error(c, code).await;
            assert_eq!(&err["ref"], reference, "ref of {code}: {err}");
            assert_alive(c).await;
        }
        c.send_binary(b"{\"type\":\"ping\"}".to_vec())
            .await
            .unwrap();
        expect_error(c, "invalid_message").await;
        assert_alive(c).await;
    }
    assert!(joined.closed().is_none() && unjoined.closed().is_none());
    pair.finish("after malformed frames").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_before_join_are_not_joined() {
    let pair = Pair::start("early", |_| {}).await;
    let c = pair.connect().await;
    for msg in [
        json!({"type": "offer", "sdp": "v=0\r\n", "ref": "early-offer"}),
        json!({"type": "answer", "sdp": "v=0\r\n", "ref": "early-answer"}),
        json!({"type": "subscribe", "tracks": [pair.track], "ref": "early-sub"}),
        json!({"type": "mute", "track": pair.track, "muted": true, "ref": "early-mute"}),
        json!({"type": "leave", "ref": "early-leave"}),
    ] {
        expect_rejected(&c, msg, "not_joined").await;
    }
    // Still usable: the join works afterwards.
    c.join(&server::token("early", "late-joiner"), true)
        .await
        .unwrap();
    c.wait_for_packets(&pair.track, 5, T).await.unwrap();
    pair.finish("after requests before join").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_the_connection_can_still_join() {
    let pair = Pair::start("tokens", |_| {}).await;
    let mint = |key: &str, secret: &str, grants: Grants, ttl: u64, now: SystemTime| {
        auth::mint(key, secret, "eve", grants, Duration::from_secs(ttl), now).unwrap()
    };
    let now = SystemTime::now();
    let two_hours_ago = now - Duration::from_secs(2 * 3600);
    let other_secret = "another-secret-that-is-long-enough-9876543210";
    let cases = [
        (
            "forged (other secret)",
            mint(server::KEY, other_secret, Grants::new("tokens"), 600, now),
            None,
            "unauthorized",
        ),
        (
            "other API key",
            mint("otherkey", server::SECRET, Grants::new("tokens"), 600, now),
            None,
            "unauthorized",
        ),
        ("garbage", "not.a.jwt".to_owned(), None, "unauthorized"),
        ("empty", String::new(), None, "unauthorized"),
        (
            "expired",
            mint(
                server::KEY,
                server::SECRET,
                Grants::new("tokens"),
                3600,
                two_hours_ago,
            ),
            None,
            "token_expired",
        ),
        (
            "wrong room",
            server::token("tokens", "eve"),
            Some("elsewhere"),
            "permission_denied",
        ),
        (
            "room_join=false",
            server::token_with("tokens", "eve", |g| g.room_join = false),
            None,
            "permission_denied",
        ),
    ];
    let c = pair.connect().await;
    for (what, token, room, code) in &cases {
        assert_eq!(join_error(&c, token, *room).await, *code, "{what} token");
        assert_alive(&c).await;
    }
    let counts = pair.srv.state.rooms.counts();
    assert_eq!(
        (counts.rooms, counts.participants),
        (1, 2),
        "a refused join leaked"
    );
    // The same connection joins with a valid token and receives media.
    c.join(&server::token("tokens", "eve"), true).await.unwrap();
    c.wait_for_packets(&pair.track, 5, T).await.unwrap();
    pair.finish("after bad tokens").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_errors_after_join_keep_the_session_usable() {
    let pair = Pair::start("sig", |_| {}).await;
    // No auto-subscribe: no server offer is outstanding, so no client offer is ignored as glare.
    let (c, joined) = pair.join("mallory", false).await;
    let me = participant_id(&joined);

    let again = c.join(&server::token("sig", "mallory"), false).await;
    assert_eq!(again.unwrap_err().code, "already_joined");
    assert_alive(&c).await;
    let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
    for (msg, code) in [
        (
            json!({"type": "answer", "sdp": sdp, "ref": "stray-answer"}),
            "invalid_state",
        ),
        (
            json!({"type": "subscribe", "tracks": ["TR_nope"], "ref": "sub-unknown"}),
            "track_not_found",
        ),
        (
            json!({"type": "subscribe", "tracks": [pair.track, "TR_nope"], "ref": "sub-mixed"}),
            "track_not_found",
        ),
        (
            json!({"type": "mute", "track": pair.track, "muted": true, "ref": "mute-other"}),
            "track_not_found",
        ),
        (
            json!({"type": "mute", "track": "TR_nope", "muted": true, "ref": "mute-unknown"}),
            "track_not_found",
        ),
        (
            json!({"type": "offer", "sdp": "garbage", "ref": "bad-sdp"}),
            "invalid_sdp",
        ),
        (
            json!({"type": "candidate", "candidate": {"candidate": "garbage"}, "ref": "bad-cand"}),
            "invalid_candidate",
        ),
    ] {
        expect_rejected(&c, msg, code).await;
    }
    let track = pair.srv.state.rooms.tracks("sig");
    assert!(track.iter().all(|t| !t.muted), "another's track got muted");
    pair.subscriber
        .expect_no_message(|m| m["type"] == "track_muted", Duration::from_millis(200))
        .await
        .unwrap();

    // After the invalid SDP a valid publish works and reaches the healthy subscriber.
    let published = c
        .publish(true, false)
        .await
        .expect("a valid publish after invalid SDP");
    let _pump = published
        .pump(MediaKind::Audio, 0, 1_000_000, Duration::from_millis(20))
        .unwrap();
    let mine = track_of(&pair.srv, "sig", &me, T).await;
    pair.subscriber
        .wait_for_packets(&mine, 10, T)
        .await
        .expect("mallory's media is forwarded");
    pair.finish("after signaling errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_join_in_a_full_room_is_room_full() {
    let pair = Pair::start("full", |c| c.max_participants = 2).await;
    let c = pair.connect().await;
    assert_eq!(
        join_error(&c, &server::token("full", "third"), None).await,
        "room_full"
    );
    assert_alive(&c).await;
    assert_eq!(pair.srv.state.rooms.counts().participants, 2);
    pair.publisher
        .client
        .expect_no_message(
            |m| m["type"] == "participant_joined" && m["participant"]["identity"] == "third",
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    pair.finish("after a refused join").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_identity_replaces_the_first_session() {
    let pair = Pair::start("dup", |_| {}).await;
    let (first, old) = pair.join("carol", true).await;
    first.wait_for_packets(&pair.track, 5, T).await.unwrap();
    let old_id = participant_id(&old);

    let (second, new) = pair.join("carol", true).await;
    let new_id = participant_id(&new);
    assert_ne!(old_id, new_id);
    let others: Vec<&str> = new["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        !others.contains(&old_id.as_str()),
        "replaced one listed: {new}"
    );

    let leave = first.next_message_of_type("leave", T).await.unwrap();
    assert_eq!(leave["reason"], "replaced");
    first.wait_closed(T).await.unwrap();

    for c in [&pair.publisher.client, &pair.subscriber] {
        let (o, n) = (old_id.clone(), new_id.clone());
        c.next_message(
            move |m| {
                m["type"] == "participant_left"
                    && m["participant"] == o
                    && m["reason"] == "replaced"
            },
            T,
        )
        .await
        .expect("participant_left for the replaced session");
        c.next_message(
            move |m| m["type"] == "participant_joined" && m["participant"]["id"] == n,
            T,
        )
        .await
        .expect("participant_joined for the new session");
        // The old one leaves before the new one (with the same identity) appears.
        let history = c.messages();
        let pos = |f: &dyn Fn(&Value) -> bool| history.iter().position(f).unwrap();
        let left = pos(&|m| m["type"] == "participant_left" && m["participant"] == old_id);
        let joined =
            pos(&|m| m["type"] == "participant_joined" && m["participant"]["id"] == new_id);
        assert!(
            left < joined,
            "participant_left should precede participant_joined"
        );
    }
    assert_alive(&second).await;
    second.wait_for_packets(&pair.track, 5, T).await.unwrap();
    assert_eq!(pair.srv.state.rooms.counts().participants, 3);
    server::eventually(T, "the replaced peer is closed", || {
        pair.srv.state.media().peer_count() == 3
    })
    .await;
    pair.finish("after a replaced session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_offering_a_send_track_is_denied_and_keeps_receiving() {
    let pair = Pair::start("viewer", |_| {}).await;
    let viewer = pair.connect().await;
    viewer
        .join(&server::viewer_token("viewer", "watcher"), true)
        .await
        .unwrap();
    viewer.wait_for_packets(&pair.track, 5, T).await.unwrap();
    assert!(
        viewer.publish(true, false).await.is_err(),
        "viewer published"
    );
    let err = expect_error(&viewer, "permission_denied").await;
    assert!(err["ref"].as_str().is_some_and(|r| r.starts_with("offer-")));
    assert_alive(&viewer).await;
    let seen = viewer.received(&pair.track).len();
    viewer
        .wait_for_packets(&pair.track, seen + 20, T)
        .await
        .expect("viewer keeps receiving");
    assert_eq!(
        pair.srv.state.rooms.tracks("viewer").len(),
        1,
        "viewer's track published"
    );
    pair.finish("after a denied viewer offer").await;
}

/// A small deterministic PRNG (xorshift64*) for garbage datagrams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A STUN binding request with USERNAME `username` and a bogus MESSAGE-INTEGRITY.
fn stun_request(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    attrs.resize(attrs.len().next_multiple_of(4), 0);
    attrs.extend_from_slice(&0x0008u16.to_be_bytes());
    attrs.extend_from_slice(&20u16.to_be_bytes());
    attrs.extend_from_slice(&[0xAB; 20]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    m
}

/// A plain (unencrypted) RTP packet.
fn fake_rtp(pt: u8, seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&1234u32.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The server's ICE username fragment in the last SDP `c` received of `ty`.
fn server_ufrag(c: &TestClient, ty: &str) -> String {
    let sdp = c
        .messages()
        .into_iter()
        .rev()
        .find(|m| m["type"] == ty)
        .and_then(|m| m["sdp"].as_str().map(str::to_owned))
        .expect("a server SDP");
    cascade_sfu::sdp::ice_ufrag(&sdp)
        .expect("an ice-ufrag")
        .to_owned()
}

/// Garbage a peer's stack may see: random bytes in every first-byte class (STUN, DTLS, RTP).
fn garbage(rng: &mut Rng, ssrc: u32) -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![],
        vec![0x00],
        vec![0x00, 0x01, 0x00, 0x50, 0x21, 0x12], // truncated STUN header
        // DTLS alerts (warning close_notify, fatal handshake_failure), epoch 0 and 1.
        vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0],
        vec![21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 2, 40],
        // A DTLS handshake record with a truncated body.
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 1, 0, 0],
        fake_rtp(96, 1, ssrc, &[0x10, 0, 0, 0]),
        fake_rtp(111, 2, ssrc, &[1, 2, 3]),
        vec![0x80, 200, 0, 6, 0, 0, 0, 1], // truncated RTCP sender report
        vec![0x80, 0x60, 0x00],            // truncated RTP header
    ];
    for first in [0x00u8, 0x01, 0x14, 0x16, 0x17, 0x80, 0x81, 0xC8, 0xff] {
        for _ in 0..20 {
            let len = (rng.next() % 1400) as usize + 1;
            let mut d = rng.bytes(len);
            d[0] = first;
            if len > 8 && rng.next().is_multiple_of(2) {
                d[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            }
            out.push(d);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_udp_does_not_disturb_media() {
    let pair = Pair::start("udp", |_| {}).await;
    let peers = pair.srv.state.media().peer_count();
    assert_eq!(peers, 2);
    let target = ("127.0.0.1", pair.srv.udp_port());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ssrc = pair.publisher.published.video.as_ref().unwrap().ssrc;

    // From unknown addresses: random bytes, truncated STUN, unknown ufrags, fake RTP.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut truncated = stun_request("nosuchufrag:evil");
    truncated.truncate(26);
    let mut strangers = garbage(&mut rng, ssrc);
    strangers.push(truncated);
    strangers.push(stun_request("nosuchufrag:evil"));
    strangers.push(stun_request(":"));
    strangers.push(stun_request(""));
    for d in &strangers {
        stranger.send_to(d, target).unwrap();
    }

    // Off-path spoofing: binding requests naming the pair's real server ufrags (with a bad
    // MESSAGE-INTEGRITY) bind these addresses to their peers, so the garbage after them
    // reaches the peers' ICE/DTLS/SRTP stacks.
    let ufrags = [
        server_ufrag(&pair.publisher.client, "answer"),
        server_ufrag(&pair.subscriber, "offer"),
    ];
    for ufrag in &ufrags {
        let spoofer = UdpSocket::bind("127.0.0.1:0").unwrap();
        spoofer
            .send_to(&stun_request(&format!("{ufrag}:evil")), target)
            .unwrap();
        for round in 0..3 {
            for d in garbage(&mut rng, ssrc) {
                spoofer.send_to(&d, target).unwrap();
            }
            for seq in 0..50 {
                let d = fake_rtp(96, seq + round * 50, ssrc, &rng.bytes(100));
                spoofer.send_to(&d, target).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pair.assert_flowing("after garbage UDP").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pair.srv.state.media().peer_count(),
        peers,
        "a peer was closed"
    );
    assert_eq!(pair.srv.state.media().stats().peer_connection_failures, 0);
    pair.assert_flowing("after garbage UDP, later").await;
    // Nothing forged reached the subscriber: every counter it got is the publisher's own.
    for p in pair.subscriber.received(&pair.track) {
        assert!(p.counter().is_some(), "forged payload forwarded: {p:?}");
    }
    assert_eq!(pair.srv.state.rooms.counts().participants, 2);
    pair.srv.shutdown().await;
}
