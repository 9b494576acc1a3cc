//! Errors of media-plane operations, each mapped to a protocol error code.

use cascade_signaling::ErrorCode;

/// Why a media-plane request failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MediaError {
    /// The SDP could not be parsed or applied.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// The request does not fit the negotiation state.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// The participant lacks the permission.
    #[error("{0}")]
    PermissionDenied(String),
    /// The candidate could not be parsed or applied.
    #[error("invalid candidate: {0}")]
    InvalidCandidate(String),
    /// The peer connection is closed.
    #[error("peer connection closed")]
    Closed,
    /// An unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// The session trickled more candidates than allowed (see [`crate::candidate_budget`]).
    #[error("too many candidates: {0}")]
    TooManyCandidates(String),
}

impl MediaError {
    /// The protocol error code to report.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidSdp(_) => ErrorCode::InvalidSdp,
            Self::InvalidState(_) => ErrorCode::InvalidState,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::InvalidCandidate(_) => ErrorCode::InvalidCandidate,
            Self::Closed | Self::Internal(_) => ErrorCode::Internal,
            Self::TooManyCandidates(_) => ErrorCode::TooManyCandidates,
        }
    }
}
