//! Leaving and disconnecting: the others are told and renegotiate; nothing leaks.

mod server;
mod support;

use std::time::Duration;

use serde_json::Value;
use support::{MediaKind, TestClient};

const T: Duration = Duration::from_secs(15);

async fn participant(url: &str, name: &str) -> (TestClient, String, support::Published) {
    let c = TestClient::connect(url).await.unwrap();
    let joined = c.join(&server::token("life", name), true).await.unwrap();
    let id = joined["participant"]["id"].as_str().unwrap().to_owned();
    let p = c.publish(true, true).await.unwrap();
    c.wait_connected(T).await.unwrap();
    (c, id, p)
}

/// Waits for `participant_left` of `who`, a `track_unpublished` for each of its tracks, and a
/// server offer that no longer carries them.
async fn sees_departure(c: &TestClient, who: &str, tracks: &[String], reason: &str) {
    let left = c
        .next_message(
            |m| m["type"] == "participant_left" && m["participant"] == who,
            T,
        )
        .await
        .unwrap();
    assert_eq!(left["reason"], reason);
    for t in tracks {
        c.next_message(
            |m| m["type"] == "track_unpublished" && m["track"] == t.as_str(),
            T,
        )
        .await
        .unwrap();
    }
    let offer = c
        .next_message(
            |m: &Value| {
                m["type"] == "offer"
                    && m["tracks"]
                        .as_object()
                        .is_some_and(|o| !o.values().any(|v| tracks.iter().any(|t| v == t)))
            },
            T,
        )
        .await
        .unwrap();
    assert!(offer["sdp"].as_str().unwrap().starts_with("v=0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_and_disconnect_are_announced_and_everything_is_freed() {
    let srv = server::start_with(|c| c.room_empty_timeout = Duration::from_millis(100)).await;
    let url = srv.ws_url();
    let mut pumps = Vec::new();
    let mut people = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let (c, id, p) = participant(&url, name).await;
        pumps.push(
            p.pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
                .unwrap(),
        );
        pumps.push(
            p.pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
                .unwrap(),
        );
        people.push((c, id, p));
    }
    server::eventually(T, "six tracks", || {
        srv.state.rooms.tracks("life").len() == 6
    })
    .await;
    let tracks_of = |id: &str| -> Vec<String> {
        srv.state
            .rooms
            .tracks("life")
            .into_iter()
            .filter(|t| t.participant == id)
            .map(|t| t.id)
            .collect()
    };
    let (ann, ben, cat) = (&people[0], &people[1], &people[2]);
    for t in tracks_of(&ben.1) {
        ann.0.wait_for_packets(&t, 5, T).await.unwrap();
    }

    // Ben leaves politely.
    let ben_tracks = tracks_of(&ben.1);
    ben.0.leave().await.unwrap();
    sees_departure(&ann.0, &ben.1, &ben_tracks, "leave").await;
    sees_departure(&cat.0, &ben.1, &ben_tracks, "leave").await;

    // Cat vanishes without a word.
    let cat_tracks = tracks_of(&cat.1);
    cat.0.close_abruptly().await;
    sees_departure(&ann.0, &cat.1, &cat_tracks, "disconnected").await;
    assert_eq!(
        srv.state.rooms.tracks("life").len(),
        2,
        "only Ann's tracks remain"
    );

    // Ann leaves: the room empties and is closed; every resource returns to zero.
    ann.0.leave().await.unwrap();
    drop(pumps);
    let state = srv.state.clone();
    server::eventually(
        T,
        "rooms, participants, peers and sessions back to zero",
        || {
            let c = state.rooms.counts();
            c.rooms == 0
                && c.participants == 0
                && c.audio_tracks + c.video_tracks == 0
                && state.media().peer_count() == 0
                && state.sessions() == 0
        },
    )
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_participants_to_leave() {
    let srv = server::start().await;
    let (c, _, _p) = participant(&srv.ws_url(), "solo").await;
    srv.shutdown().await;
    let leave = c.next_message_of_type("leave", T).await.unwrap();
    assert_eq!(leave["reason"], "server_shutdown");
}
