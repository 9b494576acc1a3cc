//! Time-limited TURN credentials for the embedded TURN server ([`crate::turn`]) and an external
//! one (the "TURN REST API" scheme that coturn implements with `use-auth-secret`): the username
//! is `<expiry-unix>:<identity>`, the credential `base64(HMAC-SHA1(secret, username))`.
//! Minting, verification, and the ICE servers handed to one participant. Sans-I/O: the caller
//! passes the time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cascade_signaling::protocol::IceServer;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::config::Config;

/// Why a TURN username and credential were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The username is not `<expiry-unix>:<identity>`.
    #[error("the username is not <expiry-unix>:<identity>")]
    Malformed,
    /// The credential is not the HMAC of the username under the secret.
    #[error("the credential does not match the username")]
    Forged,
    /// The credential is genuine, but its expiry has passed.
    #[error("the credential has expired")]
    Expired,
}

/// Mints the username and credential of `identity`, valid from `now` for `ttl` (whole seconds).
pub fn mint(secret: &[u8], identity: &str, ttl: Duration, now: SystemTime) -> (String, String) {
    let expiry = unix_seconds(now).saturating_add(ttl.as_secs());
    let username = format!("{expiry}:{identity}");
    let credential = credential(secret, &username);
    (username, credential)
}

/// Verifies a username and credential at `now`; returns the identity. The credential is checked
/// before the expiry, so [`Error::Expired`] only ever names a genuine credential. A credential
/// is refused from its expiry second on.
pub fn verify<'a>(
    secret: &[u8],
    username: &'a str,
    credential: &str,
    now: SystemTime,
) -> Result<&'a str, Error> {
    let (expiry, identity) = username.split_once(':').ok_or(Error::Malformed)?;
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) || identity.is_empty() {
        return Err(Error::Malformed);
    }
    let expiry: u64 = expiry.parse().map_err(|_| Error::Malformed)?;
    let expected = self::credential(secret, username);
    if !bool::from(expected.as_bytes().ct_eq(credential.as_bytes())) {
        return Err(Error::Forged);
    }
    if unix_seconds(now) >= expiry {
        return Err(Error::Expired);
    }
    Ok(identity)
}

