//! WebSocket clients of a test server: joining, publishing and streaming, waiting for a
//! room's tracks and for the messages that announce departures.

use std::time::Duration;

use cascade_api::server::ServerHandle;
use cascade_signaling::protocol::TrackInfo;
use serde_json::Value;

use cascade_testkit::{MediaKind, MediaPump, Published, TestClient};

/// Audio and video.
pub const AV: &[MediaKind] = &[MediaKind::Audio, MediaKind::Video];
/// Video only.
pub const VIDEO: &[MediaKind] = &[MediaKind::Video];

/// Packets a [`stream`] pump sends at most: over 16 minutes of video.
const STREAM_PACKETS: u32 = 100_000;

/// Connects to `url` and joins with `token`; panics if either fails.
pub async fn join(url: &str, token: &str, auto_subscribe: bool) -> TestClient {
    let c = TestClient::connect(url).await.unwrap();
    c.join(token, auto_subscribe).await.unwrap();
    c
}

/// Connects to `url` and joins with `token`, auto-subscribing; returns the client and its
/// participant id.
pub async fn joined(url: &str, token: &str) -> (TestClient, String) {
    let c = TestClient::connect(url).await.unwrap();
    let j = c.join(token, true).await.unwrap();
    (c, participant_id(&j))
}

/// The participant id in a `joined` message.
pub fn participant_id(joined: &Value) -> String {
    joined["participant"]["id"].as_str().unwrap().to_owned()
}

/// Publishes the tracks of `kinds` and waits (at most `t`) for the peer connection.
pub async fn publish(c: &TestClient, kinds: &[MediaKind], t: Duration) -> Published {
    let p = c
        .publish(
            kinds.contains(&MediaKind::Audio),
            kinds.contains(&MediaKind::Video),
        )
        .await
        .unwrap();
    c.wait_connected(t).await.unwrap();
    p
}

/// Pumps for the tracks of `kinds`: counters from 0, audio every 20 ms, video every 10 ms.
pub fn stream(published: &Published, kinds: &[MediaKind]) -> Vec<MediaPump> {
    kinds
        .iter()
        .map(|&kind| {
            let period = match kind {
                MediaKind::Audio => Duration::from_millis(20),
                MediaKind::Video => Duration::from_millis(10),
            };
            published.pump(kind, 0, STREAM_PACKETS, period).unwrap()
        })
        .collect()
}

/// A participant that joined, published, and streams some of its tracks.
pub struct Publisher {
    /// Its session.
    pub client: TestClient,
    /// Its participant id.
    pub id: String,
    /// Its tracks.
    pub published: Published,
    /// The pumps of the streamed tracks (in the order asked for).
    pub pumps: Vec<MediaPump>,
}

/// Joins with `token` (auto-subscribing), publishes `publish_kinds`, waits (at most `t`) for the
/// peer connection and streams `streamed` (see [`stream`]).
pub async fn publisher(
    url: &str,
    token: &str,
    publish_kinds: &[MediaKind],
    streamed: &[MediaKind],
    t: Duration,
) -> Publisher {
    let (client, id) = joined(url, token).await;
    let published = publish(&client, publish_kinds, t).await;
    let pumps = stream(&published, streamed);
    Publisher {
        client,
        id,
        published,
        pumps,
    }
}

/// Waits (at most `t`) until `room` has exactly `n` tracks; returns them.
pub async fn room_tracks(srv: &ServerHandle, room: &str, n: usize, t: Duration) -> Vec<TrackInfo> {
    crate::server::eventually(t, &format!("{n} tracks in room {room}"), || {
        srv.state.rooms.tracks(room).len() == n
    })
    .await;
    srv.state.rooms.tracks(room)
}

/// [`room_tracks`], the ids only.
pub async fn track_ids(srv: &ServerHandle, room: &str, n: usize, t: Duration) -> Vec<String> {
    let tracks = room_tracks(srv, room, n, t).await;
    tracks.into_iter().map(|t| t.id).collect()
}

/// Waits (at most `t`) until `participant` has a track in `room`; returns its id.
pub async fn track_of(srv: &ServerHandle, room: &str, participant: &str, t: Duration) -> String {
    let mut track = None;
    crate::server::eventually(t, &format!("a track of {participant}"), || {
        track = srv
            .state
            .rooms
            .tracks(room)
            .into_iter()
            .find(|t| t.participant == participant)
            .map(|t| t.id);
        track.is_some()
    })
    .await;
    track.unwrap()
}

/// Waits for the `participant_left` of participant `id`; returns it.
pub async fn left(c: &TestClient, id: &str, t: Duration) -> Value {
    c.next_message(
        |m| m["type"] == "participant_left" && m["participant"] == id,
        t,
    )
    .await
    .unwrap()
}

/// Waits for the `track_unpublished` of `track`.
pub async fn unpublished(c: &TestClient, track: &str, t: Duration) {
    c.next_message(
        |m| m["type"] == "track_unpublished" && m["track"] == track,
        t,
    )
    .await
    .unwrap();
}

/// Waits for the `track_published` of the client's own track of `kind`; returns it.
pub async fn own_track_published(c: &TestClient, kind: &str, t: Duration) -> Value {
    c.next_message(
        |m| m["type"] == "track_published" && m["track"]["kind"] == kind,
        t,
    )
    .await
    .unwrap()
}

/// Takes the next `track_muted` and asserts its track, participant and state.
pub async fn assert_muted(
    c: &TestClient,
    track: &str,
    participant: &str,
    muted: bool,
    t: Duration,
) {
    let m = c.next_message_of_type("track_muted", t).await.unwrap();
    assert_eq!(
        (
            m["track"].as_str(),
            m["participant"].as_str(),
            m["muted"].as_bool()
        ),
        (Some(track), Some(participant), Some(muted))
    );
}

/// Takes the next `data` message and asserts its sender (participant id and identity) and
/// payload.
pub async fn assert_data(c: &TestClient, from: (&str, &str), payload: &Value, t: Duration) {
    let m = c.next_message_of_type("data", t).await.unwrap();
    assert_eq!(
        (m["participant"].as_str(), m["identity"].as_str()),
        (Some(from.0), Some(from.1))
    );
    assert_eq!(&m["payload"], payload);
}

/// The next `leave` of the server; asserts its `reason` and returns it.
pub async fn assert_told_to_leave(c: &TestClient, reason: &str, t: Duration) -> Value {
    let leave = c.next_message_of_type("leave", t).await.unwrap();
    assert_eq!(leave["reason"], reason);
    leave
}

/// Closes each client's session, then shuts the server down.
pub async fn close_and_shutdown(srv: ServerHandle, clients: &[&TestClient]) {
    for c in clients {
        c.close().await.unwrap();
    }
    srv.shutdown().await;
}
