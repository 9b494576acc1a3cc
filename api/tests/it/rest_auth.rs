//! Authentication of the room REST API (`/api/...`): every endpoint refuses missing, wrong,
//! expired and insufficient credentials; Basic credentials as RFC 7617 has them; tokens
//! minted through the API; and the OpenAPI document's description of the security schemes.

use crate::server;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use cascade_api::auth::{self, Grants};
use reqwest::Method;
use serde_json::{Value, json};
use server::clients::{close_and_shutdown, joined};
use server::rest::{Cred, admin, basic, basic_b64, serve};

/// Every endpoint with a body that passes validation, for the auth checks.
#[rustfmt::skip]
fn endpoints(room: &str) -> Vec<(Method, String, Option<Value>)> {
    let participant = format!("/api/rooms/{room}/participants/x");
    let permissions = json!({"permissions": {"can_publish": false}});
    vec![
        (Method::GET, format!("/api/rooms/{room}"), None),
        (Method::DELETE, format!("/api/rooms/{room}"), None),
        (Method::POST, "/api/rooms".into(), Some(json!({"name": room}))),
        (Method::GET, format!("/api/rooms/{room}/participants"), None),
        (Method::GET, participant.clone(), None),
        (Method::DELETE, participant.clone(), None),
        (Method::PATCH, participant.clone(), Some(permissions)),
        (Method::PATCH, format!("{participant}/tracks/TR_x"), Some(json!({"muted": true}))),
        (Method::POST, format!("/api/rooms/{room}/data"), Some(json!({"payload": 1}))),
        (Method::POST, "/api/tokens".into(), Some(json!({"room": room, "identity": "x"}))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_missing_wrong_expired_and_insufficient_credentials() {
    let (srv, api) = serve().await;
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
    let expired = server::expired_token_with("", "admin", |g| g.room_admin = true);
    let unauthorized = [
        Cred::None,
        Cred::Bearer(forged),
        Cred::Bearer("not.a.token".into()),
        Cred::Basic(server::KEY.into(), "wrong-secret".into()),
        Cred::Basic("wrongkey".into(), server::SECRET.into()),
        Cred::Raw("Basic %%%".into()),
        Cred::Raw("Digest whatever".into()),
    ];
    let mut refusals: Vec<(Cred, u16, &str)> = unauthorized
        .into_iter()
        .map(|c| (c, 401, "unauthorized"))
        .collect();
    refusals.push((Cred::Bearer(expired), 401, "token_expired"));
    // A participant's token without room_admin.
    let user = Cred::Bearer(server::token("r1", "user"));
    refusals.push((user, 403, "permission_denied"));
    let mut all = endpoints("r1");
    all.push((Method::GET, "/api/rooms".into(), None));
    for (method, path, body) in &all {
        for (cred, status, code) in &refusals {
            let r = api.call(method.clone(), path, cred, body.clone()).await;
            r.error(*status, code);
            if *code == "unauthorized" {
                assert!(
                    r.headers.contains_key("www-authenticate"),
                    "{method} {path}"
                );
            }
        }
    }
    // An admin token for room r2 administers nothing of room r1, and may not mint an admin
    // token for every room.
    let everywhere = json!({"room": "", "identity": "x", "grants": {"room_admin": true}});
    let mint_everywhere = (Method::POST, "/api/tokens".to_owned(), Some(everywhere));
    for (method, path, body) in endpoints("r1").into_iter().chain([mint_everywhere]) {
        let r = api.call(method.clone(), &path, &admin("r2"), body).await;
        r.error(403, "permission_denied");
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_minted_for_participants_and_admins() {
    let (srv, api) = serve().await;

    let viewer = json!({"room": "mint", "identity": "viewer", "ttl_secs": 120,
                        "grants": {"can_publish": false}});
    let r = api
        .call(Method::POST, "/api/tokens", &basic(), Some(viewer))
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
    let (c, _) = joined(&srv.ws_url(), token).await;
    let p = api
        .get("/api/rooms/mint/participants/viewer", &basic())
        .await;
    assert_eq!(p.ok(200)["permissions"]["can_publish"], false);

    // A room-scoped admin mints for its room; a full admin mints an admin token for every
    // room, which then works on the API.
    let x = json!({"room": "mint", "identity": "x"});
    api.call(Method::POST, "/api/tokens", &admin("mint"), Some(x))
        .await
        .ok(200);
    let ops = json!({"room": "", "identity": "ops", "grants": {"room_admin": true}});
    let r = api
        .call(Method::POST, "/api/tokens", &basic(), Some(ops))
        .await;
    let global = r.ok(200)["token"].as_str().unwrap().to_owned();
    api.get("/api/rooms/mint", &Cred::Bearer(global))
        .await
        .ok(200);

    #[rustfmt::skip]
    let bad = [
        (json!({"room": "", "identity": "x"}), "invalid_name"),
        (json!({"room": "r", "identity": ""}), "invalid_name"),
        (json!({"room": "r", "identity": "x\u{1}"}), "invalid_name"),
        (json!({"room": "r".repeat(129), "identity": "x"}), "invalid_name"),
        (json!({"room": "r", "identity": "x", "ttl_secs": 0}), "invalid_request"),
        (json!({"room": "r", "identity": "x", "ttl_secs": 2_592_001}), "invalid_request"),
        (json!({"room": "r", "identity": "x", "grants": {"can_fly": true}}), "invalid_request"),
        (json!({"room": "r"}), "invalid_request"),
    ];
    for (body, code) in bad {
        api.call(Method::POST, "/api/tokens", &basic(), Some(body))
            .await
            .error(400, code);
    }
    close_and_shutdown(srv, &[&c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_endpoint() {
    let (srv, api) = serve().await;
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
    let participant = "/api/rooms/{room}/participants/{identity}";
    let track = "/api/rooms/{room}/participants/{identity}/tracks/{track}";
    for (path, method) in [
        ("/api/rooms", "get"),
        ("/api/rooms", "post"),
        ("/api/rooms/{room}", "get"),
        ("/api/rooms/{room}", "delete"),
        ("/api/rooms/{room}/participants", "get"),
        (participant, "get"),
        (participant, "delete"),
        (participant, "patch"),
        (track, "patch"),
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
    let (srv, api) = serve().await;
    let b64 = basic_b64();
    api.get("/api/rooms", &Cred::Raw(format!("basic {b64}")))
        .await
        .ok(200);
    let no_colon = base64::engine::general_purpose::STANDARD.encode(server::KEY);
    api.get("/api/rooms", &Cred::Raw(format!("Basic {no_colon}")))
        .await
        .error(401, "unauthorized");
    srv.shutdown().await;
}
