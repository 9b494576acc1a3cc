//! The name rule (docs/rest.md, Names): one rule for room names and identities, applied to
//! tokens minted, WebSocket joins, WHIP/WHEP and the room API; every accepted name can be
//! administered through the room API; the OpenAPI patterns are the rule. Also which join
//! error a token's claims give.

use crate::server;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade_api::auth::{Claims, Grants};
use cascade_api::config::{DEFAULT_API_KEY, DEFAULT_API_SECRET};
use cascade_signaling::names;
use cascade_testkit::TestClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};
use server::clients::assert_told_to_leave;
use server::rest::{Api, Cred, Res, basic, serve};

const T: Duration = Duration::from_secs(15);

/// Names the rule refuses, with what they test. (`.` and `..` are refused too, but cannot be
/// sent in a URL: clients resolve them as dot segments.)
fn bad_names() -> Vec<(&'static str, String)> {
    vec![
        ("control characters", "evil\u{0}\n\u{1b}[31m".into()),
        ("escape sequence", "\u{1b}[31mred".into()),
        ("10,000 characters", "x".repeat(10_000)),
        ("129 bytes", "é".repeat(64) + "x"),
        ("leading whitespace", " padded".into()),
        ("trailing whitespace", "padded\u{3000}".into()),
        ("C1 control", "a\u{85}b".into()),
    ]
}

/// Names the rule accepts, each of which must survive a round trip through the room API.
fn good_names() -> Vec<String> {
    [
        "café ☕",
        "my room",
        "100%",
        "%41",
        "a/b",
        "a\\b",
        "?x=1&y#z",
        "a+b",
        "...",
        ".hidden",
        "日本語の部屋",
        "x\u{200B}",
    ]
    .into_iter()
    .map(String::from)
    .chain(["x".repeat(128), "é".repeat(64)])
    .collect()
}

/// A token signed with the test secret for any claims, even ones `auth::mint` refuses.
fn forged(room: &str, identity: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims {
        iss: server::KEY.into(),
        sub: identity.into(),
        exp: now + 600,
        nbf: 0,
        iat: now,
        name: None,
        video: Grants::new(room),
    };
    sign(&serde_json::to_value(claims).unwrap())
}

fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(server::SECRET.as_bytes()),
    )
    .unwrap()
}

