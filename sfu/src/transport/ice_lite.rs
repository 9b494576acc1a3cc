//! ICE-lite for one peer (RFC 8445 §2.5, consent freshness of RFC 7675), sans-I/O: the server's
//! side of connectivity checks, the first brick of Cascade's own transport.
//!
//! A lite agent is always controlled and sends no checks: it answers the client's STUN binding
//! requests and learns from them which remote address carries the media.
//! - A request is *valid* when it is a binding request whose USERNAME is
//!   `<local ufrag>:<remote ufrag>`, whose MESSAGE-INTEGRITY verifies with the local password
//!   (short-term credential) and whose FINGERPRINT, if present, matches. Anything else gets no
//!   answer at all: an unauthenticated request must not make the server send to an address.
//! - A valid request that says the client is controlled too (ICE-CONTROLLED) is a role conflict:
//!   the answer is a 487 error, and nothing is learned from it.
//! - A valid request gets a success response: the same transaction id, XOR-MAPPED-ADDRESS (the
//!   address the request came from), MESSAGE-INTEGRITY and FINGERPRINT. It refreshes consent on
//!   its address; with USE-CANDIDATE it nominates it, and the latest nomination is the selected
//!   address (the controlling client decides).
//! - Consent: with no valid request from the selected address for [`CONSENT_TIMEOUT`], consent is
//!   lost ([`IceLite::handle_timeout`]): nothing is selected until a new nomination.
//! - ICE restart ([`IceLite::restart`]): new local credentials are answered at once, and the old
//!   ones too until the first valid request with the new ones (media keeps flowing meanwhile).
//!
//! Bounds: at most [`MAX_REMOTES`] remote addresses are remembered (the least recently checked
//! is forgotten first).

use crate::net::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::crypto::RTCCryptoProvider;
use rtc::stun::attributes::{
    ATTR_FINGERPRINT, ATTR_ICE_CONTROLLED, ATTR_USE_CANDIDATE, ATTR_USERNAME,
};
use rtc::stun::error_code::CODE_ROLE_CONFLICT;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use rtc::stun::xoraddr::XorMappedAddress;

/// How long consent lasts after the last valid request from the selected address (RFC 7675).
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Remote addresses remembered per peer.
pub const MAX_REMOTES: usize = 8;

/// ICE username fragment and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password.
    pub pwd: String,
}

/// What to do with a datagram handed to [`IceLite::handle`].
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send `response` back to the address the request came from.
    Send(Vec<u8>),
    /// Send nothing: not a valid binding request for this agent.
    Drop,
}

/// What [`IceLite::handle_timeout`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Nothing changed.
    Nothing,
    /// The selected address lost consent: it is no longer selected.
    ConsentLost(Path),
}

/// A remote address that sent valid requests.
#[derive(Debug)]
struct Remote {
    addr: Path,
    last_check: Instant,
}

/// The ICE-lite agent of one peer.
pub struct IceLite {
    local: Credentials,
    /// The credentials before a restart, answered until the new ones are used.
    previous: Option<Credentials>,
    remotes: Vec<Remote>,
    selected: Option<Path>,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for IceLite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceLite")
            .field("ufrag", &self.local.ufrag)
            .field("restarting", &self.previous.is_some())
            .field("remotes", &self.remotes)
            .field("selected", &self.selected)
            .finish()
    }
}

impl IceLite {
    /// An agent answering with `local` credentials.
    pub fn new(local: Credentials) -> Self {
        Self {
            local,
            previous: None,
            remotes: Vec::new(),
            selected: None,
            crypto: rtc::crypto::default_provider().expect("a built-in crypto provider"),
        }
    }

    /// The current local credentials (those of the latest offer or answer).
    pub fn local(&self) -> &Credentials {
        &self.local
    }

    /// The address media goes to: the latest nominated one that has consent.
    pub fn selected(&self) -> Option<Path> {
        self.selected
    }

    /// Whether `addr` sent a valid check and is still remembered: DTLS and media from it are
    /// the peer's.
    pub fn knows(&self, addr: Path) -> bool {
        self.remotes.iter().any(|r| r.addr == addr)
    }

    /// ICE restart: answer with `local` from now on, and with the old credentials until the
    /// first valid request with the new ones.
    pub fn restart(&mut self, local: Credentials) {
        let old = std::mem::replace(&mut self.local, local);
        self.previous = Some(old);
    }

