//! WHIP ingest (RFC 9725) at `/whip/{room}` and WHEP playback at `/whep/{room}`.
//!
//! A `POST` of an SDP offer with a Cascade token joins the room as a participant of kind `whip`
//! (publisher) or `whep` (viewer) and answers `201 Created` with the session resource in
//! `Location`. `PATCH` on the resource trickles candidates or restarts ICE
//! (`application/trickle-ice-sdpfrag`, guarded by `If-Match`), `DELETE` ends the session.
//! A WHEP viewer gets one audio and one video slot that follow the room's publishers (see
//! docs/whip-whep.md). The resource URL is the session's capability: `PATCH` and `DELETE`
//! need no token, but one that is sent must be valid for the room.

pub mod sdpfrag;
pub mod session;

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cascade_sfu::peer::PEER_EVENT_QUEUE;
use cascade_sfu::room::{Follow, JoinRequest, ParticipantKind, Permissions, SESSION_QUEUE};
use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::IceCandidate;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::info;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Claims};
use crate::rest::error::{ApiError, ErrorBody, Path, Query};
use crate::server::AppState;
use session::{Negotiated, Protocol, RestSession};

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
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WhepQuery {
    /// Watch only this publisher (identity); by default the earliest-joined publisher of
    /// each kind.
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    pub participant: Option<String>,
}

/// Publish into a room over WHIP: the SDP offer is answered and the client joins the room
/// as a participant of kind `whip`. Needs a token for the room with `can_publish`.
#[utoipa::path(
    post, path = "/whip/{room}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$")),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    responses(
        (status = 201, description = "Session created; the body is the SDP answer",
            content_type = "application/sdp", body = String, headers(
                ("Location" = String, description = "The session resource"),
                ("ETag" = String, description = "Entity tag of the ICE session"),
                ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`)"),
                ("Accept-Patch" = String, description = "`application/trickle-ice-sdpfrag`"))),
        (status = 400, description = "Invalid SDP, or a name that breaks the name rule", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The token does not allow publishing in this room", body = ErrorBody),
        (status = 409, description = "The room is full, or the peer connection's state does not accept the offer", body = ErrorBody),
        (status = 413, description = "The offer is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`", body = ErrorBody),
        (status = 429, description = "Too many sessions created; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`server_draining`: the server is shutting down; retry (through the load balancer) after `Retry-After`",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
async fn whip_create(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    create(state, Protocol::Whip, room, None, headers, body).await
}

/// Watch a room over WHEP: the client's recvonly offer is answered with one audio and one
/// video slot carrying the room's current publisher (or `?participant=`); the client joins
/// as a participant of kind `whep`. Needs a token for the room with `can_subscribe`.
#[utoipa::path(
    post, path = "/whep/{room}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"), WhepQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer (recvonly)"),
    responses(
        (status = 201, description = "Session created; the body is the SDP answer",
            content_type = "application/sdp", body = String, headers(
                ("Location" = String, description = "The session resource"),
                ("ETag" = String, description = "Entity tag of the ICE session"),
                ("Link" = String, description = "ICE servers (`rel=\"ice-server\"`)"),
                ("Accept-Patch" = String, description = "`application/trickle-ice-sdpfrag`"))),
        (status = 400, description = "Invalid SDP, an offer that sends media, or a name that breaks the name rule", body = ErrorBody),
        (status = 401, description = "Missing, invalid or expired token", body = ErrorBody),
        (status = 403, description = "The token does not allow subscribing in this room", body = ErrorBody),
        (status = 409, description = "The room is full, or the peer connection's state does not accept the offer", body = ErrorBody),
        (status = 413, description = "The offer is too large", body = ErrorBody),
        (status = 415, description = "The body is not `application/sdp`", body = ErrorBody),
        (status = 429, description = "Too many sessions created; see `Retry-After`", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`server_draining`: the server is shutting down; retry (through the load balancer) after `Retry-After`",
            body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
    security(("bearer" = []))
)]
async fn whep_create(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<WhepQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    create(state, Protocol::Whep, room, Some(query), headers, body).await
}

/// Trickle ICE candidates (`If-Match: <ETag>`, answered `204`) or restart ICE (new
/// `ice-ufrag`/`ice-pwd`, `If-Match: *`, answered `200` with the server's fragment and a new
/// `ETag`) of a WHIP session.
#[utoipa::path(
    patch, path = "/whip/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id (from `Location`)"),
        ("If-Match" = String, Header, description = "The session's ETag, or `*` for an ICE restart")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "SDP fragment (RFC 8840)"),
    responses(
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
)]
async fn whip_patch(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    patch(state, Protocol::Whip, room, id, headers, body).await
}

