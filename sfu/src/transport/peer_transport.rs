//! The transport of one peer, sans-I/O: ICE-lite, DTLS and SRTP behind one datagram entry
//! point, the datagram's first byte saying which (RFC 7983: 0–3 STUN, 20–63 DTLS, 128–191
//! RTP/RTCP, told apart by the RTCP packet types 192–223 of RFC 5761).
//!
//! - STUN is answered from any address: [`IceLite`] authenticates checks.
//! - DTLS, RTP and RTCP are taken only from an address that sent a valid check; RTP and RTCP
//!   only once DTLS has exported the SRTP keys.
//! - What is sent goes to the address ICE selected (DTLS before a nomination: to the address
//!   its datagrams came from).
//! - A packet that cannot be taken is dropped and said why ([`Received::Dropped`]); only a
//!   failed DTLS association is an error, which ends the peer.
//!
//! Bounds: at most [`MAX_PENDING`] STUN answers wait to be sent (older ones are dropped: a
//! check is retried by the client); DTLS, ICE and SRTP bound their own state.

use crate::net::Path;
use std::collections::VecDeque;
use std::time::Instant;

use rtc::crypto::RTCCryptoProvider;

use super::dtls::{DtlsError, DtlsEvent, DtlsIdentity, DtlsServer};
use super::ice_lite::{Credentials, IceLite, Reply, Timeout};
use super::srtp::{SrtpError, SrtpSession};

/// STUN answers waiting to be sent, at most.
pub const MAX_PENDING: usize = 16;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: Path,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// What a received datagram was.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Handled inside the transport (a STUN check, a DTLS handshake datagram).
    Handled,
    /// The DTLS handshake completed: media can flow.
    Connected,
    /// The peer closed DTLS (close_notify).
    Closed,
    /// An RTP packet, decrypted in place: its length at the start of the buffer.
    Rtp(usize),
    /// An RTCP (compound) packet, decrypted in place: its length.
    Rtcp(usize),
    /// Not taken, and why.
    Dropped(Dropped),
}

/// Why a datagram was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// DTLS or media from an address that never sent a valid ICE check.
    UnknownAddress,
    /// Media before the DTLS handshake completed.
    NotConnected,
    /// SRTP or SRTCP that did not unprotect.
    Srtp(SrtpError),
    /// Neither STUN, DTLS, RTP nor RTCP.
    NotDemultiplexed,
}

/// Why a packet could not be sent.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No SRTP keys yet, or no address selected by ICE.
    #[error("not connected")]
    NotConnected,
    /// Protecting it failed.
    #[error("srtp: {0}")]
    Srtp(#[from] SrtpError),
}

/// What a timeout changed.
#[derive(Debug, PartialEq, Eq)]
pub enum TimedOut {
    /// Nothing the caller needs to know.
    Nothing,
    /// The selected address lost consent: nothing is sent until the client nominates again.
    ConsentLost(Path),
}

/// One peer's transport.
pub struct PeerTransport {
    ice: IceLite,
    dtls: DtlsServer,
    srtp: Option<SrtpSession>,
    crypto: std::sync::Arc<dyn RTCCryptoProvider>,
    /// Where the latest DTLS datagram came from.
    dtls_remote: Option<Path>,
    pending: VecDeque<Transmit>,
    /// This side is the DTLS client: it starts the handshake once ICE selects an address.
    dtls_client: bool,
}

impl PeerTransport {
    /// A transport answering ICE with `local`, presenting `identity` in DTLS to a peer whose
    /// SDP fingerprint is `remote_fingerprint`.
    pub fn new(
        local: Credentials,
        identity: &DtlsIdentity,
        remote_fingerprint: &str,
    ) -> Result<Self, DtlsError> {
        let mut transport = Self::awaiting(local, identity)?;
        transport.dtls.set_remote_fingerprint(remote_fingerprint)?;
        Ok(transport)
    }

    /// A transport whose peer's fingerprint comes later (the server offered first): the
    /// handshake may run, but no media flows until [`PeerTransport::set_remote_fingerprint`]
    /// has checked the peer's certificate (some clients complete DTLS before they answer).
    pub fn awaiting(local: Credentials, identity: &DtlsIdentity) -> Result<Self, DtlsError> {
        Ok(Self {
            ice: IceLite::new(local),
            dtls: DtlsServer::awaiting(identity)?,
            srtp: None,
            crypto: rtc::crypto::default_provider().expect("a built-in crypto provider"),
            dtls_remote: None,
            pending: VecDeque::new(),
            dtls_client: false,
        })
    }

    /// Makes this side the DTLS client (the peer answered `a=setup:passive`): the handshake
    /// starts as soon as ICE has selected an address.
    pub fn dtls_connect(&mut self, now: Instant) -> Result<(), DtlsError> {
        self.dtls_client = true;
        self.start_client(now)
    }

    fn start_client(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.dtls_client && self.ice.selected().is_some() {
            self.dtls.connect(now)?;
        }
        Ok(())
    }

