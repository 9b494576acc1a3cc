//! The WebSocket wire protocol: one JSON object per text frame, tagged by `type`.
//!
//! Every client message may carry an optional `ref` (any JSON value) which the server echoes
//! in the `error` it causes, so a client can match errors to requests. See docs/protocol.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ErrorCode;

/// Largest accepted text frame, in bytes (64 KiB). Larger frames get `message_too_large`.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Media kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

/// An ICE candidate as the browser's `RTCIceCandidateInit`, field names in snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` attribute line; empty for end-of-candidates.
    pub candidate: String,
    /// The media id the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The m-line index the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
    /// The ICE username fragment the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// An ICE server the client may use (`RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A participant as other participants see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Server-assigned id, unique for the life of the server (`PA_…`).
    pub id: String,
    /// The identity from the token (unique within a room).
    pub identity: String,
    /// Whether the participant may publish.
    pub can_publish: bool,
}

/// What a participant may do: granted by its token, changeable live by the room API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// May publish tracks.
    pub can_publish: bool,
    /// May subscribe to tracks.
    pub can_subscribe: bool,
    /// May send `data` messages.
    pub can_publish_data: bool,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Server-assigned id (`TR_…`), used by `subscribe`, `mute` and the msid of forwarded media.
    pub id: String,
    /// Id of the publishing participant.
    pub participant: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec mime type, e.g. `video/VP8`, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// Whether the publisher has muted it.
    pub muted: bool,
    /// The publisher's own m-line (mid) for this track; only in the `track_published` sent to
    /// the publisher itself, so it can tell which of its tracks got which id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
}

/// Options of `join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinOptions {
    /// Subscribe to every track of the room automatically (default true; a token may forbid it).
    #[serde(default = "default_true")]
    pub auto_subscribe: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self {
            auto_subscribe: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Messages from a client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticate and enter the room named in the token.
    Join {
        /// A Cascade access token (JWT).
        token: String,
        /// The room the client expects; refused with `permission_denied` if the token names
        /// another room. Optional: the token's room is used when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Join options.
        #[serde(default, flatten)]
        options: JoinOptions,
    },
    /// Continue the participant of a dropped WebSocket (instead of `join`): `token` is the
    /// `resume_token` of its latest `joined`. Answered by `joined` with `resumed: true`, or by
    /// `resume_failed` (then `join` as a new participant).
    Resume {
        /// The resume token (single use).
        token: String,
    },
    /// An SDP offer (the client publishes or changes what it sends).
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// The SDP answer to a server offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Subscribe to tracks by id.
    Subscribe {
        /// Track ids.
        tracks: Vec<String>,
    },
    /// Unsubscribe from tracks by id.
    Unsubscribe {
        /// Track ids.
        tracks: Vec<String>,
    },
    /// Mark one of the client's own tracks as muted or unmuted.
    Mute {
        /// Track id.
        track: String,
        /// New state.
        muted: bool,
    },
    /// Send an application message to the other participants of the room (needs
    /// `can_publish_data`).
    Data {
        /// Any JSON value.
        payload: Value,
    },
    /// Leave the room; the server closes the connection.
    Leave,
    /// Keepalive; answered by `pong`.
    Ping,
}

/// Messages from the server to a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// The joining participant itself.
        participant: ParticipantInfo,
        /// Room name.
        room: String,
        /// The other participants already in the room.
        participants: Vec<ParticipantInfo>,
        /// Tracks already published in the room.
        tracks: Vec<TrackInfo>,
        /// ICE servers for the peer connection.
        ice_servers: Vec<IceServer>,
        /// Single-use token that continues this participant over a new WebSocket (`resume`)
        /// for a grace period after this one drops. WebSocket sessions only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
        /// True in the answer to `resume`: the same participant goes on (same id, tracks,
        /// subscriptions and peer connection); `participants` and `tracks` are the room now.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    /// A server offer (its set of forwarded tracks changed).
    Offer {
        /// The SDP.
        sdp: String,
        /// Which Cascade track each forwarded m-line (by mid) carries.
        tracks: std::collections::BTreeMap<String, String>,
    },
    /// The answer to a client offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A server ICE candidate.
    Candidate {
        /// The candidate.
        candidate: IceCandidate,
    },
    /// Another participant joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Another participant left.
    ParticipantLeft {
        /// Its id.
        participant: String,
        /// Why (`leave`, `disconnected`, `replaced`, ...).
        reason: String,
    },
    /// A track was published in the room.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track was unpublished.
    TrackUnpublished {
        /// Track id.
        track: String,
        /// Publisher id.
        participant: String,
    },
    /// A track was muted or unmuted by its publisher or by an administrator.
    TrackMuted {
        /// Track id.
        track: String,
        /// Publisher id.
        participant: String,
        /// New state.
        muted: bool,
    },
    /// An administrator changed this participant's permissions. Revoking `can_publish`
    /// unpublishes its tracks; revoking `can_subscribe` ends its subscriptions.
    PermissionsChanged {
        /// The new permissions.
        permissions: Permissions,
    },
    /// The server ends the session; the connection closes after this.
    Leave {
        /// Why (`server_shutdown`, `replaced`, `removed` or `room_deleted`).
        reason: String,
    },
    /// An application message from another participant.
    Data {
        /// Sender's participant id.
        participant: String,
        /// Sender's identity.
        identity: String,
        /// The payload as sent.
        payload: Value,
    },
    /// Answer to `ping`.
    Pong,
    /// A request failed; the session continues unless a `leave` follows.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// The `ref` of the client message that caused it, if it had one.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
}