/// Trickle ICE candidates or restart ICE of a WHEP session (as for WHIP).
#[utoipa::path(
    patch, path = "/whep/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id (from `Location`)"),
        ("If-Match" = String, Header, description = "The session's ETag, or `*` for an ICE restart")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "SDP fragment (RFC 8840)"),
    responses(
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
)]
async fn whep_patch(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    patch(state, Protocol::Whep, room, id, headers, body).await
}

/// End a WHIP session: the publisher leaves the room and its tracks are unpublished.
#[utoipa::path(
    delete, path = "/whip/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id (from `Location`)")),
    responses(
        (status = 200, description = "Session ended"),
        (status = 401, description = "Invalid or expired token (when one is sent)", body = ErrorBody),
        (status = 403, description = "The token is for another room", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
async fn whip_delete(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete(state, Protocol::Whip, room, id, headers)
}

/// End a WHEP session: the viewer leaves the room.
#[utoipa::path(
    delete, path = "/whep/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id (from `Location`)")),
    responses(
        (status = 200, description = "Session ended"),
        (status = 401, description = "Invalid or expired token (when one is sent)", body = ErrorBody),
        (status = 403, description = "The token is for another room", body = ErrorBody),
        (status = 404, description = "No such session", body = ErrorBody),
    )
)]
async fn whep_delete(
    State(state): State<Arc<AppState>>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    delete(state, Protocol::Whep, room, id, headers)
}

/// What the WHIP endpoint accepts (also the CORS preflight answer).
#[utoipa::path(
    options, path = "/whip/{room}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$")),
    responses((status = 204, description = "`Allow` and `Accept-Post` list what the endpoint takes"))
)]
async fn whip_endpoint_options() -> Response {
    endpoint_options()
}

/// What the WHEP endpoint accepts.
#[utoipa::path(
    options, path = "/whep/{room}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$")),
    responses((status = 204, description = "`Allow` and `Accept-Post` list what the endpoint takes"))
)]
async fn whep_endpoint_options() -> Response {
    endpoint_options()
}

/// What a WHIP session resource accepts.
#[utoipa::path(
    options, path = "/whip/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id")),
    responses((status = 204, description = "`Allow` and `Accept-Patch` list what the resource takes"))
)]
async fn whip_resource_options() -> Response {
    resource_options()
}

