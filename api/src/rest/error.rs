//! The error shape of every REST endpoint: `{ "error": { "code": "...", "message": "..." } }`,
//! and extractors whose rejections use it instead of axum's plain-text bodies.
//!
//! Status of each [`ErrorCode`] (see [`status_of`]): `*_not_found` and `not_joined` -> 404,
//! `permission_denied` -> 403, `unauthorized`/`token_expired` -> 401, `invalid_*` and
//! `unknown_message_type` -> 400, `room_full`, `already_joined` and `invalid_state` -> 409 (the
//! request conflicts with the room's current state; retrying later may succeed),
//! `rate_limited` -> 429, `message_too_large` -> 413, `internal` -> 500, `server_draining` -> 503
//! (with `Retry-After`).

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path as AxumPath, Query as AxumQuery, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cascade_signaling::ErrorCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// REST-only error codes (the others are [`ErrorCode`]s of the signaling protocol).
pub mod codes {
    /// The request is malformed: bad JSON, a missing or invalid field or parameter.
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// The body's content type is not the one the endpoint takes.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// The body is larger than the endpoint accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// No such resource.
    pub const NOT_FOUND: &str = "not_found";
    /// The request body did not arrive within `body_timeout` (408; the connection is closed).
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
}

/// `Retry-After` of `503 server_draining`: this server will not take the request again, but
/// a retry through the load balancer soon reaches another one.
pub const DRAINING_RETRY_AFTER_SECS: u64 = 5;

/// An error answered by a REST endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (snake_case), e.g. `room_not_found`.
    pub code: Cow<'static, str>,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::from_code(ErrorCode::Unauthorized, message)
    }

    /// 403 `permission_denied`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::from_code(ErrorCode::PermissionDenied, message)
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::from_code(ErrorCode::Internal, message)
    }

    /// An error for a protocol [`ErrorCode`], with the status of [`status_of`].
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(status_of(code), code.as_str(), message)
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

/// The HTTP status for a protocol error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::RoomNotFound
        | ErrorCode::ParticipantNotFound
        | ErrorCode::TrackNotFound
        | ErrorCode::NotJoined
        | ErrorCode::ResumeFailed => StatusCode::NOT_FOUND,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidMessage
        | ErrorCode::UnknownMessageType
        | ErrorCode::InvalidSdp
        | ErrorCode::InvalidCandidate
        | ErrorCode::TooManyCandidates => StatusCode::BAD_REQUEST,
        ErrorCode::RoomFull | ErrorCode::AlreadyJoined | ErrorCode::InvalidState => {
            StatusCode::CONFLICT
        }
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::InvalidName => StatusCode::BAD_REQUEST,
        ErrorCode::ServerDraining => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<(ErrorCode, String)> for ApiError {
    fn from((code, message): (ErrorCode, String)) -> Self {
        Self::from_code(code, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "room_not_found", "message": "no room `demo`"}}))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `unauthorized`, `permission_denied`, `room_not_found`,
    /// `invalid_request`, `invalid_name` (see docs/rest.md).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cascade\""),
            );
        }
        if self.code == ErrorCode::ServerDraining.as_str() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(DRAINING_RETRY_AFTER_SECS),
            );
        }
        response
    }
}

fn from_rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            codes::PAYLOAD_TOO_LARGE,
            "request body is too large",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "expected a body with `Content-Type: application/json`",
        ),
        s if s.is_server_error() => ApiError::internal(text),
        _ => ApiError::invalid(text),
    }
}

/// Converts each rejection of an axum extractor into an [`ApiError`] ([`from_rejection`]).
macro_rules! rejections_are_api_errors {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                from_rejection(r.status(), r.body_text())
            }
        }
    )*};
}

rejections_are_api_errors!(JsonRejection, PathRejection, QueryRejection);

/// A JSON request body (`Content-Type: application/json`) whose rejections are [`ApiError`]s:
/// 400 `invalid_request` for malformed JSON or a wrong field, 415 `unsupported_media_type`
/// for another content type, 413 `payload_too_large` past the body limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Defines an extractor of request parts that wraps axum's `$axum` and answers its
/// rejections as [`ApiError`]s.
macro_rules! parts_extractor {
    ($(#[$doc:meta])* $name:ident wraps $axum:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                let $axum(value) = $axum::<T>::from_request_parts(parts, state).await?;
                Ok(Self(value))
            }
        }
    };
}

parts_extractor! {
    /// Path parameters whose rejections are [`ApiError`]s (400 `invalid_request`).
    Path wraps AxumPath
}

parts_extractor! {
    /// A query string whose rejections are [`ApiError`]s (400 `invalid_request`).
    Query wraps AxumQuery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses() {
        use ErrorCode::*;
        let by_status: [(u16, &[ErrorCode]); 8] = [
            (404, &[RoomNotFound, ParticipantNotFound, TrackNotFound]),
            (403, &[PermissionDenied]),
            (401, &[Unauthorized, TokenExpired]),
            (400, &[InvalidSdp, InvalidName]),
            (409, &[RoomFull]),
            (429, &[RateLimited]),
            (500, &[Internal]),
            (503, &[ServerDraining]),
        ];
        for (status, codes) in by_status {
            for &code in codes {
                let e = ApiError::from((code, "x".to_owned()));
                assert_eq!(e.status.as_u16(), status, "{code}");
                assert_eq!(e.code, code.as_str());
            }
        }
    }

    #[test]
    fn body_shape() {
        let e = ApiError::invalid("bad");
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "invalid_request", "message": "bad"}})
        );
    }
}
