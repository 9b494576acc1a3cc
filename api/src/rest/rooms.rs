//! The room API: rooms, participants, tracks, data messages, tokens.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use cascade_signaling::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::AdminAuth;
use super::error::{ApiError, Json, Path, Query};
use super::model::*;
use super::params::{ParticipantPath, RoomPath, TrackPath};
use super::responses::{AuthErrors, BadRequest, BodyErrors, Draining, NotFound};
use crate::auth::{self, Grants};
use crate::state::AppState;

type Shared = State<Arc<AppState>>;

/// The room API routes.
pub fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room, delete_room))
        .routes(routes!(list_participants))
        .routes(routes!(
            get_participant,
            remove_participant,
            update_participant
        ))
        .routes(routes!(update_track))
        .routes(routes!(send_data))
        .routes(routes!(create_token))
}

/// Lists rooms, sorted by name (a room-scoped admin token sees only its room).
#[utoipa::path(
    get, path = "/api/rooms", tag = "rooms", operation_id = "list_rooms",
    params(PageQuery),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "A page of rooms", body = RoomList), BadRequest, AuthErrors)
)]
async fn list_rooms(
    State(state): Shared,
    admin: AdminAuth,
    Query(q): Query<PageQuery>,
) -> Result<Json<RoomList>, ApiError> {
    let page = q.page()?;
    let mut rooms = state.rooms.list_rooms();
    rooms.retain(|r| admin.may(&r.name));
    let (rooms, next_cursor) = paginate(rooms, |r| r.name.as_str(), &page);
    Ok(Json(RoomList {
        rooms: rooms.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Creates an empty room; an existing room is returned unchanged (200).
#[utoipa::path(
    post, path = "/api/rooms", tag = "rooms", operation_id = "create_room",
    request_body = CreateRoom,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 201, description = "Created", body = RoomBody),
        (status = 200, description = "The room existed already", body = RoomBody),
        BodyErrors, AuthErrors, Draining
    )
)]
async fn create_room(
    State(state): Shared,
    admin: AdminAuth,
    Json(req): Json<CreateRoom>,
) -> Result<(StatusCode, Json<RoomBody>), ApiError> {
    validate_name("room name", &req.name)?;
    admin.check_room(&req.name)?;
    if let Some(t) = req.empty_timeout_secs
        && t > MAX_EMPTY_TIMEOUT_SECS
    {
        return Err(ApiError::invalid(format!(
            "empty_timeout_secs must be at most {MAX_EMPTY_TIMEOUT_SECS}"
        )));
    }
    let (room, created) = state.rooms.create_room(
        &req.name,
        req.max_participants,
        req.empty_timeout_secs.map(Duration::from_secs),
    )?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(room.into())))
}

/// One room.
#[utoipa::path(
    get, path = "/api/rooms/{room}", tag = "rooms", operation_id = "get_room",
    params(RoomPath),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The room", body = RoomBody), BadRequest, AuthErrors, NotFound)
)]
async fn get_room(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<RoomPath>,
) -> Result<Json<RoomBody>, ApiError> {
    room_allowed(&admin, &p.room)?;
    Ok(Json(state.rooms.room(&p.room)?.into()))
}

/// Deletes a room: every participant gets `leave {reason: "room_deleted"}` and is disconnected.
#[utoipa::path(
    delete, path = "/api/rooms/{room}", tag = "rooms", operation_id = "delete_room",
    params(RoomPath),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The room as it was just before its deletion", body = RoomBody), BadRequest, AuthErrors, NotFound)
)]
async fn delete_room(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<RoomPath>,
) -> Result<Json<RoomBody>, ApiError> {
    room_allowed(&admin, &p.room)?;
    // Report the participants and tracks there were, not the emptied room.
    let before = state.rooms.room(&p.room)?;
    state.rooms.delete_room(&p.room)?;
    Ok(Json(before.into()))
}