/// What a WHEP session resource accepts.
#[utoipa::path(
    options, path = "/whep/{room}/{session}", tag = "WHIP/WHEP",
    params(("room" = String, Path, description = "Room name", min_length = 1, max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"),
        ("session" = String, Path, description = "Session id")),
    responses((status = 204, description = "`Allow` and `Accept-Patch` list what the resource takes"))
)]
async fn whep_resource_options() -> Response {
    resource_options()
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

/// `POST`: verify the token, join the room, answer the offer, register the session.
async fn create(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    query: Option<WhepQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::rest::model::validate_name("room name", &room)?;
    if let Some(identity) = query.as_ref().and_then(|q| q.participant.as_deref()) {
        crate::rest::model::validate_name("participant", identity)?;
    }
    let claims = bearer(&state, &headers)?
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    check_room(&claims, &room)?;
    let grants = &claims.video;
    let permissions = Permissions {
        can_publish: grants.can_publish,
        can_subscribe: grants.can_subscribe,
        can_publish_data: grants.can_publish_data,
    };
    match protocol {
        Protocol::Whip if !permissions.can_publish => {
            return Err(ApiError::forbidden("this token may not publish"));
        }
        Protocol::Whep if !permissions.can_subscribe => {
            return Err(ApiError::forbidden("this token may not subscribe"));
        }
        _ => {}
    }
    if state.rooms.is_draining() {
        return Err(ApiError::from_code(
            ErrorCode::ServerDraining,
            "the server is draining: create the session on another server",
        ));
    }
    let offer = read_body(&headers, body, SDP, MAX_OFFER).await?;
    if let Err(wait) = state
        .rest_sessions
        .rate_limit
        .take(std::time::Instant::now())
    {
        let mut response = ApiError::from_code(
            ErrorCode::RateLimited,
            "too many WHIP/WHEP sessions are being created; retry later",
        )
        .into_response();
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(response);
    }
    let remote_ufrag = sdpfrag::ice_ufrag(&offer)
        .ok_or_else(|| ApiError::from_code(ErrorCode::InvalidSdp, "the offer has no a=ice-ufrag"))?
        .to_owned();
    cascade_sfu::sdp::parse(&offer).map_err(media_error)?;

    let (outbox, signals) = mpsc::channel(SESSION_QUEUE);
    let (peer_events, events) = mpsc::channel(PEER_EVENT_QUEUE);
    let joined = state.rooms.join(JoinRequest {
        room: room.clone(),
        identity: claims.sub.clone(),
        permissions,
        auto_subscribe: false,
        kind: match protocol {
            Protocol::Whip => ParticipantKind::Whip,
            Protocol::Whep => ParticipantKind::Whep,
        },
        outbox,
        peer_events,
    })?;
    // If the client goes away while its offer is being answered, axum drops this future:
    // the participant must not stay in the room without a session.
    let mut joined_guard = LeaveOnDrop {
        state: &state,
        room: &room,
        participant: &joined.participant,
        reason: "disconnected",
        armed: true,
    };
    let answered = match protocol {
        Protocol::Whip => joined.peer.apply_offer(offer.clone(), true).await,
        Protocol::Whep => joined.peer.apply_viewer_offer(offer.clone()).await,
    };
    let answer = match answered {
        Ok(answer) => answer,
        Err(e) => {
            joined_guard.reason = "invalid_offer";
            return Err(media_error(e));
        }
    };
    if protocol == Protocol::Whep {
        let identity = query.and_then(|q| q.participant);
        state
            .rooms
            .follow(&room, &joined.participant, Follow { identity });
    }
    let id = resource_id();
    let etag = new_etag();
    let session = Arc::new(RestSession {
        protocol,
        room: room.clone(),
        participant: joined.participant.clone(),
        peer: joined.peer,
        negotiated: tokio::sync::Mutex::new(Negotiated {
            etag: etag.clone(),
            offer,
            remote_ufrag,
        }),
    });
    state.rest_sessions.insert(id.clone(), session.clone());
    joined_guard.armed = false; // the session task owns the participant from here
    tokio::spawn(session::watch(
        state.clone(),
        id.clone(),
        session,
        signals,
        events,
    ));
    info!(protocol = protocol.as_str(), %room, participant = %joined.participant, "session created");

    let location = format!(
        "/{}/{}/{id}",
        protocol.as_str(),
        utf8_percent_encode(&room, NON_ALPHANUMERIC)
    );
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(header::LOCATION, header_value(&location)?);
    h.insert(header::ETAG, header_value(&etag)?);
    h.insert(ACCEPT_PATCH, HeaderValue::from_static(SDPFRAG));
    for url in &state.config.ice_servers {
        h.append(
            header::LINK,
            header_value(&format!("<{url}>; rel=\"ice-server\""))?,
        );
    }
    Ok(response)
}

/// Removes a participant from its room when dropped while armed.
struct LeaveOnDrop<'a> {
    state: &'a AppState,
    room: &'a str,
    participant: &'a str,
    reason: &'static str,
    armed: bool,
}

impl Drop for LeaveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.state
                .rooms
                .leave(self.room, self.participant, self.reason);
        }
    }
}

