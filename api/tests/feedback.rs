//! RTCP feedback through the SFU: keyframe requests, NACKs both ways, sender/receiver reports.

mod server;

use std::time::{Duration, Instant};

use cascade_testkit::wire::RtcpType;
use cascade_testkit::{MediaKind, MediaPump, Published, TestClient};

const T: Duration = Duration::from_secs(10);

/// A publisher streaming audio (50/s) and video (100/s) into `room`.
async fn publisher(url: &str, room: &str) -> (TestClient, Published, Vec<MediaPump>) {
    let c = TestClient::connect(url).await.unwrap();
    c.join(&server::token(room, "pub"), true).await.unwrap();
    let p = c.publish(true, true).await.unwrap();
    c.wait_connected(T).await.unwrap();
    let pumps = vec![
        p.pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
            .unwrap(),
        p.pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
            .unwrap(),
    ];
    (c, p, pumps)
}

fn video_track(srv: &cascade_api::server::ServerHandle, room: &str) -> String {
    srv.state
        .rooms
        .tracks(room)
        .into_iter()
        .find(|t| t.kind == cascade_signaling::protocol::TrackKind::Video)
        .map(|t| t.id)
        .expect("a video track")
}

async fn subscriber(url: &str, room: &str, name: &str) -> TestClient {
    let c = TestClient::connect(url).await.unwrap();
    c.join(&server::viewer_token(room, name), true)
        .await
        .unwrap();
    c
}

fn plis_since(c: &TestClient, since: Instant) -> usize {
    c.publisher_rtcp()
        .iter()
        .filter(|r| r.kind == MediaKind::Video && r.packet_type == RtcpType::Pli && r.at >= since)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_existing_tracks_and_publisher_gets_a_keyframe_request() {
    let srv = server::start().await;
    let (publ, _p, _pumps) = publisher(&srv.ws_url(), "late").await;
    server::eventually(T, "tracks published", || {
        srv.state.rooms.tracks("late").len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await; // past any earlier request's throttle
    let late = subscriber(&srv.ws_url(), "late", "late").await;
    late.wait_connected(T).await.unwrap();
    let connected = Instant::now();
    let pli = publ
        .wait_for_rtcp(
            MediaKind::Video,
            RtcpType::Pli,
            connected - Duration::from_millis(500),
            T,
        )
        .await
        .unwrap();
    assert!(
        pli.at.saturating_duration_since(connected) < Duration::from_secs(1),
        "keyframe request came {:?} after the late joiner connected",
        pli.at.saturating_duration_since(connected)
    );
    for t in srv.state.rooms.tracks("late") {
        late.wait_for_packets(&t.id, 10, T).await.unwrap();
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_pli_and_fir_reach_the_publisher_throttled() {
    let srv = server::start().await;
    let (publ, _p, _pumps) = publisher(&srv.ws_url(), "pli").await;
    server::eventually(T, "tracks published", || {
        srv.state.rooms.tracks("pli").len() == 2
    })
    .await;
    let video = video_track(&srv, "pli");
    let sub = subscriber(&srv.ws_url(), "pli", "sub").await;
    sub.wait_for_packets(&video, 5, T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await; // the join's own request is past

    let t0 = Instant::now();
    for _ in 0..10 {
        sub.send_pli(&video).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    publ.wait_for_rtcp(MediaKind::Video, RtcpType::Pli, t0, T)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plis_since(&publ, t0),
        1,
        "10 PLIs within 100 ms must reach the publisher once"
    );

    // After the throttle interval, a FIR also becomes a keyframe request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t1 = Instant::now();
    sub.send_fir(&video, 1).await.unwrap();
    publ.wait_for_rtcp(MediaKind::Video, RtcpType::Pli, t1, T)
        .await
        .unwrap();
    let stats = srv.state.media().stats();
    assert!(
        stats.plis_received >= 10 && stats.firs_received >= 1,
        "{stats:?}"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_nack_is_answered_with_the_lost_packet() {
    let srv = server::start().await;
    let (_publ, _p, _pumps) = publisher(&srv.ws_url(), "nack").await;
    server::eventually(T, "tracks published", || {
        srv.state.rooms.tracks("nack").len() == 2
    })
    .await;
    let video = video_track(&srv, "nack");
    let sub = subscriber(&srv.ws_url(), "nack", "sub").await;
    let got = sub.wait_for_packets(&video, 20, T).await.unwrap();
    let wanted = &got[got.len() - 10];
    sub.send_nack(&video, &[wanted.seq]).await.unwrap();
    server::eventually(T, "the retransmission", || {
        sub.received(&video)
            .iter()
            .any(|p| p.duplicate && p.seq == wanted.seq && p.payload == wanted.payload)
    })
    .await;
    assert!(srv.state.media().stats().retransmissions >= 1);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_loss_is_nacked_and_reports_flow_both_ways() {
    let srv = server::start().await;
    let (publ, p, pumps) = publisher(&srv.ws_url(), "loss").await;
    server::eventually(T, "tracks published", || {
        srv.state.rooms.tracks("loss").len() == 2
    })
    .await;
    let video = video_track(&srv, "loss");
    let sub = subscriber(&srv.ws_url(), "loss", "sub").await;
    sub.wait_for_packets(&video, 5, T).await.unwrap();

    // Skip one sequence number: the server must NACK it.
    pumps[1].stop();
    let track = p.track(MediaKind::Video).unwrap();
    track.send(1_000_000).await.unwrap();
    let (seq, ts) = track.next_seq_ts();
    track.set_next_seq_ts(seq.wrapping_add(1), ts);
    let since = Instant::now();
    for i in 0..20 {
        track.send(1_000_001 + i).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let nack = publ
        .wait_for_rtcp(MediaKind::Video, RtcpType::Nack, since, T)
        .await
        .unwrap();
    assert!(
        nack.nack_seqs.contains(&seq),
        "NACK for {seq}: {:?}",
        nack.nack_seqs
    );

    // Receiver reports reach the publisher, sender reports the subscriber.
    publ.wait_for_rtcp(MediaKind::Video, RtcpType::ReceiverReport, since, T)
        .await
        .unwrap();
    server::eventually(T, "a sender report at the subscriber", || {
        sub.inbound_rtcp()
            .iter()
            .any(|r| r.packet_type == RtcpType::SenderReport)
    })
    .await;
    srv.shutdown().await;
}
