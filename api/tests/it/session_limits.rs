//! Limits of one WebSocket session: a member that stops reading is removed as a slow reader
//! without slowing anyone else, a connection that never joins is closed, trickled candidates
//! are capped, and a client that sends too fast has its excess messages refused.

use crate::server;

use std::time::{Duration, Instant};

use cascade_api::server::ServerHandle;
use cascade_testkit::TestClient;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use server::clients::{join, left, participant_id};
use server::raw::{self, RawWs, next_json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const T: Duration = Duration::from_secs(10);

/// A raw WebSocket client whose TCP receive buffer is as small as the kernel allows.
async fn raw_client(srv: &ServerHandle) -> RawWs {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(srv.http_addr).await.unwrap();
    raw::connect(srv, Some(tcp)).await
}

/// A raw client (see [`raw_client`]) that sent `join` for `room` as `identity` and read the
/// reply, and reads nothing more unless asked; and that reply.
async fn raw_member(srv: &ServerHandle, room: &str, identity: &str) -> (RawWs, Value) {
    let mut ws = raw_client(srv).await;
    let join = json!({"type": "join", "token": server::token(room, identity)});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let joined = next_json(&mut ws).await;
    (ws, joined)
}

/// Asserts the `cascade_session_limits_total` sample of `limit`.
async fn assert_limit_count(srv: &ServerHandle, limit: &str, n: u64) {
    let text = server::scrape(srv.http_addr).await;
    let series = format!(r#"cascade_session_limits_total{{limit="{limit}"}}"#);
    assert_eq!(server::sample(&text, &series), n);
}

/// Lifts the session rate limits (tests that must flood a member quickly).
fn unlimited_rates(c: &mut cascade_api::config::Config) {
    c.message_rate_limit = 0;
    c.data_rate_limit = 0;
}

/// Sends `ping` and returns how long the `pong` took.
async fn ping(c: &TestClient) -> Duration {
    let start = Instant::now();
    c.send_json(&json!({"type": "ping"})).await.unwrap();
    c.next_message_of_type("pong", T).await.unwrap();
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_removed_and_nobody_else_notices() {
    // The sender may send as fast as it likes: the slow reader must be outrun quickly.
    let srv = server::start_with(unlimited_rates).await;
    let url = srv.ws_url();
    // The slow member joins, reads its `joined`, and never reads again.
    let (_slow, joined) = raw_member(&srv, "big", "slow").await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let slow_id = participant_id(&joined);

    let sender = join(&url, &server::token("big", "sender"), true).await;
    let reader = join(&url, &server::token("big", "reader"), true).await;

    // 600 messages of 60 KB (36 MB) to a member whose socket takes a few KB, in bursts of 20
    // that a member that reads takes in stride.
    let blob = "x".repeat(60_000);
    const N: usize = 600;
    const BURST: usize = 20;
    let started = Instant::now();
    let mut slowest_pong = Duration::ZERO;
    for burst in 0..N / BURST {
        for i in burst * BURST..(burst + 1) * BURST {
            sender
                .send_json(&json!({"type": "data", "payload": {"i": i, "blob": blob}}))
                .await
                .unwrap();
        }
        // The member that reads gets every message, in order.
        for i in burst * BURST..(burst + 1) * BURST {
            let m = reader
                .next_message(|m| m["type"] == "data", T)
                .await
                .unwrap();
            assert_eq!(m["payload"]["i"], i, "in order");
        }
        slowest_pong = slowest_pong.max(ping(&sender).await);
    }
    assert!(
        slowest_pong < Duration::from_secs(1),
        "the sender's pongs were delayed up to {slowest_pong:?}"
    );

    // The others learn that the slow member left as a slow reader, in bounded time.
    for c in [&sender, &reader] {
        let left = left(c, &slow_id, Duration::from_secs(30)).await;
        assert_eq!(left["reason"], "slow_reader", "{left}");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(srv.state.rooms.counts().participants, 2);
    // The task may still sit in a socket write when the room lets go of it: it ends at the
    // latest after the send timeout (10 s) and the close timeout (1 s).
    server::eventually(
        Duration::from_secs(15),
        "the slow session's task to end",
        || srv.state.sessions() == 2,
    )
    .await;
    assert_limit_count(&srv, "slow_reader", 1).await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_socket_takes_nothing_for_the_send_timeout_is_removed() {
    let srv = server::start_with(unlimited_rates).await;
    let (_slow, joined) = raw_member(&srv, "stuck", "slow").await;
    let slow_id = participant_id(&joined);
    let sender = join(&srv.ws_url(), &server::token("stuck", "sender"), true).await;
    // 120 x 60 KB: more than the socket buffers take (4 MiB at most by default), fewer than
    // the session's queue (128): only the send timeout can end the stuck session.
    let blob = "x".repeat(60_000);
    let started = Instant::now();
    for i in 0..120 {
        sender
            .send_json(&json!({"type": "data", "payload": {"i": i, "blob": blob}}))
            .await
            .unwrap();
    }
    let left = left(&sender, &slow_id, Duration::from_secs(25)).await;
    let waited = started.elapsed();
    assert_eq!(left["reason"], "slow_reader", "{left}");
    assert!(
        waited >= Duration::from_secs(9),
        "removed after {waited:?}: by the send timeout, not the queue"
    );
    assert!(ping(&sender).await < Duration::from_secs(1));
    server::eventually(T, "the stuck session's task to end", || {
        srv.state.sessions() == 1
    })
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_join_is_closed_after_the_join_deadline() {
    let srv = server::start().await;
    let started = Instant::now();
    let mut idle = raw_client(&srv).await;
    // Pings and failed joins do not keep an unjoined connection open.
    idle.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut idle).await["type"], "pong");
    idle.send(Message::Text(r#"{"type":"join","token":"bogus"}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut idle).await["code"], "unauthorized");
    let close = match tokio::time::timeout(Duration::from_secs(20), idle.next()).await {
        Ok(Some(Ok(Message::Close(frame)))) => frame.expect("a close frame"),
        other => panic!("not closed: {other:?}"),
    };
    let waited = started.elapsed();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::from(4008), "join_timeout")
    );
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
    // A connection that joined in time stays.
    let member = join(&srv.ws_url(), &server::token("room", "ann"), true).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(member.closed().is_none());
    assert!(ping(&member).await < T);
    assert_limit_count(&srv, "join_timeout", 1).await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_candidates_are_capped_per_ice_generation() {
    let srv = server::start().await;
    // Joined without a peer connection of its own, so that every candidate is the test's.
    let c = join(&srv.ws_url(), &server::token("cands", "ann"), true).await;
    let candidate = |i: usize| {
        json!({"type": "candidate", "ref": i, "candidate": {
            "candidate": format!("candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host", 20_000 + i),
            "sdp_mid": "0",
            "sdp_mline_index": 0,
        }})
    };
    // Every candidate counts, even one refused (no remote description yet).
    for i in 0..64 {
        c.send_json(&candidate(i)).await.unwrap();
        let e = c.next_message_of_type("error", T).await.unwrap();
        assert_eq!(e["code"], "invalid_candidate", "{e}");
    }
    // End-of-candidates does not count.
    c.send_json(&json!({"type": "candidate", "candidate": {"candidate": ""}}))
        .await
        .unwrap();
    c.send_json(&candidate(64)).await.unwrap();
    let e = c.next_message_of_type("error", T).await.unwrap();
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_u64()),
        (Some("too_many_candidates"), Some(64)),
        "{e}"
    );
    // The session continues.
    assert!(ping(&c).await < T);
    assert_limit_count(&srv, "too_many_candidates", 1).await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_flood_is_rate_limited_and_the_session_goes_on() {
    let srv = server::start_with(|c| c.message_rate_limit = 10).await;
    let c = join(&srv.ws_url(), &server::token("flood", "fast"), true).await;
    // 200 pings at once: the burst (20, less the join) and the refill are answered, the rest
    // refused with `rate_limited`; every one gets exactly one reply.
    for _ in 0..200 {
        c.send_json(&json!({"type": "ping"})).await.unwrap();
    }
    let (mut pongs, mut limited) = (0, 0);
    while pongs + limited < 200 {
        let m = c
            .next_message(|m| m["type"] == "pong" || m["type"] == "error", T)
            .await
            .unwrap();
        if m["type"] == "pong" {
            pongs += 1;
        } else {
            assert_eq!(m["code"], "rate_limited", "{m}");
            limited += 1;
        }
    }
    assert!((19..=40).contains(&pongs), "{pongs} pongs");
    assert!(limited >= 160, "{limited} refused");
    // The bucket refills: the session is still joined and answers again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(ping(&c).await < Duration::from_secs(1));
    assert_eq!(srv.state.rooms.counts().participants, 1);
    assert_limit_count(&srv, "rate_limited", limited).await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_past_the_byte_rate_is_refused_and_never_forwarded() {
    // 20 kB/s after a burst of 80 kB: of 20 messages of ~10 kB sent at once, about 8 pass.
    let srv = server::start_with(|c| c.data_rate_limit = 20_000).await;
    let url = srv.ws_url();
    let sender = join(&url, &server::token("chat", "sender"), true).await;
    let reader = join(&url, &server::token("chat", "reader"), true).await;
    let blob = "x".repeat(10_000);
    for i in 0..20 {
        sender
            .send_json(&json!({"type": "data", "payload": {"i": i, "blob": blob}, "ref": i}))
            .await
            .unwrap();
    }
    // Each refused message gets its own `rate_limited` error carrying its `ref`.
    let mut refused = Vec::new();
    // Messages are handled in order: once the pong is in, every error is too.
    ping(&sender).await;
    while let Ok(m) = sender
        .next_message(|m| m["type"] == "error", Duration::from_millis(200))
        .await
    {
        assert_eq!(m["code"], "rate_limited", "{m}");
        refused.push(m["ref"].as_i64().unwrap());
    }
    assert!(
        (6..=14).contains(&refused.len()),
        "{} refused",
        refused.len()
    );
    // The reader gets exactly the others, in order, and nothing refused.
    let passed: Vec<i64> = (0..20).filter(|i| !refused.contains(i)).collect();
    for want in &passed {
        let m = reader
            .next_message(|m| m["type"] == "data", T)
            .await
            .unwrap();
        assert_eq!(m["payload"]["i"], *want);
    }
    assert!(
        reader
            .next_message(|m| m["type"] == "data", Duration::from_millis(500))
            .await
            .is_err(),
        "a refused message was forwarded"
    );
    srv.shutdown().await;
}
