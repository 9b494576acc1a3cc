//! The REST API under `/api/`: room administration, token minting and draining, as documented
//! routes (their part of the OpenAPI document is assembled in [`crate::openapi`]).

pub mod auth;
mod drain;
pub mod error;
pub mod model;
pub mod params;
pub mod responses;
mod rooms;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Largest JSON body of the room API.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The room API routes (documented).
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    rooms::routes()
        .merge(drain::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}
