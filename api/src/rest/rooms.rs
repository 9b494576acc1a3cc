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

/// Emits the room API handlers, each with its `#[utoipa::path]`, from one row each: its
/// method, path and tag, name, its names for the state and the administrator ([`AdminAuth`],
/// Basic credentials or a bearer token: the `security` of every room API operation), its other
/// extractors (`pattern => type`), its answer, its own documentation, and its body.
macro_rules! admin_routes {
    ($(
        $(#[$doc:meta])*
        $method:ident $path:literal, tag = $tag:literal,
        $name:ident($state:ident, $admin:ident $(, $arg:pat => $ty:ty)*) -> $answer:ty
        { $($documentation:tt)* } $body:block
    )+) => {$(
        $(#[$doc])*
        #[utoipa::path(
            $method, path = $path, tag = $tag, operation_id = stringify!($name),
            security(("bearer" = []), ("basic" = [])),
            $($documentation)*
        )]
        async fn $name(
            State($state): Shared,
            $admin: AdminAuth,
            $($arg: $ty),*
        ) -> Result<$answer, ApiError> $body
    )+};
}

admin_routes! {
    /// Lists rooms, sorted by name (a room-scoped admin token sees only its room).
    get "/api/rooms", tag = "rooms",
    list_rooms(state, admin, Query(q) => Query<PageQuery>) -> Json<RoomList> {
        params(PageQuery),
        responses((status = 200, description = "A page of rooms", body = RoomList), BadRequest, AuthErrors)
    } {
        let page = q.page()?;
        let mut rooms = state.rooms.list_rooms();
        rooms.retain(|r| admin.may(&r.name));
        let (rooms, next_cursor) = paginate(rooms, |r| r.name.as_str(), &page);
        Ok(Json(RoomList { rooms, next_cursor }))
    }

    /// Creates an empty room; an existing room is returned unchanged (200).
    post "/api/rooms", tag = "rooms",
    create_room(state, admin, Json(req) => Json<CreateRoom>) -> (StatusCode, Json<RoomBody>) {
        request_body = CreateRoom,
        responses(
            (status = 201, description = "Created", body = RoomBody),
            (status = 200, description = "The room existed already", body = RoomBody),
            BodyErrors, AuthErrors, Draining
        )
    } {
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
    get "/api/rooms/{room}", tag = "rooms",
    get_room(state, admin, Path(p) => Path<RoomPath>) -> Json<RoomBody> {
        params(RoomPath),
        responses((status = 200, description = "The room", body = RoomBody), BadRequest, AuthErrors, NotFound)
    } {
        room_allowed(&admin, &p.room)?;
        Ok(Json(state.rooms.room(&p.room)?.into()))
    }

    /// Deletes a room: every participant gets `leave {reason: "room_deleted"}` and is disconnected.
    delete "/api/rooms/{room}", tag = "rooms",
    delete_room(state, admin, Path(p) => Path<RoomPath>) -> Json<RoomBody> {
        params(RoomPath),
        responses((status = 200, description = "The room as it was just before its deletion", body = RoomBody), BadRequest, AuthErrors, NotFound)
    } {
        room_allowed(&admin, &p.room)?;
        // Report the participants and tracks there were, not the emptied room.
        let before = state.rooms.room(&p.room)?;
        state.rooms.delete_room(&p.room)?;
        Ok(Json(before.into()))
    }

    /// Lists a room's participants, sorted by identity.
    get "/api/rooms/{room}/participants", tag = "participants",
    list_participants(state, admin, Path(p) => Path<RoomPath>, Query(q) => Query<PageQuery>) -> Json<ParticipantList> {
        params(RoomPath, PageQuery),
        responses((status = 200, description = "A page of participants", body = ParticipantList), BadRequest, AuthErrors, NotFound)
    } {
        room_allowed(&admin, &p.room)?;
        let page = q.page()?;
        let list = state.rooms.participants(&p.room)?;
        let (participants, next_cursor) = paginate(list, |p| p.identity.as_str(), &page);
        Ok(Json(ParticipantList { participants, next_cursor }))
    }

    /// One participant, by identity.
    get "/api/rooms/{room}/participants/{identity}", tag = "participants",
    get_participant(state, admin, Path(p) => Path<ParticipantPath>) -> Json<ParticipantBody> {
        params(ParticipantPath),
        responses((status = 200, description = "The participant", body = ParticipantBody), BadRequest, AuthErrors, NotFound)
    } {
        participant_allowed(&admin, &p)?;
        Ok(Json(state.rooms.participant(&p.room, &p.identity)?.into()))
    }

    /// Removes a participant: it gets `leave {reason: "removed"}` and is disconnected; the room
    /// sees it leave. Its token stays valid: to keep it out, mint tokens with short lifetimes.
    delete "/api/rooms/{room}/participants/{identity}", tag = "participants",
    remove_participant(state, admin, Path(p) => Path<ParticipantPath>) -> Json<ParticipantBody> {
        params(ParticipantPath),
        responses((status = 200, description = "The participant as it was when removed", body = ParticipantBody), BadRequest, AuthErrors, NotFound)
    } {
        participant_allowed(&admin, &p)?;
        Ok(Json(
            state.rooms.remove_participant(&p.room, &p.identity)?.into(),
        ))
    }

    /// Updates a participant live. Permissions: revoking `can_publish` unpublishes its tracks,
    /// revoking `can_subscribe` ends its subscriptions; it gets `permissions_changed`.
    patch "/api/rooms/{room}/participants/{identity}", tag = "participants",
    update_participant(state, admin, Path(p) => Path<ParticipantPath>, Json(req) => Json<UpdateParticipant>) -> Json<ParticipantBody> {
        params(ParticipantPath),
        request_body = UpdateParticipant,
        responses((status = 200, description = "The updated participant", body = ParticipantBody), BodyErrors, AuthErrors, NotFound)
    } {
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
    patch "/api/rooms/{room}/participants/{identity}/tracks/{track}", tag = "participants",
    update_track(state, admin, Path(p) => Path<TrackPath>, Json(req) => Json<UpdateTrack>) -> Json<TrackBody> {
        params(TrackPath),
        request_body = UpdateTrack,
        responses((status = 200, description = "The updated track", body = TrackBody), BodyErrors, AuthErrors, NotFound)
    } {
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
    post "/api/rooms/{room}/data", tag = "rooms",
    send_data(state, admin, Path(p) => Path<RoomPath>, Json(req) => Json<SendData>) -> Json<DataSent> {
        params(RoomPath),
        request_body = SendData,
        responses((status = 200, description = "Sent", body = DataSent), BodyErrors, AuthErrors, NotFound)
    } {
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
    post "/api/tokens", tag = "tokens",
    create_token(state, admin, Json(req) => Json<CreateToken>) -> Json<TokenBody> {
        request_body = CreateToken,
        responses((status = 200, description = "The token", body = TokenBody), BodyErrors, AuthErrors)
    } {
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
