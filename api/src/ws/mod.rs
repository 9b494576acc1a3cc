//! WebSocket signaling at `/ws`: the upgrade, and the loop that serves one participant's
//! [`SignalingSession`] over its WebSocket: it relays the room's [`ParticipantSignal`]s to the
//! client and the client's messages to the session. When the session ends, for whatever
//! reason, the participant leaves its room and every resource it held is freed.
//!
//! Every queue of a session is bounded: the room's signals ([`SESSION_QUEUE`](cascade_sfu::room::SESSION_QUEUE); a full queue
//! removes the participant as a slow reader), the peer's events ([`PEER_EVENT_QUEUE`](cascade_sfu::seam::PEER_EVENT_QUEUE)), and the
//! messages produced by one event (a handful, sent before the next event is taken). A message
//! the socket does not take within [`SEND_TIMEOUT`] ends the session as a slow reader. Nothing
//! per member (queues, peer) exists before a successful `join`, which must come within
//! [`JOIN_TIMEOUT`].

mod resume;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::response::Response;
use cascade_sfu::room::{ParticipantSignal, SLOW_READER};
use cascade_signaling::ErrorCode;
use cascade_signaling::protocol::ServerMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::listener::ConnectionSlot;
use crate::state::AppState;
use session::SignalingSession;

pub use resume::ResumeTable;

/// Path of the WebSocket signaling endpoint.
pub const WS_PATH: &str = "/ws";
/// Largest WebSocket message the transport accepts; larger ones close the connection (1009).
/// Messages between this and the protocol limit (64 KiB) get a `message_too_large` error.
const WS_TRANSPORT_LIMIT: usize = 1024 * 1024;
/// Read buffer of a WebSocket (tungstenite allocates it up front; its default is 128 KiB).
/// Larger frames still arrive: the buffer grows while one is read.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Most bytes tungstenite keeps queued for a WebSocket whose client does not read (a send
/// past it fails); its default is unbounded.
const WS_MAX_WRITE_BUFFER: usize = 2 * WS_TRANSPORT_LIMIT;

/// A session that sends nothing for this long is considered gone (clients ping every 10 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection that has not joined this long after it opened is closed (reason
/// [`JOIN_TIMEOUT_REASON`], close code [`CLOSE_JOIN_TIMEOUT`]).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The end reason (close frame reason) of a connection that did not join in time.
pub const JOIN_TIMEOUT_REASON: &str = "join_timeout";
/// A message the socket does not accept within this long ends the session as a slow reader.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing frame may take to leave before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// WebSocket close code of a session ended as a slow reader (reason `slow_reader`).
pub const CLOSE_SLOW_READER: u16 = 4003;
/// WebSocket close code of a connection that did not join within [`JOIN_TIMEOUT`].
pub const CLOSE_JOIN_TIMEOUT: u16 = 4008;

/// Upgrades to a signaling session; the session keeps the connection's place in the caps.
pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    slot: Option<Extension<ConnectionSlot>>,
    headers: axum::http::HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    upgrade
        .max_message_size(WS_TRANSPORT_LIMIT)
        .max_frame_size(WS_TRANSPORT_LIMIT)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            run(socket, state, host).await
        })
}