    /// Handles a datagram from `from` that may be a STUN binding request for this agent.
    pub fn handle(&mut self, from: Path, datagram: &[u8], now: Instant) -> Reply {
        let mut m = Message::new();
        if m.unmarshal_binary(datagram).is_err() || m.typ != BINDING_REQUEST {
            return Reply::Drop;
        }
        let Some(creds) = self.credentials_of(&m).cloned() else {
            return Reply::Drop;
        };
        if !verify_request(&mut m, &creds.pwd, self.crypto.as_ref()) {
            return Reply::Drop;
        }
        if creds == self.local {
            // The client uses the new credentials: the old ones are done.
            self.previous = None;
        }
        if m.contains(ATTR_ICE_CONTROLLED) {
            return Reply::Send(self.response(&m, &creds.pwd, None));
        }
        self.refresh(from, now);
        let nominated = m.contains(ATTR_USE_CANDIDATE);
        tracing::trace!(%from, nominated, "valid ICE check");
        if nominated {
            self.selected = Some(from);
        }
        Reply::Send(self.response(&m, &creds.pwd, Some(from)))
    }

    /// Checks consent at `now`: the selected address loses it [`CONSENT_TIMEOUT`] after its
    /// last valid request.
    pub fn handle_timeout(&mut self, now: Instant) -> Timeout {
        let Some(addr) = self.selected else {
            return Timeout::Nothing;
        };
        let fresh = self
            .remotes
            .iter()
            .any(|r| r.addr == addr && now.duration_since(r.last_check) < CONSENT_TIMEOUT);
        if fresh {
            return Timeout::Nothing;
        }
        self.selected = None;
        Timeout::ConsentLost(addr)
    }

    /// When [`IceLite::handle_timeout`] next has something to do, if anything is selected.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let addr = self.selected?;
        let r = self.remotes.iter().find(|r| r.addr == addr)?;
        Some(r.last_check + CONSENT_TIMEOUT)
    }

    /// The credentials a request's USERNAME (`<local ufrag>:<remote ufrag>`) names: the
    /// current ones or, during a restart, the previous ones.
    fn credentials_of(&self, m: &Message) -> Option<&Credentials> {
        let username = m.get(ATTR_USERNAME).ok()?;
        let username = std::str::from_utf8(&username).ok()?;
        let (local_ufrag, remote_ufrag) = username.split_once(':')?;
        if remote_ufrag.is_empty() {
            return None;
        }
        [Some(&self.local), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|c| c.ufrag == local_ufrag)
    }

    /// Notes a valid request from `from` at `now`, forgetting the least recently checked
    /// address past [`MAX_REMOTES`].
    fn refresh(&mut self, from: Path, now: Instant) {
        if let Some(r) = self.remotes.iter_mut().find(|r| r.addr == from) {
            r.last_check = now;
            return;
        }
        if self.remotes.len() >= MAX_REMOTES
            && let Some(oldest) =
                (0..self.remotes.len()).min_by_key(|&i| self.remotes[i].last_check)
        {
            let forgotten = self.remotes.swap_remove(oldest);
            if self.selected == Some(forgotten.addr) {
                self.selected = None;
            }
        }
        self.remotes.push(Remote {
            addr: from,
            last_check: now,
        });
    }

    /// The answer to `request`: a success response mapping `mapped`, or (without it) a 487
    /// role conflict; signed with `pwd`.
    fn response(&self, request: &Message, pwd: &str, mapped: Option<Path>) -> Vec<u8> {
        let integrity = MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.into(),
            self.crypto.crypto(),
        );
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![Box::new(request.clone())];
        match mapped {
            Some(addr) => {
                setters.push(Box::new(BINDING_SUCCESS));
                setters.push(Box::new(XorMappedAddress {
                    ip: addr.remote.ip(),
                    port: addr.remote.port(),
                }));
            }
            None => {
                setters.push(Box::new(BINDING_ERROR));
                setters.push(Box::new(CODE_ROLE_CONFLICT));
            }
        }
        setters.push(Box::new(integrity));
        setters.push(Box::new(FINGERPRINT));
        let mut out = Message::new();
        out.build(&setters).expect("a valid binding response");
        out.raw
    }
}

/// Whether the binding request `m` carries a MESSAGE-INTEGRITY that verifies with `pwd` (the
/// short-term credential) and no FINGERPRINT that fails. The one check of the shared port's
/// demultiplexer and of [`IceLite`].
pub fn verify_request(m: &mut Message, pwd: &str, crypto: &dyn RTCCryptoProvider) -> bool {
    if m.contains(ATTR_FINGERPRINT) && FINGERPRINT.check(m).is_err() {
        return false;
    }
    MessageIntegrity::check(m, pwd.as_bytes(), crypto.crypto()).is_ok()
}

#[cfg(test)]
#[path = "ice_lite_tests.rs"]
pub(crate) mod tests;
