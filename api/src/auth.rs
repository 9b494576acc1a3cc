//! Access tokens: HS256 JWTs signed with the API secret, issued (`iss`) by the API key.
//!
//! Time checks use the caller's `now` with no leeway (the library's clock-based checks are
//! off), so verification is deterministic and testable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, ensure};
use cascade_signaling::protocol::Permissions;
use cascade_signaling::{ErrorCode, names};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows, carried in its `video` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub struct Grants {
    /// The room the token is for.
    pub room: String,
    /// May join the room (default true).
    #[serde(default = "yes")]
    pub room_join: bool,
    /// May publish media (default true).
    #[serde(default = "yes")]
    pub can_publish: bool,
    /// May subscribe to media (default true).
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    /// May publish data (default true).
    #[serde(default = "yes")]
    pub can_publish_data: bool,
    /// May administer the room (default false).
    #[serde(default)]
    pub room_admin: bool,
}

fn yes() -> bool {
    true
}

impl Grants {
    /// The default grants for `room`: join, publish, subscribe and publish data; no admin.
    pub fn new(room: impl Into<String>) -> Self {
        Self {
            room: room.into(),
            room_join: true,
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            room_admin: false,
        }
    }
}

/// What a participant joining with these grants may do (WebSocket `join`, WHIP and WHEP).
impl From<&Grants> for Permissions {
    fn from(grants: &Grants) -> Self {
        Self {
            can_publish: grants.can_publish,
            can_subscribe: grants.can_subscribe,
            can_publish_data: grants.can_publish_data,
        }
    }
}

/// The claims of a Cascade access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the API key.
    pub iss: String,
    /// Subject: the participant identity.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch (invalid from this second on).
    pub exp: u64,
    /// Not before, seconds since the Unix epoch (0 when absent).
    #[serde(default)]
    pub nbf: u64,
    /// Issued at, seconds since the Unix epoch (0 when absent).
    #[serde(default)]
    pub iat: u64,
    /// Optional display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The grants.
    pub video: Grants,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a well-formed HS256 JWT with Cascade claims: also a token missing a required claim
    /// (`iss`, `sub`, `exp`, `video`, `video.room`) or with one of the wrong type.
    #[error("token is malformed")]
    Malformed,
    /// The signature does not verify with the API secret.
    #[error("token signature does not verify")]
    BadSignature,
    /// Issued for another API key.
    #[error("token was issued for another API key")]
    WrongIssuer,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is still in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The grants do not allow joining a room: `room_join` false, or an empty `video.room`
    /// (an admin token for every room).
    #[error("token does not grant joining a room")]
    NoRoomJoin,
}

impl AuthError {
    /// The protocol error code to send to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired | Self::NotYetValid => ErrorCode::TokenExpired,
            Self::NoRoomJoin => ErrorCode::PermissionDenied,
            Self::Malformed | Self::BadSignature | Self::WrongIssuer => ErrorCode::Unauthorized,
        }
    }
}

