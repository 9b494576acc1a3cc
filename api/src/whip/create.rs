//! `POST /whip/{room}` and `POST /whep/{room}`: creates a session resource in named steps:
//! [`authorize`] the token, read the offer, [`take_creation_slot`] of the rate limit,
//! [`check_offer`], [`join_and_answer`], [`register`] the resource and its task, and answer
//! [`created`].

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cascade_sfu::room::{
    Follow, JoinRequest, ParticipantKind, ParticipantSignal, Permissions, SESSION_QUEUE,
};
use cascade_sfu::seam::{PEER_EVENT_QUEUE, PeerEvent};
use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::IceServer;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::mpsc;
use tracing::info;

use super::http::{
    bearer, check_room, header_value, media_error, new_etag, read_body, resource_id,
};
use super::resource::{Negotiated, Protocol, WhipResource};
use super::{ACCEPT_PATCH, MAX_OFFER, SDP, SDPFRAG, WhepQuery, sdpfrag, task};
use crate::auth::Claims;
use crate::rest::error::ApiError;
use crate::rest::model::validate_name;
use crate::state::AppState;
use crate::turn_credentials;

/// Reads the WHEP query, verifies the token, joins the room, answers the offer and registers the resource.
pub(super) async fn create(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query = match protocol {
        Protocol::Whip => None,
        Protocol::Whep => Some(WhepQuery::from_uri(uri)?),
    };
    let claims = authorize(&state, protocol, &room, query.as_ref(), &headers)?;
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let turn_urls = state.embedded_turn_urls(host);
    let ice_servers =
        turn_credentials::ice_servers(&state.config, &turn_urls, &claims.sub, SystemTime::now());
    let offer = read_body(&headers, body, SDP, MAX_OFFER).await?;
    if let Some(too_many) = take_creation_slot(&state) {
        return Ok(too_many);
    }
    let remote_ufrag = check_offer(&offer)?;
    let follow = query.and_then(|q| q.participant);
    let joined = join_and_answer(&state, protocol, &room, claims, &offer, follow).await?;
    let negotiated = Negotiated {
        etag: new_etag(),
        offer,
        remote_ufrag,
    };
    let etag = negotiated.etag.clone();
    let id = register(&state, protocol, &room, joined.resource, negotiated);
    created(protocol, &room, &id, &etag, &ice_servers, joined.answer)
}

