//! Cascade media core: peers on one UDP port, published tracks, forwarding and RTCP feedback.
//!
//! Layers, bottom up: sans-I/O pieces ([`demux`], [`munger`], [`sdp`], [`rtp_view`],
//! [`packet_cache`], [`nack_generator`], [`receive_stats`], [`send_stats`]), Cascade's own
//! transport ([`transport`]: ICE-lite, DTLS, SRTP, transport-wide congestion control) and SDP
//! ([`negotiation`]), the up- and down-tracks ([`up_track`], [`down_track`]), the [`engine`]
//! (routers, one per worker), the session seam ([`peer`]), the [`worker`] threads, the
//! [`server`] that owns the socket, and the [`room`] model (participants, tracks,
//! subscriptions) used by signaling.

pub mod candidate_budget;
pub mod down_track;
pub mod engine;
pub mod error;
pub mod ids;
pub mod log_limit;
pub mod munger;
pub mod nack_generator;
pub mod negotiation;
pub mod net;
pub mod packet_cache;
pub mod receive_stats;
pub mod room;
pub mod rtp_view;
pub mod sdp;
pub mod seam;
pub mod send_stats;
pub mod server;
pub mod stats;
pub mod stun_discovery;
pub mod transport;
pub mod up_track;
pub mod worker;

pub use error::MediaError;
pub use seam::PeerHandle;
pub use server::{MediaConfig, MediaServer};
