//! Cascade's own SDP negotiation (issue 11; not yet driving peers, whose SDP is still
//! `RTCPeerConnection`'s), sans-I/O: a peer's description parsed once into what Cascade needs
//! ([`remote`]), what Cascade can negotiate ([`capabilities`]), Cascade's answer to an offer
//! ([`answer`]) and its own offers when the server has tracks to add ([`offer`]). One transport per peer: every section BUNDLEd, RTCP muxed, ICE-lite, the server
//! the DTLS server; data channels are rejected.

pub mod answer;
pub mod capabilities;
pub mod offer;
pub mod remote;
mod writer;

/// Why a description cannot be negotiated. The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// Not parseable as SDP.
    #[error("invalid SDP: {0}")]
    Malformed(String),
    /// A required attribute is absent.
    #[error("the SDP has no {0}")]
    Missing(&'static str),
    /// An m-section without `a=mid`.
    #[error("m-section {0} has no a=mid")]
    MissingMid(usize),
    /// Two m-sections with one mid.
    #[error("two m-sections have mid {0:?}")]
    DuplicateMid(String),
    /// More m-sections than [`remote::MAX_SECTIONS`].
    #[error("{0} m-sections (at most {max})", max = remote::MAX_SECTIONS)]
    TooManySections(usize),
    /// Several active sections without `a=group:BUNDLE`.
    #[error(
        "several m-sections without a=group:BUNDLE: Cascade needs one bundled transport (bundlePolicy max-bundle)"
    )]
    NoBundle,
    /// An answer that does not match the server's offer.
    #[error("the answer does not match the offer: {0}")]
    AnswerMismatch(String),
    /// A peer's offer while the server's own offer waits for its answer (the server, the
    /// impolite side, ignores it; the peer rolls back and answers).
    #[error("the server's offer is waiting for an answer (glare): answer it first")]
    Glare,
    /// A new offer with another DTLS fingerprint.
    #[error("{0}: join again for a new session")]
    NewSession(&'static str),
    /// The description's DTLS fingerprint cannot be used.
    #[error("a=fingerprint: {0}")]
    Fingerprint(String),
    /// An answer when no offer of the server is outstanding.
    #[error("no offer of the server is waiting for an answer")]
    NoOffer,
    /// `a=setup:passive`: the server is always the DTLS server.
    #[error("a=setup:passive: the server is the DTLS server, offer actpass or active")]
    DtlsRole,
}