/// Checks the names, the token (for this room, with the grant the protocol needs), and that
/// the server is not draining; returns the token's claims.
fn authorize(
    state: &AppState,
    protocol: Protocol,
    room: &str,
    query: Option<&WhepQuery>,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    validate_name("room name", room)?;
    if let Some(identity) = query.and_then(|q| q.participant.as_deref()) {
        validate_name("participant", identity)?;
    }
    let claims = bearer(state, headers)?
        .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
    check_room(&claims, room)?;
    match protocol {
        Protocol::Whip if !claims.video.can_publish => {
            return Err(ApiError::forbidden("this token may not publish"));
        }
        Protocol::Whep if !claims.video.can_subscribe => {
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
    Ok(claims)
}

/// Takes one creation from the rate limit; past it, returns the `429` answer with
/// `Retry-After`.
fn take_creation_slot(state: &AppState) -> Option<Response> {
    let Err(wait) = state.whip_resources.rate_limit.take(Instant::now()) else {
        return None;
    };
    let mut response = ApiError::from_code(
        ErrorCode::RateLimited,
        "too many WHIP/WHEP sessions are being created; retry later",
    )
    .into_response();
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(response)
}

/// Checks that the offer parses and has an ICE username fragment; returns the fragment.
fn check_offer(offer: &str) -> Result<String, ApiError> {
    let remote_ufrag = sdpfrag::ice_ufrag(offer)
        .ok_or_else(|| ApiError::from_code(ErrorCode::InvalidSdp, "the offer has no a=ice-ufrag"))?
        .to_owned();
    cascade_sfu::sdp::parse(offer).map_err(media_error)?;
    Ok(remote_ufrag)
}

/// A participant that joined and whose offer was answered, not yet registered.
struct Joined {
    /// The resource, without its negotiation state.
    resource: Unregistered,
    /// The SDP answer.
    answer: String,
}

/// What [`register`] needs of a joined participant.
struct Unregistered {
    participant: String,
    peer: cascade_sfu::PeerHandle,
    signals: mpsc::Receiver<ParticipantSignal>,
    events: mpsc::Receiver<PeerEvent>,
}

/// Joins the room as a participant of the protocol's kind and answers the offer; a WHEP
/// viewer then follows `follow` (or the room's first publishers).
async fn join_and_answer(
    state: &AppState,
    protocol: Protocol,
    room: &str,
    claims: Claims,
    offer: &str,
    follow: Option<String>,
) -> Result<Joined, ApiError> {
    let (signal_sender, signals) = mpsc::channel(SESSION_QUEUE);
    let (peer_events, events) = mpsc::channel(PEER_EVENT_QUEUE);
    let joined = state.rooms.join(JoinRequest {
        room: room.to_owned(),
        permissions: Permissions::from(&claims.video),
        identity: claims.sub,
        auto_subscribe: false,
        kind: match protocol {
            Protocol::Whip => ParticipantKind::Whip,
            Protocol::Whep => ParticipantKind::Whep,
        },
        outbox: signal_sender,
        peer_events,
    })?;
    // If the client goes away while its offer is being answered, axum drops this future:
    // the participant must not stay in the room without a session.
    let mut joined_guard = LeaveOnDrop {
        state,
        room,
        participant: &joined.participant,
        reason: "disconnected",
        armed: true,
    };
    let answered = match protocol {
        Protocol::Whip => joined.peer.apply_offer(offer.to_owned(), true).await,
        Protocol::Whep => joined.peer.apply_viewer_offer(offer.to_owned()).await,
    };
    let answer = match answered {
        Ok(answer) => answer,
        Err(e) => {
            joined_guard.reason = "invalid_offer";
            return Err(media_error(e));
        }
    };
    if protocol == Protocol::Whep {
        state
            .rooms
            .follow(room, &joined.participant, Follow { identity: follow });
    }
    joined_guard.armed = false; // the resource's task owns the participant from here
    drop(joined_guard);
    Ok(Joined {
        resource: Unregistered {
            participant: joined.participant,
            peer: joined.peer,
            signals,
            events,
        },
        answer,
    })
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

/// Registers the resource under a new id and starts its task; returns the id.
fn register(
    state: &Arc<AppState>,
    protocol: Protocol,
    room: &str,
    joined: Unregistered,
    negotiated: Negotiated,
) -> String {
    let id = resource_id();
    let resource = Arc::new(WhipResource {
        protocol,
        room: room.to_owned(),
        participant: joined.participant.clone(),
        peer: joined.peer,
        negotiated: tokio::sync::Mutex::new(negotiated),
    });
    state.whip_resources.insert(id.clone(), resource.clone());
    tokio::spawn(task::run(
        state.clone(),
        id.clone(),
        resource,
        joined.signals,
        joined.events,
    ));
    info!(protocol = protocol.as_str(), %room, participant = %joined.participant, "session created");
    id
}

/// `201 Created` with the answer, the resource's `Location` and `ETag`, and the ICE servers.
fn created(
    protocol: Protocol,
    room: &str,
    id: &str,
    etag: &str,
    ice_servers: &[IceServer],
    answer: String,
) -> Result<Response, ApiError> {
    let location = format!(
        "/{}/{}/{id}",
        protocol.as_str(),
        utf8_percent_encode(room, NON_ALPHANUMERIC)
    );
    let mut response = (StatusCode::CREATED, answer).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    h.insert(header::LOCATION, header_value(&location)?);
    h.insert(header::ETAG, header_value(etag)?);
    h.insert(ACCEPT_PATCH, HeaderValue::from_static(SDPFRAG));
    for link in ice_server_links(ice_servers) {
        // Raw bytes: an identity in a TURN username may be UTF-8 beyond ASCII.
        let value = HeaderValue::from_bytes(link.as_bytes())
            .map_err(|_| ApiError::internal("header value is not valid"))?;
        h.append(header::LINK, value);
    }
    Ok(response)
}

/// One `Link` header value per ICE server URL (RFC 9725): `<url>; rel="ice-server"`, and for a
/// server with credentials `; username="..."; credential="..."; credential-type="password"`
/// (quoted strings, `"` and `\` escaped).
fn ice_server_links(servers: &[IceServer]) -> impl Iterator<Item = String> + '_ {
    servers.iter().flat_map(|server| {
        let credentials = match (&server.username, &server.credential) {
            (Some(username), Some(credential)) => format!(
                "; username={}; credential={}; credential-type=\"password\"",
                quoted(username),
                quoted(credential)
            ),
            _ => String::new(),
        };
        server
            .urls
            .iter()
            .map(move |url| format!("<{url}>; rel=\"ice-server\"{credentials}"))
    })
}

/// `s` as an HTTP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_each_url_and_quote_credentials() {
        let servers = [
            IceServer {
                urls: vec!["stun:stun.example".into()],
                username: None,
                credential: None,
            },
            IceServer {
                urls: vec![
                    "turn:t.example:3478?transport=udp".into(),
                    "turns:t.example".into(),
                ],
                username: Some(r#"1700000000:a"b\c"#.into()),
                credential: Some("c2VjcmV0+/=".into()),
            },
        ];
        let links: Vec<String> = ice_server_links(&servers).collect();
        let credentials = r#"; username="1700000000:a\"b\\c"; credential="c2VjcmV0+/="; credential-type="password""#;
        assert_eq!(
            links,
            [
                r#"<stun:stun.example>; rel="ice-server""#.to_owned(),
                format!(r#"<turn:t.example:3478?transport=udp>; rel="ice-server"{credentials}"#),
                format!(r#"<turns:t.example>; rel="ice-server"{credentials}"#),
            ]
        );
    }
}