fn unix_secs(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Mints a token for `identity` with `grants`, valid from `now` for `ttl`. The identity and the
/// room follow the name rule ([`names`]); only an admin token may name no room (every room).
pub fn mint(
    key: &str,
    secret: &str,
    identity: &str,
    grants: Grants,
    ttl: Duration,
    now: SystemTime,
) -> anyhow::Result<String> {
    names::check(identity).map_err(|e| anyhow!("identity {e}"))?;
    ensure!(
        !grants.room.is_empty() || grants.room_admin,
        "room must not be empty (except in an admin token for every room)"
    );
    if !grants.room.is_empty() {
        names::check(&grants.room).map_err(|e| anyhow!("room name {e}"))?;
    }
    ensure!(ttl >= Duration::from_secs(1), "ttl must be at least 1s");
    let iat = unix_secs(now).context("clock is before the Unix epoch")?;
    let claims = Claims {
        iss: key.to_owned(),
        sub: identity.to_owned(),
        exp: iat.saturating_add(ttl.as_secs()),
        nbf: iat,
        iat,
        name: None,
        video: grants,
    };
    let header = Header::new(Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("signing token")
}

/// Verifies `token` against the API `key` and `secret` at time `now` and returns its claims.
/// The token must grant joining a room; see [`verify_signed`] for tokens that need not.
pub fn verify(token: &str, key: &str, secret: &str, now: SystemTime) -> Result<Claims, AuthError> {
    let claims = verify_signed(token, key, secret, now)?;
    if !claims.video.room_join || claims.video.room.is_empty() {
        return Err(AuthError::NoRoomJoin);
    }
    Ok(claims)
}

/// Verifies the signature, issuer and validity period of `token` and returns its claims,
/// whatever they grant (the room API checks `room_admin` itself).
pub fn verify_signed(
    token: &str,
    key: &str,
    secret: &str,
    now: SystemTime,
) -> Result<Claims, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let decoding_key = DecodingKey::from_secret(secret.as_bytes());
    let claims = jsonwebtoken::decode::<Claims>(token, &decoding_key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => AuthError::BadSignature,
            _ => AuthError::Malformed,
        })?
        .claims;
    if claims.iss != key {
        return Err(AuthError::WrongIssuer);
    }
    let now = unix_secs(now).unwrap_or(0);
    if now >= claims.exp {
        return Err(AuthError::Expired);
    }
    if now < claims.nbf {
        return Err(AuthError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "testkey";
    const SECRET: &str = "test-secret-that-is-at-least-32-bytes";
    const TTL: Duration = Duration::from_secs(3600);

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn token() -> String {
        mint(KEY, SECRET, "alice", Grants::new("demo"), TTL, now()).unwrap()
    }

    #[test]
    fn round_trip() {
        let mut grants = Grants::new("demo");
        grants.can_publish = false;
        let token = mint(KEY, SECRET, "alice", grants.clone(), TTL, now()).unwrap();
        let claims = verify(&token, KEY, SECRET, now()).unwrap();
        assert_eq!(
            claims,
            Claims {
                iss: KEY.into(),
                sub: "alice".into(),
                exp: 1_700_003_600,
                nbf: 1_700_000_000,
                iat: 1_700_000_000,
                name: None,
                video: grants,
            }
        );
    }

    #[test]
    fn forged_signature_is_refused() {
        let forged = mint(
            KEY,
            "another-secret-of-at-least-32-bytes!",
            "alice",
            Grants::new("demo"),
            TTL,
            now(),
        )
        .unwrap();
        assert_eq!(
            verify(&forged, KEY, SECRET, now()),
            Err(AuthError::BadSignature)
        );

        // Swap in another token's claims under the original signature.
        let other = mint(KEY, SECRET, "mallory", Grants::new("demo"), TTL, now()).unwrap();
        let token = token();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = other.split('.').nth(1).unwrap();
        let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(
            verify(&tampered, KEY, SECRET, now()),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn wrong_issuer_is_refused() {
        assert_eq!(
            verify(&token(), "otherkey", SECRET, now()),
            Err(AuthError::WrongIssuer)
        );
    }

    #[test]
    fn expiry_is_exact() {
        let last_valid = now() + TTL - Duration::from_secs(1);
        assert!(verify(&token(), KEY, SECRET, last_valid).is_ok());
        assert_eq!(
            verify(&token(), KEY, SECRET, now() + TTL),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn not_before_in_future_is_refused() {
        let early = now() - Duration::from_secs(1);
        assert_eq!(
            verify(&token(), KEY, SECRET, early),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", "garbage", "a.b.c", ".."] {
            assert_eq!(
                verify(garbage, KEY, SECRET, now()),
                Err(AuthError::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn alg_none_is_refused() {
        // base64url of {"alg":"none","typ":"JWT"}
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let token = token();
        let parts: Vec<&str> = token.split('.').collect();
        let (payload, sig) = (parts[1], parts[2]);
        for candidate in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}.{sig}"),
        ] {
            assert!(
                verify(&candidate, KEY, SECRET, now()).is_err(),
                "{candidate}"
            );
        }
    }

    #[test]
    fn missing_room_join_is_refused() {
        let mut grants = Grants::new("demo");
        grants.room_join = false;
        let token = mint(KEY, SECRET, "alice", grants, TTL, now()).unwrap();
        let err = verify(&token, KEY, SECRET, now()).unwrap_err();
        assert_eq!(err, AuthError::NoRoomJoin);
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
    }

    /// Signs arbitrary claims with the test secret.
    fn signed(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn full_claims() -> serde_json::Value {
        serde_json::json!({
            "iss": KEY, "sub": "alice", "exp": 1_700_003_600u64,
            "video": {"room": "demo"},
        })
    }

    /// A token without a required claim (or with one of the wrong type) is malformed:
    /// `unauthorized`. A well-formed token whose grants do not allow joining (an empty room, as
    /// in an admin token for every room, or `room_join: false`) is `permission_denied`.
    #[test]
    fn claims_map_to_codes() {
        assert!(verify(&signed(full_claims()), KEY, SECRET, now()).is_ok());
        for (path, value) in [
            ("iss", None),
            ("sub", None),
            ("exp", None),
            ("video", None),
            ("video.room", None),
            ("exp", Some(serde_json::json!("tomorrow"))),
            ("sub", Some(serde_json::json!(7))),
            ("video", Some(serde_json::json!("demo"))),
            ("video.room", Some(serde_json::json!(null))),
        ] {
            let mut claims = full_claims();
            let (obj, key) = match path.split_once('.') {
                Some((outer, inner)) => (&mut claims[outer], inner),
                None => (&mut claims, path),
            };
            let obj = obj.as_object_mut().unwrap();
            obj.remove(key);
            if let Some(v) = &value {
                obj.insert(key.to_owned(), v.clone());
            }
            let err = verify(&signed(claims), KEY, SECRET, now()).unwrap_err();
            assert_eq!(err, AuthError::Malformed, "{path} = {value:?}");
            assert_eq!(err.code(), ErrorCode::Unauthorized);
        }
        for video in [
            serde_json::json!({"room": ""}),
            serde_json::json!({"room": "", "room_admin": true}),
            serde_json::json!({"room": "demo", "room_join": false}),
        ] {
            let mut claims = full_claims();
            claims["video"] = video.clone();
            let err = verify(&signed(claims), KEY, SECRET, now()).unwrap_err();
            assert_eq!(err, AuthError::NoRoomJoin, "{video}");
            assert_eq!(err.code(), ErrorCode::PermissionDenied);
        }
    }

    #[test]
    fn minting_follows_the_name_rule() {
        let mint_for = |identity: &str, grants| mint(KEY, SECRET, identity, grants, TTL, now());
        for bad in ["", "evil\u{0}\n\u{1b}[31m", " alice", ".."] {
            assert!(mint_for(bad, Grants::new("demo")).is_err(), "{bad:?}");
            assert!(mint_for("alice", Grants::new(bad)).is_err(), "{bad:?}");
        }
        assert!(mint_for("alice", Grants::new(&*"r".repeat(10_000))).is_err());
        assert!(mint_for("café ☕", Grants::new("100% a/b")).is_ok());
        let every_room = Grants {
            room_admin: true,
            ..Grants::new("")
        };
        assert!(mint_for("ops", every_room).is_ok());
    }

    #[test]
    fn missing_grant_flags_take_defaults() {
        let grants: Grants = serde_json::from_str(r#"{"room":"r"}"#).unwrap();
        assert_eq!(grants, Grants::new("r"));
    }

    #[test]
    fn error_codes() {
        assert_eq!(AuthError::Expired.code(), ErrorCode::TokenExpired);
        assert_eq!(AuthError::NotYetValid.code(), ErrorCode::TokenExpired);
        assert_eq!(AuthError::WrongIssuer.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::BadSignature.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::Malformed.code(), ErrorCode::Unauthorized);
    }
}