    /// Sets the peer's SDP fingerprint: true if that connected the transport (the handshake
    /// had completed and the certificate matches). Another fingerprint than the one set
    /// before, or a certificate that does not match, is an error (end the peer).
    pub fn set_remote_fingerprint(&mut self, remote_fingerprint: &str) -> Result<bool, DtlsError> {
        let Some(keys) = self.dtls.set_remote_fingerprint(remote_fingerprint)? else {
            return Ok(false);
        };
        match SrtpSession::new(&keys, self.crypto.crypto()) {
            Ok(session) => self.srtp = Some(session),
            Err(_) => return Ok(false),
        }
        Ok(true)
    }

    /// The ICE agent (credentials, selected address).
    pub fn ice(&self) -> &IceLite {
        &self.ice
    }

    /// ICE restart with new local credentials (see [`IceLite::restart`]).
    pub fn restart_ice(&mut self, local: Credentials) {
        self.ice.restart(local);
    }

    /// Whether SRTP keys exist: media can be received and sent.
    pub fn is_connected(&self) -> bool {
        self.srtp.is_some()
    }

    /// Takes a datagram `buf` from `from`. Media is decrypted in place. An error means DTLS
    /// failed: end the peer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: Path,
        buf: &mut [u8],
    ) -> Result<Received, DtlsError> {
        match buf.first() {
            Some(0..=3) => {
                if let Reply::Send(data) = self.ice.handle(from, buf, now) {
                    if self.pending.len() == MAX_PENDING {
                        self.pending.pop_front();
                    }
                    self.pending.push_back(Transmit { to: from, data });
                }
                self.start_client(now)?;
                Ok(Received::Handled)
            }
            Some(20..=63) => {
                if !self.ice.knows(from) {
                    return Ok(Received::Dropped(Dropped::UnknownAddress));
                }
                self.dtls_remote = Some(from);
                match self.dtls.handle_datagram(now, buf)? {
                    Some(DtlsEvent::Connected(keys)) => {
                        match SrtpSession::new(&keys, self.crypto.crypto()) {
                            Ok(session) => self.srtp = Some(session),
                            // The keys of a profile the DTLS server offered: cannot happen.
                            Err(e) => return Ok(Received::Dropped(Dropped::Srtp(e))),
                        }
                        Ok(Received::Connected)
                    }
                    Some(DtlsEvent::Closed) => {
                        self.srtp = None;
                        Ok(Received::Closed)
                    }
                    None => Ok(Received::Handled),
                }
            }
            Some(128..=191) => {
                if !self.ice.knows(from) {
                    return Ok(Received::Dropped(Dropped::UnknownAddress));
                }
                let Some(srtp) = &mut self.srtp else {
                    return Ok(Received::Dropped(Dropped::NotConnected));
                };
                let rtcp = buf.get(1).is_some_and(|pt| (192..=223).contains(pt));
                let result = if rtcp {
                    srtp.unprotect_rtcp(buf).map(Received::Rtcp)
                } else {
                    srtp.unprotect_rtp(buf).map(Received::Rtp)
                };
                Ok(result.unwrap_or_else(|e| Received::Dropped(Dropped::Srtp(e))))
            }
            _ => Ok(Received::Dropped(Dropped::NotDemultiplexed)),
        }
    }

    /// Protects the RTP packet `buf[..len]` in place for the peer: where to send it and its
    /// length. `buf` needs [`super::srtp::MAX_RTP_OVERHEAD`] bytes of room after `len`.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<(Path, usize), SendError> {
        let (to, srtp) = self.sendable()?;
        Ok((to, srtp.protect_rtp(buf, len)?))
    }

    /// Protects the RTCP packet `buf[..len]` in place for the peer: where to send it and its
    /// length. `buf` needs [`super::srtp::MAX_RTCP_OVERHEAD`] bytes of room after `len`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<(Path, usize), SendError> {
        let (to, srtp) = self.sendable()?;
        Ok((to, srtp.protect_rtcp(buf, len)?))
    }

    fn sendable(&mut self) -> Result<(Path, &mut SrtpSession), SendError> {
        match (self.ice.selected(), &mut self.srtp) {
            (Some(to), Some(srtp)) => Ok((to, srtp)),
            _ => Err(SendError::NotConnected),
        }
    }

    /// The next STUN answer or DTLS datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.pending.pop_front() {
            return Some(t);
        }
        let to = self.ice.selected().or(self.dtls_remote)?;
        let data = self.dtls.poll_transmit()?;
        Some(Transmit {
            to,
            data: data.to_vec(),
        })
    }

    /// When [`PeerTransport::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.ice.poll_timeout(), self.dtls.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Consent and DTLS retransmissions at `now`. An error means DTLS failed: end the peer.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<TimedOut, DtlsError> {
        self.dtls.handle_timeout(now)?;
        Ok(match self.ice.handle_timeout(now) {
            Timeout::ConsentLost(addr) => TimedOut::ConsentLost(addr),
            Timeout::Nothing => TimedOut::Nothing,
        })
    }

    /// Closes DTLS (close_notify, to send with [`PeerTransport::poll_transmit`]).
    pub fn close(&mut self, now: Instant) {
        self.dtls.close(now);
        self.srtp = None;
    }
}

#[cfg(test)]
#[path = "peer_transport_tests.rs"]
mod tests;
