//! Participants through the REST API (`/api/rooms/{room}/participants...`): listing with
//! pagination and lookup with every error class, and kicks, mutes and permission changes
//! taking effect on connected clients.

use crate::server;

use std::time::Duration;

use cascade_api::server::ServerHandle;
use cascade_testkit::{MediaKind, TestClient};
use reqwest::Method;
use serde_json::json;
use server::clients::{
    AV, Publisher, VIDEO, assert_muted, assert_told_to_leave, close_and_shutdown, joined, left,
    publisher, track_ids, unpublished,
};
use server::rest::{admin, basic, serve};

const T: Duration = Duration::from_secs(15);

/// A speaker in `room` that published `published` and streams `streamed`, a listener that
/// joined with `listener` and received `packets` packets of each streamed track, and those
/// tracks.
async fn listened(
    srv: &ServerHandle,
    (room, speaker): (&str, &str),
    (published, streamed): (&[MediaKind], &[MediaKind]),
    (listener, packets): (String, usize),
) -> (Publisher, TestClient, Vec<String>) {
    let url = srv.ws_url();
    let a = publisher(&url, &server::token(room, speaker), published, streamed, T).await;
    let (b, _) = joined(&url, &listener).await;
    let tracks = track_ids(srv, room, streamed.len(), T).await;
    for t in &tracks {
        b.wait_for_packets(t, packets, T).await.unwrap();
    }
    (a, b, tracks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_are_listed_paginated_and_looked_up() {
    let (srv, api) = serve().await;
    let url = srv.ws_url();
    let mut clients = Vec::new();
    for name in ["dan", "amy", "cid", "bea", "eve"] {
        clients.push(joined(&url, &server::token("people", name)).await);
    }
    let mut seen = Vec::new();
    let pages = api
        .pages("/api/rooms/people/participants?limit=2", &basic())
        .await;
    for page in &pages {
        for p in page["participants"].as_array().unwrap() {
            assert_eq!(p["kind"], "websocket");
            assert!(p["id"].as_str().unwrap().starts_with("PA_"));
            seen.push(p["identity"].as_str().unwrap().to_owned());
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

    let people = "/api/rooms/people/participants";
    let (zed, cid) = (format!("{people}/zed"), format!("{people}/cid"));
    let no_publish = json!({"permissions": {"can_publish": false}});
    let mute = json!({"muted": true});
    #[rustfmt::skip]
    let refused = [
        (Method::GET, zed.clone(), None, 404, "participant_not_found"),
        (Method::GET, "/api/rooms/ghost/participants".into(), None, 404, "room_not_found"),
        (Method::GET, "/api/rooms/ghost/participants/cid".into(), None, 404, "room_not_found"),
        (Method::DELETE, zed.clone(), None, 404, "participant_not_found"),
        (Method::PATCH, zed, Some(no_publish), 404, "participant_not_found"),
        (Method::PATCH, format!("{cid}/tracks/TR_nope"), Some(mute), 404, "track_not_found"),
        (Method::PATCH, cid.clone(), Some(json!({"permissions": {"can_publish": "no"}})), 400, "invalid_request"),
        (Method::PATCH, cid.clone(), Some(json!({"permissions": {"can_fly": true}})), 400, "invalid_request"),
        (Method::PATCH, cid.clone(), Some(json!({"name": "x"})), 400, "invalid_request"),
        (Method::PATCH, cid.clone(), Some(json!([1])), 400, "invalid_request"),
        (Method::PATCH, format!("{cid}/tracks/TR_x"), Some(json!({"muted": "yes"})), 400, "invalid_request"),
    ];
    for (method, path, body, status, code) in refused {
        api.call(method, &path, &basic(), body)
            .await
            .error(status, code);
    }
    let clients: Vec<&TestClient> = clients.iter().map(|(c, _)| c).collect();
    close_and_shutdown(srv, &clients).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_participant_is_told_and_its_peer_is_gone() {
    let (srv, api) = serve().await;
    let patient = (server::token("kick", "patient"), 5);
    let (a, b, tracks) = listened(&srv, ("kick", "annoying"), (AV, VIDEO), patient).await;
    assert_eq!(srv.state.media().peer_count(), 2);
    let video = tracks[0].clone();

    let r = api
        .call(
            Method::DELETE,
            "/api/rooms/kick/participants/annoying",
            &admin("kick"),
            None,
        )
        .await;
    assert_eq!(r.ok(200)["id"], a.id.as_str());
    assert_told_to_leave(&a.client, "removed", T).await;
    a.client.wait_closed(T).await.unwrap();
    assert_eq!(left(&b, &a.id, T).await["reason"], "removed");
    unpublished(&b, &video, T).await;
    server::eventually(T, "the removed participant's peer closes", || {
        srv.state.media().peer_count() == 1
    })
    .await;
    let list = api.get("/api/rooms/kick/participants", &basic()).await;
    let list = list.ok(200)["participants"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["identity"], "patient");
    assert!(srv.state.rooms.tracks("kick").is_empty());
    close_and_shutdown(srv, &[&b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_mute_stops_forwarding_and_tells_everyone() {
    let (srv, api) = serve().await;
    let ear = (server::viewer_token("hush", "ear"), 10);
    let (a, b, tracks) = listened(&srv, ("hush", "loud"), (VIDEO, VIDEO), ear).await;
    let video = tracks[0].clone();

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
    for c in [&a.client, &b] {
        assert_muted(c, &video, &a.id, true, T).await;
    }
    // The publisher keeps sending; nothing more arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.received(&video).len();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.received(&video).len(), before, "forwarding stopped");
    // The publisher may not unmute an admin-muted track.
    a.client
        .send_json(&json!({"type": "mute", "track": video, "muted": false, "ref": 7}))
        .await
        .unwrap();
    let e = a.client.next_message_of_type("error", T).await.unwrap();
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
    let (c, _) = joined(&srv.ws_url(), &server::token("hush", "other")).await;
    let other = format!("/api/rooms/hush/participants/other/tracks/{video}");
    api.call(
        Method::PATCH,
        &other,
        &basic(),
        Some(json!({"muted": true})),
    )
    .await
    .error(404, "track_not_found");
    close_and_shutdown(srv, &[&c, &a.client, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_can_publish_unpublishes_live() {
    let (srv, api) = serve().await;
    let listener = (server::token("perm", "listener"), 3);
    let (a, b, tracks) = listened(&srv, ("perm", "speaker"), (AV, AV), listener).await;

    let speaker = "/api/rooms/perm/participants/speaker";
    let revoke = json!({"permissions": {"can_publish": false}});
    let r = api
        .call(Method::PATCH, speaker, &admin("perm"), Some(revoke))
        .await;
    let p = r.ok(200);
    assert_eq!(
        p["permissions"],
        json!({"can_publish": false, "can_subscribe": true, "can_publish_data": true})
    );
    assert_eq!(p["tracks"], json!([]));
    let m = a
        .client
        .next_message_of_type("permissions_changed", T)
        .await
        .unwrap();
    assert_eq!(m["permissions"]["can_publish"], false);
    for t in &tracks {
        unpublished(&b, t, T).await;
    }
    assert!(srv.state.rooms.tracks("perm").is_empty());
    let got = api.get(speaker, &basic()).await;
    assert_eq!(got.ok(200)["permissions"]["can_publish"], false);
    assert_eq!(got.body["id"], a.id.as_str());

    // An empty patch changes nothing.
    let r = api
        .call(Method::PATCH, speaker, &basic(), Some(json!({})))
        .await;
    assert_eq!(r.ok(200)["permissions"]["can_publish"], false);
    close_and_shutdown(srv, &[&a.client, &b]).await;
}