/// Lists a room's participants, sorted by identity.
#[utoipa::path(
    get, path = "/api/rooms/{room}/participants", tag = "participants",
    operation_id = "list_participants",
    params(RoomPath, PageQuery),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "A page of participants", body = ParticipantList), BadRequest, AuthErrors, NotFound)
)]
async fn list_participants(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<RoomPath>,
    Query(q): Query<PageQuery>,
) -> Result<Json<ParticipantList>, ApiError> {
    room_allowed(&admin, &p.room)?;
    let page = q.page()?;
    let list = state.rooms.participants(&p.room)?;
    let (list, next_cursor) = paginate(list, |p| p.identity.as_str(), &page);
    Ok(Json(ParticipantList {
        participants: list.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One participant, by identity.
#[utoipa::path(
    get, path = "/api/rooms/{room}/participants/{identity}", tag = "participants",
    operation_id = "get_participant",
    params(ParticipantPath),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The participant", body = ParticipantBody), BadRequest, AuthErrors, NotFound)
)]
async fn get_participant(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<ParticipantPath>,
) -> Result<Json<ParticipantBody>, ApiError> {
    participant_allowed(&admin, &p)?;
    Ok(Json(state.rooms.participant(&p.room, &p.identity)?.into()))
}

/// Removes a participant: it gets `leave {reason: "removed"}` and is disconnected; the room
/// sees it leave. Its token stays valid: to keep it out, mint tokens with short lifetimes.
#[utoipa::path(
    delete, path = "/api/rooms/{room}/participants/{identity}", tag = "participants",
    operation_id = "remove_participant",
    params(ParticipantPath),
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The participant as it was when removed", body = ParticipantBody), BadRequest, AuthErrors, NotFound)
)]
async fn remove_participant(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<ParticipantPath>,
) -> Result<Json<ParticipantBody>, ApiError> {
    participant_allowed(&admin, &p)?;
    Ok(Json(
        state.rooms.remove_participant(&p.room, &p.identity)?.into(),
    ))
}

/// Updates a participant live. Permissions: revoking `can_publish` unpublishes its tracks,
/// revoking `can_subscribe` ends its subscriptions; it gets `permissions_changed`.
#[utoipa::path(
    patch, path = "/api/rooms/{room}/participants/{identity}", tag = "participants",
    operation_id = "update_participant",
    params(ParticipantPath),
    request_body = UpdateParticipant,
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The updated participant", body = ParticipantBody), BodyErrors, AuthErrors, NotFound)
)]
async fn update_participant(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<ParticipantPath>,
    Json(req): Json<UpdateParticipant>,
) -> Result<Json<ParticipantBody>, ApiError> {
    participant_allowed(&admin, &p)?;
    let current = state.rooms.participant(&p.room, &p.identity)?;
    let Some(patch) = req.permissions else {
        return Ok(Json(current.into()));
    };
    let permissions = patch.apply(current.permissions);
    if permissions == current.permissions {
        return Ok(Json(current.into()));
    }
    Ok(Json(
        state
            .rooms
            .set_permissions(&p.room, &p.identity, permissions)?
            .into(),
    ))
}

/// Mutes or unmutes a published track as an administrator. A muted track is not forwarded and
/// its publisher cannot unmute it; everyone, the publisher included, gets `track_muted`.
#[utoipa::path(
    patch, path = "/api/rooms/{room}/participants/{identity}/tracks/{track}", tag = "participants",
    operation_id = "update_track",
    params(TrackPath),
    request_body = UpdateTrack,
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The updated track", body = TrackBody), BodyErrors, AuthErrors, NotFound)
)]
async fn update_track(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<TrackPath>,
    Json(req): Json<UpdateTrack>,
) -> Result<Json<TrackBody>, ApiError> {
    validate_name("room name", &p.room)?;
    validate_name("identity", &p.identity)?;
    validate_name("track id", &p.track)?;
    admin.check_room(&p.room)?;
    let track = state
        .rooms
        .admin_mute(&p.room, &p.identity, &p.track, req.muted)?;
    Ok(Json(track.into()))
}

