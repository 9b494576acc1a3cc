//! M-lines that stop carrying media (docs/protocol.md §3): after `unsubscribe` the server's
//! next offer keeps the track's m-line, now `a=inactive`, and its mid leaves the offer's
//! `tracks` map; a publisher that stops its transceiver and offers again unpublishes the track.

mod server;

use std::time::Duration;

use cascade_testkit::{MediaKind, TestClient};

const T: Duration = Duration::from_secs(15);

/// The m-section of `sdp` whose `a=mid` is `mid`.
fn m_section<'a>(sdp: &'a str, mid: &str) -> Option<&'a str> {
    sdp.split("\r\nm=")
        .skip(1)
        .find(|s| s.lines().any(|l| l == format!("a=mid:{mid}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsubscribed_track_keeps_its_m_line_as_inactive() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let a = TestClient::connect(&url).await.unwrap();
    a.join(&server::token("unsub", "pub"), false).await.unwrap();
    let p = a.publish(true, true).await.unwrap();
    let _pumps = [
        p.pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
            .unwrap(),
        p.pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
            .unwrap(),
    ];
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::viewer_token("unsub", "viewer"), true)
        .await
        .unwrap();
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
    let a = TestClient::connect(&url).await.unwrap();
    a.join(&server::token("stop", "pub"), false).await.unwrap();
    let p = a.publish(true, true).await.unwrap();
    let _pumps = [
        p.pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
            .unwrap(),
        p.pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
            .unwrap(),
    ];
    let video_mid = p.track(MediaKind::Video).unwrap().mid.clone().unwrap();
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::viewer_token("stop", "viewer"), true)
        .await
        .unwrap();
    let own = a
        .next_message(
            |m| m["type"] == "track_published" && m["track"]["kind"] == "video",
            T,
        )
        .await
        .unwrap();
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
    b.next_message(
        |m| m["type"] == "track_unpublished" && m["track"] == video.as_str(),
        T,
    )
    .await
    .unwrap();
    server::eventually(T, "only the audio track left", || {
        srv.state.rooms.tracks("stop").len() == 1
    })
    .await;
    srv.shutdown().await;
}
