//! Limits of the WHIP/WHEP endpoints: session creation is rate-limited (429 with
//! Retry-After), and the candidates trickled into one session are capped.

use crate::server;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use server::viewer_token;
use server::whip::{
    HttpPeer, RTCRtpTransceiverDirection, SDP, SDPFRAG, create, delete, error_code, patch, post,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_is_rate_limited_with_429_and_retry_after() -> Result<()> {
    // 1 per second after a burst of 2.
    let srv = server::start_with(|c| c.session_rate_limit = 1).await;
    let base = format!("http://{}", srv.http_addr);
    let mut offers = Vec::new();
    for _ in 0..6 {
        let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
        offers.push(viewer.offer(false).await?);
    }
    // Post back to back until refused: the burst of 2 passes, then at most one more per
    // second elapsed.
    let started = tokio::time::Instant::now();
    let mut created = Vec::new();
    let mut refused = None;
    for (i, offer) in offers.into_iter().enumerate() {
        let token = viewer_token("limited", &format!("v{i}"));
        let res = post(&format!("{base}/whep/limited"), Some(&token), SDP, offer).await;
        if res.status() == StatusCode::CREATED {
            created.push(format!("{base}{}", res.headers()["location"].to_str()?));
        } else {
            refused = Some(res);
            break;
        }
    }
    let elapsed = started.elapsed().as_secs();
    let res = refused.context("no request was refused")?;
    let retry_after: u64 = res.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_eq!(
        error_code(res).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned())
    );
    assert!(created.len() >= 2, "the burst passes");
    assert!(
        created.len() as u64 <= 2 + elapsed,
        "{} created in {elapsed} s",
        created.len()
    );
    assert_eq!(
        srv.state.rooms.counts().participants,
        created.len() as u64,
        "the refused one did not join"
    );
    for url in &created {
        assert_eq!(delete(url).await?, StatusCode::OK);
    }
    srv.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_candidates_are_capped_with_400_too_many_candidates() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let s = create(
        &base,
        "/whep/cands",
        &viewer_token("cands", "fan"),
        viewer.offer(false).await?,
    )
    .await?;
    let fragment = |from: usize, n: usize| {
        let mut f = String::from("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n");
        for i in from..from + n {
            f.push_str(&format!(
                "a=candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host\r\n",
                30_000 + i
            ));
        }
        f
    };
    let trickle = |body: String| patch(&s.url, Some(&s.etag), SDPFRAG, body);
    // 64 candidates in one ICE generation are accepted; the 65th is refused.
    for from in [0, 32] {
        assert_eq!(
            trickle(fragment(from, 32)).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let (status, code) = error_code(trickle(fragment(64, 1)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "too_many_candidates")
    );
    assert_eq!(delete(&s.url).await?, StatusCode::OK);
    srv.shutdown().await;
    Ok(())
}
