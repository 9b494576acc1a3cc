//! WHIP and WHEP session resources: what a `POST` creates (a [`WhipResource`]: a participant,
//! its peer and its negotiation state) and the registry of the live ones ([`WhipResources`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cascade_sfu::PeerHandle;

use crate::rate_limit::RateLimit;

/// Which protocol created a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WHIP: the client publishes.
    Whip,
    /// WHEP: the client watches.
    Whep,
}

impl Protocol {
    /// The path segment and name, `whip` or `whep`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whip => "whip",
            Self::Whep => "whep",
        }
    }
}

/// The negotiation state of one resource, changed by `PATCH` (one at a time).
#[derive(Debug)]
pub struct Negotiated {
    /// The entity tag of the current ICE session.
    pub etag: String,
    /// The client's last offer, the base of an ICE restart.
    pub offer: String,
    /// The client's current ICE username fragment.
    pub remote_ufrag: String,
}

/// One WHIP or WHEP session resource.
#[derive(Debug)]
pub struct WhipResource {
    /// Which protocol.
    pub protocol: Protocol,
    /// Its room.
    pub room: String,
    /// Its participant id.
    pub participant: String,
    /// Its peer.
    pub peer: PeerHandle,
    /// Negotiation state, locked for the duration of a `PATCH`.
    pub negotiated: tokio::sync::Mutex<Negotiated>,
}

/// Every live WHIP and WHEP session resource, by id, and the rate limit of their creation.
#[derive(Debug)]
pub struct WhipResources {
    map: Mutex<HashMap<String, Arc<WhipResource>>>,
    /// How fast resources may be created.
    pub rate_limit: RateLimit,
}

impl WhipResources {
    /// No resource yet; at most `per_second` creations per second (0 = unlimited).
    pub fn new(per_second: u32) -> Self {
        Self {
            map: Mutex::default(),
            rate_limit: RateLimit::new(per_second),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<WhipResource>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a resource under `id`.
    pub fn insert(&self, id: String, resource: Arc<WhipResource>) {
        self.lock().insert(id, resource);
    }

    /// The resource `id` of `protocol` in `room`, if it is live.
    pub fn get(&self, protocol: Protocol, room: &str, id: &str) -> Option<Arc<WhipResource>> {
        self.lock()
            .get(id)
            .filter(|s| s.protocol == protocol && s.room == room)
            .cloned()
    }

    /// Removes and returns a resource.
    pub fn remove(&self, id: &str) -> Option<Arc<WhipResource>> {
        self.lock().remove(id)
    }

    /// Live resources.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no live resource.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
