//! The room management REST API (`/api/...`): every endpoint for success and for each error
//! class, and kicks, mutes and permission changes taking effect on connected clients.

mod server;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use cascade_api::auth::{self, Grants};
use cascade_testkit::{MediaKind, TestClient};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

/// How a request authenticates.
#[derive(Clone)]
enum Cred {
    None,
    Basic(String, String),
    Bearer(String),
    Raw(String),
}

fn basic() -> Cred {
    Cred::Basic(server::KEY.into(), server::SECRET.into())
}

/// An admin token; `room` empty = every room.
fn admin_token(room: &str) -> String {
    auth::mint(
        server::KEY,
        server::SECRET,
        "admin",
        Grants {
            room_admin: true,
            ..Grants::new(room)
        },
        Duration::from_secs(600),
        SystemTime::now(),
    )
    .unwrap()
}

fn admin(room: &str) -> Cred {
    Cred::Bearer(admin_token(room))
}

struct Api {
    base: String,
    client: reqwest::Client,
}

/// A response: status, JSON body (Null if none or not JSON), and the raw response headers.
struct Res {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Res {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }

    /// Asserts an error response of the documented shape.
    #[track_caller]
    fn error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "message in {}",
            self.body
        );
    }

    #[track_caller]
    fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

impl Api {
    fn new(srv: &cascade_api::server::ServerHandle) -> Self {
        Self {
            base: format!("http://{}", srv.http_addr),
            client: reqwest::Client::new(),
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        cred: &Cred,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Res {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
            Cred::Bearer(t) => req.bearer_auth(t),
            Cred::Raw(v) => req.header("authorization", v),
        };
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        if !bytes.is_empty() {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(
                ct.starts_with("application/json"),
                "{status}: content type {ct:?} of {bytes:?}"
            );
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Res {
            status,
            body,
            headers,
        }
    }

    async fn call(&self, method: Method, path: &str, cred: &Cred, body: Option<Value>) -> Res {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let ct = bytes.as_ref().map(|_| "application/json");
        self.raw(method, path, cred, ct, bytes).await
    }

    async fn get(&self, path: &str, cred: &Cred) -> Res {
        self.call(Method::GET, path, cred, None).await
    }
}

async fn joined(url: &str, token: &str) -> (TestClient, String) {
    let c = TestClient::connect(url).await.unwrap();
    let j = c.join(token, true).await.unwrap();
    (c, j["participant"]["id"].as_str().unwrap().to_owned())
}

/// Every endpoint with a body that passes validation, for the auth checks.
fn endpoints(room: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/api/rooms/{room}"), None),
        (Method::DELETE, format!("/api/rooms/{room}"), None),
        (
            Method::POST,
            "/api/rooms".into(),
            Some(json!({"name": room})),
        ),
        (Method::GET, format!("/api/rooms/{room}/participants"), None),
        (
            Method::GET,
            format!("/api/rooms/{room}/participants/x"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/rooms/{room}/participants/x"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/rooms/{room}/participants/x"),
            Some(json!({"permissions": {"can_publish": false}})),
        ),
        (
            Method::PATCH,
            format!("/api/rooms/{room}/participants/x/tracks/TR_x"),
            Some(json!({"muted": true})),
        ),
        (
            Method::POST,
            format!("/api/rooms/{room}/data"),
            Some(json!({"payload": 1})),
        ),
        (
            Method::POST,
            "/api/tokens".into(),
            Some(json!({"room": room, "identity": "x"})),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_missing_wrong_expired_and_insufficient_credentials() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let forged = auth::mint(
        server::KEY,
        "another-secret-that-is-long-enough-0123456789",
        "admin",
        Grants {
            room_admin: true,
            ..Grants::new("")
        },
        Duration::from_secs(600),
        SystemTime::now(),
    )
    .unwrap();
    let expired = auth::mint(
        server::KEY,
        server::SECRET,
        "admin",
        Grants {
            room_admin: true,
            ..Grants::new("")
        },
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    )
    .unwrap();
    let unauthorized = [
        Cred::None,
        Cred::Bearer(forged),
        Cred::Bearer("not.a.token".into()),
        Cred::Basic(server::KEY.into(), "wrong-secret".into()),
        Cred::Basic("wrongkey".into(), server::SECRET.into()),
        Cred::Raw("Basic %%%".into()),
        Cred::Raw("Digest whatever".into()),
    ];
    let mut all = endpoints("r1");
    all.push((Method::GET, "/api/rooms".into(), None));
    for (method, path, body) in &all {
        for cred in &unauthorized {
            let r = api.call(method.clone(), path, cred, body.clone()).await;
            r.error(401, "unauthorized");
            assert!(
                r.headers.contains_key("www-authenticate"),
                "{method} {path}"
            );
        }
        let r = api
            .call(
                method.clone(),
                path,
                &Cred::Bearer(expired.clone()),
                body.clone(),
            )
            .await;
        r.error(401, "token_expired");
        // A participant's token without room_admin.
        let r = api
            .call(
                method.clone(),
                path,
                &Cred::Bearer(server::token("r1", "user")),
                body.clone(),
            )
            .await;
        r.error(403, "permission_denied");
    }
    // An admin token for room r2 administers nothing of room r1.
    for (method, path, body) in endpoints("r1") {
        let r = api.call(method.clone(), &path, &admin("r2"), body).await;
        r.error(403, "permission_denied");
    }
    // ... and may not mint an admin token for every room.
    api.call(
        Method::POST,
        "/api/tokens",
        &admin("r2"),
        Some(json!({"room": "", "identity": "x", "grants": {"room_admin": true}})),
    )
    .await
    .error(403, "permission_denied");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_created_listed_paginated_and_deleted() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let b = basic();

    let r = api
        .call(
            Method::POST,
            "/api/rooms",
            &b,
            Some(json!({"name": "alpha", "max_participants": 3, "empty_timeout_secs": 120})),
        )
        .await;
    let room = r.ok(201).clone();
    assert_eq!(room["name"], "alpha");
    assert_eq!(room["max_participants"], 3);
    assert_eq!(room["empty_timeout_secs"], 120);
    assert_eq!(room["num_participants"], 0);
    assert!(room["created_at"].as_u64().unwrap() > 1_600_000_000);
    // Again: 200 and unchanged.
    let r = api
        .call(
            Method::POST,
            "/api/rooms",
            &b,
            Some(json!({"name": "alpha", "max_participants": 9})),
        )
        .await;
    assert_eq!(r.ok(200)["max_participants"], 3);
    assert_eq!(
        api.get("/api/rooms/alpha", &b).await.ok(200)["name"],
        "alpha"
    );
    // A room-scoped admin token works on its own room.
    api.get("/api/rooms/alpha", &admin("alpha")).await.ok(200);

    // Bad bodies.
    for (ct, body, status, code) in [
        ("application/json", &b"{"[..], 400, "invalid_request"),
        (
            "application/json",
            br#"{"nam": "x"}"#,
            400,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"name": 5}"#,
            400,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"name": "x", "extra": 1}"#,
            400,
            "invalid_request",
        ),
        ("application/json", br#"{"name": ""}"#, 400, "invalid_name"),
        (
            "application/json",
            br#"{"name": "a\nb"}"#,
            400,
            "invalid_name",
        ),
        (
            "application/json",
            br#"{"name": "x", "empty_timeout_secs": 99999999}"#,
            400,
            "invalid_request",
        ),
        (
            "application/json",
            br#"{"name": "x", "max_participants": -1}"#,
            400,
            "invalid_request",
        ),
        (
            "text/plain",
            br#"{"name": "x"}"#,
            415,
            "unsupported_media_type",
        ),
    ] {
        api.raw(
            Method::POST,
            "/api/rooms",
            &b,
            Some(ct),
            Some(body.to_vec()),
        )
        .await
        .error(status, code);
    }
    let long = json!({"name": "x".repeat(129)});
    api.call(Method::POST, "/api/rooms", &b, Some(long))
        .await
        .error(400, "invalid_name");
    api.raw(Method::POST, "/api/rooms", &b, None, None)
        .await
        .error(415, "unsupported_media_type");
    let huge = json!({"name": "x", "pad": "y".repeat(100_000)});
    api.call(Method::POST, "/api/rooms", &b, Some(huge))
        .await
        .error(413, "payload_too_large");

    // Pagination: 7 rooms in pages of 3.
    for i in 0..6 {
        api.call(
            Method::POST,
            "/api/rooms",
            &b,
            Some(json!({"name": format!("room-{i}")})),
        )
        .await
        .ok(201);
    }
    let mut names = Vec::new();
    let mut path = "/api/rooms?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let page = api.get(&path, &b).await.ok(200).clone();
        pages += 1;
        let rooms = page["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 3);
        names.extend(rooms.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/rooms?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut want: Vec<String> = (0..6).map(|i| format!("room-{i}")).collect();
    want.insert(0, "alpha".into());
    assert_eq!(names, want);
    let all = api.get("/api/rooms", &b).await;
    assert_eq!(all.ok(200)["rooms"].as_array().unwrap().len(), 7);
    assert!(all.body["next_cursor"].is_null());
    for bad in [
        "/api/rooms?limit=0",
        "/api/rooms?limit=1001",
        "/api/rooms?limit=x",
        "/api/rooms?cursor=%21%21",
    ] {
        api.get(bad, &b).await.error(400, "invalid_request");
    }
    // A room-scoped admin token lists only its room.
    let scoped = api.get("/api/rooms", &admin("room-3")).await;
    let rooms = scoped.ok(200)["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["name"], "room-3");
    // An admin token for every room (bearer) lists everything.
    let r = api.get("/api/rooms", &admin("")).await;
    assert_eq!(r.ok(200)["rooms"].as_array().unwrap().len(), 7);

    // Unknown and invalid rooms.
    api.get("/api/rooms/nope", &b)
        .await
        .error(404, "room_not_found");
    api.get("/api/rooms/a%0Ab", &b)
        .await
        .error(400, "invalid_name");

    // Delete.
    let r = api.call(Method::DELETE, "/api/rooms/alpha", &b, None).await;
    assert_eq!(r.ok(200)["name"], "alpha");
    api.get("/api/rooms/alpha", &b)
        .await
        .error(404, "room_not_found");
    api.call(Method::DELETE, "/api/rooms/alpha", &b, None)
        .await
        .error(404, "room_not_found");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_minted_for_participants_and_admins() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();

    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &basic(),
            Some(
                json!({"room": "mint", "identity": "viewer", "ttl_secs": 120,
                        "grants": {"can_publish": false}}),
            ),
        )
        .await;
    let body = r.ok(200).clone();
    let token = body["token"].as_str().unwrap();
    let claims = auth::verify(token, server::KEY, server::SECRET, SystemTime::now()).unwrap();
    assert_eq!(claims.sub, "viewer");
    assert_eq!(claims.exp, body["expires_at"].as_u64().unwrap());
    assert_eq!(claims.exp - claims.iat, 120);
    assert_eq!(
        claims.video,
        Grants {
            can_publish: false,
            ..Grants::new("mint")
        }
    );
    // The minted token joins.
    let (c, _) = joined(&url, token).await;
    assert_eq!(
        api.get("/api/rooms/mint/participants/viewer", &basic())
            .await
            .ok(200)["permissions"]["can_publish"],
        false
    );

    // A room-scoped admin mints for its room; a full admin mints an admin token for every
    // room, which then works on the API.
    api.call(
        Method::POST,
        "/api/tokens",
        &admin("mint"),
        Some(json!({"room": "mint", "identity": "x"})),
    )
    .await
    .ok(200);
    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &basic(),
            Some(json!({"room": "", "identity": "ops", "grants": {"room_admin": true}})),
        )
        .await;
    let global = r.ok(200)["token"].as_str().unwrap().to_owned();
    api.get("/api/rooms/mint", &Cred::Bearer(global))
        .await
        .ok(200);

    for bad in [
        json!({"room": "", "identity": "x"}),
        json!({"room": "r", "identity": ""}),
        json!({"room": "r", "identity": "x\u{1}"}),
        json!({"room": "r".repeat(129), "identity": "x"}),
    ] {
        api.call(Method::POST, "/api/tokens", &basic(), Some(bad))
            .await
            .error(400, "invalid_name");
    }
    for bad in [
        json!({"room": "r", "identity": "x", "ttl_secs": 0}),
        json!({"room": "r", "identity": "x", "ttl_secs": 2_592_001}),
        json!({"room": "r", "identity": "x", "grants": {"can_fly": true}}),
        json!({"room": "r"}),
    ] {
        api.call(Method::POST, "/api/tokens", &basic(), Some(bad))
            .await
            .error(400, "invalid_request");
    }
    c.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_are_listed_paginated_and_looked_up() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let mut clients = Vec::new();
    for name in ["dan", "amy", "cid", "bea", "eve"] {
        clients.push(joined(&url, &server::token("people", name)).await);
    }
    let mut seen = Vec::new();
    let mut path = "/api/rooms/people/participants?limit=2".to_owned();
    loop {
        let page = api.get(&path, &basic()).await.ok(200).clone();
        for p in page["participants"].as_array().unwrap() {
            assert_eq!(p["kind"], "websocket");
            assert!(p["id"].as_str().unwrap().starts_with("PA_"));
            seen.push(p["identity"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/rooms/people/participants?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["amy", "bea", "cid", "dan", "eve"]);
    let p = api
        .get("/api/rooms/people/participants/cid", &admin("people"))
        .await;
    let p = p.ok(200);
    assert_eq!(p["identity"], "cid");
    assert_eq!(p["id"], clients[2].1.as_str());
    assert_eq!(
        p["permissions"],
        json!({"can_publish": true, "can_subscribe": true, "can_publish_data": true})
    );
    assert_eq!(p["tracks"], json!([]));

    api.get("/api/rooms/people/participants/zed", &basic())
        .await
        .error(404, "participant_not_found");
    api.get("/api/rooms/ghost/participants", &basic())
        .await
        .error(404, "room_not_found");
    api.get("/api/rooms/ghost/participants/cid", &basic())
        .await
        .error(404, "room_not_found");
    api.call(
        Method::DELETE,
        "/api/rooms/people/participants/zed",
        &basic(),
        None,
    )
    .await
    .error(404, "participant_not_found");
    api.call(
        Method::PATCH,
        "/api/rooms/people/participants/zed",
        &basic(),
        Some(json!({"permissions": {"can_publish": false}})),
    )
    .await
    .error(404, "participant_not_found");
    api.call(
        Method::PATCH,
        "/api/rooms/people/participants/cid/tracks/TR_nope",
        &basic(),
        Some(json!({"muted": true})),
    )
    .await
    .error(404, "track_not_found");
    for bad in [
        json!({"permissions": {"can_publish": "no"}}),
        json!({"permissions": {"can_fly": true}}),
        json!({"name": "x"}),
        json!([1]),
    ] {
        api.call(
            Method::PATCH,
            "/api/rooms/people/participants/cid",
            &basic(),
            Some(bad),
        )
        .await
        .error(400, "invalid_request");
    }
    api.call(
        Method::PATCH,
        "/api/rooms/people/participants/cid/tracks/TR_x",
        &basic(),
        Some(json!({"muted": "yes"})),
    )
    .await
    .error(400, "invalid_request");
    for (c, _) in clients {
        c.close().await.unwrap();
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_messages_reach_the_room_or_the_named_identities() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let (ann, _) = joined(&url, &server::token("news", "ann")).await;
    let (bob, _) = joined(&url, &server::token("news", "bob")).await;

    let payload = json!({"notice": "hello", "n": [1, 2]});
    let r = api
        .call(
            Method::POST,
            "/api/rooms/news/data",
            &basic(),
            Some(json!({"payload": payload})),
        )
        .await;
    assert_eq!(r.ok(200)["recipients"], 2);
    for c in [&ann, &bob] {
        let m = c.next_message_of_type("data", T).await.unwrap();
        assert_eq!(
            (m["participant"].as_str(), m["identity"].as_str()),
            (Some("server"), Some("server"))
        );
        assert_eq!(m["payload"], payload);
    }
    let r = api
        .call(
            Method::POST,
            "/api/rooms/news/data",
            &admin("news"),
            Some(json!({"payload": "psst", "identities": ["bob", "nobody"]})),
        )
        .await;
    assert_eq!(r.ok(200)["recipients"], 1);
    let m = bob.next_message_of_type("data", T).await.unwrap();
    assert_eq!(m["payload"], "psst");
    ann.expect_no_message(|m| m["type"] == "data", Duration::from_millis(300))
        .await
        .unwrap();

    api.call(
        Method::POST,
        "/api/rooms/ghost/data",
        &basic(),
        Some(json!({"payload": 1})),
    )
    .await
    .error(404, "room_not_found");
    for bad in [json!({}), json!({"payload": 1, "identities": "bob"})] {
        api.call(Method::POST, "/api/rooms/news/data", &basic(), Some(bad))
            .await
            .error(400, "invalid_request");
    }
    api.call(
        Method::POST,
        "/api/rooms/news/data",
        &basic(),
        Some(json!({"payload": 1, "identities": ["a\u{0}"]})),
    )
    .await
    .error(400, "invalid_name");
    ann.close().await.unwrap();
    bob.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_room_disconnects_everyone() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let (a, _) = joined(&url, &server::token("doomed", "a")).await;
    let (b, _) = joined(&url, &server::token("doomed", "b")).await;
    let (other, _) = joined(&url, &server::token("safe", "c")).await;

    let r = api
        .call(Method::DELETE, "/api/rooms/doomed", &basic(), None)
        .await;
    assert_eq!(r.ok(200)["num_participants"], 2);
    for c in [&a, &b] {
        let leave = c.next_message_of_type("leave", T).await.unwrap();
        assert_eq!(leave["reason"], "room_deleted");
        c.wait_closed(T).await.unwrap();
    }
    server::eventually(T, "the deleted room's sessions end", || {
        srv.state.rooms.counts().participants == 1 && srv.state.media().peer_count() == 1
    })
    .await;
    assert!(other.closed().is_none());
    api.get("/api/rooms/doomed", &basic())
        .await
        .error(404, "room_not_found");
    other.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_is_told_and_its_peer_is_gone() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let (a, a_id) = joined(&url, &server::token("kick", "annoying")).await;
    let published = a.publish(true, true).await.unwrap();
    a.wait_connected(T).await.unwrap();
    let _pump = published
        .pump(MediaKind::Video, 0, 10_000, Duration::from_millis(10))
        .unwrap();
    let (b, _) = joined(&url, &server::token("kick", "patient")).await;
    server::eventually(T, "the video track", || {
        !srv.state.rooms.tracks("kick").is_empty()
    })
    .await;
    let video = srv.state.rooms.tracks("kick")[0].id.clone();
    b.wait_for_packets(&video, 5, T).await.unwrap();
    assert_eq!(srv.state.media().peer_count(), 2);

    let r = api
        .call(
            Method::DELETE,
            "/api/rooms/kick/participants/annoying",
            &admin("kick"),
            None,
        )
        .await;
    assert_eq!(r.ok(200)["id"], a_id.as_str());
    let leave = a.next_message_of_type("leave", T).await.unwrap();
    assert_eq!(leave["reason"], "removed");
    a.wait_closed(T).await.unwrap();
    let left = b
        .next_message(
            |m| m["type"] == "participant_left" && m["participant"] == a_id.as_str(),
            T,
        )
        .await
        .unwrap();
    assert_eq!(left["reason"], "removed");
    b.next_message(
        |m| m["type"] == "track_unpublished" && m["track"] == video.as_str(),
        T,
    )
    .await
    .unwrap();
    server::eventually(T, "the removed participant's peer closes", || {
        srv.state.media().peer_count() == 1
    })
    .await;
    let list = api.get("/api/rooms/kick/participants", &basic()).await;
    let list = list.ok(200)["participants"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["identity"], "patient");
    assert!(srv.state.rooms.tracks("kick").is_empty());
    b.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_mute_stops_forwarding_and_tells_everyone() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let (a, a_id) = joined(&url, &server::token("hush", "loud")).await;
    let published = a.publish(false, true).await.unwrap();
    a.wait_connected(T).await.unwrap();
    let _pump = published
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    let (b, _) = joined(&url, &server::viewer_token("hush", "ear")).await;
    server::eventually(T, "the video track", || {
        !srv.state.rooms.tracks("hush").is_empty()
    })
    .await;
    let video = srv.state.rooms.tracks("hush")[0].id.clone();
    b.wait_for_packets(&video, 10, T).await.unwrap();

    let path = format!("/api/rooms/hush/participants/loud/tracks/{video}");
    let r = api
        .call(Method::PATCH, &path, &basic(), Some(json!({"muted": true})))
        .await;
    let track = r.ok(200);
    assert_eq!(
        (
            track["id"].as_str(),
            track["muted"].as_bool(),
            track["kind"].as_str()
        ),
        (Some(video.as_str()), Some(true), Some("video"))
    );
    for c in [&a, &b] {
        let m = c.next_message_of_type("track_muted", T).await.unwrap();
        assert_eq!(
            (
                m["track"].as_str(),
                m["participant"].as_str(),
                m["muted"].as_bool()
            ),
            (Some(video.as_str()), Some(a_id.as_str()), Some(true))
        );
    }
    // The publisher keeps sending; nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.received(&video).len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.received(&video).len(), before, "forwarding stopped");
    // The publisher may not unmute an admin-muted track.
    a.send_json(&json!({"type": "mute", "track": video, "muted": false, "ref": 7}))
        .await
        .unwrap();
    let e = a.next_message_of_type("error", T).await.unwrap();
    assert_eq!(e["code"], "permission_denied");

    // Unmute: forwarding resumes.
    let r = api
        .call(
            Method::PATCH,
            &path,
            &basic(),
            Some(json!({"muted": false})),
        )
        .await;
    assert_eq!(r.ok(200)["muted"], false);
    let m = b.next_message_of_type("track_muted", T).await.unwrap();
    assert_eq!(m["muted"], false);
    b.wait_for_packets(&video, before + 10, T).await.unwrap();

    // Another identity's track is not found under this one.
    let (c, _) = joined(&url, &server::token("hush", "other")).await;
    api.call(
        Method::PATCH,
        &format!("/api/rooms/hush/participants/other/tracks/{video}"),
        &basic(),
        Some(json!({"muted": true})),
    )
    .await
    .error(404, "track_not_found");
    c.close().await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_can_publish_unpublishes_live() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let url = srv.ws_url();
    let (a, a_id) = joined(&url, &server::token("perm", "speaker")).await;
    let published = a.publish(true, true).await.unwrap();
    a.wait_connected(T).await.unwrap();
    let _audio = published
        .pump(MediaKind::Audio, 0, 100_000, Duration::from_millis(20))
        .unwrap();
    let _video = published
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    let (b, _) = joined(&url, &server::token("perm", "listener")).await;
    server::eventually(T, "two tracks", || {
        srv.state.rooms.tracks("perm").len() == 2
    })
    .await;
    let tracks: Vec<String> = srv
        .state
        .rooms
        .tracks("perm")
        .into_iter()
        .map(|t| t.id)
        .collect();
    for t in &tracks {
        b.wait_for_packets(t, 3, T).await.unwrap();
    }

    let r = api
        .call(
            Method::PATCH,
            "/api/rooms/perm/participants/speaker",
            &admin("perm"),
            Some(json!({"permissions": {"can_publish": false}})),
        )
        .await;
    let p = r.ok(200);
    assert_eq!(
        p["permissions"],
        json!({"can_publish": false, "can_subscribe": true, "can_publish_data": true})
    );
    assert_eq!(p["tracks"], json!([]));
    let m = a
        .next_message_of_type("permissions_changed", T)
        .await
        .unwrap();
    assert_eq!(m["permissions"]["can_publish"], false);
    for t in &tracks {
        b.next_message(
            |m| m["type"] == "track_unpublished" && m["track"] == t.as_str(),
            T,
        )
        .await
        .unwrap();
    }
    assert!(srv.state.rooms.tracks("perm").is_empty());
    let got = api
        .get("/api/rooms/perm/participants/speaker", &basic())
        .await;
    assert_eq!(got.ok(200)["permissions"]["can_publish"], false);
    assert_eq!(got.body["id"], a_id.as_str());

    // An empty patch changes nothing.
    let r = api
        .call(
            Method::PATCH,
            "/api/rooms/perm/participants/speaker",
            &basic(),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.ok(200)["permissions"]["can_publish"], false);
    a.close().await.unwrap();
    b.close().await.unwrap();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let doc = api
        .get("/api/openapi.json", &Cred::None)
        .await
        .ok(200)
        .clone();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (path, method) in [
        ("/api/rooms", "get"),
        ("/api/rooms", "post"),
        ("/api/rooms/{room}", "get"),
        ("/api/rooms/{room}", "delete"),
        ("/api/rooms/{room}/participants", "get"),
        ("/api/rooms/{room}/participants/{identity}", "get"),
        ("/api/rooms/{room}/participants/{identity}", "delete"),
        ("/api/rooms/{room}/participants/{identity}", "patch"),
        (
            "/api/rooms/{room}/participants/{identity}/tracks/{track}",
            "patch",
        ),
        ("/api/rooms/{room}/data", "post"),
        ("/api/tokens", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} documented");
        for status in ["401", "403"] {
            assert_eq!(
                op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
        assert_eq!(op["security"].as_array().map(Vec::len), Some(2));
    }
    srv.shutdown().await;
}

/// The Basic scheme is case-insensitive and takes standard base64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_parsed_like_rfc_7617() {
    let srv = server::start().await;
    let api = Api::new(&srv);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        server::KEY,
        server::SECRET
    ));
    api.get("/api/rooms", &Cred::Raw(format!("basic {b64}")))
        .await
        .ok(200);
    let no_colon = base64::engine::general_purpose::STANDARD.encode(server::KEY);
    api.get("/api/rooms", &Cred::Raw(format!("Basic {no_colon}")))
        .await
        .error(401, "unauthorized");
    srv.shutdown().await;
}
