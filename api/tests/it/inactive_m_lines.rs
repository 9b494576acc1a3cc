//! M-lines that stop carrying media (docs/protocol.md §3): after `unsubscribe` the server's
//! next offer keeps the track's m-line, now `a=inactive`, and its mid leaves the offer's
//! `tracks` map; a publisher that stops its transceiver and offers again unpublishes the track.

use crate::server;

use std::time::Duration;

use cascade_testkit::{MediaKind, MediaPump, Published, TestClient};
use server::clients::{AV, join, own_track_published, publish, room_tracks, stream, unpublished};

const T: Duration = Duration::from_secs(15);

/// The m-section of `sdp` whose `a=mid` is `mid`.
fn m_section<'a>(sdp: &'a str, mid: &str) -> Option<&'a str> {
    sdp.split("\r\nm=")
        .skip(1)
        .find(|s| s.lines().any(|l| l == format!("a=mid:{mid}")))
}

/// A publisher of audio and video in `room` (joined without auto-subscribe), streaming both.
async fn publisher(url: &str, room: &str) -> (TestClient, Published, Vec<MediaPump>) {
    let a = join(url, &server::token(room, "pub"), false).await;
    let p = publish(&a, AV, T).await;
    let pumps = stream(&p, AV);
    (a, p, pumps)
}

/// A subscribe-only viewer in `room`.
async fn viewer(url: &str, room: &str) -> TestClient {
    join(url, &server::viewer_token(room, "viewer"), true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_track_keeps_its_m_line_as_inactive() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (_a, _p, _pumps) = publisher(&url, "unsub").await;
    let b = viewer(&url, "unsub").await;
    let both = b
        .next_message(
            |m| m["type"] == "offer" && m["tracks"].as_object().is_some_and(|t| t.len() == 2),
            T,
        )
        .await
        .unwrap();
    let (mid, track) = both["tracks"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(mid, t)| (mid.clone(), t.as_str().unwrap().to_owned()))
        .unwrap();
    let sdp = both["sdp"].as_str().unwrap();
    assert!(
        m_section(sdp, &mid).unwrap().contains("a=sendonly"),
        "{sdp}"
    );
    b.wait_for_packets(&track, 5, T).await.unwrap();

    b.unsubscribe(&[&track]).await.unwrap();
    let m = mid.clone();
    let after = b
        .next_message(
            move |msg| {
                msg["type"] == "offer"
                    && msg["tracks"].get(&m).is_none()
                    && msg["sdp"]
                        .as_str()
                        .is_some_and(|s| m_section(s, &m).is_some())
            },
            T,
        )
        .await
        .unwrap();
    let sdp = after["sdp"].as_str().unwrap();
    let section = m_section(sdp, &mid).unwrap();
    assert!(section.contains("\r\na=inactive"), "{section}");
    assert!(!section.starts_with("audio 0 ") && !section.starts_with("video 0 "));
    assert_eq!(after["tracks"].as_object().unwrap().len(), 1);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_publishing_transceiver_unpublishes_its_track() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (a, p, _pumps) = publisher(&url, "stop").await;
    let video_mid = p.track(MediaKind::Video).unwrap().mid.clone().unwrap();
    let b = viewer(&url, "stop").await;
    let own = own_track_published(&a, "video", T).await;
    let video = own["track"]["id"].as_str().unwrap().to_owned();
    b.wait_for_packets(&video, 5, T).await.unwrap();

    let pc = a.ensure_peer_connection().await.unwrap();
    let mut stopped = false;
    for t in pc.get_transceivers().await {
        if t.mid().await.unwrap().as_deref() == Some(video_mid.as_str()) {
            t.stop().await.unwrap();
            stopped = true;
        }
    }
    assert!(stopped, "no transceiver with mid {video_mid}");
    a.negotiate().await.unwrap();
    unpublished(&b, &video, T).await;
    // Only the audio track is left.
    room_tracks(&srv, "stop", 1, T).await;
    srv.shutdown().await;
}
