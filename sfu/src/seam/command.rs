//! The [`PeerCommand`]s a session sends its peer (with replies) and the [`PeerEvent`]s the
//! peer tells it. A worker's [`crate::worker::shard::Shard`] serves them; rooms and sessions
//! know nothing else of the media engine.

use std::collections::BTreeMap;
use std::sync::Arc;

use cascade_signaling::protocol::IceCandidate;
use tokio::sync::oneshot;

use super::PublishedTrack;
use crate::error::MediaError;

/// Most [`PeerEvent`]s queued for a session. A peer whose session lets this many pile up is
/// closed (the session then sees its event channel close and ends).
pub const PEER_EVENT_QUEUE: usize = 256;

/// A server offer and the Cascade track carried by each forwarded m-line.
#[derive(Debug, Clone)]
pub struct ServerOffer {
    /// The SDP.
    pub sdp: String,
    /// mid -> track id.
    pub tracks: BTreeMap<String, String>,
}

/// What a session asks of its peer.
#[derive(Debug)]
pub enum PeerCommand {
    /// Apply a client offer and answer it. Refused with `PermissionDenied` if it sends media
    /// and `can_publish` is false (nothing is applied then).
    ApplyOffer {
        /// The SDP.
        sdp: String,
        /// Whether the participant may publish.
        can_publish: bool,
        /// The answer SDP.
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Apply a WHEP viewer's offer: one sending slot per offered audio/video kind (filled
    /// later by `Subscribe`), then answer. Refused with `PermissionDenied` if the offer sends.
    ApplyViewerOffer {
        /// The SDP.
        sdp: String,
        /// The answer SDP.
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Create and apply a server offer.
    CreateOffer {
        /// The offer.
        reply: oneshot::Sender<Result<ServerOffer, MediaError>>,
    },
    /// Apply the client's answer to the last server offer (rolled back if invalid).
    ApplyAnswer {
        /// The SDP.
        sdp: String,
        /// Result.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Add a trickled remote candidate.
    AddCandidate {
        /// The candidate.
        candidate: IceCandidate,
        /// Result.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Start forwarding a track to this peer (a renegotiation follows).
    Subscribe(Arc<PublishedTrack>),
    /// Stop forwarding a track to this peer (a renegotiation follows).
    Unsubscribe(String),
    /// Ask the publisher of one of this peer's tracks for a keyframe.
    RequestKeyframe(String),
    /// Close the peer connection and free everything.
    Close,
}

impl PeerCommand {
    /// Answers a command whose peer is already gone.
    pub(crate) fn refuse_closed(self) {
        match self {
            Self::ApplyOffer { reply, .. } | Self::ApplyViewerOffer { reply, .. } => {
                drop(reply.send(Err(MediaError::Closed)))
            }
            Self::CreateOffer { reply } => drop(reply.send(Err(MediaError::Closed))),
            Self::ApplyAnswer { reply, .. } | Self::AddCandidate { reply, .. } => {
                drop(reply.send(Err(MediaError::Closed)))
            }
            Self::Subscribe(_) | Self::Unsubscribe(_) | Self::RequestKeyframe(_) | Self::Close => {}
        }
    }
}

/// What a peer tells its session.
#[derive(Debug)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// The connection failed or closed; the peer is gone.
    Closed(String),
    /// The client started sending a new track.
    TrackPublished(Arc<PublishedTrack>),
    /// The client stopped sending a track (removed in a renegotiation).
    TrackUnpublished(String),
}
