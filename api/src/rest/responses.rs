//! Error responses shared by the documented endpoints (`responses(..., AuthErrors)` in
//! `#[utoipa::path]`); every one has the [`ErrorBody`](super::error::ErrorBody) schema.

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

fn error(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

fn responses(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| (status.to_string(), error(description)))
        .collect()
}

const UNAUTHORIZED: (&str, &str) = (
    "401",
    "`unauthorized`: no, malformed or forged credentials; `token_expired`: the token has expired",
);
const FORBIDDEN: (&str, &str) = (
    "403",
    "`permission_denied`: the credentials do not grant this (no `room_admin`, or another room)",
);
const BAD_REQUEST: (&str, &str) = (
    "400",
    "`invalid_request`: a malformed parameter or body; `invalid_name`: a room name, identity or \
     track id that breaks the name rule",
);

/// 401 and 403.
pub struct AuthErrors;

impl utoipa::IntoResponses for AuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[UNAUTHORIZED, FORBIDDEN])
    }
}

/// 400 for bad parameters.
pub struct BadRequest;

impl utoipa::IntoResponses for BadRequest {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[BAD_REQUEST])
    }
}

/// 400, 413 and 415 for endpoints with a JSON body.
pub struct BodyErrors;

impl utoipa::IntoResponses for BodyErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[
            BAD_REQUEST,
            ("413", "`payload_too_large`: the body is larger than 64 KiB"),
            (
                "415",
                "`unsupported_media_type`: the body is not `application/json`",
            ),
        ])
    }
}

/// 503 while the server drains.
pub struct Draining;

impl utoipa::IntoResponses for Draining {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "503",
            "`server_draining`: the server is shutting down and creates no room; retry \
             (through the load balancer) after `Retry-After` seconds",
        )])
    }
}

/// 404 for unknown rooms, participants and tracks.
pub struct NotFound;

impl utoipa::IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses(&[(
            "404",
            "`room_not_found`, `participant_not_found` or `track_not_found`",
        )])
    }
}
