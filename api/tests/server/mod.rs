//! Starting an in-process Cascade server and minting tokens for integration tests, and the
//! helpers the api tests share: WebSocket clients ([`clients`]), an HTTP client of the
//! server's endpoints ([`rest`]), raw WebSocket clients ([`raw`]) and WHIP/WHEP peers
//! ([`whip`]).

#![allow(dead_code)]

pub mod clients;
pub mod raw;
pub mod rest;
pub mod whip;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use cascade_api::auth::{self, Grants};
use cascade_api::config::Config;
use cascade_api::server::{self, ServerHandle};

/// API key of test servers.
pub const KEY: &str = "testkey";
/// API secret of test servers.
pub const SECRET: &str = "test-secret-that-is-long-enough-0123456789";

/// A config for a test server on loopback with ephemeral ports.
pub fn config() -> Config {
    Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        udp_port: 0,
        public_ips: vec!["127.0.0.1".parse().unwrap()],
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        workers: 2,
        ..Config::default()
    }
}

/// Starts a server with [`config`] tweaked by `f`.
pub async fn start_with(f: impl FnOnce(&mut Config)) -> ServerHandle {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mut c = config();
    f(&mut c);
    server::start(c).await.expect("server starts")
}

/// Starts a server with the test config.
pub async fn start() -> ServerHandle {
    start_with(|_| {}).await
}

/// A token for `identity` in `room` with the given grants tweak, valid for `ttl` from
/// `issued_at`.
fn mint(
    room: &str,
    identity: &str,
    f: impl FnOnce(&mut Grants),
    ttl: Duration,
    issued_at: SystemTime,
) -> String {
    let mut g = Grants::new(room);
    f(&mut g);
    auth::mint(KEY, SECRET, identity, g, ttl, issued_at).unwrap()
}

/// A token for `identity` in `room` with the given grants tweak.
pub fn token_with(room: &str, identity: &str, f: impl FnOnce(&mut Grants)) -> String {
    mint(
        room,
        identity,
        f,
        Duration::from_secs(600),
        SystemTime::now(),
    )
}

/// [`token_with`], but one that expired an hour ago.
pub fn expired_token_with(room: &str, identity: &str, f: impl FnOnce(&mut Grants)) -> String {
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    mint(room, identity, f, Duration::from_secs(3600), two_hours_ago)
}

/// A full-permission token.
pub fn token(room: &str, identity: &str) -> String {
    token_with(room, identity, |_| {})
}

/// A subscribe-only token.
pub fn viewer_token(room: &str, identity: &str) -> String {
    token_with(room, identity, |g| g.can_publish = false)
}

/// Waits until `f` holds, polling every 20 ms, for at most `timeout`.
pub async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `/metrics` text of the server at `addr`.
pub async fn scrape(addr: SocketAddr) -> String {
    let url = format!("http://{addr}/metrics");
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The value of one sample (`name` or `name{labels}`) of a `/metrics` text, if present.
pub fn find_sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The value of one sample of a `/metrics` text; panics if it is missing.
pub fn sample(text: &str, series: &str) -> u64 {
    find_sample(text, series).unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
}

/// TURN credentials of `identity` that a server holding `secret` must refuse: `(expired,
/// forged)`, each `(username, credential)`. The expired one is genuine but ran out an hour ago;
/// the forged one is current but minted with another secret.
pub fn bad_turn_credentials(secret: &str, identity: &str) -> ((String, String), (String, String)) {
    use cascade_api::turn_credentials::mint;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = mint(
        secret.as_bytes(),
        identity,
        Duration::from_secs(60),
        an_hour_ago,
    );
    let forged = mint(
        b"not-the-secret",
        identity,
        Duration::from_secs(600),
        SystemTime::now(),
    );
    (expired, forged)
}
