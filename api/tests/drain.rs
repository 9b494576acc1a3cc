//! Graceful drain (in-process): `POST /api/drain` makes readiness 503 and refuses joins, new
//! rooms and WHIP/WHEP sessions with `server_draining`; a call in progress keeps flowing; the
//! drain ends when the rooms are empty or at `drain_timeout`, and the shutdown then tells the
//! participants left `leave {reason: "server_shutdown"}`.

mod server;

use std::time::{Duration, Instant};

use cascade_testkit::{MediaKind, TestClient};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn new(srv: &cascade_api::server::ServerHandle) -> Self {
        Self {
            base: format!("http://{}", srv.http_addr),
            client: reqwest::Client::new(),
        }
    }

    /// A request with Basic API credentials, or the given bearer token.
    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match bearer {
            Some(t) => req.bearer_auth(t),
            None => req.basic_auth(server::KEY, Some(server::SECRET)),
        };
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let res = req.send().await.expect("request");
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    async fn drain(&self) -> Value {
        let (status, _, body) = self.call(Method::POST, "/api/drain", None, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn readyz(&self) -> (StatusCode, String) {
        let (status, _, body) = self.call(Method::GET, "/readyz", None, None).await;
        (status, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_newcomers_keeps_the_call_and_ends_when_the_rooms_empty() {
    let srv = server::start_with(|c| c.drain_timeout = Duration::from_secs(60)).await;
    let http = Http::new(&srv);
    assert_eq!(http.readyz().await, (StatusCode::OK, "ready".into()));

    // A call: a publisher and a viewer that receives its video.
    let url = srv.ws_url();
    let a = TestClient::connect(&url).await.unwrap();
    a.join(&server::token("call", "a"), true).await.unwrap();
    let published = a.publish(false, true).await.unwrap();
    a.wait_connected(T).await.unwrap();
    let _pump = published
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    let b = TestClient::connect(&url).await.unwrap();
    b.join(&server::viewer_token("call", "b"), true)
        .await
        .unwrap();
    server::eventually(T, "the video track", || {
        srv.state.rooms.tracks("call").len() == 1
    })
    .await;
    let video = srv.state.rooms.tracks("call")[0].id.clone();
    b.wait_for_packets(&video, 10, T).await.unwrap();

    // A token cannot drain the server; the API key and secret can.
    let admin = server::token_with("", "ops", |g| g.room_admin = true);
    let (status, _, body) = http
        .call(Method::POST, "/api/drain", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(!srv.state.rooms.is_draining());
    let drain = http.drain().await;
    assert_eq!(drain["started"], true, "{drain}");
    assert_eq!(drain["participants"], 2, "{drain}");
    assert_eq!(drain["drain_timeout_secs"], 60, "{drain}");
    assert_eq!(http.drain().await["started"], false, "idempotent");

    // Readiness fails at once; newcomers are refused with `server_draining`.
    assert_eq!(
        http.readyz().await,
        (StatusCode::SERVICE_UNAVAILABLE, "draining".into())
    );
    let c = TestClient::connect(&url).await.unwrap();
    let refused = c.join(&server::token("call", "c"), true).await.unwrap_err();
    assert_eq!(refused.code, "server_draining", "{refused:?}");
    let other = TestClient::connect(&url).await.unwrap();
    let refused = other
        .join(&server::token("elsewhere", "d"), true)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "server_draining", "{refused:?}");
    let (status, headers, body) = http
        .call(
            Method::POST,
            "/api/rooms",
            None,
            Some(("application/json", json!({"name": "new-room"}).to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("server_draining"), "{body}");
    assert_eq!(headers["retry-after"], "5");
    let whip_token = server::token("call", "w");
    let (status, headers, body) = http
        .call(
            Method::POST,
            "/whip/call",
            Some(&whip_token),
            Some(("application/sdp", "v=0\r\n".into())),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("server_draining"), "{body}");
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(srv.state.rooms.list_rooms().len(), 1, "no room was created");

    // The call goes on.
    let before = b.received(&video).len();
    b.wait_for_packets(&video, before + 20, T).await.unwrap();
    let state = srv.state.clone();
    let drained = state.drained();
    tokio::pin!(drained);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), drained.as_mut())
            .await
            .is_err(),
        "the drain must wait while participants remain"
    );

    // Once the room empties the drain is over.
    b.leave().await.unwrap();
    a.leave().await.unwrap();
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), drained)
        .await
        .expect("drained once the rooms are empty");
    assert!(t0.elapsed() < Duration::from_secs(5));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_times_out_then_shutdown_tells_who_is_left() {
    let srv = server::start_with(|c| c.drain_timeout = Duration::from_secs(1)).await;
    let a = TestClient::connect(&srv.ws_url()).await.unwrap();
    a.join(&server::token("stay", "a"), true).await.unwrap();
    let started = Instant::now();
    assert!(srv.state.begin_drain());
    tokio::time::timeout(Duration::from_secs(5), srv.state.drained())
        .await
        .expect("the drain ends at its timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "ended after {took:?}, before the 1 s drain timeout"
    );
    assert_eq!(
        srv.state.rooms.counts().participants,
        1,
        "still in the room"
    );
    srv.shutdown().await;
    let leave = a.next_message_of_type("leave", T).await.unwrap();
    assert_eq!(leave["reason"], "server_shutdown");
}