impl ServerMessage {
    /// Builds an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>, reference: Option<Value>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            reference,
        }
    }

    /// The message's `type` tag, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Joined { .. } => "joined",
            Self::Offer { .. } => "offer",
            Self::Answer { .. } => "answer",
            Self::Candidate { .. } => "candidate",
            Self::ParticipantJoined { .. } => "participant_joined",
            Self::ParticipantLeft { .. } => "participant_left",
            Self::TrackPublished { .. } => "track_published",
            Self::TrackUnpublished { .. } => "track_unpublished",
            Self::TrackMuted { .. } => "track_muted",
            Self::PermissionsChanged { .. } => "permissions_changed",
            Self::Leave { .. } => "leave",
            Self::Data { .. } => "data",
            Self::Pong => "pong",
            Self::Error { .. } => "error",
        }
    }
}

impl ClientMessage {
    /// The message's `type` tag, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join { .. } => "join",
            Self::Resume { .. } => "resume",
            Self::Offer { .. } => "offer",
            Self::Answer { .. } => "answer",
            Self::Candidate { .. } => "candidate",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::Mute { .. } => "mute",
            Self::Data { .. } => "data",
            Self::Leave => "leave",
            Self::Ping => "ping",
        }
    }
}

/// The `type` of every message a client may send.
pub const CLIENT_TYPES: &[&str] = &[
    "join",
    "resume",
    "offer",
    "answer",
    "candidate",
    "subscribe",
    "unsubscribe",
    "mute",
    "data",
    "leave",
    "ping",
];

/// Why a client frame was rejected, ready to be sent back as an `error`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The error code.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
    /// The frame's `ref`, if one could be read.
    pub reference: Option<Value>,
}

impl From<Rejection> for ServerMessage {
    fn from(r: Rejection) -> Self {
        ServerMessage::error(r.code, r.message, r.reference)
    }
}

/// Parses one client text frame, returning the message and its optional `ref`.
pub fn parse_client(text: &str) -> Result<(ClientMessage, Option<Value>), Rejection> {
    let reject = |code, message: String, reference| Rejection {
        code,
        message,
        reference,
    };
    if text.len() > MAX_MESSAGE_SIZE {
        return Err(reject(
            ErrorCode::MessageTooLarge,
            format!("message of {} bytes exceeds {MAX_MESSAGE_SIZE}", text.len()),
            None,
        ));
    }
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| reject(ErrorCode::InvalidMessage, format!("not JSON: {e}"), None))?;
    let Some(obj) = value.as_object_mut() else {
        return Err(reject(
            ErrorCode::InvalidMessage,
            "a message must be a JSON object".into(),
            None,
        ));
    };
    let reference = obj.remove("ref");
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(reject(
                ErrorCode::InvalidMessage,
                "missing string field `type`".into(),
                reference,
            ));
        }
    };
    if !CLIENT_TYPES.contains(&ty.as_str()) {
        return Err(reject(
            ErrorCode::UnknownMessageType,
            format!("unknown message type `{ty}`"),
            reference,
        ));
    }
    match serde_json::from_value::<ClientMessage>(value) {
        Ok(msg) => Ok((msg, reference)),
        Err(e) => Err(reject(
            ErrorCode::InvalidMessage,
            format!("bad `{ty}` message: {e}"),
            reference,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_join_with_ref_and_defaults() {
        let (msg, r) = parse_client(r#"{"type":"join","token":"t","ref":7}"#).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Join {
                token: "t".into(),
                room: None,
                options: JoinOptions::default()
            }
        );
        assert_eq!(r, Some(Value::from(7)));
        let (msg, _) =
            parse_client(r#"{"type":"join","token":"t","auto_subscribe":false}"#).unwrap();
        assert!(matches!(msg, ClientMessage::Join { options, .. } if !options.auto_subscribe));
    }

    #[test]
    fn rejects_each_bad_input_with_its_code() {
        let code = |t: &str| parse_client(t).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::InvalidMessage);
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"no":"type"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownMessageType);
        assert_eq!(code(r#"{"type":"offer"}"#), ErrorCode::InvalidMessage);
        let big = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_SIZE)
        );
        assert_eq!(code(&big), ErrorCode::MessageTooLarge);
    }

    #[test]
    fn ref_is_echoed_on_rejection() {
        let r = parse_client(r#"{"type":"dance","ref":"abc"}"#).unwrap_err();
        assert_eq!(r.reference, Some(Value::from("abc")));
    }

    #[test]
    fn server_messages_serialize_with_snake_case_tags() {
        let m = ServerMessage::error(ErrorCode::RoomFull, "full", Some(Value::from(1)));
        let v: Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "room_full");
        assert_eq!(v["ref"], 1);
        let m = ServerMessage::TrackMuted {
            track: "TR_1".into(),
            participant: "PA_1".into(),
            muted: true,
        };
        assert_eq!(serde_json::to_value(&m).unwrap()["type"], "track_muted");
    }
}