/// The ICE servers handed to the participant `identity`: one per configured `ice_servers` URL,
/// without credentials, then, with a TURN secret configured, one entry of the `embedded` TURN
/// server's URLs (see [`embedded_urls`]) and every `turn_urls` URL, with credentials minted for
/// `identity`.
pub fn ice_servers(
    config: &Config,
    embedded: &[String],
    identity: &str,
    now: SystemTime,
) -> Vec<IceServer> {
    let mut servers: Vec<IceServer> = config
        .ice_servers
        .iter()
        .map(|url| IceServer {
            urls: vec![url.clone()],
            username: None,
            credential: None,
        })
        .collect();
    let urls: Vec<String> = embedded.iter().chain(&config.turn_urls).cloned().collect();
    if let Some(secret) = config.turn_secret.as_ref().filter(|_| !urls.is_empty()) {
        let (username, credential) =
            mint(secret.as_bytes(), identity, config.turn_credential_ttl, now);
        servers.push(IceServer {
            urls,
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

/// The host clients are told to reach the embedded TURN server at: the host of `public_url`
/// (a name the certificate covers, for `turns:`), else the first `public_ips` entry, else the
/// host the client reached the HTTP server at (`request_host`, a Host header, its port
/// dropped); `None` if none is known.
pub fn turn_host(config: &Config, request_host: Option<&str>) -> Option<String> {
    let public_url = config.public_url.as_deref();
    if let Some(url) = public_url.and_then(|u| crate::config::parse_public_url(u).ok())
        && let Some(host) = url.host_str()
    {
        return Some(host.to_owned());
    }
    if let Some(ip) = config.public_ips.first() {
        return Some(match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        });
    }
    let host = request_host?.trim();
    let host = match host.rfind(']') {
        Some(end) => &host[..=end], // "[v6]" or "[v6]:port"
        None => host.split(':').next().unwrap_or(host),
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The URLs of the embedded TURN server at `host`: UDP and TCP, and TLS if it listens.
pub fn embedded_urls(host: &str, udp: u16, tcp: u16, tls: Option<u16>) -> Vec<String> {
    let mut urls = vec![
        format!("turn:{host}:{udp}?transport=udp"),
        format!("turn:{host}:{tcp}?transport=tcp"),
    ];
    if let Some(tls) = tls {
        urls.push(format!("turns:{host}:{tls}?transport=tcp"));
    }
    urls
}

/// `base64(HMAC-SHA1(secret, username))`.
pub(crate) fn credential(secret: &[u8], username: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Seconds since the Unix epoch (0 before it).
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"cascade-turn-secret";

    /// `base64(HMAC-SHA1("cascade-turn-secret", "1700000000:alice"))`, computed independently
    /// with Python's standard library:
    /// `python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    /// b"cascade-turn-secret", b"1700000000:alice", hashlib.sha1).digest()).decode())'`
    const KNOWN_CREDENTIAL: &str = "/dR1gTetUQ6qZ1HnncG79MAQMG4=";
    /// The same for the username `1700003600:room:alice`.
    const KNOWN_CREDENTIAL_COLON: &str = "3bmobEm3O1tDllo3qUNtrx0J5nw=";

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn mint_matches_an_independent_computation() {
        let (username, credential) =
            mint(SECRET, "alice", Duration::from_secs(600), at(1_699_999_400));
        assert_eq!(username, "1700000000:alice");
        assert_eq!(credential, KNOWN_CREDENTIAL);
        let (username, credential) = mint(
            SECRET,
            "room:alice",
            Duration::from_secs(3600),
            at(1_700_000_000),
        );
        assert_eq!(username, "1700003600:room:alice");
        assert_eq!(credential, KNOWN_CREDENTIAL_COLON);
    }

    #[test]
    fn minted_credentials_verify_until_their_expiry() {
        let now = at(1_700_000_000);
        let (username, credential) = mint(SECRET, "alice", Duration::from_secs(60), now);
        assert_eq!(verify(SECRET, &username, &credential, now), Ok("alice"));
        assert_eq!(
            verify(SECRET, &username, &credential, at(1_700_000_059)),
            Ok("alice")
        );
        assert_eq!(
            verify(SECRET, &username, &credential, at(1_700_000_060)),
            Err(Error::Expired)
        );
        assert_eq!(
            verify(
                SECRET,
                "1700000000:alice",
                KNOWN_CREDENTIAL,
                at(1_800_000_000)
            ),
            Err(Error::Expired)
        );
    }

    #[test]
    fn an_identity_may_contain_colons() {
        let now = at(1_700_000_000);
        let (username, credential) = mint(SECRET, "a:b:c", Duration::from_secs(60), now);
        assert_eq!(username, "1700000060:a:b:c");
        assert_eq!(verify(SECRET, &username, &credential, now), Ok("a:b:c"));
    }

    #[test]
    fn forged_credentials_are_refused() {
        let now = at(1_699_999_000);
        let forged = [
            ("1700000000:alice", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("1700000000:alice", ""),
            ("1700000000:alice", &KNOWN_CREDENTIAL[1..]),
            ("1700000001:alice", KNOWN_CREDENTIAL), // a later expiry
            ("1700000000:mallory", KNOWN_CREDENTIAL), // another identity
        ];
        for (username, credential) in forged {
            assert_eq!(
                verify(SECRET, username, credential, now),
                Err(Error::Forged),
                "{username} {credential}"
            );
        }
        assert_eq!(
            verify(b"another-secret", "1700000000:alice", KNOWN_CREDENTIAL, now),
            Err(Error::Forged)
        );
        // An expired username with a wrong credential is forged, not expired.
        assert_eq!(
            verify(SECRET, "1:alice", KNOWN_CREDENTIAL, now),
            Err(Error::Forged)
        );
    }

    #[test]
    fn malformed_usernames_are_refused() {
        let now = at(1_699_999_000);
        for username in [
            "",
            "alice",
            ":alice",
            "1700000000:",
            "+1700000000:alice",
            "-1:alice",
            "17e8:alice",
            "99999999999999999999999:alice",
        ] {
            assert_eq!(
                verify(SECRET, username, KNOWN_CREDENTIAL, now),
                Err(Error::Malformed),
                "{username:?}"
            );
        }
    }

    #[test]
    fn ice_servers_carry_a_minted_turn_entry_only_with_a_secret() {
        let mut config = Config {
            ice_servers: vec!["stun:stun.example:3478".into()],
            ..Config::default()
        };
        let now = at(1_700_000_000);
        let plain = IceServer {
            urls: vec!["stun:stun.example:3478".into()],
            username: None,
            credential: None,
        };
        assert_eq!(
            ice_servers(&config, &[], "alice", now),
            std::slice::from_ref(&plain)
        );

        config.turn_secret = Some("cascade-turn-secret".into());
        config.turn_urls = vec!["turn:turn.example:3478".into(), "turns:turn.example".into()];
        config.turn_credential_ttl = Duration::from_secs(600);
        let servers = ice_servers(&config, &[], "alice", at(1_699_999_400));
        assert_eq!(
            servers,
            [
                plain.clone(),
                IceServer {
                    urls: config.turn_urls.clone(),
                    username: Some("1700000000:alice".into()),
                    credential: Some(KNOWN_CREDENTIAL.into()),
                }
            ]
        );

        // The embedded server's URLs come first, with the same credential.
        let embedded = embedded_urls("media.example", 3478, 3479, Some(5349));
        let servers = ice_servers(&config, &embedded, "alice", at(1_699_999_400));
        assert_eq!(
            servers[1].urls,
            [
                "turn:media.example:3478?transport=udp",
                "turn:media.example:3479?transport=tcp",
                "turns:media.example:5349?transport=tcp",
                "turn:turn.example:3478",
                "turns:turn.example",
            ]
        );
        assert_eq!(servers[1].credential.as_deref(), Some(KNOWN_CREDENTIAL));

        // The embedded server alone (a generated secret, no external URLs).
        config.turn_urls.clear();
        let servers = ice_servers(&config, &embedded[..2], "alice", at(1_699_999_400));
        assert_eq!(servers[1].urls, embedded[..2]);
        // No URL at all: no entry.
        assert_eq!(
            ice_servers(&config, &[], "alice", at(1_699_999_400)),
            [plain]
        );
    }

    #[test]
    fn the_turn_host_is_the_public_url_host_else_the_public_ip_else_the_request_host() {
        let mut config = Config::default();
        assert_eq!(turn_host(&config, None), None);
        assert_eq!(turn_host(&config, Some("")), None);
        for (host, expected) in [
            ("media.example:7880", "media.example"),
            ("media.example", "media.example"),
            ("192.0.2.7:443", "192.0.2.7"),
            ("[2001:db8::1]:7880", "[2001:db8::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
        ] {
            assert_eq!(turn_host(&config, Some(host)).as_deref(), Some(expected));
        }
        config.public_ips = vec![
            "203.0.113.9".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ];
        assert_eq!(
            turn_host(&config, Some("media.example")).as_deref(),
            Some("203.0.113.9")
        );
        config.public_ips.reverse();
        assert_eq!(turn_host(&config, None).as_deref(), Some("[2001:db8::2]"));
        config.public_url = Some("https://sfu.example.com:8443".into());
        assert_eq!(
            turn_host(&config, Some("media.example")).as_deref(),
            Some("sfu.example.com"),
            "the public URL's host wins: the name the certificate covers"
        );
    }
}
