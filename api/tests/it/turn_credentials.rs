//! Time-limited TURN credentials for an external TURN server: a server with `turn_secret` and
//! `turn_urls` hands each WebSocket participant (`joined.ice_servers`) and each WHIP/WHEP
//! session (`Link` headers of the 201) a username and credential minted for its identity, which
//! verify with the secret and expire after `turn_credential_ttl`; without those options nothing
//! is minted. With the embedded TURN server on too, its URLs come first, with the same credential.

use crate::server;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cascade_api::config::Config;
use cascade_api::turn_credentials::verify;
use cascade_testkit::TestClient;
use reqwest::StatusCode;
use serde_json::{Value, json};
use server::whip::{HttpPeer, RTCRtpTransceiverDirection, SDP, post};
use server::{token, viewer_token};

const TURN_SECRET: &str = "shared-with-coturn";
const STUN: &str = "stun:stun.example:3478";
const TURN_URLS: [&str; 2] = [
    "turn:turn.example:3478?transport=udp",
    "turns:turn.example:5349",
];
/// A WHEP viewer's identity: beyond ASCII, with quotes.
const VIEWER: &str = "zoë \"v\"";
const TTL: Duration = Duration::from_secs(2 * 3600);

/// Configures the external TURN server (and one plain STUN server).
fn with_turn(c: &mut Config) {
    c.ice_servers = vec![STUN.into()];
    c.turn_secret = Some(TURN_SECRET.into());
    c.turn_urls = TURN_URLS.map(String::from).into();
    c.turn_credential_ttl = TTL;
}

/// Checks a minted username and credential: they verify with the secret, name `identity`, and
/// expire `TTL` from now (within a few seconds).
fn assert_minted(username: &str, credential: &str, identity: &str) {
    let now = SystemTime::now();
    assert_eq!(
        verify(TURN_SECRET.as_bytes(), username, credential, now),
        Ok(identity)
    );
    assert!(username.ends_with(&format!(":{identity}")), "{username}");
    let expiry: u64 = username.split_once(':').unwrap().0.parse().unwrap();
    let expected = (now + TTL).duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(
        expiry.abs_diff(expected) <= 5,
        "expiry {expiry}, expected about {expected}"
    );
    assert!(verify(TURN_SECRET.as_bytes(), username, credential, now + TTL).is_err());
    assert!(verify(b"another-secret", username, credential, now).is_err());
}

/// The `ice_servers` of the `joined` message of `identity` in `room`.
async fn joined_ice_servers(url: &str, room: &str, identity: &str) -> Value {
    let c = TestClient::connect(url).await.unwrap();
    let joined = c.join(&token(room, identity), false).await.unwrap();
    c.close().await.unwrap();
    joined["ice_servers"].clone()
}

/// One parsed `Link` header: its URL and its parameters (quoted values unquoted and
/// unescaped; the tests' values contain no `; `).
#[derive(Debug, PartialEq)]
struct Link {
    url: String,
    params: BTreeMap<String, String>,
}

fn parse_link(value: &str) -> Link {
    let mut parts = value.split("; ");
    let url = parts.next().unwrap();
    let url = url.strip_prefix('<').unwrap().strip_suffix('>').unwrap();
    let params = parts
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_owned(), unquote(v))
        })
        .collect();
    Link {
        url: url.to_owned(),
        params,
    }
}

/// The value of a quoted string (`"a\"b"` -> `a"b`).
fn unquote(quoted: &str) -> String {
    let inner = quoted.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        value.push(if c == '\\' { chars.next().unwrap() } else { c });
    }
    value
}

