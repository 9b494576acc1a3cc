//! `POST /api/drain`: begins a graceful drain, as SIGTERM does.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::OperatorAuth;
use super::error::Json;
use super::responses::AuthErrors;
use crate::state::AppState;

/// The drain route.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(drain))
}

/// The answer of `POST /api/drain`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrainBody {
    /// Always true: the server drains from now on.
    pub draining: bool,
    /// Whether this request began the drain (false: it had begun already).
    pub started: bool,
    /// Participants still in rooms.
    pub participants: u64,
    /// How long rooms may go on, from the start of the drain, before the server tells their
    /// participants to leave and exits.
    pub drain_timeout_secs: u64,
}

/// Begins draining: `/readyz` answers 503, joins and new rooms are refused with
/// `server_draining`, existing rooms go on until they empty or `drain_timeout` passes; then
/// the server exits. Needs the API key and secret (Basic); idempotent.
#[utoipa::path(
    post, path = "/api/drain", tag = "operations", operation_id = "drain",
    security(("basic" = [])),
    responses((status = 202, description = "The server drains", body = DrainBody), AuthErrors)
)]
async fn drain(
    State(state): State<Arc<AppState>>,
    _operator: OperatorAuth,
) -> (StatusCode, Json<DrainBody>) {
    let started = state.begin_drain();
    let body = DrainBody {
        draining: true,
        started,
        participants: state.rooms.counts().participants,
        drain_timeout_secs: state.config.drain_timeout.as_secs(),
    };
    (StatusCode::ACCEPTED, Json(body))
}
