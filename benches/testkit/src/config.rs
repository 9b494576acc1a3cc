//! Options of a [`crate::TestClient`].

use std::fmt;
use std::time::Duration;

use crate::peer::{PayloadFn, PeerOptions};

/// Default timeout of every wait (used by `join`, `publish`, `leave`, ...).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client does with the media it receives.
#[derive(Clone, Default)]
pub enum Received {
    /// Record every packet, and every inbound RTP/RTCP packet at the wire (the integration
    /// tests' client).
    #[default]
    Record,
    /// Hand each payload to a function (the load tester's subscribers).
    Forward(PayloadFn),
    /// Do not read remote tracks.
    Ignore,
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Record => "Record",
            Self::Forward(_) => "Forward(..)",
            Self::Ignore => "Ignore",
        })
    }
}

/// Options of a [`TestClient`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Timeout of the built-in waits (`join`, `publish`, `leave`, `close`).
    pub timeout: Duration,
    /// How the peer connection is built (its wire recorder is set by `received`).
    pub peer: PeerOptions,
    /// `(from, to)`: replaces `from` with `to` in every server SDP before it is applied (e.g.
    /// to send media through a [`crate::relay::Relay`] by rewriting the server's candidate).
    pub rewrite_server_sdp: Option<(String, String)>,
    /// Trickle local ICE candidates to the server (on by default; the server, ICE-lite, also
    /// learns the client's address from its connectivity checks).
    pub trickle: bool,
    /// Send `ping` at this period (the server ends sessions silent for 60 s).
    pub keepalive: Option<Duration>,
    /// What to do with received media.
    pub received: Received,
    /// Prefix of the client's diagnostics on stderr.
    pub label: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            peer: PeerOptions::default(),
            rewrite_server_sdp: None,
            trickle: true,
            keepalive: None,
            received: Received::Record,
            label: "[test client]".to_owned(),
        }
    }
}

impl ClientConfig {
    /// A server SDP as this client applies it (see `rewrite_server_sdp`).
    pub(crate) fn rewrite(&self, sdp: String) -> String {
        match &self.rewrite_server_sdp {
            Some((from, to)) => sdp.replace(from.as_str(), to),
            None => sdp,
        }
    }
}