fn enc(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

/// A room API request with Basic credentials and a JSON body, if any.
async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> Res {
    api.request_json(method, path, &basic(), body).await
}

/// The names of the rooms, as the room API lists them.
async fn rooms(api: &Api) -> Vec<String> {
    let res = call(api, Method::GET, "/api/rooms", None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[track_caller]
fn assert_invalid_name(res: &Res, what: &str) {
    let (status, body) = (res.status, &res.body);
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (400, Some("invalid_name")),
        "{what}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_join_with_a_bad_name_gets_invalid_name_and_creates_no_room() {
    let (srv, api) = serve().await;
    let c = TestClient::connect(&srv.ws_url()).await.unwrap();
    for (what, bad) in bad_names() {
        for (room, identity) in [(bad.as_str(), "alice"), ("fine", bad.as_str())] {
            let err = c.join(&forged(room, identity), true).await.unwrap_err();
            assert_eq!(err.code, "invalid_name", "{what}: {err:?}");
            assert!(!err.message.contains(&bad), "{what}: the name is echoed");
        }
    }
    let err = c.join(&forged("fine", ""), true).await.unwrap_err();
    assert_eq!(err.code, "invalid_name", "empty identity");
    assert_eq!(rooms(&api).await, Vec::<String>::new());
    // The same connection still joins with a good token.
    c.join(&server::token("fine", "alice"), true).await.unwrap();
    assert_eq!(rooms(&api).await, ["fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minting_a_token_with_a_bad_name_is_refused() {
    let (_srv, api) = serve().await;
    let mut bad: Vec<String> = bad_names().into_iter().map(|(_, n)| n).collect();
    bad.extend([".".into(), "..".into()]);
    for name in &bad {
        for body in [
            json!({"room": name, "identity": "alice"}),
            json!({"room": "fine", "identity": name}),
        ] {
            let r = call(&api, Method::POST, "/api/tokens", Some(body)).await;
            assert_invalid_name(&r, name);
        }
    }
    for (body, what) in [
        (
            json!({"room": "", "identity": "alice"}),
            "a participant token naming no room",
        ),
        (json!({"room": "fine", "identity": ""}), "empty identity"),
    ] {
        let r = call(&api, Method::POST, "/api/tokens", Some(body)).await;
        assert_invalid_name(&r, what);
    }

    // The development token endpoint (embedded development secret only).
    let dev = server::start_with(|c| {
        c.api_key = DEFAULT_API_KEY.into();
        c.api_secret = DEFAULT_API_SECRET.into();
    })
    .await;
    let dev_api = Api::new(&dev);
    for name in &bad {
        for query in [
            format!("room={}&identity=alice", enc(name)),
            format!("room=fine&identity={}", enc(name)),
        ] {
            let path = format!("/api/dev/token?{query}");
            let r = dev_api
                .request(Method::GET, &path, &Cred::None, None, None)
                .await;
            assert_invalid_name(&r, &query);
        }
    }

    // The `cascade token` command (a process argument cannot hold NUL).
    for name in bad.iter().filter(|n| !n.contains('\0')) {
        for args in [
            ["--room", name, "--identity", "alice"],
            ["--room", "fine", "--identity", name],
        ] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_cascade"))
                .arg("token")
                .args(args)
                .env("CASCADE_API_KEY", server::KEY)
                .env("CASCADE_API_SECRET", server::SECRET)
                .output()
                .unwrap();
            assert!(!out.status.success(), "minted for {args:?}");
            assert!(out.stdout.is_empty());
        }
    }
}

/// A minimal SDP offer: enough to reach the join, which refuses the name before the offer is
/// applied.
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n\
    a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_with_a_bad_name_get_invalid_name() {
    let (_srv, api) = serve().await;
    let api = &api;
    let post = |path: String, token: String| async move {
        let offer = Some(OFFER.as_bytes().to_vec());
        let token = Cred::Bearer(token);
        api.request(Method::POST, &path, &token, Some("application/sdp"), offer)
            .await
    };
    for (what, bad) in bad_names() {
        for endpoint in ["whip", "whep"] {
            // In the path.
            let r = post(format!("/{endpoint}/{}", enc(&bad)), forged(&bad, "p")).await;
            assert_invalid_name(&r, &format!("{endpoint} room {what}"));
            // As the token's identity.
            let r = post(format!("/{endpoint}/fine"), forged("fine", &bad)).await;
            assert_invalid_name(&r, &format!("{endpoint} identity {what}"));
        }
        // The publisher a WHEP viewer follows.
        let r = post(
            format!("/whep/fine?participant={}", enc(&bad)),
            forged("fine", "v"),
        )
        .await;
        assert_invalid_name(&r, &format!("whep participant {what}"));
    }
    assert_eq!(rooms(api).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_name_can_be_listed_inspected_kicked_and_deleted() {
    let (srv, api) = serve().await;
    for name in good_names() {
        assert_eq!(names::check(&name), Ok(()), "{name:?}");
        let c = TestClient::connect(&srv.ws_url()).await.unwrap();
        let joined = c.join(&server::token(&name, &name), false).await.unwrap();
        assert_eq!(joined["room"], name.as_str());
        assert_eq!(joined["participant"]["identity"], name.as_str());
        assert!(rooms(&api).await.contains(&name), "{name:?} listed");
        let room = format!("/api/rooms/{}", enc(&name));
        let who = format!("{room}/participants/{}", enc(&name));
        let Res { status, body, .. } = call(&api, Method::GET, &room, None).await;
        assert_eq!((status.as_u16(), &body["name"]), (200, &json!(name)));
        let Res { status, body, .. } =
            call(&api, Method::GET, &format!("{room}/participants"), None).await;
        assert_eq!(status, 200, "{name:?}: {body}");
        assert_eq!(body["participants"][0]["identity"], name.as_str());
        let Res { status, body, .. } = call(
            &api,
            Method::POST,
            &format!("{room}/data"),
            Some(json!({"payload": 1, "identities": [name]})),
        )
        .await;
        assert_eq!((status.as_u16(), &body["recipients"]), (200, &json!(1)));
        let Res { status, body, .. } = call(&api, Method::GET, &who, None).await;
        assert_eq!((status.as_u16(), &body["identity"]), (200, &json!(name)));
        let Res { status, body, .. } = call(&api, Method::DELETE, &who, None).await;
        assert_eq!(status, 200, "{name:?} kicked: {body}");
        assert_told_to_leave(&c, "removed", T).await;
        let Res { status, body, .. } = call(&api, Method::DELETE, &room, None).await;
        assert_eq!(status, 200, "{name:?} deleted: {body}");
        assert!(!rooms(&api).await.contains(&name));
        // The room API creates rooms under the same rule, and mints tokens for them.
        let Res { status, .. } = call(
            &api,
            Method::POST,
            "/api/rooms",
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(status, 201, "{name:?} created");
        let Res { status, body, .. } = call(
            &api,
            Method::POST,
            "/api/tokens",
            Some(json!({"room": name, "identity": name})),
        )
        .await;
        assert_eq!(status, 200, "{name:?} token: {body}");
        let Res { status, .. } = call(&api, Method::DELETE, &room, None).await;
        assert_eq!(status, 200);
    }
}

/// Every room name, identity and track id in the OpenAPI document carries the rule's pattern
/// (so schemathesis generates what the server accepts); an empty room is allowed only where
/// the server takes it (an admin token for every room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_patterns_are_the_name_rule() {
    let srv = server::start().await;
    let doc: Value = reqwest::get(format!("http://{}/api/openapi.json", srv.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if ["room", "identity", "participant", "track"].contains(&name) {
                    assert_eq!(
                        p["schema"]["pattern"].as_str(),
                        Some(names::PATTERN),
                        "{method} {path} {name}"
                    );
                    assert_eq!(p["schema"]["maxLength"], 128, "{method} {path} {name}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} parameters");
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [("CreateRoom", "name"), ("CreateToken", "identity")] {
        let s = &schemas[schema]["properties"][field];
        assert_eq!(
            s["pattern"].as_str(),
            Some(names::PATTERN),
            "{schema}.{field}"
        );
    }
    assert_eq!(
        schemas["CreateToken"]["properties"]["room"]["pattern"].as_str(),
        Some(format!("^$|{}", names::PATTERN).as_str())
    );
    let identities = &schemas["SendData"]["properties"]["identities"];
    // utoipa wraps an inline schema that has a description in a one-item `oneOf`.
    let identities = identities.get("oneOf").map_or(identities, |o| &o[0]);
    assert_eq!(identities["maxItems"], 1000);
    assert_eq!(
        identities["items"]["pattern"].as_str(),
        Some(names::PATTERN),
        "{identities}"
    );
}

/// Which error `join` gives for a token's claims (docs/protocol.md §6): a token missing a
/// required claim is malformed (`unauthorized`); a well-formed one that does not grant joining
/// (an empty room, `room_join: false`) is `permission_denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_claims_map_to_join_errors() {
    let srv = server::start().await;
    let c = TestClient::connect(&srv.ws_url()).await.unwrap();
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let full = json!({"iss": server::KEY, "sub": "alice", "exp": exp, "video": {"room": "r"}});
    let mut cases = Vec::new();
    for claim in ["iss", "sub", "exp", "video"] {
        let mut claims = full.clone();
        claims.as_object_mut().unwrap().remove(claim);
        cases.push((format!("without {claim}"), claims, "unauthorized"));
    }
    let mut claims = full.clone();
    claims["video"] = json!({"can_publish": true});
    cases.push(("without video.room".into(), claims, "unauthorized"));
    for (what, video) in [
        ("empty room", json!({"room": ""})),
        (
            "admin of every room",
            json!({"room": "", "room_admin": true}),
        ),
        ("room_join false", json!({"room": "r", "room_join": false})),
    ] {
        let mut claims = full.clone();
        claims["video"] = video;
        cases.push((what.into(), claims, "permission_denied"));
    }
    let mut claims = full.clone();
    claims["exp"] = json!(exp - 3600);
    cases.push(("expired".into(), claims, "token_expired"));
    for (what, claims, code) in cases {
        let err = c.join(&sign(&claims), true).await.unwrap_err();
        assert_eq!(err.code, code, "{what}: {err:?}");
    }
    c.join(&sign(&full), true).await.unwrap();
}