/// Sends a data message from the server to the room, or to some identities in it. Identities
/// not in the room are skipped.
#[utoipa::path(
    post, path = "/api/rooms/{room}/data", tag = "rooms", operation_id = "send_data",
    params(RoomPath),
    request_body = SendData,
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "Sent", body = DataSent), BodyErrors, AuthErrors, NotFound)
)]
async fn send_data(
    State(state): Shared,
    admin: AdminAuth,
    Path(p): Path<RoomPath>,
    Json(req): Json<SendData>,
) -> Result<Json<DataSent>, ApiError> {
    room_allowed(&admin, &p.room)?;
    if req.identities.len() > MAX_DATA_IDENTITIES {
        return Err(ApiError::invalid(format!(
            "at most {MAX_DATA_IDENTITIES} identities"
        )));
    }
    for identity in &req.identities {
        validate_name("identity", identity)?;
    }
    let sent = state
        .rooms
        .send_server_data(&p.room, &req.identities, req.payload)?;
    Ok(Json(DataSent {
        recipients: u32::try_from(sent).unwrap_or(u32::MAX),
    }))
}

/// Mints an access token. A room-scoped admin token may mint tokens for its room only; an
/// admin token for every room (empty `room`) needs full access.
#[utoipa::path(
    post, path = "/api/tokens", tag = "tokens", operation_id = "create_token",
    request_body = CreateToken,
    security(("bearer" = []), ("basic" = [])),
    responses((status = 200, description = "The token", body = TokenBody), BodyErrors, AuthErrors)
)]
async fn create_token(
    State(state): Shared,
    admin: AdminAuth,
    Json(req): Json<CreateToken>,
) -> Result<Json<TokenBody>, ApiError> {
    validate_name("identity", &req.identity)?;
    let g = req.grants;
    let room_admin = g.room_admin.unwrap_or(false);
    if req.room.is_empty() {
        if !room_admin {
            return Err(ApiError::from_code(
                ErrorCode::InvalidName,
                "room name must be 1 to 128 bytes long (only an admin token may name no room)",
            ));
        }
        admin.check_all()?;
    } else {
        validate_name("room name", &req.room)?;
        admin.check_room(&req.room)?;
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_TOKEN_TTL_SECS);
    if !(1..=MAX_TOKEN_TTL_SECS).contains(&ttl) {
        return Err(ApiError::invalid(format!(
            "ttl_secs must be 1 to {MAX_TOKEN_TTL_SECS}"
        )));
    }
    let grants = Grants {
        room_join: g.room_join.unwrap_or(true),
        can_publish: g.can_publish.unwrap_or(true),
        can_subscribe: g.can_subscribe.unwrap_or(true),
        can_publish_data: g.can_publish_data.unwrap_or(true),
        room_admin,
        ..Grants::new(req.room.as_str())
    };
    // Whole seconds, as in the token.
    let now_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ApiError::internal("clock is before the Unix epoch"))?
        .as_secs();
    let now = UNIX_EPOCH + Duration::from_secs(now_secs);
    let config = &state.config;
    let token = auth::mint(
        &config.api_key,
        &config.api_secret,
        &req.identity,
        grants,
        Duration::from_secs(ttl),
        now,
    )
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(TokenBody {
        token,
        expires_at: now_secs + ttl,
    }))
}

fn room_allowed(admin: &AdminAuth, room: &str) -> Result<(), ApiError> {
    validate_name("room name", room)?;
    admin.check_room(room)
}

fn participant_allowed(admin: &AdminAuth, p: &ParticipantPath) -> Result<(), ApiError> {
    validate_name("room name", &p.room)?;
    validate_name("identity", &p.identity)?;
    admin.check_room(&p.room)
}
