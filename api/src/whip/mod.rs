//! WHIP ingest (RFC 9725) at `/whip/{room}` and WHEP playback at `/whep/{room}`.
//!
//! A `POST` of an SDP offer with a Cascade token joins the room as a participant of kind `whip`
//! (publisher) or `whep` (viewer) and answers `201 Created` with the session resource in
//! `Location`. `PATCH` on the resource trickles candidates or restarts ICE
//! (`application/trickle-ice-sdpfrag`, guarded by `If-Match`), `DELETE` ends the session.
//! A WHEP viewer gets one audio and one video slot that follow the room's publishers (see
//! docs/whip-whep.md). The resource URL is the session's capability: `PATCH` and `DELETE`
//! need no token, but one that is sent must be valid for the room.

mod create;
mod http;
pub mod resource;
pub mod sdpfrag;
mod task;
mod trickle;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::rest::error::{ApiError, ErrorBody, Path};
use crate::rest::params::name_param;
use crate::state::AppState;
use http::{authorized_resource, not_found};
use resource::Protocol;

/// Content type of WHIP/WHEP offers and answers.
pub const SDP: &str = "application/sdp";
/// Content type of `PATCH` bodies and ICE-restart answers.
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// The `Accept-Patch` header (RFC 5789).
const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");
/// The `Accept-Post` header (W3C LDP).
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");
/// Largest SDP offer accepted, in bytes.
pub const MAX_OFFER: usize = 64 * 1024;

/// The WHIP and WHEP routes (documented), with CORS for browser clients: every response
/// allows any origin and exposes the WHIP headers; `OPTIONS` answers preflights.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(whip_create, whip_endpoint_options))
        .routes(routes!(whip_patch, whip_delete, whip_resource_options))
        .routes(routes!(whep_create, whep_endpoint_options))
        .routes(routes!(whep_patch, whep_delete, whep_resource_options))
        .layer(axum::middleware::map_response(cors))
}

/// Adds the CORS headers every WHIP/WHEP response carries.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch, Accept-Post"),
    );
    response
}

/// Query of `POST /whep/{room}`.
#[derive(Debug, Deserialize)]
pub struct WhepQuery {
    /// Watch only this publisher (identity); by default the earliest-joined publisher of
    /// each kind.
    pub participant: Option<String>,
}

impl IntoParams for WhepQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = "Watch only this publisher (identity); by default the earliest-joined \
                           publisher of\neach kind.";
        vec![name_param(
            "participant",
            ParameterIn::Query,
            Some(description),
            false,
        )]
    }
}

/// The `{room}` parameter of every WHIP and WHEP path.
struct RoomParam;

impl IntoParams for RoomParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![name_param(
            "room",
            ParameterIn::Path,
            Some("Room name"),
            true,
        )]
    }
}

impl WhepQuery {
    /// The query of a request's URI; 400 `invalid_request` if it does not parse.
    fn from_uri(uri: &Uri) -> Result<Self, ApiError> {
        let axum::extract::Query(query) = axum::extract::Query::try_from_uri(uri)?;
        Ok(query)
    }
}

