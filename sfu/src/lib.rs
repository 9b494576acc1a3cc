//! Cascade media core: peers on one media port (UDP and ICE-TCP), published tracks,
//! forwarding and RTCP feedback.
//!
//! Layers, bottom up, in the order a packet meets them (transport → up-track → router →
//! down-track → transport):
//! - [`net`]: the network edge: paths, the demultiplexer, batched UDP (IPv4 and IPv6) and
//!   ICE-TCP;
//! - [`transport`]: Cascade's own transport: ICE-lite, DTLS, SRTP, transport-wide congestion
//!   control;
//! - [`rtp`]: packets read and rewritten in place;
//! - [`track`]: the up-track of a published track, its packet cache, NACKs and receive
//!   statistics;
//! - [`downtrack`]: a subscriber's down-track, its munger and sender statistics;
//! - [`negotiation`] and [`sdp`]: Cascade's own SDP;
//! - [`engine`]: the router (one per worker) that joins them;
//! - [`seam`]: what crosses between the room model and the workers (commands, events,
//!   published tracks, peer addresses);
//! - [`worker`]: the threads that own the routers; [`server`]: the sockets and threads;
//! - [`room`]: the room model (participants, tracks, subscriptions) used by signaling,
//!   testable over [`seam::PeerFactory`] without sockets.

pub mod candidate_budget;
pub mod downtrack;
pub mod engine;
pub mod error;
pub mod ids;
pub mod log_limit;
pub mod negotiation;
pub mod net;
pub mod room;
pub mod rtp;
pub mod sdp;
pub mod seam;
pub mod server;
pub mod stats;
pub mod stun_discovery;
pub mod track;
pub mod transport;
pub mod worker;

pub use error::MediaError;
pub use seam::PeerHandle;
pub use server::{MediaConfig, MediaServer};
