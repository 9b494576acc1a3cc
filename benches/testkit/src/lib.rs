//! Cascade's Rust test client, shared by the API integration tests (`api/tests`) and the
//! `cascade-load` load tester (`benches`): Cascade's WebSocket JSON protocol plus a webrtc-rs
//! (`webrtc = 0.21`, tokio) peer connection.
//!
//! ```ignore
//! let alice = TestClient::connect(&ws_url).await?;
//! alice.join(&token_a, true).await?;
//! let published = alice.publish(true, true).await?;
//! published.send_video(0).await?; // counter 0: a key frame
//!
//! let bob = TestClient::connect(&ws_url).await?;
//! bob.join(&token_b, true).await?;
//! let pkts = bob.wait_for_packets(&track_id, 1, DEFAULT_TIMEOUT).await?;
//! assert_eq!(pkts[0].counter(), Some(0));
//! ```
//!
//! Use a multi-threaded runtime: `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
//!
//! Negotiation follows Cascade's perfect negotiation with the client as the **polite** peer
//! ([`cascade_signaling::negotiation::PoliteNegotiation`] decides, [`negotiator`] acts): a
//! server offer that arrives while the client's own offer is outstanding rolls that offer back,
//! is answered, and the client then offers again. Every wait has a timeout; errors are
//! `anyhow::Error`s with context.
//!
//! The peer connection ([`peer`]) binds one UDP socket on `127.0.0.1:0`, has no ICE servers,
//! mDNS off, and restricts ICE to UDP over IPv4, so it works inside `unshare -n`.
//!
//! The pieces, one copy each:
//! - [`socket`]: the signaling WebSocket (reader, writer, keepalive, message inbox);
//! - [`negotiator`]: the polite side of perfect negotiation;
//! - [`peer`] and [`codec`]: the peer connection builder, its codecs and interceptors;
//! - [`media`]: local tracks and the media pump; [`payload`]: the test payloads;
//! - [`remote`]: recording of received media; [`rtcp`] and [`wire`]: RTCP sent and seen;
//! - [`relay`]: a UDP relay whose server-facing path can be changed;
//! - [`client`] and [`config`]: [`TestClient`], which ties them together. Configured with
//!   [`Received::Forward`] and no recording, it is the load tester's participant as well.

#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod config;
pub mod media;
pub mod negotiator;
pub mod payload;
pub mod peer;
pub mod relay;
pub mod remote;
pub mod rtcp;
pub mod socket;
mod util;
pub mod wire;

pub use client::TestClient;
pub use codec::{MediaKind, OPUS_PT, RTX_PT, VP8_PT};
pub use config::{ClientConfig, DEFAULT_TIMEOUT, Received};
pub use media::{Frame, FrameSource, LocalTrack, MediaPump, Published};
pub use negotiator::NegotiationStats;
pub use payload::{is_keyframe_counter, payload_counter, vp8_is_keyframe};
pub use remote::ReceivedPacket;
pub use rtcp::PublisherRtcp;
pub use socket::{CloseInfo, ErrorMsg};
pub use util::random_u32;
pub use wire::{RtcpRecord, RtcpType, RtpRecord};
