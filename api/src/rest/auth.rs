//! Authentication of REST requests.
//!
//! - [`AdminAuth`]: the room API. `Authorization: Basic base64(api_key:api_secret)` administers
//!   everything; `Authorization: Bearer <token>` needs a token with the `room_admin` grant: one
//!   whose `video.room` is empty administers every room, one naming a room only that room
//!   (handlers call [`AdminAuth::check_room`]).
//! - [`OperatorAuth`]: operations on the whole server (draining): Basic credentials only.
//!
//! Failures: no or unparsable credentials, a bad signature, a wrong key -> 401 `unauthorized`;
//! an expired (or not yet valid) token -> 401 `token_expired`; valid credentials without the
//! needed grant -> 403 `permission_denied`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::auth::{self, AuthError};
use crate::config::Config;
use crate::state::AppState;

/// What an administrator may administer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Every room (API key/secret, or an admin token naming no room).
    All,
    /// Only this room (an admin token naming it).
    Room(String),
}

/// An authenticated administrator of the room API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAuth {
    /// What it may administer.
    pub scope: AdminScope,
    /// Who: the token's identity, or the API key for Basic credentials.
    pub subject: String,
}

impl AdminAuth {
    /// Ok if this administrator may administer `room`, else 403 `permission_denied`.
    pub fn check_room(&self, room: &str) -> Result<(), ApiError> {
        match &self.scope {
            AdminScope::All => Ok(()),
            AdminScope::Room(r) if r == room => Ok(()),
            AdminScope::Room(r) => Err(ApiError::forbidden(format!(
                "this token administers room `{r}` only"
            ))),
        }
    }

    /// Ok if this administrator may administer every room, else 403 `permission_denied`.
    pub fn check_all(&self) -> Result<(), ApiError> {
        match &self.scope {
            AdminScope::All => Ok(()),
            AdminScope::Room(r) => Err(ApiError::forbidden(format!(
                "this token administers room `{r}` only"
            ))),
        }
    }

    /// Whether this administrator may administer `room`.
    pub fn may(&self, room: &str) -> bool {
        self.check_room(room).is_ok()
    }

    /// Authenticates an `Authorization` header value against the configuration at `now`.
    pub fn authenticate(
        authorization: Option<&str>,
        config: &Config,
        now: SystemTime,
    ) -> Result<Self, ApiError> {
        match credentials(authorization)? {
            Credentials::Basic(user, pass) => {
                // Compare both parts in constant time, and both always, so timing tells nothing.
                let key_ok = user.as_bytes().ct_eq(config.api_key.as_bytes());
                let secret_ok = pass.as_bytes().ct_eq(config.api_secret.as_bytes());
                if bool::from(key_ok & secret_ok) {
                    Ok(Self {
                        scope: AdminScope::All,
                        subject: config.api_key.clone(),
                    })
                } else {
                    Err(ApiError::unauthorized("API key or secret is wrong"))
                }
            }
            Credentials::Bearer(token) => {
                let claims = auth::verify_signed(token, &config.api_key, &config.api_secret, now)
                    .map_err(auth_error)?;
                if !claims.video.room_admin {
                    return Err(ApiError::forbidden("token lacks the room_admin grant"));
                }
                let scope = if claims.video.room.is_empty() {
                    AdminScope::All
                } else {
                    AdminScope::Room(claims.video.room)
                };
                Ok(Self {
                    scope,
                    subject: claims.sub,
                })
            }
        }
    }
}

/// The server's operator: `Authorization: Basic api_key:api_secret` only, for operations on
/// the whole server (draining) that no token grants; a valid token gets 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorAuth;

impl OperatorAuth {
    /// Authenticates an `Authorization` header value: Basic credentials only.
    fn from_authorization(authorization: Option<&str>, config: &Config) -> Result<Self, ApiError> {
        let basic = matches!(credentials(authorization)?, Credentials::Basic(..));
        AdminAuth::authenticate(authorization, config, SystemTime::now())?;
        if !basic {
            return Err(ApiError::forbidden(
                "this needs the API key and secret (Basic credentials), not a token",
            ));
        }
        Ok(Self)
    }
}

impl AdminAuth {
    /// Authenticates an `Authorization` header value now.
    fn from_authorization(authorization: Option<&str>, config: &Config) -> Result<Self, ApiError> {
        Self::authenticate(authorization, config, SystemTime::now())
    }
}