/// Serves one WebSocket until the client leaves or disconnects.
async fn run(socket: WebSocket, state: Arc<AppState>, host: Option<String>) {
    let _live = state.session_guard();
    let (mut sink, mut stream) = socket.split();
    let mut s = SignalingSession::new(state.clone());
    s.request_host = host;
    let mut shutdown = state.shutdown_signal();
    let mut close_reason: Option<String> = None;
    let mut close_code = 1000;
    let mut idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
    let join_deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        tokio::select! {
            // Room signals first: a `Kick` queued before the peer closed must win over the
            // peer's `Closed` event, so the client learns why it was removed.
            biased;
            signal = next(&mut s.signals) => match signal {
                Some(ParticipantSignal::Send(msg)) => s.out.push(msg),
                Some(ParticipantSignal::Renegotiate) => {
                    s.negotiation.mark_needed();
                    s.maybe_offer().await;
                }
                Some(ParticipantSignal::Kick(reason)) => {
                    s.out.push(ServerMessage::Leave { reason: reason.clone() });
                    close_reason = Some(reason.clone());
                    s.end = Some(reason);
                }
                // The room let go of the member without a `Kick`: its queue was full.
                None => {
                    s.end.get_or_insert_with(|| SLOW_READER.into());
                }
            },
            event = next(&mut s.events) => s.on_peer_event(event).await,
            // Another connection resumes this participant: hand the session over.
            claim = claimed(&mut s.claim) => match claim {
                Ok(handover) => {
                    s.handover = Some(handover);
                    s.end = Some(resume::RESUMED_ELSEWHERE.into());
                }
                Err(_) => s.claim = None,
            },
            frame = stream.next() => {
                idle_deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
                match frame {
                    Some(Ok(Message::Text(text))) => s.on_text(&text).await,
                    Some(Ok(Message::Binary(_))) => {
                        if s.within_message_rate() {
                            s.reject(
                                ErrorCode::InvalidMessage,
                                "binary frames are not accepted; send JSON text".into(),
                                None,
                            );
                        }
                    }
                    Some(Ok(_)) => {} // ping/pong frames are handled by the library
                    Some(Err(e)) => {
                        // A frame over the transport limit ends the connection with 1009.
                        debug!("websocket error: {e}");
                        if is_capacity_error(&e) {
                            close_code = 1009;
                        }
                        s.end.get_or_insert_with(|| "disconnected".into());
                    }
                    None => {
                        s.end.get_or_insert_with(|| "disconnected".into());
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                s.end.get_or_insert_with(|| "timeout".into());
            }
            _ = tokio::time::sleep_until(join_deadline), if s.member.is_none() => {
                s.end.get_or_insert_with(|| JOIN_TIMEOUT_REASON.into());
            }
            _ = shutdown.changed() => {
                s.out.push(ServerMessage::Leave { reason: "server_shutdown".into() });
                close_reason = Some("server_shutdown".into());
                s.end = Some("server_shutdown".into());
            }
        }
        for msg in s.out.drain(..) {
            state.metrics.signaling_message("out", msg.kind());
            let text = serde_json::to_string(&msg).expect("server messages serialize");
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    s.end.get_or_insert_with(|| "disconnected".into());
                    break;
                }
                Err(_) => {
                    s.end = Some(SLOW_READER.into());
                    close_reason = None;
                    break;
                }
            }
        }
        if s.end.is_some() {
            break;
        }
    }
    let reason = s.end.take().unwrap_or_else(|| "disconnected".into());
    let limit_code = match reason.as_str() {
        SLOW_READER => Some(CLOSE_SLOW_READER),
        JOIN_TIMEOUT_REASON => Some(CLOSE_JOIN_TIMEOUT),
        _ => None,
    };
    if let Some(code) = limit_code {
        close_code = code;
        state.metrics.session_limit(&reason);
    }
    if let Some(m) = s.member.take() {
        end_member(&state, &mut s, m, &reason);
    }
    let frame = CloseFrame {
        code: close_code,
        reason: Utf8Bytes::from(close_reason.unwrap_or(reason)),
    };
    // A reader that stopped reading does not get to hold the session any longer.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = sink.send(Message::Close(Some(frame))).await;
        let _ = sink.close().await;
    })
    .await;
}

/// What becomes of the participant of an ended session: handed over to the connection that
/// resumed it; parked for a resume if its WebSocket dropped (not left, removed or shut down)
/// with a live peer; else it leaves the room.
fn end_member(state: &Arc<AppState>, s: &mut SignalingSession, m: session::Member, reason: &str) {
    let resumable = matches!(reason, "disconnected" | "timeout")
        && !state.config.resume_grace.is_zero()
        && !s.peer_closed
        && !state.is_shutting_down();
    let handover = s.handover.take();
    let token = s.resume_token.take();
    match (token, s.signals.take(), s.events.take()) {
        (Some(token), Some(signals), Some(events)) if handover.is_some() || resumable => {
            let parked = resume::Parked {
                member: m,
                negotiation: std::mem::take(&mut s.negotiation),
                signals,
                events,
                stashed: Vec::new(),
                last_offer: s.last_offer.take(),
            };
            match handover {
                Some(handover) => {
                    if let Err(parked) = handover.send(parked) {
                        let m = parked.member;
                        state.rooms.leave(&m.room, &m.participant, "disconnected");
                    }
                }
                None => resume::park(state, token, parked, reason.to_owned()),
            }
        }
        (token, ..) => {
            if let Some(token) = token {
                state.resume.forget(&token);
            }
            // A replaced participant was already removed by the room.
            if reason != "replaced" {
                state.rooms.leave(&m.room, &m.participant, reason);
            }
            info!(room = %m.room, participant = %m.participant, %reason, "participant left");
        }
    }
}

/// Resolves when the session is claimed by a `resume` elsewhere (see [`resume`]); pending
/// while it cannot be (not joined).
async fn claimed(
    rx: &mut Option<resume::ClaimReceiver>,
) -> Result<resume::Handover, oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// The next item of a receiver that exists once joined; pending before.
async fn next<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether a WebSocket error is a message or frame over the size limit.
fn is_capacity_error(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tungstenite::Error::Capacity(_)) = err.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = err.source();
    }
    false
}
