//! Leaving and disconnecting: the others are told and renegotiate; nothing leaks.

use crate::server;

use std::time::Duration;

use cascade_api::server::ServerHandle;
use cascade_testkit::{MediaKind, TestClient};
use serde_json::Value;
use server::clients::{
    AV, Publisher, VIDEO, assert_muted, assert_told_to_leave, join, left, own_track_published,
    publisher, room_tracks, stream, track_ids, unpublished,
};

const T: Duration = Duration::from_secs(15);

/// A participant of room "life" that published audio and video (not yet streaming).
async fn participant(url: &str, name: &str) -> Publisher {
    publisher(url, &server::token("life", name), AV, &[], T).await
}

/// A server, a [`participant`] `name` on it, and a second participant that joined room "life"
/// with `token`.
async fn publisher_and(name: &str, token: String) -> (ServerHandle, Publisher, TestClient) {
    let srv = server::start().await;
    let url = srv.ws_url();
    let a = participant(&url, name).await;
    let b = join(&url, &token, true).await;
    (srv, a, b)
}

/// Waits for `participant_left` of `who`, a `track_unpublished` for each of its tracks, and a
/// server offer that no longer carries them.
async fn sees_departure(c: &TestClient, who: &str, tracks: &[String], reason: &str) {
    assert_eq!(left(c, who, T).await["reason"], reason);
    for t in tracks {
        unpublished(c, t, T).await;
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
    let srv = server::start_with(|c| {
        c.room_empty_timeout = Duration::from_millis(100);
        // A vanished participant waits this long for a resume before it leaves.
        c.resume_grace = Duration::from_secs(1);
    })
    .await;
    let url = srv.ws_url();
    let mut people = Vec::new();
    for name in ["ann", "ben", "cat"] {
        people.push(publisher(&url, &server::token("life", name), AV, AV, T).await);
    }
    room_tracks(&srv, "life", 6, T).await;
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
    for t in tracks_of(&ben.id) {
        ann.client.wait_for_packets(&t, 5, T).await.unwrap();
    }

    // Ben leaves politely.
    let ben_tracks = tracks_of(&ben.id);
    ben.client.leave().await.unwrap();
    sees_departure(&ann.client, &ben.id, &ben_tracks, "leave").await;
    sees_departure(&cat.client, &ben.id, &ben_tracks, "leave").await;

    // Cat vanishes without a word.
    let cat_tracks = tracks_of(&cat.id);
    cat.client.close_abruptly().await;
    sees_departure(&ann.client, &cat.id, &cat_tracks, "disconnected").await;
    assert_eq!(
        srv.state.rooms.tracks("life").len(),
        2,
        "only Ann's tracks remain"
    );

    // Ann leaves: the room empties and is closed; every resource returns to zero.
    ann.client.leave().await.unwrap();
    for p in &mut people {
        p.pumps.clear();
    }
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
    let solo = participant(&srv.ws_url(), "solo").await;
    srv.shutdown().await;
    assert_told_to_leave(&solo.client, "server_shutdown", T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_is_announced_and_sequence_numbers_stay_continuous_across_it() {
    let (srv, a, b) = publisher_and("muter", server::viewer_token("life", "watcher")).await;
    let pump = a
        .published
        .pump(MediaKind::Video, 0, 100, Duration::from_millis(10))
        .unwrap();
    let video = track_ids(&srv, "life", 1, T).await.remove(0);
    server::eventually(T, "the first burst sent", || pump.is_finished()).await;
    b.wait_for_counter(&video, 99, T).await.unwrap();

    // Mute: the publisher stops sending for a while, the others are told.
    let mute = |muted| serde_json::json!({"type": "mute", "track": video, "muted": muted});
    a.client.send_json(&mute(true)).await.unwrap();
    assert_muted(&b, &video, &a.id, true, T).await;
    assert!(srv.state.rooms.tracks("life")[0].muted);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.client.send_json(&mute(false)).await.unwrap();
    let m = b.next_message_of_type("track_muted", T).await.unwrap();
    assert_eq!(m["muted"], false);
    let _resume = a
        .published
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
    let (srv, a, b) = publisher_and("pub", server::viewer_token("life", "viewer")).await;
    let _pumps = stream(&a.published, AV);
    // The publisher is told each of its own tracks' id, with the mid of its m-line.
    let video_mid = a
        .published
        .track(MediaKind::Video)
        .unwrap()
        .mid
        .clone()
        .expect("video mid");
    let own = own_track_published(&a.client, "video", T).await;
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
    let video_track = a.published.track(MediaKind::Video).unwrap();
    a.client.unpublish(video_track).await.unwrap();
    unpublished(&b, &video, T).await;
    // Only the audio track is left.
    room_tracks(&srv, "life", 1, T).await;
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
    let (srv, x, y) = publisher_and("flaky", server::token("life", "steady")).await;
    // The media connection goes away while the WebSocket stays open.
    x.client.close_peer_connection().await;
    let left = left(&y, &x.id, Duration::from_secs(20)).await;
    assert_eq!(left["reason"], "disconnected");
    x.client.wait_closed(T).await.unwrap();
    // The worker forgets the peer right after telling its session (asynchronously).
    server::eventually(T, "only the steady peer left", || {
        srv.state.media().peer_count() == 1
    })
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_received_first_can_then_publish() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let a = participant(&url, "first").await;
    let _pump = stream(&a.published, VIDEO);
    let first = track_ids(&srv, "life", 1, T).await.remove(0);
    // The server offers first (existing track), then the newcomer publishes: its offer must be
    // answered with a DTLS role consistent with the first exchange.
    let b = join(&url, &server::token("life", "second"), true).await;
    b.wait_for_packets(&first, 5, T).await.unwrap();
    let pb = b.publish(false, true).await.unwrap();
    let _pump_b = stream(&pb, VIDEO);
    room_tracks(&srv, "life", 2, T).await;
    srv.shutdown().await;
}