/// Emits the WHIP and the WHEP handler of one operation, each with its `#[utoipa::path]`, from
/// one description: the method, the path after `/whip` or `/whep`, the handler's arguments,
/// the documentation both share and their shared responses; then per protocol its doc comment
/// (the operation's summary), handler name, path segment, own documentation and responses, and
/// body.
macro_rules! route_pair {
    (
        $method:ident $suffix:literal $args:tt $shared:tt responses $shared_responses:tt
        $(
            $(#[$doc:meta])*
            $name:ident $protocol:literal $own:tt responses $own_responses:tt => $body:expr;
        )+
    ) => {$(
        route_pair!(@handler $(#[$doc])* $name $protocol $method $suffix $args
            $shared $own $shared_responses $own_responses $body);
    )+};
    (
        @handler $(#[$doc:meta])* $name:ident $protocol:literal $method:ident $suffix:literal
        ($($args:tt)*) {$($shared:tt)*} {$($own:tt)*} ($($shared_responses:tt)*)
        ($($own_responses:tt)*) $body:expr
    ) => {
        $(#[$doc])*
        #[utoipa::path(
            $method, path = concat!("/", $protocol, $suffix), tag = "WHIP/WHEP",
            $($shared)* $($own)* responses($($own_responses)* $($shared_responses)*)
        )]
        async fn $name($($args)*) -> Result<Response, ApiError> {
            $body
        }
    };
}

route_pair! {
    post "/{room}" (
        State(state): State<Arc<AppState>>, Path(room): Path<String>, uri: Uri,
        headers: HeaderMap, body: Body
    ) {
        security(("bearer" = [])),
    } responses(
        (status = 201, description = "Session created; the body is the SDP answer",
            content_type = "application/sdp", body = String, headers(
                ("Location" = String, description = "The session resource"),
                ("ETag" = String, description = "Entity tag of the ICE session"),
                ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`)"),
                ("Accept-Patch" = String, description = "`application/trickle-ice-sdpfrag`"))),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 409, description = "The room is full, or the peer connection's state does not accept the offer", body = ErrorBody),
        (status = 413, description = "The offer is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`", body = ErrorBody),
        (status = 429, description = "Too many sessions created; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`server_draining`: the server is shutting down; retry (through the load balancer) after `Retry-After`",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )

    /// Publish into a room over WHIP: the SDP offer is answered and the client joins the room
    /// as a participant of kind `whip`. Needs a token for the room with `can_publish`.
    whip_create "whip" {
        params(RoomParam),
        request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    } responses(
        (status = 400, description = "Invalid SDP, or a name that breaks the name rule", body = ErrorBody),
        (status = 403, description = "The token does not allow publishing in this room", body = ErrorBody),
    ) => create::create(state, Protocol::Whip, room, &uri, headers, body).await;

    /// Watch a room over WHEP: the client's recvonly offer is answered with one audio and one
    /// video slot carrying the room's current publisher (or `?participant=`); the client joins
    /// as a participant of kind `whep`. Needs a token for the room with `can_subscribe`.
    whep_create "whep" {
        params(RoomParam, WhepQuery),
        request_body(content = String, content_type = "application/sdp", description = "SDP offer (recvonly)"),
    } responses(
        (status = 400, description = "Invalid SDP, an offer that sends media, or a name that breaks the name rule", body = ErrorBody),
        (status = 403, description = "The token does not allow subscribing in this room", body = ErrorBody),
    ) => create::create(state, Protocol::Whep, room, &uri, headers, body).await;
}

route_pair! {
    patch "/{room}/{session}" (
        State(state): State<Arc<AppState>>, Path((room, id)): Path<(String, String)>,
        headers: HeaderMap, body: Body
    ) {
        params(RoomParam,
            ("session" = String, Path, description = "Session id (from `Location`)"),
            ("If-Match" = String, Header, description = "The session's ETag, or `*` for an ICE restart")),
        request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "SDP fragment (RFC 8840)"),
    } responses(
        (status = 200, description = "ICE restarted; the body is the server's fragment",
            content_type = "application/trickle-ice-sdpfrag", body = String,
            headers(("ETag" = String, description = "Entity tag of the new ICE session"))),
        (status = 204, description = "Candidates added"),
        (status = 400, description = "Malformed fragment or candidate", body = ErrorBody),
        (status = 401, description = "Invalid or expired token (when one is sent)", body = ErrorBody),
        (status = 403, description = "The token is for another room", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
        (status = 409, description = "The peer connection's state does not accept the ICE restart", body = ErrorBody),
        (status = 412, description = "`If-Match` does not match the ICE session", body = ErrorBody),
        (status = 413, description = "The fragment is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/trickle-ice-sdpfrag`", body = ErrorBody),
        (status = 428, description = "`If-Match` is missing", body = ErrorBody),
    )

    /// Trickle ICE candidates (`If-Match: <ETag>`, answered `204`) or restart ICE (new
    /// `ice-ufrag`/`ice-pwd`, `If-Match: *`, answered `200` with the server's fragment and a new
    /// `ETag`) of a WHIP session.
    whip_patch "whip" {} responses()
        => trickle::patch(state, Protocol::Whip, room, id, headers, body).await;

    /// Trickle ICE candidates or restart ICE of a WHEP session (as for WHIP).
    whep_patch "whep" {} responses()
        => trickle::patch(state, Protocol::Whep, room, id, headers, body).await;
}

route_pair! {
    delete "/{room}/{session}" (
        State(state): State<Arc<AppState>>, Path((room, id)): Path<(String, String)>,
        headers: HeaderMap
    ) {
        params(RoomParam, ("session" = String, Path, description = "Session id (from `Location`)")),
    } responses(
        (status = 200, description = "Session ended"),
        (status = 401, description = "Invalid or expired token (when one is sent)", body = ErrorBody),
        (status = 403, description = "The token is for another room", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )

    /// End a WHIP session: the publisher leaves the room and its tracks are unpublished.
    whip_delete "whip" {} responses() => delete(state, Protocol::Whip, room, id, headers);

    /// End a WHEP session: the viewer leaves the room.
    whep_delete "whep" {} responses() => delete(state, Protocol::Whep, room, id, headers);
}

route_pair! {
    options "/{room}" () { params(RoomParam), } responses(
        (status = 204, description = "`Allow` and `Accept-Post` list what the endpoint takes"),
    )

    /// What the WHIP endpoint accepts (also the CORS preflight answer).
    whip_endpoint_options "whip" {} responses() => Ok(endpoint_options());

    /// What the WHEP endpoint accepts.
    whep_endpoint_options "whep" {} responses() => Ok(endpoint_options());
}

route_pair! {
    options "/{room}/{session}" () {
        params(RoomParam, ("session" = String, Path, description = "Session id")),
    } responses(
        (status = 204, description = "`Allow` and `Accept-Patch` list what the resource takes"),
    )

    /// What a WHIP session resource accepts.
    whip_resource_options "whip" {} responses() => Ok(resource_options());

    /// What a WHEP session resource accepts.
    whep_resource_options "whep" {} responses() => Ok(resource_options());
}

fn endpoint_options() -> Response {
    options("POST, OPTIONS", ACCEPT_POST, SDP)
}

fn resource_options() -> Response {
    options("PATCH, DELETE, OPTIONS", ACCEPT_PATCH, SDPFRAG)
}

/// `204` listing the methods and body type a resource takes; doubles as the CORS preflight
/// answer.
fn options(methods: &'static str, accept: HeaderName, body_type: &'static str) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, methods),
            (accept, body_type),
            (header::ACCESS_CONTROL_ALLOW_METHODS, methods),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type, If-Match",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// `DELETE`: the participant leaves its room.
fn delete(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    id: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorized_resource(&state, protocol, &room, &id, &headers)?;
    state
        .whip_resources
        .remove(&id)
        .map(|s| state.rooms.leave(&s.room, &s.participant, "leave"))
        .ok_or_else(|| not_found(protocol))?;
    Ok(StatusCode::OK.into_response())
}
