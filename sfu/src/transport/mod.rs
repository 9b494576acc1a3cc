//! Cascade's own transport of one peer, sans-I/O (issue 11; not yet driving peers, whose
//! transport is still `RTCPeerConnection`'s): the pieces between a UDP datagram and an RTP or
//! RTCP packet in the clear.
//!
//! - [`ice_lite`]: connectivity checks and consent (which remote address the peer uses);
//! - [`dtls`]: the DTLS server handshake that authenticates the peer against the fingerprint of
//!   its SDP and exports the SRTP master keys;
//! - [`srtp`]: SRTP/SRTCP protect and unprotect in place, with those keys;
//! - [`peer_transport`]: the three behind one datagram entry point (RFC 7983 demultiplexing);
//! - [`twcc`]: transport-wide sequence numbers of what is sent, and the peer's feedback on them.

pub mod dtls;
pub mod ice_lite;
pub mod peer_transport;
pub mod srtp;
pub mod twcc;
