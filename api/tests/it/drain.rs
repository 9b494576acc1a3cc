//! Graceful drain (in-process): `POST /api/drain` makes readiness 503 and refuses joins, new
//! rooms and WHIP/WHEP sessions with `server_draining`; a call in progress keeps flowing; the
//! drain ends when the rooms are empty or at `drain_timeout`, and the shutdown then tells the
//! participants left `leave {reason: "server_shutdown"}`.

use crate::server;

use std::time::{Duration, Instant};

use cascade_testkit::TestClient;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use server::clients::{VIDEO, assert_told_to_leave, join, publisher, track_ids};
use server::rest::{Api, Cred, Res, basic};

const T: Duration = Duration::from_secs(15);

/// `POST /api/drain` with the API key and secret; asserts 202 and returns the body.
async fn drain(api: &Api) -> Value {
    let res = api
        .request(Method::POST, "/api/drain", &basic(), None, None)
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
    serde_json::from_str(&res.text).unwrap()
}

/// `GET /readyz`: status and body.
async fn readyz(api: &Api) -> (StatusCode, String) {
    let res = api
        .request(Method::GET, "/readyz", &basic(), None, None)
        .await;
    (res.status, res.text)
}

/// Asserts that a request was refused with 503 `server_draining` and `Retry-After: 5`.
#[track_caller]
fn assert_draining(res: &Res) {
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.text);
    assert!(res.text.contains("server_draining"), "{}", res.text);
    assert_eq!(res.headers["retry-after"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_refuses_newcomers_keeps_the_call_and_ends_when_the_rooms_empty() {
    let srv = server::start_with(|c| c.drain_timeout = Duration::from_secs(60)).await;
    let api = Api::new(&srv);
    assert_eq!(readyz(&api).await, (StatusCode::OK, "ready".into()));

    // A call: a publisher and a viewer that receives its video.
    let url = srv.ws_url();
    let a = publisher(&url, &server::token("call", "a"), VIDEO, VIDEO, T).await;
    let b = join(&url, &server::viewer_token("call", "b"), true).await;
    let video = track_ids(&srv, "call", 1, T).await.remove(0);
    b.wait_for_packets(&video, 10, T).await.unwrap();

    // A token cannot drain the server; the API key and secret can.
    let admin = server::token_with("", "ops", |g| g.room_admin = true);
    let admin = Cred::Bearer(admin);
    let res = api
        .request(Method::POST, "/api/drain", &admin, None, None)
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    assert!(!srv.state.rooms.is_draining());
    let drained = drain(&api).await;
    assert_eq!(drained["started"], true, "{drained}");
    assert_eq!(drained["participants"], 2, "{drained}");
    assert_eq!(drained["drain_timeout_secs"], 60, "{drained}");
    assert_eq!(drain(&api).await["started"], false, "idempotent");

    // Readiness fails at once; newcomers are refused with `server_draining`.
    assert_eq!(
        readyz(&api).await,
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
    let room = json!({"name": "new-room"});
    let key = basic();
    let res = api.request_json(Method::POST, "/api/rooms", &key, Some(room));
    assert_draining(&res.await);
    let whip = Cred::Bearer(server::token("call", "w"));
    let offer = Some(b"v=0\r\n".to_vec());
    let sdp = Some("application/sdp");
    assert_draining(
        &api.request(Method::POST, "/whip/call", &whip, sdp, offer)
            .await,
    );
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
    a.client.leave().await.unwrap();
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
    let a = join(&srv.ws_url(), &server::token("stay", "a"), true).await;
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
    assert_told_to_leave(&a, "server_shutdown", T).await;
}
