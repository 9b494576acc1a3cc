//! `PATCH` on a WHIP or WHEP session resource: trickles ICE candidates, or restarts ICE when
//! the fragment brings new credentials (RFC 9725 §4.3, `application/trickle-ice-sdpfrag`).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::IceCandidate;
use tracing::info;

use super::http::{
    authorized_resource, etag_matches, header_value, media_error, new_etag, read_body,
};
use super::resource::Protocol;
use super::{ACCEPT_PATCH, SDPFRAG, sdpfrag};
use crate::rest::error::ApiError;
use crate::state::AppState;

/// `PATCH`: trickle candidates, or restart ICE when the fragment brings new credentials.
pub(super) async fn patch(
    state: Arc<AppState>,
    protocol: Protocol,
    room: String,
    id: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let resource = authorized_resource(&state, protocol, &room, &id, &headers)?;
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
    let mut negotiated = resource.negotiated.lock().await;
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
                .permissions(&resource.room, &resource.participant)
                .is_some_and(|p| p.can_publish);
        let answer = resource
            .peer
            .apply_offer(offer.clone(), can_publish)
            .await
            .map_err(media_error)?;
        negotiated.etag = new_etag();
        negotiated.offer = offer;
        negotiated.remote_ufrag = ufrag;
        info!(protocol = protocol.as_str(), %room, participant = %resource.participant, "ICE restarted");
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
        resource
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
