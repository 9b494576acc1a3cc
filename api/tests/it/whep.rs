//! WHEP viewers (webrtc-rs over HTTP): a viewer follows the room's publisher across a change
//! of publisher (one continuous RTP stream), a viewer of one named publisher sees only it, and
//! an ICE restart via PATCH keeps media flowing.

use crate::server;

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cascade_testkit::{DEFAULT_TIMEOUT, MediaKind, TestClient};
use reqwest::StatusCode;
use server::whip::{SDPFRAG, delete, patch, restart_fragment, restarted_answer, whep_viewer};
use server::{eventually, token, viewer_token};

/// Connects to `url` and joins with `token` (no auto-subscribe).
async fn joined(url: &str, token: &str) -> Result<TestClient> {
    let c = TestClient::connect(url).await?;
    c.join(token, false).await.map_err(|e| anyhow!("{e:?}"))?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whep_viewer_follows_the_room_across_a_change_of_publisher() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);

    let alice = joined(&srv.ws_url(), &token("live", "alice")).await?;
    let a = alice.publish(true, true).await?;
    let a_pump = a.pump(MediaKind::Video, 0, 10_000, Duration::from_millis(20))?;

    // Without ?participant the viewer follows the only publisher, alice.
    let (viewer, s) = whep_viewer(&base, "/whep/live", &viewer_token("live", "v")).await?;
    // A viewer that waits for bob only.
    let fan = viewer_token("live", "fan");
    let (bob_fan, sb) = whep_viewer(&base, "/whep/live?participant=bob", &fan).await?;

    let first = viewer
        .wait_video("alice's video", |g| g.counter.is_some())
        .await?;
    assert!(first.counter.unwrap() < 1000, "alice's counters");

    // ICE restart of the viewer: the server answers with its fragment and a new ETag, and
    // media keeps flowing on the restarted session.
    let restart = viewer.offer(true).await?;
    let res = patch(&s.url, Some("*"), SDPFRAG, restart_fragment(&restart)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let new_etag = res.headers()["etag"].to_str()?.to_owned();
    assert_ne!(new_etag, s.etag, "a new ICE session has a new ETag");
    let fragment = res.text().await?;
    assert!(
        fragment.contains("a=ice-ufrag:") && fragment.contains("a=candidate:"),
        "{fragment}"
    );
    viewer
        .answer(restarted_answer(&s.answer, &fragment))
        .await?;
    let seen = viewer.packets().len();
    eventually(DEFAULT_TIMEOUT, "video after the ICE restart", || {
        viewer.packets()[seen..]
            .iter()
            .any(|g| g.kind == MediaKind::Video)
    })
    .await;
    // The old ETag no longer matches.
    let res = patch(&s.url, Some(&s.etag), SDPFRAG, String::new()).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);

    // Alice leaves; bob publishes with counters from 50_000: the viewer's same stream (SSRC)
    // continues with bob's packets, sequence numbers without a jump.
    a_pump.stop();
    alice.leave().await?;
    let before_switch = viewer
        .packets()
        .iter()
        .rfind(|g| g.kind == MediaKind::Video)
        .cloned()
        .context("alice's packets")?;
    let bob = joined(&srv.ws_url(), &token("live", "bob")).await?;
    let b = bob.publish(true, true).await?;
    let b_pump = b.pump(MediaKind::Video, 50_000, 10_000, Duration::from_millis(20))?;
    let from_bob = viewer
        .wait_video("bob's video", |g| g.counter.is_some_and(|c| c >= 50_000))
        .await?;
    assert_eq!(from_bob.ssrc, before_switch.ssrc, "same outgoing stream");
    let bob_first = viewer
        .packets()
        .into_iter()
        .find(|g| g.kind == MediaKind::Video && g.counter.is_some_and(|c| c >= 50_000))
        .unwrap();
    assert_eq!(
        bob_first.seq,
        before_switch.seq.wrapping_add(1),
        "sequence numbers continue across publishers"
    );
    // The fan of bob got bob, and never alice.
    bob_fan
        .wait_video("bob's video at bob's fan", |g| {
            g.counter.is_some_and(|c| c >= 50_000)
        })
        .await?;
    assert!(
        bob_fan
            .packets()
            .iter()
            .all(|g| g.counter.is_none_or(|c| c >= 50_000)),
        "bob's fan saw only bob"
    );

    b_pump.stop();
    for url in [&s.url, &sb.url] {
        assert_eq!(delete(url).await?, StatusCode::OK);
    }
    bob.leave().await?;
    eventually(DEFAULT_TIMEOUT, "everyone gone", || {
        srv.state.rooms.counts().participants == 0 && srv.state.media().peer_count() == 0
    })
    .await;
    srv.shutdown().await;
    Ok(())
}