/// Creates a WHIP (`Sendonly`) or WHEP (`Recvonly`) session at `base` + `path`; returns the
/// `Link` headers of the 201.
async fn links(base: &str, path: &str, token: &str, d: RTCRtpTransceiverDirection) -> Vec<Link> {
    let peer = HttpPeer::new(d).await.unwrap();
    let offer = peer.offer(false).await.unwrap();
    let res = post(&format!("{base}{path}"), Some(token), SDP, offer).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{path}");
    res.headers()
        .get_all("link")
        .iter()
        .map(|v| parse_link(std::str::from_utf8(v.as_bytes()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_join_gets_turn_credentials_minted_for_its_identity() {
    let srv = server::start_with(with_turn).await;
    for identity in ["alice", "team:bob"] {
        let servers = joined_ice_servers(&srv.ws_url(), "turn", identity).await;
        let servers = servers.as_array().unwrap();
        assert_eq!(servers.len(), 2, "{servers:?}");
        assert_eq!(
            servers[0],
            json!({"urls": [STUN]}),
            "plain servers unchanged"
        );
        assert_eq!(servers[1]["urls"], json!(TURN_URLS));
        let username = servers[1]["username"].as_str().unwrap();
        let credential = servers[1]["credential"].as_str().unwrap();
        assert_minted(username, credential, identity);
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_links_carry_turn_credentials() {
    let srv = server::start_with(with_turn).await;
    let base = format!("http://{}", srv.http_addr);
    let cases = [
        (
            "/whip/live",
            token("live", "encoder"),
            "encoder",
            RTCRtpTransceiverDirection::Sendonly,
        ),
        // An identity beyond ASCII, with a quote: UTF-8 in an escaped quoted string.
        (
            "/whep/live",
            viewer_token("live", VIEWER),
            VIEWER,
            RTCRtpTransceiverDirection::Recvonly,
        ),
    ];
    for (path, token, identity, direction) in cases {
        let links = links(&base, path, &token, direction).await;
        assert_eq!(links.len(), 3, "{path}: {links:?}");
        assert_eq!(links[0].url, STUN);
        assert_eq!(
            links[0].params,
            BTreeMap::from([("rel".into(), "ice-server".into())]),
            "{path}: plain servers carry no credentials"
        );
        for (link, url) in links[1..].iter().zip(TURN_URLS) {
            assert_eq!(link.url, url, "{path}");
            let param = |k: &str| link.params.get(k).map(String::as_str);
            assert_eq!(param("rel"), Some("ice-server"), "{path}");
            assert_eq!(param("credential-type"), Some("password"), "{path}");
            assert_minted(
                param("username").unwrap(),
                param("credential").unwrap(),
                identity,
            );
        }
        assert_eq!(
            links[1].params, links[2].params,
            "one credential per session"
        );
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_turn_secret_no_credentials_are_minted() {
    let srv =
        server::start_with(|c| c.ice_servers = vec![STUN.into(), "turn:plain.example".into()])
            .await;
    let servers = joined_ice_servers(&srv.ws_url(), "plain", "alice").await;
    assert_eq!(
        servers,
        json!([{"urls": [STUN]}, {"urls": ["turn:plain.example"]}])
    );
    let base = format!("http://{}", srv.http_addr);
    let t = token("plain", "encoder");
    let links = links(
        &base,
        "/whip/plain",
        &t,
        RTCRtpTransceiverDirection::Sendonly,
    )
    .await;
    let urls: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(urls, [STUN, "turn:plain.example"]);
    for link in &links {
        assert_eq!(
            link.params,
            BTreeMap::from([("rel".into(), "ice-server".into())])
        );
    }
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_turn_server_comes_first_with_the_same_credential() {
    // No public IP: the host is the one the client reached the HTTP server at.
    let srv = server::start_with(|c| {
        with_turn(c);
        c.public_ips.clear();
        c.turn = true;
        c.turn_udp_port = 0;
        c.turn_tcp_port = 0;
    })
    .await;
    let (udp, tcp) = (srv.turn_udp_addr().unwrap(), srv.turn_tcp_addr().unwrap());
    let embedded = [
        format!("turn:127.0.0.1:{}?transport=udp", udp.port()),
        format!("turn:127.0.0.1:{}?transport=tcp", tcp.port()),
    ];
    let servers = joined_ice_servers(&srv.ws_url(), "turn", "alice").await;
    let mut urls: Vec<String> = embedded.to_vec();
    urls.extend(TURN_URLS.map(String::from));
    assert_eq!(servers[1]["urls"], json!(urls));
    let username = servers[1]["username"].as_str().unwrap();
    assert_minted(
        username,
        servers[1]["credential"].as_str().unwrap(),
        "alice",
    );

    let base = format!("http://{}", srv.http_addr);
    let token = token("live", "encoder");
    let links = links(
        &base,
        "/whip/live",
        &token,
        RTCRtpTransceiverDirection::Sendonly,
    )
    .await;
    let found: Vec<&str> = links.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(
        found[1..],
        urls.iter().map(String::as_str).collect::<Vec<_>>()
    );
    srv.shutdown().await;
}
