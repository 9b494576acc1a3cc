//! Session resume: a participant whose WebSocket drops stays in its room with its media
//! flowing, and a new WebSocket that sends `resume` with the token of its latest `joined`
//! continues it — same id, tracks and peer connection — while the others see neither a leave
//! nor a join. A used, unknown or expired token, and a participant whose media went too, get
//! `resume_failed`.

use crate::server;

use std::time::{Duration, Instant};

use cascade_api::server::ServerHandle;
use cascade_testkit::TestClient;
use serde_json::{Value, json};
use server::clients::{AV, Publisher, left, publisher};
use server::raw::{self, next_json, next_of_type};

const T: Duration = Duration::from_secs(15);

/// Messages `c` got about `id` joining or leaving.
fn comings_and_goings(c: &TestClient, id: &str) -> Vec<Value> {
    c.messages()
        .into_iter()
        .filter(|m| {
            (m["type"] == "participant_left" && m["participant"] == id)
                || (m["type"] == "participant_joined" && m["participant"]["id"] == id)
        })
        .collect()
}

/// Ann, who publishes audio and video, and bob, who receives them, in `room` (ann has seen bob
/// join); with bob's participant id and resume token.
async fn ann_and_bob(srv: &ServerHandle, room: &str) -> (Publisher, TestClient, String, String) {
    let url = srv.ws_url();
    let ann = publisher(&url, &server::token(room, "ann"), AV, AV, T).await;
    let bob = TestClient::connect(&url).await.unwrap();
    let joined = bob.join(&server::token(room, "bob"), true).await.unwrap();
    let id = joined["participant"]["id"].as_str().unwrap().to_owned();
    let token = joined["resume_token"]
        .as_str()
        .expect("a resume token")
        .to_owned();
    // Ann has seen bob join before anyone counts the joins and leaves she saw.
    server::eventually(T, "ann to see bob join", || {
        !comings_and_goings(&ann.client, &id).is_empty()
    })
    .await;
    (ann, bob, id, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_websocket_is_resumed_as_the_same_participant_while_media_flows() {
    let srv = server::start().await;
    let (ann, bob, bob_id, token) = ann_and_bob(&srv, "resume").await;
    let video = server::clients::track_of(&srv, "resume", &ann.id, T).await;
    bob.wait_for_packets(&video, 5, T).await.unwrap();

    // Bob's WebSocket drops; his peer connection does not.
    let seen_before = comings_and_goings(&ann.client, &bob_id).len();
    bob.drop_websocket();
    let dropped = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = bob.received(&video).len();
    bob.wait_for_packets(&video, before + 20, T).await.unwrap();
    assert_eq!(srv.state.resume.parked(), 1, "bob is parked");
    assert_eq!(srv.state.rooms.participants("resume").unwrap().len(), 2);

    // A new WebSocket resumes him.
    let mut ws = raw::connect(&srv, None).await;
    raw::send(&mut ws, &json!({"type": "resume", "token": token})).await;
    let resumed = next_json(&mut ws).await;
    assert_eq!(resumed["type"], "joined", "{resumed}");
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["participant"]["id"], bob_id.as_str());
    assert_eq!(resumed["room"], "resume");
    let others: Vec<&str> = resumed["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(others, ["ann"], "the others, not bob himself");
    assert_eq!(resumed["tracks"].as_array().unwrap().len(), 2, "{resumed}");
    let new_token = resumed["resume_token"].as_str().unwrap();
    assert_ne!(new_token, token, "a new token for the next drop");
    assert!(dropped.elapsed() < T);
    assert_eq!(srv.state.resume.parked(), 0);

    // The resumed session is live: room messages reach it.
    ann.client
        .send_json(&json!({"type": "data", "payload": "still there?"}))
        .await
        .unwrap();
    let data = next_of_type(&mut ws, "data").await;
    assert_eq!(data["payload"], "still there?");
    assert_eq!(data["participant"], ann.id.as_str());
    let before = bob.received(&video).len();
    bob.wait_for_packets(&video, before + 10, T).await.unwrap();

    // The token was single-use.
    let mut again = raw::connect(&srv, None).await;
    raw::send(&mut again, &json!({"type": "resume", "token": token})).await;
    let refused = next_json(&mut again).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "resume_failed", "{refused}");

    // Ann never saw bob go or come again.
    let seen = comings_and_goings(&ann.client, &bob_id);
    assert_eq!(seen.len(), seen_before, "{seen:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resume_in_the_grace_the_participant_leaves_as_disconnected() {
    let srv = server::start_with(|c| c.resume_grace = Duration::from_secs(1)).await;
    let (ann, bob, bob_id, token) = ann_and_bob(&srv, "grace").await;
    bob.drop_websocket();
    let dropped = Instant::now();
    let gone = left(&ann.client, &bob_id, T).await;
    assert_eq!(gone["reason"], "disconnected");
    let waited = dropped.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "left after {waited:?}, before the grace"
    );
    let mut ws = raw::connect(&srv, None).await;
    raw::send(&mut ws, &json!({"type": "resume", "token": token})).await;
    assert_eq!(next_json(&mut ws).await["code"], "resume_failed");
    assert_eq!(srv.state.resume.parked(), 0);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_media_goes_too_the_parked_participant_leaves_before_the_grace() {
    // A grace longer than the server's ICE timeouts (5 s disconnected + 10 s failed): the
    // peer connection's end, not the grace, removes the participant.
    let srv = server::start_with(|c| c.resume_grace = Duration::from_secs(60)).await;
    let (ann, bob, bob_id, token) = ann_and_bob(&srv, "both").await;
    let video = server::clients::track_of(&srv, "both", &ann.id, T).await;
    bob.wait_for_packets(&video, 5, T).await.unwrap();
    bob.drop_websocket();
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.close_peer_connection().await;
    let dropped = Instant::now();
    let gone = left(&ann.client, &bob_id, Duration::from_secs(30)).await;
    assert_eq!(gone["reason"], "disconnected");
    assert!(
        dropped.elapsed() < Duration::from_secs(30),
        "well before the 60 s grace"
    );
    assert_eq!(srv.state.resume.parked(), 0);
    let mut ws = raw::connect(&srv, None).await;
    raw::send(&mut ws, &json!({"type": "resume", "token": token})).await;
    assert_eq!(next_json(&mut ws).await["code"], "resume_failed");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_is_refused_for_unknown_tokens_and_joined_sessions() {
    let srv = server::start().await;
    let mut ws = raw::connect(&srv, None).await;
    raw::send(&mut ws, &json!({"type": "resume", "token": "not-a-token"})).await;
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["code"], "resume_failed", "{refused}");
    // The connection may still join.
    raw::send(
        &mut ws,
        &json!({"type": "join", "token": server::token("r", "carl")}),
    )
    .await;
    let joined = next_json(&mut ws).await;
    assert_eq!(joined["type"], "joined");
    let token = joined["resume_token"].as_str().unwrap().to_owned();
    raw::send(&mut ws, &json!({"type": "resume", "token": token})).await;
    assert_eq!(next_json(&mut ws).await["code"], "already_joined");
    // With resume off, a drop is a leave, and no session is parked.
    let srv2 = server::start_with(|c| c.resume_grace = Duration::ZERO).await;
    let c = TestClient::connect(&srv2.ws_url()).await.unwrap();
    c.join(&server::token("off", "dora"), true).await.unwrap();
    c.drop_websocket();
    server::eventually(T, "dora to leave", || {
        srv2.state
            .rooms
            .participants("off")
            .map_or(true, |p| p.is_empty())
    })
    .await;
    assert_eq!(srv2.state.resume.parked(), 0);
    srv.shutdown().await;
    srv2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_still_looks_alive_hands_over_to_the_resuming_connection() {
    // The client lost its network without a word: the server still sees the old socket open.
    let srv = server::start().await;
    let (ann, bob, bob_id, token) = ann_and_bob(&srv, "takeover").await;
    let seen_before = comings_and_goings(&ann.client, &bob_id).len();
    let mut ws = raw::connect(&srv, None).await;
    raw::send(&mut ws, &json!({"type": "resume", "token": token})).await;
    let resumed = next_json(&mut ws).await;
    assert_eq!(resumed["resumed"], true, "{resumed}");
    assert_eq!(resumed["participant"]["id"], bob_id.as_str());
    let closed = bob.wait_closed(T).await.unwrap();
    assert_eq!(closed.reason, "resumed", "{closed:?}");
    assert_eq!(srv.state.resume.parked(), 0);
    ann.client
        .send_json(&json!({"type": "data", "payload": 1}))
        .await
        .unwrap();
    assert_eq!(next_of_type(&mut ws, "data").await["payload"], 1);
    assert_eq!(srv.state.rooms.participants("takeover").unwrap().len(), 2);
    let seen = comings_and_goings(&ann.client, &bob_id);
    assert_eq!(seen.len(), seen_before, "{seen:?}");
    srv.shutdown().await;
}
