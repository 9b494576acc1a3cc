//! The server's OpenAPI document (`GET /api/openapi.json`), generated with `utoipa` from the
//! documented routes of every module: the room API ([`crate::rest`]), WHIP/WHEP
//! ([`crate::whip`]) and the operational routes ([`crate::ops`]).
//!
//! Every documented route is an [`OpenApiRouter`]: a module exposes
//! `fn routes() -> OpenApiRouter<Arc<AppState>>` built with `utoipa_axum::routes!` over handlers
//! annotated with `#[utoipa::path]`, and [`documented_routes`] merges it. The document and the
//! router then come from the same code, so they cannot drift apart.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::rest::error;
use crate::state::AppState;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The top of the OpenAPI document: info, tags, security schemes and shared schemas. Paths
/// are added by the routers merged in [`documented_routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cascade",
        description = "REST API of the Cascade SFU. Errors are `{\"error\": {\"code\", \"message\"}}`; see docs/rest.md.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// Adds the `bearer` (Cascade token) and `basic` (API key:secret) security schemes.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        bearer.description = Some(
            "A Cascade access token (HS256 JWT). The room API needs the `room_admin` grant: \
             with an empty `video.room` it administers every room, otherwise only that room."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description =
            Some("The server's API key and secret as user name and password: full access.".into());
        components.add_security_scheme("basic", SecurityScheme::Http(basic));
    }
}

/// Every documented route of the server, with the document's top. To add a module's routes
/// to the server and the document, merge its `OpenApiRouter` here.
pub fn documented_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::rest::routes())
        .merge(crate::ops::routes())
        .merge(crate::whip::routes())
}

/// The router of every documented route plus `GET /api/openapi.json`.
pub fn router() -> Router<Arc<AppState>> {
    let (router, doc) = documented_routes().split_for_parts();
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| doc.to_pretty_json().expect("OpenAPI document serializes"));
    router.route(
        OPENAPI_PATH,
        get(move || async move {
            ([(header::CONTENT_TYPE, "application/json")], json.as_str()).into_response()
        }),
    )
}
