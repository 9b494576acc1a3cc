//! The HTTP pieces WHIP and WHEP handlers share: the bearer token, typed bodies, resource ids
//! and entity tags, and their errors.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::resource::{Protocol, WhipResource};
use crate::auth::{self, Claims};
use crate::rest::error::{ApiError, codes};
use crate::state::AppState;

/// The verified bearer token, if the request carries one.
pub(super) fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Option<Claims>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    let config = &state.config;
    auth::verify(
        token.trim(),
        &config.api_key,
        &config.api_secret,
        SystemTime::now(),
    )
    .map(Some)
    .map_err(crate::rest::auth::auth_error)
}

/// The live resource `id` of `protocol` in `room`, if the request's token (optional: the
/// resource URL is the capability) is valid for the room; else 401, 403 or 404.
pub(super) fn authorized_resource(
    state: &AppState,
    protocol: Protocol,
    room: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<Arc<WhipResource>, ApiError> {
    if let Some(claims) = bearer(state, headers)? {
        check_room(&claims, room)?;
    }
    state
        .whip_resources
        .get(protocol, room, id)
        .ok_or_else(|| not_found(protocol))
}

/// Ok if the token is for `room`, else 403 `permission_denied`.
pub(super) fn check_room(claims: &Claims, room: &str) -> Result<(), ApiError> {
    if claims.video.room != room {
        return Err(ApiError::forbidden(format!(
            "the token is for room `{}`, not `{room}`",
            claims.video.room
        )));
    }
    Ok(())
}

/// Reads a body of the given content type, at most `limit` bytes, as UTF-8.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    content_type: &str,
    limit: usize,
) -> Result<String, ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !given.eq_ignore_ascii_case(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be `{content_type}`"),
        ));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("the body is not UTF-8"))
}

/// The error answering a refused offer, candidate or ICE restart.
pub(super) fn media_error(e: cascade_sfu::MediaError) -> ApiError {
    ApiError::from_code(e.code(), e.to_string())
}

/// 404 for a resource that is not live.
pub(super) fn not_found(protocol: Protocol) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("no such {} session", protocol.as_str().to_uppercase()),
    )
}

/// A header value, or 500 if `s` cannot be one.
pub(super) fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::internal("header value is not valid"))
}

/// A session resource id: 26 random base-32 characters (130 bits), unguessable, since the
/// resource URL is the session's capability.
pub(super) fn resource_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..26)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % 32] as char)
        .collect()
}

/// A new entity tag of an ICE session.
pub(super) fn new_etag() -> String {
    format!("\"{}\"", &resource_id()[..16])
}

/// Whether an `If-Match` value (a list of entity tags, or `*`) matches `etag`.
pub(super) fn etag_matches(if_match: &str, etag: &str) -> bool {
    if_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_lists_and_wildcards() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
        assert!(!etag_matches("", "\"abc\""));
    }

    #[test]
    fn resource_ids_are_long_and_distinct() {
        let a = resource_id();
        assert_eq!(a.len(), 26);
        assert_ne!(a, resource_id());
        assert!(new_etag().starts_with('"') && new_etag().ends_with('"'));
    }
}