/// Makes each caller type an extractor: it authenticates the request's `Authorization`
/// header with the type's `from_authorization`.
macro_rules! authenticated_extractor {
    ($($caller:ty),*) => {$(
        impl FromRequestParts<Arc<AppState>> for $caller {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &Arc<AppState>,
            ) -> Result<Self, Self::Rejection> {
                Self::from_authorization(authorization(parts)?, &state.config)
            }
        }
    )*};
}

authenticated_extractor!(AdminAuth, OperatorAuth);

/// The error for a refused token.
pub fn auth_error(e: AuthError) -> ApiError {
    ApiError::from_code(e.code(), e.to_string())
}

fn authorization(parts: &Parts) -> Result<Option<&str>, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::unauthorized("Authorization header is not ASCII"))
        })
        .transpose()
}

enum Credentials<'a> {
    Basic(String, String),
    Bearer(&'a str),
}

fn credentials(authorization: Option<&str>) -> Result<Credentials<'_>, ApiError> {
    let value = authorization.ok_or_else(|| {
        ApiError::unauthorized(
            "missing `Authorization: Bearer <token>` or `Authorization: Basic <key:secret>`",
        )
    })?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Bearer(rest));
    }
    if scheme.eq_ignore_ascii_case("basic") && !rest.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::unauthorized("Basic credentials are not valid base64"))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::unauthorized("Basic credentials need `key:secret`"))?;
        return Ok(Credentials::Basic(user.to_owned(), pass.to_owned()));
    }
    Err(ApiError::unauthorized(
        "Authorization must be `Bearer <token>` or `Basic <key:secret>`",
    ))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::auth::Grants;

    fn config() -> Config {
        Config {
            api_key: "key".into(),
            api_secret: "secret-that-is-long-enough-0123456789".into(),
            ..Config::default()
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn bearer(grants: Grants, ttl: u64) -> String {
        let c = config();
        let t = auth::mint(
            &c.api_key,
            &c.api_secret,
            "admin",
            grants,
            Duration::from_secs(ttl),
            now(),
        )
        .unwrap();
        format!("Bearer {t}")
    }

    fn basic(user: &str, pass: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!("Basic {b}")
    }

    fn check(header: Option<&str>, at: SystemTime) -> Result<AdminAuth, String> {
        AdminAuth::authenticate(header, &config(), at).map_err(|e| e.code.into_owned())
    }

    #[test]
    fn basic_credentials() {
        let c = config();
        let ok = check(Some(&basic(&c.api_key, &c.api_secret)), now()).unwrap();
        assert_eq!(ok.scope, AdminScope::All);
        assert_eq!(
            check(Some(&basic(&c.api_key, "nope")), now()).unwrap_err(),
            "unauthorized"
        );
        assert_eq!(
            check(Some(&basic("nope", &c.api_secret)), now()).unwrap_err(),
            "unauthorized"
        );
        assert_eq!(check(Some("Basic !!!"), now()).unwrap_err(), "unauthorized");
    }

    #[test]
    fn bearer_tokens() {
        let global = Grants {
            room_admin: true,
            ..Grants::new("")
        };
        let scoped = Grants {
            room_admin: true,
            ..Grants::new("r1")
        };
        let a = check(Some(&bearer(global.clone(), 60)), now()).unwrap();
        assert!(a.may("anything"));
        let a = check(Some(&bearer(scoped, 60)), now()).unwrap();
        assert!(a.may("r1") && !a.may("r2"));
        assert_eq!(a.check_all().unwrap_err().status.as_u16(), 403);
        assert_eq!(
            check(Some(&bearer(Grants::new("r1"), 60)), now()).unwrap_err(),
            "permission_denied"
        );
        let expired = bearer(global, 60);
        assert_eq!(
            check(Some(&expired), now() + Duration::from_secs(60)).unwrap_err(),
            "token_expired"
        );
        assert_eq!(check(None, now()).unwrap_err(), "unauthorized");
        assert_eq!(
            check(Some("Bearer garbage"), now()).unwrap_err(),
            "unauthorized"
        );
        assert_eq!(check(Some("Digest x"), now()).unwrap_err(), "unauthorized");
    }
}
