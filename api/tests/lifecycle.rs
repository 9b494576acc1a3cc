//! Leaving and disconnecting: the others are told and renegotiate; nothing leaks.

mod server;

use std::time::Duration;

use cascade_testkit::{MediaKind, TestClient};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

async fn participant(url: &str, name: &str) -> (TestClient, String, cascade_testkit::Published) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_is_announced_and_sequence_numbers_stay_continuous_across_it() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (a, a_id, p) = participant(&url, "muter").await;
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::viewer_token("life", "watcher"), true)
        .await
        .unwrap();
    let pump = p
        .pump(MediaKind::Video, 0, 100, Duration::from_millis(10))
        .unwrap();
    server::eventually(T, "the video track", || {
        srv.state.rooms.tracks("life").len() == 1
    })
    .await;
    let video = srv.state.rooms.tracks("life")[0].id.clone();
    server::eventually(T, "the first burst sent", || pump.is_finished()).await;
    b.wait_for_counter(&video, 99, T).await.unwrap();

    // Mute: the publisher stops sending for a while, the others are told.
    a.send_json(&serde_json::json!({"type": "mute", "track": video, "muted": true}))
        .await
        .unwrap();
    let m = b.next_message_of_type("track_muted", T).await.unwrap();
    assert_eq!(
        (
            m["track"].as_str(),
            m["participant"].as_str(),
            m["muted"].as_bool()
        ),
        (Some(video.as_str()), Some(a_id.as_str()), Some(true))
    );
    assert!(srv.state.rooms.tracks("life")[0].muted);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send_json(&serde_json::json!({"type": "mute", "track": video, "muted": false}))
        .await
        .unwrap();
    let m = b.next_message_of_type("track_muted", T).await.unwrap();
    assert_eq!(m["muted"], false);
    let _resume = p
        .pump(MediaKind::Video, 100, 50, Duration::from_millis(10))
        .unwrap();
    b.wait_for_counter(&video, 149, T).await.unwrap();
    let seqs: Vec<u16> = b
        .received(&video)
        .iter()
        .filter(|p| !p.duplicate)
        .map(|p| p.seq)
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(
            w[1],
            w[0].wrapping_add(1),
            "sequence continuous across mute: {seqs:?}"
        );
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_learns_its_track_ids_and_can_unpublish_one() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (a, _, p) = participant(&url, "pub").await;
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::viewer_token("life", "viewer"), true)
        .await
        .unwrap();
    let _pumps = [
        p.pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
            .unwrap(),
        p.pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
            .unwrap(),
    ];
    // The publisher is told each of its own tracks' id, with the mid of its m-line.
    let video_mid = p
        .track(MediaKind::Video)
        .unwrap()
        .mid
        .clone()
        .expect("video mid");
    let own = a
        .next_message(
            |m| m["type"] == "track_published" && m["track"]["kind"] == "video",
            T,
        )
        .await
        .unwrap();
    assert_eq!(own["track"]["mid"].as_str(), Some(video_mid.as_str()));
    let video = own["track"]["id"].as_str().unwrap().to_owned();
    let seen = b
        .next_message(
            |m| m["type"] == "track_published" && m["track"]["id"] == video.as_str(),
            T,
        )
        .await
        .unwrap();
    assert!(
        seen["track"].get("mid").is_none(),
        "others do not get the publisher's mid"
    );
    b.wait_for_packets(&video, 10, T).await.unwrap();

    // Removing the track from the peer connection unpublishes it for everyone.
    a.unpublish(p.track(MediaKind::Video).unwrap())
        .await
        .unwrap();
    b.next_message(
        |m| m["type"] == "track_unpublished" && m["track"] == video.as_str(),
        T,
    )
    .await
    .unwrap();
    server::eventually(T, "only the audio track left", || {
        srv.state.rooms.tracks("life").len() == 1
    })
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_transport_limit_closes_with_1009() {
    let srv = server::start().await;
    let c = TestClient::connect(&srv.ws_url()).await.unwrap();
    let huge = format!(
        r#"{{"type":"offer","sdp":"{}"}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    let _ = c.send_text(&huge).await;
    let closed = c.wait_closed(T).await.unwrap();
    assert_eq!(closed.code, Some(1009), "{closed:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_peer_connection_removes_the_participant() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (x, x_id, _p) = participant(&url, "flaky").await;
    let y = TestClient::connect(&url).await.unwrap();
    y.join(&server::token("life", "steady"), true)
        .await
        .unwrap();
    // The media connection goes away while the WebSocket stays open.
    x.close_peer_connection().await;
    let left = y
        .next_message(
            |m| m["type"] == "participant_left" && m["participant"] == x_id.as_str(),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(left["reason"], "disconnected");
    x.wait_closed(T).await.unwrap();
    assert_eq!(srv.state.media().peer_count(), 1);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_received_first_can_then_publish() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (_a, _, p) = participant(&url, "first").await;
    let _pump = p
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    server::eventually(T, "the first video", || {
        srv.state.rooms.tracks("life").len() == 1
    })
    .await;
    // The server offers first (existing track), then the newcomer publishes: its offer must be
    // answered with a DTLS role consistent with the first exchange.
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::token("life", "second"), true)
        .await
        .unwrap();
    let first = srv.state.rooms.tracks("life")[0].id.clone();
    b.wait_for_packets(&first, 5, T).await.unwrap();
    let pb = b.publish(false, true).await.unwrap();
    let _pump_b = pb
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    server::eventually(T, "the second video", || {
        srv.state.rooms.tracks("life").len() == 2
    })
    .await;
    srv.shutdown().await;
}
