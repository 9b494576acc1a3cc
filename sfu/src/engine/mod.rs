//! Cascade's media engine, sans-I/O, in mediasoup's order: a datagram enters the publisher's
//! [`crate::transport::peer_transport::PeerTransport`], its packet the publication's
//! [`crate::track::up_track::UpTrack`], the [`router::Router`] fans it out to the subscriptions'
//! [`crate::downtrack::down_track::DownTrack`]s, and each leaves through its subscriber's transport. Each
//! object is entered once per packet; the packet is rewritten in place in one reused buffer per
//! subscriber and handed to a [`Sink`] (the I/O loop's send batch).
//!
//! - [`peer`]: one peer's transport, publications and subscriptions.
//! - [`router`]: peers and tracks; negotiation, media, RTCP feedback and timers.
//!
//! A worker drives its router behind the room model's seam ([`crate::worker::shard`]).

pub mod peer;
pub mod router;

/// A peer of a router (an index, reused after the peer leaves).
pub type PeerIdx = usize;
/// A track of a router.
pub type TrackId = u32;

/// Where the engine's datagrams go: the I/O loop's send batch.
pub trait Sink {
    /// Sends `datagram` to `to` for `peer` (copied: the buffer is reused at once).
    fn send(&mut self, peer: PeerIdx, to: crate::net::Path, datagram: &[u8]);

    /// A new packet of a local `track` (extended sequence number `ext`, decrypted, as its
    /// publisher sent it), for subscribers beyond this router (other workers); whether the
    /// router forwards it to its own (false: the track is blocked). Nothing, and true, by
    /// default.
    fn publish(&mut self, _track: TrackId, _ext: u64, _packet: &[u8]) -> bool {
        true
    }
}
