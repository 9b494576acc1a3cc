//! The documented operational routes: liveness (`/healthz`), readiness (`/readyz`), Prometheus
//! metrics (`/metrics`), what pages need to know of the server (`/api/info`) and the
//! development token endpoint (`/api/dev/token`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::RoomGauges;
use crate::rest::params::name_param;
use crate::state::AppState;

/// Development-only token endpoint, served only with the embedded development secret.
pub const DEV_TOKEN_PATH: &str = "/api/dev/token";
/// Lifetime of development tokens.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The documented operational routes: health, readiness, metrics, development tokens.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(dev_token))
        .routes(routes!(info))
}

/// The server's version and public URL (`--public-url`), for the demo's invite links. Public:
/// nothing in it is secret; readable from any origin.
#[utoipa::path(get, path = "/api/info", tag = "operations", operation_id = "server_info",
    responses((status = 200, description = "Version and public URL",
        body = crate::rest::model::ServerInfoBody)))]
async fn info(State(state): State<Arc<AppState>>) -> Response {
    let body = crate::rest::model::ServerInfoBody {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        public_url: state
            .config
            .public_url
            .as_ref()
            .map(|url| url.trim_end_matches('/').to_owned()),
        dev_tokens: state.config.is_dev_secret(),
    };
    // Readable from any origin, like the client library.
    crate::assets::with_cors(axum::Json(body).into_response())
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Query of [`DEV_TOKEN_PATH`].
#[derive(serde::Deserialize)]
struct DevTokenQuery {
    room: String,
    identity: String,
    #[serde(default)]
    role: DevRole,
}

impl utoipa::IntoParams for DevTokenQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let role = ParameterBuilder::new()
            .name("role")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .schema(Some(<DevRole as utoipa::PartialSchema>::schema()));
        vec![
            name_param("room", ParameterIn::Query, None, true),
            name_param("identity", ParameterIn::Query, None, true),
            role.build(),
        ]
    }
}

// The role of a development token: a publisher may publish, a viewer only watches (no doc
// comment: it would become the schema's description).
#[derive(serde::Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum DevRole {
    #[default]
    Publisher,
    Viewer,
}

fn json_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::rest::error::ApiError::new(status, code, message).into_response()
}

/// Mints a token for the demo page; exists only while the embedded development secret is in use.
/// Readable from any origin (`Access-Control-Allow-Origin: *`).
#[utoipa::path(get, path = "/api/dev/token", tag = "operations", operation_id = "dev_token",
    params(DevTokenQuery),
    responses(
        (status = 200, description = "A token (6 h)", body = crate::rest::model::DevTokenBody),
        (status = 400, description = "Bad query", body = crate::rest::error::ErrorBody),
        (status = 404, description = "An API secret is configured: development tokens are disabled",
            body = crate::rest::error::ErrorBody)))]
async fn dev_token(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<DevTokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // Readable from any origin: pages that import the client library from this server.
    crate::assets::with_cors(dev_token_response(&state, query))
}

fn dev_token_response(
    state: &AppState,
    query: Result<axum::extract::Query<DevTokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let config = &state.config;
    if !config.is_dev_secret() {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "development tokens are disabled when an API secret is configured",
        );
    }
    let Ok(axum::extract::Query(q)) = query else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "query needs room, identity and optionally role=publisher|viewer",
        );
    };
    let names = cascade_signaling::names::validate("room name", &q.room)
        .and_then(|()| cascade_signaling::names::validate("identity", &q.identity));
    if let Err(e) = names {
        return crate::rest::error::ApiError::from(e).into_response();
    }
    let grants = crate::auth::Grants {
        can_publish: q.role == DevRole::Publisher,
        ..crate::auth::Grants::new(q.room.as_str())
    };
    match crate::auth::mint(
        &config.api_key,
        &config.api_secret,
        &q.identity,
        grants,
        DEV_TOKEN_TTL,
        std::time::SystemTime::now(),
    ) {
        Ok(token) => axum::Json(serde_json::json!({ "token": token })).into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// Readiness: 503 from the moment a drain begins (SIGTERM or `POST /api/drain`).
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`draining` or `shutting down`", body = String, content_type = "text/plain")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if state.rooms.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let c = state.rooms.counts();
    let gauges = RoomGauges {
        rooms: c.rooms,
        participants: c.participants,
        audio_tracks: c.audio_tracks,
        video_tracks: c.video_tracks,
    };
    let body = state.metrics.render(&state.media().stats(), &gauges);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
