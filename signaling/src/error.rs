//! Error codes sent to clients in `error` messages (documented in docs/protocol.md).

use serde::{Deserialize, Serialize};

/// A machine-readable error code. Its string form (snake_case) is part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or does not match any message shape.
    InvalidMessage,
    /// The message `type` is not one the server knows.
    UnknownMessageType,
    /// The frame is larger than the maximum message size (64 KiB).
    MessageTooLarge,
    /// The message needs a joined session (`join` first).
    NotJoined,
    /// `join` sent twice on one connection.
    AlreadyJoined,
    /// The token is missing, malformed or its signature does not verify.
    Unauthorized,
    /// The token has expired (or is not valid yet).
    TokenExpired,
    /// The token does not grant what the request needs.
    PermissionDenied,
    /// The room has reached its maximum number of participants.
    RoomFull,
    /// The SDP could not be parsed or applied.
    InvalidSdp,
    /// An offer or answer arrived in a signaling state that does not accept it.
    InvalidState,
    /// The named track does not exist in the room.
    TrackNotFound,
    /// The named room does not exist.
    RoomNotFound,
    /// No participant with that identity is in the room.
    ParticipantNotFound,
    /// The ICE candidate could not be parsed or applied.
    InvalidCandidate,
    /// The client sends messages faster than the server accepts them.
    RateLimited,
    /// An unexpected server-side failure; the session may continue.
    Internal,
    /// A room name or identity breaks the name rule ([`crate::names`]).
    InvalidName,
    /// The server is draining before it shuts down: it takes no new participants or rooms
    /// (join another server; rooms that exist go on until they empty or the drain times out).
    ServerDraining,
    /// The session trickled more ICE candidates than allowed (per ICE generation or in all).
    TooManyCandidates,
    /// `resume` named no participant that can be resumed (unknown, used or expired token):
    /// `join` as a new participant.
    ResumeFailed,
}

impl ErrorCode {
    /// The code's wire string, e.g. `"room_full"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidMessage => "invalid_message",
            Self::UnknownMessageType => "unknown_message_type",
            Self::MessageTooLarge => "message_too_large",
            Self::NotJoined => "not_joined",
            Self::AlreadyJoined => "already_joined",
            Self::Unauthorized => "unauthorized",
            Self::TokenExpired => "token_expired",
            Self::PermissionDenied => "permission_denied",
            Self::RoomFull => "room_full",
            Self::InvalidSdp => "invalid_sdp",
            Self::InvalidState => "invalid_state",
            Self::TrackNotFound => "track_not_found",
            Self::RoomNotFound => "room_not_found",
            Self::ParticipantNotFound => "participant_not_found",
            Self::InvalidCandidate => "invalid_candidate",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::InvalidName => "invalid_name",
            Self::ServerDraining => "server_draining",
            Self::TooManyCandidates => "too_many_candidates",
            Self::ResumeFailed => "resume_failed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_string_matches_serde() {
        for code in [
            ErrorCode::RoomFull,
            ErrorCode::InvalidSdp,
            ErrorCode::TokenExpired,
            ErrorCode::InvalidName,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
