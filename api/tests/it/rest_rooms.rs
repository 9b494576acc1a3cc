//! Rooms through the REST API (`/api/rooms...`): creation, listing with pagination, lookup and
//! deletion with every error class; deleting a room disconnects its participants; data
//! messages sent to a room or to named identities.

use crate::server;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use server::clients::{assert_data, assert_told_to_leave, close_and_shutdown, joined};
use server::rest::{admin, basic, serve};

const T: Duration = Duration::from_secs(15);
const JSON: &str = "application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_created_listed_paginated_and_deleted() {
    let (srv, api) = serve().await;
    let b = basic();

    let alpha = json!({"name": "alpha", "max_participants": 3, "empty_timeout_secs": 120});
    let r = api.call(Method::POST, "/api/rooms", &b, Some(alpha)).await;
    let room = r.ok(201).clone();
    assert_eq!(room["name"], "alpha");
    assert_eq!(room["max_participants"], 3);
    assert_eq!(room["empty_timeout_secs"], 120);
    assert_eq!(room["num_participants"], 0);
    assert!(room["created_at"].as_u64().unwrap() > 1_600_000_000);
    // Again: 200 and unchanged.
    let again = json!({"name": "alpha", "max_participants": 9});
    let r = api.call(Method::POST, "/api/rooms", &b, Some(again)).await;
    assert_eq!(r.ok(200)["max_participants"], 3);
    assert_eq!(
        api.get("/api/rooms/alpha", &b).await.ok(200)["name"],
        "alpha"
    );
    // A room-scoped admin token works on its own room.
    api.get("/api/rooms/alpha", &admin("alpha")).await.ok(200);

    // Bad bodies.
    #[rustfmt::skip]
    let bad_bodies: [(&str, &[u8], u16, &str); 9] = [
        (JSON, b"{", 400, "invalid_request"),
        (JSON, br#"{"nam": "x"}"#, 400, "invalid_request"),
        (JSON, br#"{"name": 5}"#, 400, "invalid_request"),
        (JSON, br#"{"name": "x", "extra": 1}"#, 400, "invalid_request"),
        (JSON, br#"{"name": ""}"#, 400, "invalid_name"),
        (JSON, br#"{"name": "a\nb"}"#, 400, "invalid_name"),
        (JSON, br#"{"name": "x", "empty_timeout_secs": 99999999}"#, 400, "invalid_request"),
        (JSON, br#"{"name": "x", "max_participants": -1}"#, 400, "invalid_request"),
        ("text/plain", br#"{"name": "x"}"#, 415, "unsupported_media_type"),
    ];
    for (ct, body, status, code) in bad_bodies {
        let res = api.request(
            Method::POST,
            "/api/rooms",
            &b,
            Some(ct),
            Some(body.to_vec()),
        );
        res.await.assert_json().error(status, code);
    }
    let long = json!({"name": "x".repeat(129)});
    api.call(Method::POST, "/api/rooms", &b, Some(long))
        .await
        .error(400, "invalid_name");
    let res = api
        .request(Method::POST, "/api/rooms", &b, None, None)
        .await;
    res.assert_json().error(415, "unsupported_media_type");
    let huge = json!({"name": "x", "pad": "y".repeat(100_000)});
    api.call(Method::POST, "/api/rooms", &b, Some(huge))
        .await
        .error(413, "payload_too_large");

    // Pagination: 7 rooms in pages of 3.
    for i in 0..6 {
        let room = json!({"name": format!("room-{i}")});
        api.call(Method::POST, "/api/rooms", &b, Some(room))
            .await
            .ok(201);
    }
    let pages = api.pages("/api/rooms?limit=3", &b).await;
    let mut names = Vec::new();
    for page in &pages {
        let rooms = page["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 3);
        names.extend(rooms.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
    }
    assert_eq!(pages.len(), 3);
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
async fn data_messages_reach_the_room_or_the_named_identities() {
    let (srv, api) = serve().await;
    let (ann, _) = joined(&srv.ws_url(), &server::token("news", "ann")).await;
    let (bob, _) = joined(&srv.ws_url(), &server::token("news", "bob")).await;
    let news = "/api/rooms/news/data";

    let payload = json!({"notice": "hello", "n": [1, 2]});
    let all = json!({"payload": payload});
    let r = api.call(Method::POST, news, &basic(), Some(all)).await;
    assert_eq!(r.ok(200)["recipients"], 2);
    for c in [&ann, &bob] {
        assert_data(c, ("server", "server"), &payload, T).await;
    }
    let to_bob = json!({"payload": "psst", "identities": ["bob", "nobody"]});
    let r = api
        .call(Method::POST, news, &admin("news"), Some(to_bob))
        .await;
    assert_eq!(r.ok(200)["recipients"], 1);
    let m = bob.next_message_of_type("data", T).await.unwrap();
    assert_eq!(m["payload"], "psst");
    ann.expect_no_message(|m| m["type"] == "data", Duration::from_millis(300))
        .await
        .unwrap();

    #[rustfmt::skip]
    let refused = [
        ("/api/rooms/ghost/data", json!({"payload": 1}), 404, "room_not_found"),
        (news, json!({}), 400, "invalid_request"),
        (news, json!({"payload": 1, "identities": "bob"}), 400, "invalid_request"),
        (news, json!({"payload": 1, "identities": ["a\u{0}"]}), 400, "invalid_name"),
    ];
    for (path, body, status, code) in refused {
        api.call(Method::POST, path, &basic(), Some(body))
            .await
            .error(status, code);
    }
    close_and_shutdown(srv, &[&ann, &bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_room_disconnects_everyone() {
    let (srv, api) = serve().await;
    let (a, _) = joined(&srv.ws_url(), &server::token("doomed", "a")).await;
    let (b, _) = joined(&srv.ws_url(), &server::token("doomed", "b")).await;
    let (other, _) = joined(&srv.ws_url(), &server::token("safe", "c")).await;

    let r = api
        .call(Method::DELETE, "/api/rooms/doomed", &basic(), None)
        .await;
    assert_eq!(r.ok(200)["num_participants"], 2);
    for c in [&a, &b] {
        assert_told_to_leave(c, "room_deleted", T).await;
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
    close_and_shutdown(srv, &[&other]).await;
}
