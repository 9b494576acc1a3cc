//! RTCP feedback through the SFU: keyframe requests, NACKs both ways, sender/receiver reports.

use crate::server;

use std::time::{Duration, Instant};

use cascade_api::server::ServerHandle;
use cascade_testkit::wire::RtcpType;
use cascade_testkit::{MediaKind, TestClient};
use server::clients::{self, AV, Publisher, join, room_tracks};

const T: Duration = Duration::from_secs(10);

/// A publisher streaming audio (50/s) and video (100/s) into `room`, once both tracks are
/// published.
async fn publisher(srv: &ServerHandle, room: &str) -> Publisher {
    let p = clients::publisher(&srv.ws_url(), &server::token(room, "pub"), AV, AV, T).await;
    room_tracks(srv, room, 2, T).await;
    p
}

/// [`publisher`], its video track, and a subscribe-only `sub` that received 5 of its packets.
async fn call(srv: &ServerHandle, room: &str) -> (Publisher, String, TestClient) {
    let p = publisher(srv, room).await;
    let video = video_track(srv, room);
    let sub = join(&srv.ws_url(), &server::viewer_token(room, "sub"), true).await;
    sub.wait_for_packets(&video, 5, T).await.unwrap();
    (p, video, sub)
}

/// The id of the video track in `room`.
fn video_track(srv: &ServerHandle, room: &str) -> String {
    srv.state
        .rooms
        .tracks(room)
        .into_iter()
        .find(|t| t.kind == cascade_signaling::protocol::TrackKind::Video)
        .map(|t| t.id)
        .expect("a video track")
}

/// How many video PLIs the publisher `c` got since `since`.
fn plis_since(c: &TestClient, since: Instant) -> usize {
    c.publisher_rtcp()
        .iter()
        .filter(|r| r.kind == MediaKind::Video && r.packet_type == RtcpType::Pli && r.at >= since)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_existing_tracks_and_publisher_gets_a_keyframe_request() {
    let srv = server::start().await;
    let p = publisher(&srv, "late").await;
    let publ = &p.client;
    tokio::time::sleep(Duration::from_millis(700)).await; // past any earlier request's throttle
    let late = join(&srv.ws_url(), &server::viewer_token("late", "late"), true).await;
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
    let (p, video, sub) = call(&srv, "pli").await;
    tokio::time::sleep(Duration::from_millis(700)).await; // the join's own request is past

    let t0 = Instant::now();
    for _ in 0..10 {
        sub.send_pli(&video).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.client
        .wait_for_rtcp(MediaKind::Video, RtcpType::Pli, t0, T)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plis_since(&p.client, t0),
        1,
        "10 PLIs within 100 ms must reach the publisher once"
    );

    // After the throttle interval, a FIR also becomes a keyframe request.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t1 = Instant::now();
    sub.send_fir(&video, 1).await.unwrap();
    p.client
        .wait_for_rtcp(MediaKind::Video, RtcpType::Pli, t1, T)
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
    let (_p, video, sub) = call(&srv, "nack").await;
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
    let (p, _, sub) = call(&srv, "loss").await;

    // Skip one sequence number: the server must NACK it.
    p.pumps[1].stop();
    let track = p.published.track(MediaKind::Video).unwrap();
    track.send(1_000_000).await.unwrap();
    let (seq, ts) = track.next_seq_ts();
    track.set_next_seq_ts(seq.wrapping_add(1), ts);
    let since = Instant::now();
    for i in 0..20 {
        track.send(1_000_001 + i).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let nack = p
        .client
        .wait_for_rtcp(MediaKind::Video, RtcpType::Nack, since, T)
        .await
        .unwrap();
    assert!(
        nack.nack_seqs.contains(&seq),
        "NACK for {seq}: {:?}",
        nack.nack_seqs
    );

    // Receiver reports reach the publisher, sender reports the subscriber.
    p.client
        .wait_for_rtcp(MediaKind::Video, RtcpType::ReceiverReport, since, T)
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
