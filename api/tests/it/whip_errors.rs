//! WHIP and WHEP over HTTP with webrtc-rs clients: every error class of the endpoints and of
//! the session resources, OPTIONS and CORS preflight, and DELETE.
//! (Interop with aiortc and Chromium is web-demo/tests/whip.test.mjs.)

use crate::server;

use anyhow::Result;
use cascade_testkit::DEFAULT_TIMEOUT;
use reqwest::StatusCode;
use server::whip::{
    HttpPeer, RTCRtpTransceiverDirection, SDP, SDPFRAG, assert_error, create, delete, http, patch,
    post,
};
use server::{eventually, expired_token_with, token, token_with, viewer_token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_class_of_the_endpoints_and_resources() -> Result<()> {
    let srv = server::start().await;
    let base = format!("http://{}", srv.http_addr);
    let whip = format!("{base}/whip/errs");
    let whep = format!("{base}/whep/errs");
    let publisher = HttpPeer::new(RTCRtpTransceiverDirection::Sendonly).await?;
    let offer = publisher.offer(false).await?;
    let viewer = HttpPeer::new(RTCRtpTransceiverDirection::Recvonly).await?;
    let recv_offer = viewer.offer(false).await?;

    // (what, endpoint, token, content type, body, status, code)
    let p = Some(token("errs", "p"));
    let no_subscribe = Some(token_with("errs", "w", |g| g.can_subscribe = false));
    let garbage = "v=0\r\nthis is not sdp".to_owned();
    let expired = expired_token_with("errs", "late", |_| {});
    #[rustfmt::skip]
    let cases = [
        ("no token", &whip, None, SDP, &offer, 401, "unauthorized"),
        ("forged token", &whip, Some("a.b.c".into()), SDP, &offer, 401, "unauthorized"),
        ("expired token", &whip, Some(expired), SDP, &offer, 401, "token_expired"),
        ("other room", &whip, Some(token("elsewhere", "p")), SDP, &offer, 403, "permission_denied"),
        ("viewer publishes", &whip, Some(viewer_token("errs", "v")), SDP, &offer, 403, "permission_denied"),
        ("no subscribe grant", &whep, no_subscribe, SDP, &recv_offer, 403, "permission_denied"),
        ("wrong content type", &whip, p.clone(), "text/plain", &offer, 415, "unsupported_media_type"),
        ("garbage SDP", &whip, p.clone(), SDP, &garbage, 400, "invalid_sdp"),
        ("oversized offer", &whip, p, SDP, &"a".repeat(70_000), 413, "payload_too_large"),
        ("WHEP offer that sends", &whep, Some(token("errs", "w")), SDP, &offer, 400, "invalid_sdp"),
    ];
    for (what, url, token, ct, body, status, code) in cases {
        let res = post(url, token.as_deref(), ct, body.clone()).await;
        assert_error(res, status, code, what).await;
    }
    // None of the refused requests left anything behind (an offer refused after the join
    // closes its peer, which its worker drops asynchronously).
    assert_eq!(srv.state.rooms.counts().participants, 0);
    eventually(DEFAULT_TIMEOUT, "refused sessions' peers to close", || {
        srv.state.media().peer_count() == 0
    })
    .await;

    // A good session, then every error of its resource.
    let s = create(&base, "/whep/errs", &token("errs", "w"), recv_offer).await?;
    let unknown = format!("{base}/whep/errs/nosuchsession");
    let whip_path = s.url.replace("/whep/", "/whip/");
    let (etag, any) = (Some(s.etag.as_str()), Some("*"));
    let bad_candidate = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:nonsense\r\n";
    // (what, resource, If-Match, content type, body, status, code)
    #[rustfmt::skip]
    let cases = [
        ("unknown resource", &unknown, any, SDPFRAG, "", 404, "not_found"),
        ("WHIP path of a WHEP session", &whip_path, etag, SDPFRAG, "", 404, "not_found"),
        ("no If-Match", &s.url, None, SDPFRAG, "", 428, "precondition_required"),
        ("stale If-Match", &s.url, Some("\"stale\""), SDPFRAG, "", 412, "precondition_failed"),
        ("wrong content type", &s.url, etag, SDP, "", 415, "unsupported_media_type"),
        ("half credentials", &s.url, any, SDPFRAG, "a=ice-ufrag:zzzz\r\n", 400, "invalid_request"),
        ("garbage fragment", &s.url, etag, SDPFRAG, "garbage", 400, "invalid_request"),
        ("bad candidate", &s.url, etag, SDPFRAG, bad_candidate, 400, "invalid_candidate"),
    ];
    for (what, url, if_match, ct, body, status, code) in cases {
        let res = patch(url, if_match, ct, body.into()).await;
        assert_error(res, status, code, what).await;
    }
    let elsewhere = token("elsewhere", "x");
    let res = http().delete(&s.url).bearer_auth(elsewhere).send().await?;
    let what = "DELETE with a token for another room";
    assert_error(res, 403, "permission_denied", what).await;
    let res = http().delete(&unknown).send().await?;
    assert_error(res, 404, "not_found", "DELETE unknown").await;
    // An empty trickle with the right ETag is fine, and the session is still there.
    let res = patch(&s.url, etag, SDPFRAG, String::new()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(srv.state.rooms.counts().participants, 1);

    // OPTIONS and a CORS preflight.
    let res = http()
        .request(reqwest::Method::OPTIONS, &whip)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["accept-post"], SDP);
    let res = http()
        .request(reqwest::Method::OPTIONS, &s.url)
        .header("origin", "https://example.com")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "if-match, content-type")
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()?
        .to_owned();
    assert!(
        methods.contains("PATCH") && methods.contains("DELETE"),
        "{methods}"
    );

    assert_eq!(delete(&s.url).await?, StatusCode::OK);
    assert_eq!(delete(&s.url).await?, StatusCode::NOT_FOUND);
    eventually(DEFAULT_TIMEOUT, "the viewer's peer to close", || {
        srv.state.media().peer_count() == 0 && srv.state.whip_resources.is_empty()
    })
    .await;
    srv.shutdown().await;
    Ok(())
}
