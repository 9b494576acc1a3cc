//! The seam between the room model and the media workers: what crosses it, and nothing
//! else of either side.
//!
//! - [`command`]: the [`PeerCommand`]s a session sends its peer (with replies) and the
//!   [`PeerEvent`]s the peer tells it.
//! - [`track`]: [`PublishedTrack`], the unit of forwarding the room model knows, shared with
//!   the workers.
//! - Here: where a peer lives ([`PeerAddress`], its commands going to a [`Mailbox`]: a
//!   worker's control queue, or a test's recorder), a session's async handle on its peer
//!   ([`PeerHandle`]) and what creates peers ([`PeerFactory`]: the media server, or a test's).
//!
//! The room model depends on this module only, so it is testable without sockets or workers;
//! the workers implement [`Mailbox`] and serve the commands.

use std::fmt::Debug;
use std::sync::Arc;

use cascade_signaling::protocol::IceCandidate;
use tokio::sync::{mpsc, oneshot};

use crate::error::MediaError;

pub mod command;
pub mod track;

pub use command::{PEER_EVENT_QUEUE, PeerCommand, PeerEvent, ServerOffer};
pub use track::PublishedTrack;

/// Identifies a peer for the lifetime of the server.
pub type PeerId = u64;

/// Where a peer's commands go.
pub trait Mailbox: Send + Sync + Debug {
    /// Queues `cmd` for peer `peer`: waiting a bounded time for room if `wait`, else not at
    /// all; whether it was queued.
    fn send(&self, peer: PeerId, cmd: PeerCommand, wait: bool) -> bool;
}

/// A handle to reach a peer: its id, its worker, and where its commands go.
#[derive(Debug, Clone)]
pub struct PeerAddress {
    /// The peer's id.
    pub id: PeerId,
    /// The index of the worker that owns it.
    pub worker: usize,
    mailbox: Arc<dyn Mailbox>,
}

impl PeerAddress {
    /// The address of peer `id` on `worker`, whose commands go to `mailbox`.
    pub fn new(id: PeerId, worker: usize, mailbox: Arc<dyn Mailbox>) -> Self {
        Self {
            id,
            worker,
            mailbox,
        }
    }

    /// Sends a command to the peer, waiting a bounded time if the worker's control queue is
    /// full; returns false if it could not be queued.
    pub fn command(&self, cmd: PeerCommand) -> bool {
        self.mailbox.send(self.id, cmd, true)
    }

    /// Sends a command to the peer without waiting (from a worker: workers never block on
    /// each other); returns false if the worker's control queue is full or gone.
    pub fn try_command(&self, cmd: PeerCommand) -> bool {
        self.mailbox.send(self.id, cmd, false)
    }
}

/// What creates the server side of participants' peer connections.
pub trait PeerFactory: Send + Sync {
    /// Creates the peer of `participant`; its events go to `events`.
    fn create_peer(
        &self,
        participant: &str,
        events: mpsc::Sender<PeerEvent>,
    ) -> Result<PeerHandle, MediaError>;
}

/// A session's handle on its peer.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    /// The peer.
    pub peer: PeerAddress,
}

impl PeerHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> PeerCommand,
    ) -> Result<T, MediaError> {
        let (tx, rx) = oneshot::channel();
        if !self.peer.command(make(tx)) {
            return Err(MediaError::Closed);
        }
        rx.await.unwrap_or(Err(MediaError::Closed))
    }

    /// Applies a client offer and returns the answer.
    pub async fn apply_offer(&self, sdp: String, can_publish: bool) -> Result<String, MediaError> {
        self.ask(|reply| PeerCommand::ApplyOffer {
            sdp,
            can_publish,
            reply,
        })
        .await
    }

    /// Applies a WHEP viewer's recvonly offer (creating its sending slots) and returns the
    /// answer.
    pub async fn apply_viewer_offer(&self, sdp: String) -> Result<String, MediaError> {
        self.ask(|reply| PeerCommand::ApplyViewerOffer { sdp, reply })
            .await
    }

    /// Creates and applies a server offer.
    pub async fn create_offer(&self) -> Result<ServerOffer, MediaError> {
        self.ask(|reply| PeerCommand::CreateOffer { reply }).await
    }

    /// Applies the client's answer.
    pub async fn apply_answer(&self, sdp: String) -> Result<(), MediaError> {
        self.ask(|reply| PeerCommand::ApplyAnswer { sdp, reply })
            .await
    }

    /// Adds a trickled client candidate.
    pub async fn add_candidate(&self, candidate: IceCandidate) -> Result<(), MediaError> {
        self.ask(|reply| PeerCommand::AddCandidate { candidate, reply })
            .await
    }

    /// Starts forwarding a track to this peer.
    pub fn subscribe(&self, track: Arc<PublishedTrack>) {
        self.peer.command(PeerCommand::Subscribe(track));
    }

    /// Stops forwarding a track to this peer.
    pub fn unsubscribe(&self, track_id: &str) {
        self.peer
            .command(PeerCommand::Unsubscribe(track_id.to_owned()));
    }

    /// Closes the peer connection.
    pub fn close(&self) {
        self.peer.command(PeerCommand::Close);
    }
}