/// `PATCH`: trickle candidates, or restart ICE when the fragment brings new credentials.
async fn patch(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(claims) = bearer(&state, &headers)? {
        check_room(&claims, &room)?;
    }
    let session = state
        .rest_sessions
        .get(protocol, &room, &id)
        .ok_or_else(|| not_found(protocol))?;
    let text = read_body(&headers, body, SDPFRAG, sdpfrag::MAX_FRAGMENT).await?;
    let frag = sdpfrag::parse(&text).map_err(|e| ApiError::invalid(e.to_string()))?;
    let if_match = headers
        .get(header::IF_MATCH)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "PATCH needs If-Match: the session's ETag, or * for an ICE restart",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::invalid("If-Match is not ASCII"))?
        .to_owned();
    let mut negotiated = session.negotiated.lock().await;
    let restart = frag
        .ufrag
        .as_ref()
        .is_some_and(|u| *u != negotiated.remote_ufrag);
    if !etag_matches(&if_match, &negotiated.etag) {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "If-Match does not match the current ICE session's ETag",
        ));
    }
    let candidate_ufrag = frag.ufrag.clone();
    let mut response = if restart {
        let (ufrag, pwd) = (
            frag.ufrag.clone().unwrap_or_default(),
            frag.pwd.clone().unwrap_or_default(),
        );
        let offer = sdpfrag::restart_offer(&negotiated.offer, &ufrag, &pwd);
        let can_publish = protocol == Protocol::Whip
            && state
                .rooms
                .permissions(&session.room, &session.participant)
                .is_some_and(|p| p.can_publish);
        let answer = session
            .peer
            .apply_offer(offer.clone(), can_publish)
            .await
            .map_err(media_error)?;
        negotiated.etag = new_etag();
        negotiated.offer = offer;
        negotiated.remote_ufrag = ufrag;
        info!(protocol = protocol.as_str(), %room, participant = %session.participant, "ICE restarted");
        let mut r = (StatusCode::OK, sdpfrag::from_answer(&answer)).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SDPFRAG));
        r.headers_mut()
            .insert(header::ETAG, header_value(&negotiated.etag)?);
        r
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    for c in frag.candidates {
        session
            .peer
            .add_candidate(IceCandidate {
                candidate: c.candidate,
                sdp_mid: c.mid,
                sdp_mline_index: c.mline_index,
                username_fragment: candidate_ufrag.clone(),
            })
            .await
            .map_err(|e| {
                if e.code() == ErrorCode::TooManyCandidates {
                    state.metrics.session_limit(e.code().as_str());
                }
                media_error(e)
            })?;
    }
    if restart {
        response
            .headers_mut()
            .insert(ACCEPT_PATCH, HeaderValue::from_static(SDPFRAG));
    }
    Ok(response)
}

/// `DELETE`: the participant leaves its room.
fn delete(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    id: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(claims) = bearer(&state, &headers)? {
        check_room(&claims, &room)?;
    }
    state
        .rest_sessions
        .get(protocol, &room, &id)
        .and_then(|_| state.rest_sessions.remove(&id))
        .map(|s| state.rooms.leave(&s.room, &s.participant, "leave"))
        .ok_or_else(|| not_found(protocol))?;
    Ok(StatusCode::OK.into_response())
}

/// The verified bearer token, if the request carries one.
fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Option<Claims>, ApiError> {
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

fn check_room(claims: &Claims, room: &str) -> Result<(), ApiError> {
    if claims.video.room != room {
        return Err(ApiError::forbidden(format!(
            "the token is for room `{}`, not `{room}`",
            claims.video.room
        )));
    }
    Ok(())
}

/// Reads a body of the given content type, at most `limit` bytes, as UTF-8.
async fn read_body(
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
            crate::rest::error::codes::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be `{content_type}`"),
        ));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::rest::error::codes::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("the body is not UTF-8"))
}

fn media_error(e: cascade_sfu::MediaError) -> ApiError {
    ApiError::from_code(e.code(), e.to_string())
}

fn not_found(protocol: Protocol) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        crate::rest::error::codes::NOT_FOUND,
        format!("no such {} session", protocol.as_str().to_uppercase()),
    )
}

fn header_value(s: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(s).map_err(|_| ApiError::internal("header value is not valid"))
}

/// A session resource id: 26 random base-32 characters (130 bits), unguessable, since the
/// resource URL is the session's capability.
fn resource_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    (0..26)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % 32] as char)
        .collect()
}

fn new_etag() -> String {
    format!("\"{}\"", &resource_id()[..16])
}

/// Whether an `If-Match` value (a list of entity tags, or `*`) matches `etag`.
fn etag_matches(if_match: &str, etag: &str) -> bool {
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
