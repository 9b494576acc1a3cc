//! Operational endpoints: health, readiness, metrics, embedded pages.

use crate::server;

use std::time::Duration;

use server::clients::{AV, VIDEO, join, publisher, room_tracks};
use server::rest::assert_subscribe_only_token;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(15);

/// A bare HTTP/1.1 GET; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let (head, body) = get_with_head(addr, path).await;
    (head[9..12].parse().unwrap(), body)
}

/// The value of the sample `name` of a `/metrics` text.
fn metric(body: &str, name: &str) -> f64 {
    server::sample(body, name) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_pages_and_metrics() {
    let srv = server::start().await;
    assert_eq!(get(srv.http_addr, "/healthz").await.0, 200);
    assert_eq!(get(srv.http_addr, "/readyz").await.0, 200);
    let (status, page) = get(srv.http_addr, "/smoke.html").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));
    assert_eq!(get(srv.http_addr, "/no-such-file").await.0, 404);

    // Some traffic, then the counters reflect it.
    let url = srv.ws_url();
    let _a = publisher(&url, &server::token("m", "a"), AV, VIDEO, T).await;
    let b = join(&url, &server::viewer_token("m", "b"), true).await;
    let video = room_tracks(&srv, "m", 1, T)
        .await
        .into_iter()
        .find(|t| t.codec.as_deref() == Some("video/VP8"))
        .unwrap()
        .id;
    b.wait_for_packets(&video, 20, T).await.unwrap();
    b.send_pli(&video).await.unwrap();
    server::eventually(T, "the PLI counted", || {
        srv.state.media().stats().plis_received > 0
    })
    .await;

    let (status, body) = get(srv.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&body, "cascade_rooms"), 1.0);
    assert_eq!(metric(&body, "cascade_participants"), 2.0);
    assert_eq!(metric(&body, "cascade_tracks{kind=\"video\"}"), 1.0);
    assert!(metric(&body, "cascade_rtp_packets_total{direction=\"in\"}") >= 20.0);
    assert!(metric(&body, "cascade_rtp_packets_total{direction=\"out\"}") >= 20.0);
    assert!(
        metric(
            &body,
            "cascade_keyframe_requests_total{type=\"pli_received\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &body,
            "cascade_signaling_messages_total{direction=\"in\",type=\"join\"}"
        ) >= 2.0
    );
    for name in [
        "cascade_nacks_total",
        "cascade_retransmissions_total",
        "cascade_peer_connection_failures_total",
    ] {
        assert!(body.contains(name), "{name} exported");
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_tokens_only_with_the_development_secret() {
    // Test servers use a real secret: the endpoint does not exist.
    let srv = server::start().await;
    let (status, body) = get(srv.http_addr, "/api/dev/token?room=r&identity=i").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");
    srv.shutdown().await;

    let dev = cascade_api::config::Config::default();
    let srv = server::start_with(|c| {
        c.api_key = dev.api_key.clone();
        c.api_secret = dev.api_secret.clone();
    })
    .await;
    let (status, body) = get(
        srv.http_addr,
        "/api/dev/token?room=r1&identity=v&role=viewer",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["token"].as_str().unwrap();
    assert_subscribe_only_token(token, &dev.api_key, &dev.api_secret, "v", "r1");
    assert_eq!(get(srv.http_addr, "/api/dev/token?room=r1").await.0, 400);
    assert_eq!(
        get(srv.http_addr, "/api/dev/token?room=&identity=x")
            .await
            .0,
        400
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_tells_the_version_and_public_url() {
    let srv = server::start().await;
    let (status, body) = get(srv.http_addr, "/api/info").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["public_url"].is_null(), "{v}");
    assert_eq!(v["dev_tokens"], false, "the test server has its own secret");
    srv.shutdown().await;

    let srv = server::start_with(|c| c.public_url = Some("https://sfu.example.com/".into())).await;
    let (_, body) = get(srv.http_addr, "/api/info").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["public_url"], "https://sfu.example.com",
        "without the trailing slash"
    );
    srv.shutdown().await;
}

/// A bare HTTP/1.1 GET; returns the response head (lower case) and the body.
async fn get_with_head(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_is_served_cross_origin_and_versioned() {
    let srv = server::start().await;
    let version = env!("CARGO_PKG_VERSION");
    let (head, body) =
        get_with_head(srv.http_addr, &format!("/lib/{version}/cascade-client.js")).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert!(
        head.contains("content-type: text/javascript")
            || head.contains("content-type: application/javascript"),
        "{head}"
    );
    assert!(body.contains("export { CascadeClient } from './client/client.js'"));
    // Its modules, next to it, the same way (a page on another origin imports them too).
    let (head, body) =
        get_with_head(srv.http_addr, &format!("/lib/{version}/client/client.js")).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(body.contains("export class CascadeClient"));
    let (head, _) = get_with_head(srv.http_addr, "/tsconfig.json").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    let (head, _) = get_with_head(srv.http_addr, "/cascade-client.js").await;
    assert!(
        head.contains("access-control-allow-origin: *") && head.contains("cache-control: no-cache"),
        "{head}"
    );
    let (head, body) = get_with_head(srv.http_addr, "/lib/0.0.0-old/cascade-client.js").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(body.contains(&format!("/lib/{version}/")), "{body}");
    let (head, _) = get_with_head(srv.http_addr, "/api/info").await;
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    srv.shutdown().await;
}
