//! Cascade media core: peers on one UDP port, published tracks, forwarding and RTCP feedback.
//!
//! Layers, bottom up: sans-I/O pieces ([`demux`], [`munger`], [`sdp`], [`feedback_tap`], and
//! the first pieces of Cascade's own engine, issue 11: [`transport`], [`negotiation`], [`rtp_view`],
//! [`packet_cache`], [`nack_generator`], [`receive_stats`] and [`send_stats`]), the
//! per-connection [`peer`], the [`worker`] threads that own peers, the [`server`] that owns the
//! socket, and the [`room`] model (participants, tracks, subscriptions) used by signaling.

pub mod candidate_budget;
pub mod candidates;
pub mod codecs;
pub mod demux;
pub mod down_track;
pub mod engine;
pub mod error;
pub mod feedback_tap;
pub mod ids;
pub mod log_limit;
pub mod munger;
pub mod nack_generator;
pub mod negotiation;
pub mod packet_cache;
pub mod peer;
pub mod receive_stats;
pub mod room;
pub mod rtp_view;
pub mod sdp;
pub mod send_stats;
pub mod server;
pub mod stats;
pub mod stun_discovery;
pub mod track;
pub mod transport;
mod udp;
pub mod up_track;
pub mod worker;

pub use error::MediaError;
pub use server::{MediaConfig, MediaEngine, MediaServer, PeerHandle};
