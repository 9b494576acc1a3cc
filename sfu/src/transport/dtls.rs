//! The DTLS server of one peer (RFC 6347, DTLS-SRTP of RFC 5764), sans-I/O: it authenticates
//! the peer against the fingerprint of its SDP and exports the SRTP master keys.
//!
//! - [`DtlsIdentity`]: the server's self-signed certificate, generated once per server, and its
//!   `a=fingerprint:` value.
//! - [`DtlsServer`]: one peer's association, on `rtc::dtls`'s [`Endpoint`]. The server never
//!   initiates: the peer's first datagram (its ClientHello) starts the handshake.
//!   - Offered SRTP profiles: `SRTP_AEAD_AES_128_GCM`, then `SRTP_AES128_CM_HMAC_SHA1_80`, and only
//!     those. (The library picks the first profile of the *client's* list that the server offers.)
//!   - The client must present a certificate whose sha-256 digest is the peer's SDP fingerprint;
//!     any other algorithm, or a mismatch, fails the handshake. Extended master secret is required.
//!   - ICE, not DTLS, decides which remote address the peer uses: the [`Endpoint`] is driven with
//!     one fixed placeholder remote address, so the association survives the peer's address
//!     changing, and the caller sends [`DtlsServer::poll_transmit`]'s datagrams to whatever
//!     address ICE selected.
//!   - The handshake must complete within [`HANDSHAKE_TIMEOUT`] of the first datagram.
//!   - Application data (a data channel's SCTP) is not supported: it is dropped and counted.
//!
//! Errors: [`DtlsServer::handle_datagram`] and [`DtlsServer::handle_timeout`] return an error only
//! when the association is over ([`DtlsState::Failed`]); the caller ends the peer then. A
//! datagram that is not a sequence of well-framed DTLS records is ignored (counted), and so is
//! anything that arrives after the association failed or closed. A well-framed datagram the
//! library rejects (an alert from the peer, a handshake message that fails verification, a
//! plaintext application data record during the handshake) fails the association: the library
//! has then queued a fatal alert for the peer, or the peer sent one.
//!
//! Bounds: at most one association exists per [`DtlsServer`] (one remote address). What the
//! [`Endpoint`] queues for sending is drained by the caller through
//! [`DtlsServer::poll_transmit`]. Inside the library (rtc-dtls 0.21.1, `conn/mod.rs`,
//! `fragment_buffer`, `handshake_cache`): the fragment reassembly buffer is capped at 2 MB;
//! handshake messages are cached at most once per message sequence number (a `u16`); records of
//! the next epoch that arrive before the keys exist are queued with no count limit, but only
//! until the handshake completes; decrypted application data is handed out (and dropped here)
//! after every datagram. None of these is capped by the library per handshake, so before the
//! handshake completes this module feeds it at most [`MAX_HANDSHAKE_DATAGRAMS`] datagrams (a
//! genuine handshake needs a few dozen at most, retransmissions included), and for at most
//! [`HANDSHAKE_TIMEOUT`]. After the handshake the library discards plaintext records other than
//! handshake ones (a peer repeating its last flight), and answers those at most 7 times.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::crypto::{HashAlgorithm, RTCCryptoProvider};
use rtc::dtls::config::{
    ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig,
    VerifyPeerCertificateFn,
};
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::shared::TransportProtocol;
use rtc::shared::error::Error;
use rtc::srtp::config::LABEL_EXTRACTOR_DTLS_SRTP;
use rtc::srtp::protection_profile::ProtectionProfile;

use super::srtp::SrtpKeys;

/// How long after the peer's first datagram the handshake must have completed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Datagrams handed to the library before the handshake completes; later ones are dropped.
pub const MAX_HANDSHAKE_DATAGRAMS: usize = 128;

/// The SRTP profiles offered, ours in order of preference (the client's order decides).
const SRTP_PROFILES: [SrtpProtectionProfile; 2] = [
    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
];
/// The one remote address the [`Endpoint`] knows (ICE tracks the real one).
const PLACEHOLDER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9);
/// Length of a DTLS record header: type, version, epoch, sequence number, length.
const RECORD_HEADER_LEN: usize = 13;

/// Why a DTLS association could not be set up or ended in failure.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The peer's `a=fingerprint` value is not `<hash function> <hex pairs joined by ':'>`.
    #[error("bad remote fingerprint {0:?}: expected `sha-256 AB:CD:...`")]
    BadRemoteFingerprint(String),
    /// The peer's certificate is not the one its SDP fingerprint names.
    #[error("the peer's DTLS certificate does not match its SDP fingerprint")]
    FingerprintMismatch,
    /// The peer's SDP fingerprint uses a hash function other than sha-256.
    #[error("unsupported fingerprint hash function {0:?} (only sha-256 is accepted)")]
    UnsupportedFingerprintAlgorithm(String),
    /// The handshake failed; the library's reason.
    #[error("DTLS handshake failed: {0}")]
    HandshakeFailed(#[source] Error),
    /// The established association failed (the peer sent a fatal alert); the library's reason.
    #[error("DTLS association failed: {0}")]
    ConnectionFailed(#[source] Error),
    /// No handshake within [`HANDSHAKE_TIMEOUT`] of the first datagram, or the peer stopped
    /// answering the library's retransmissions (it gives up after 7, one second apart).
    #[error("DTLS handshake timed out")]
    HandshakeTimeout,
    /// The certificate or the library's configuration could not be built.
    #[error("DTLS setup failed: {0}")]
    Setup(#[source] Error),
}

/// The server's DTLS certificate and its SDP fingerprint; cheap to clone.
#[derive(Clone)]
pub struct DtlsIdentity {
    inner: Arc<IdentityInner>,
}

struct IdentityInner {
    certificate: Certificate,
    fingerprint: String,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.inner.fingerprint)
            .finish()
    }
}

impl DtlsIdentity {
    /// Generates a self-signed certificate (ECDSA P-256), once per server.
    pub fn generate() -> Result<Self, DtlsError> {
        let crypto = rtc::crypto::default_provider()
            .map_err(|e| DtlsError::Setup(Error::Crypto(e.to_string())))?;
        let certificate =
            Certificate::generate_self_signed(vec!["cascade".to_owned()], crypto.crypto())
                .map_err(DtlsError::Setup)?;
        let der = certificate
            .certificate
            .first()
            .ok_or(DtlsError::Setup(Error::ErrNonCertificate))?;
        let digest = crypto
            .crypto()
            .hash(HashAlgorithm::Sha256, der.as_ref())
            .map_err(|e| DtlsError::Setup(Error::Crypto(e.to_string())))?;
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        let fingerprint = format!("sha-256 {}", hex.join(":"));
        Ok(Self {
            inner: Arc::new(IdentityInner {
                certificate,
                fingerprint,
                crypto,
            }),
        })
    }

    /// The `a=fingerprint:` value of the certificate: `sha-256 AB:CD:...` (upper-case hex).
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }
}

/// Where a [`DtlsServer`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsState {
    /// No datagram yet.
    New,
    /// Handshaking.
    Connecting,
    /// The handshake completed and the SRTP keys were exported.
    Connected,
    /// The handshake or the association failed; nothing more is processed.
    Failed,
    /// Closed by either side; nothing more is processed.
    Closed,
}

/// What a datagram changed.
#[derive(Debug)]
pub enum DtlsEvent {
    /// The handshake completed (reported once): the SRTP keys, `local` being what we send.
    Connected(SrtpKeys),
    /// The peer closed the association (close_notify); its reply is queued.
    Closed,
}

/// What the fingerprint check found, shared with the library's verification callback.
const VERDICT_NONE: u8 = 0;
const VERDICT_MATCH: u8 = 1;
const VERDICT_MISMATCH: u8 = 2;
const VERDICT_UNSUPPORTED: u8 = 3;

/// The peer's SDP fingerprint, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RemoteFingerprint {
    Sha256(Vec<u8>),
    /// Another hash function (lower-case name): fails the handshake.
    Other(String),
}

/// The DTLS server of one peer.
pub struct DtlsServer {
    endpoint: Endpoint,
    state: DtlsState,
    /// The overall handshake deadline, from the first datagram.
    deadline: Option<Instant>,
    verdict: Arc<AtomicU8>,
    /// The peer's SDP fingerprint, once known (a server offer is answered after the server's
    /// side exists); the verification callback reads it.
    remote: Arc<OnceLock<RemoteFingerprint>>,
    /// The sha-256 digest of the peer's certificate, when it came before the peer's fingerprint
    /// (checked when the fingerprint is set).
    deferred: Arc<Mutex<Option<Vec<u8>>>>,
    /// The SRTP keys of a handshake that completed before the peer's fingerprint was known.
    held: Option<SrtpKeys>,
    /// The certificate, and the peer certificate check, for the client role (built only when
    /// [`DtlsServer::connect`] needs it: rare, and building costs).
    identity: DtlsIdentity,
    verify: VerifyPeerCertificateFn,
    /// Whether this side is the DTLS client.
    is_client: bool,
    handshake_datagrams: usize,
    dropped_application_data: u64,
    dropped_datagrams: u64,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("state", &self.state)
            .field("deadline", &self.deadline)
            .field("remote", &self.remote)
            .field("dropped_application_data", &self.dropped_application_data)
            .field("dropped_datagrams", &self.dropped_datagrams)
            .finish()
    }
}

impl DtlsServer {
    /// A server presenting `identity`'s certificate to a peer whose SDP says
    /// `a=fingerprint:<remote_fingerprint>` (e.g. `"sha-256 ab:cd:..."`, any case). A
    /// well-formed fingerprint of another hash function is accepted here and fails the handshake.
    pub fn new(identity: &DtlsIdentity, remote_fingerprint: &str) -> Result<Self, DtlsError> {
        let mut server = Self::awaiting(identity)?;
        server.set_remote_fingerprint(remote_fingerprint)?;
        Ok(server)
    }

    /// A server presenting `identity`'s certificate whose peer's fingerprint comes later
    /// ([`DtlsServer::set_remote_fingerprint`]; a handshake that completes before it holds
    /// its keys until then). When the server offered first and the peer answered
    /// `a=setup:passive`, [`DtlsServer::connect`] makes it the DTLS client instead.
    pub fn awaiting(identity: &DtlsIdentity) -> Result<Self, DtlsError> {
        let remote = Arc::new(OnceLock::new());
        let deferred = Arc::new(Mutex::new(None));
        let verdict = Arc::new(AtomicU8::new(VERDICT_NONE));
        let verify = verifier(
            Arc::clone(&remote),
            Arc::clone(&deferred),
            Arc::clone(&verdict),
            Arc::clone(&identity.inner.crypto),
        );
        let config = handshake_config(identity, &verify, false)?;
        Ok(Self {
            endpoint: Endpoint::new(PLACEHOLDER, TransportProtocol::UDP, Some(Arc::new(config))),
            state: DtlsState::New,
            deadline: None,
            verdict,
            remote,
            deferred,
            held: None,
            identity: identity.clone(),
            verify,
            is_client: false,
            handshake_datagrams: 0,
            dropped_application_data: 0,
            dropped_datagrams: 0,
        })
    }

    /// Sets the peer's SDP fingerprint (see [`DtlsServer::awaiting`]). The first one set stays:
    /// a different one later is [`DtlsError::FingerprintMismatch`]. If the handshake already
    /// completed, the peer's certificate is checked now: its SRTP keys when it matches, an
    /// error (the association failed) when not.
    pub fn set_remote_fingerprint(
        &mut self,
        remote_fingerprint: &str,
    ) -> Result<Option<SrtpKeys>, DtlsError> {
        let parsed = parse_fingerprint(remote_fingerprint)?;
        let set = self.remote.get_or_init(|| parsed.clone());
        if *set != parsed {
            return Err(DtlsError::FingerprintMismatch);
        }
        if self.held.is_none() {
            return Ok(None);
        }
        match self.judge_deferred() {
            Ok(()) => Ok(self.held.take()),
            Err(e) => {
                self.held = None;
                self.state = DtlsState::Failed;
                Err(e)
            }
        }
    }

    /// Starts the handshake as the DTLS client (the peer answered the server's offer with
    /// `a=setup:passive`); nothing if a handshake already started.
    pub fn connect(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.state != DtlsState::New {
            return Ok(());
        }
        let config = Arc::new(handshake_config(&self.identity, &self.verify, true)?);
        self.is_client = true;
        self.state = DtlsState::Connecting;
        self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        self.endpoint
            .connect(now, PLACEHOLDER, config, None)
            .map_err(|e| self.fail(e))
    }

    /// Checks a certificate that came before the peer's fingerprint (none: nothing to check).
    fn judge_deferred(&self) -> Result<(), DtlsError> {
        let deferred = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        let Some(digest) = deferred.as_ref() else {
            return Ok(());
        };
        match self.remote.get() {
            Some(RemoteFingerprint::Sha256(expected)) if expected == digest => Ok(()),
            Some(RemoteFingerprint::Other(alg)) => {
                Err(DtlsError::UnsupportedFingerprintAlgorithm(alg.clone()))
            }
            _ => Err(DtlsError::FingerprintMismatch),
        }
    }

    /// Where the association stands.
    pub fn state(&self) -> DtlsState {
        self.state
    }

    /// Application data records received (and dropped: data channels are not supported).
    pub fn dropped_application_data(&self) -> u64 {
        self.dropped_application_data
    }

    /// Datagrams ignored: not well-framed DTLS records, or past [`MAX_HANDSHAKE_DATAGRAMS`].
    pub fn dropped_datagrams(&self) -> u64 {
        self.dropped_datagrams
    }

    /// Handles a datagram the demultiplexer classified as DTLS (first byte 20..=63). An error
    /// means the association failed ([`DtlsState::Failed`]): end the peer.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Option<DtlsEvent>, DtlsError> {
        if matches!(self.state, DtlsState::Failed | DtlsState::Closed) {
            return Ok(None);
        }
        if !is_well_framed(datagram) {
            self.dropped_datagrams += 1;
            return Ok(None);
        }
        if self.state != DtlsState::Connected {
            if self.handshake_datagrams >= MAX_HANDSHAKE_DATAGRAMS {
                self.dropped_datagrams += 1;
                return Ok(None);
            }
            self.handshake_datagrams += 1;
        }
        if self.state == DtlsState::New {
            self.state = DtlsState::Connecting;
            self.deadline = Some(now + HANDSHAKE_TIMEOUT);
        }
        let events = match self
            .endpoint
            .read(now, PLACEHOLDER, None, BytesMut::from(datagram))
        {
            Ok(events) => events,
            Err(e) => return Err(self.fail(e)),
        };
        let mut completed = false;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => completed = true,
                EndpointEvent::ApplicationData(_) => self.dropped_application_data += 1,
                EndpointEvent::PeerClosed => {
                    self.state = DtlsState::Closed;
                    return Ok(Some(DtlsEvent::Closed));
                }
                _ => {}
            }
        }
        if !completed {
            return Ok(None);
        }
        match self.export_keys() {
            Ok(keys) => {
                self.state = DtlsState::Connected;
                self.deadline = None;
                if self.remote.get().is_none() {
                    // The peer's fingerprint is not known yet: no media until it is checked.
                    self.held = Some(keys);
                    return Ok(None);
                }
                if let Err(e) = self.judge_deferred() {
                    let _ = self.endpoint.stop(now, PLACEHOLDER);
                    self.state = DtlsState::Failed;
                    return Err(e);
                }
                Ok(Some(DtlsEvent::Connected(keys)))
            }
            Err(e) => {
                // Keys we cannot use: tell the peer the association is over.
                let _ = self.endpoint.stop(now, PLACEHOLDER);
                self.state = DtlsState::Failed;
                Err(DtlsError::HandshakeFailed(e))
            }
        }
    }

    /// The next datagram to send, to the address ICE selected.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    /// When [`DtlsServer::handle_timeout`] next has something to do: a retransmission or the
    /// handshake deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            DtlsState::Connecting => {
                let retransmit = self.endpoint.poll_timeout(&PLACEHOLDER);
                match (retransmit, self.deadline) {
                    (Some(r), Some(d)) => Some(r.min(d)),
                    (r, d) => r.or(d),
                }
            }
            // Once connected nothing is retransmitted on a timer: a lost last flight makes the
            // peer retransmit its own, which is answered (and this is asked per wake-up).
            _ => None,
        }
    }

    /// Retransmits what is due at `now`; fails with [`DtlsError::HandshakeTimeout`] past the
    /// handshake deadline or when the library gives up retransmitting.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        match self.state {
            DtlsState::Connecting if self.deadline.is_some_and(|d| now >= d) => {
                self.state = DtlsState::Failed;
                Err(DtlsError::HandshakeTimeout)
            }
            DtlsState::Connecting => {
                if self.endpoint.handle_timeout(PLACEHOLDER, now).is_err() {
                    // The only error here: retransmissions exhausted (the FSM errored).
                    self.state = DtlsState::Failed;
                    return Err(DtlsError::HandshakeTimeout);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Closes the association: queues close_notify (if a handshake started). Nothing more is
    /// processed afterwards.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            DtlsState::Connecting | DtlsState::Connected => {
                let _ = self.endpoint.stop(now, PLACEHOLDER);
                self.state = DtlsState::Closed;
            }
            DtlsState::New => self.state = DtlsState::Closed,
            DtlsState::Failed | DtlsState::Closed => {}
        }
    }

    /// Marks the association failed and names why.
    fn fail(&mut self, e: Error) -> DtlsError {
        let connected = self.state == DtlsState::Connected;
        self.state = DtlsState::Failed;
        match self.verdict.load(Ordering::Acquire) {
            VERDICT_MISMATCH => DtlsError::FingerprintMismatch,
            VERDICT_UNSUPPORTED => match self.remote.get() {
                Some(RemoteFingerprint::Other(alg)) => {
                    DtlsError::UnsupportedFingerprintAlgorithm(alg.clone())
                }
                _ => DtlsError::HandshakeFailed(e),
            },
            _ if connected => DtlsError::ConnectionFailed(e),
            _ => DtlsError::HandshakeFailed(e),
        }
    }

    /// The SRTP keys of the completed handshake, split as the DTLS server.
    fn export_keys(&self) -> Result<SrtpKeys, Error> {
        let state = self
            .endpoint
            .get_connection_state(PLACEHOLDER)
            .ok_or(Error::ErrConnClosed)?;
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
                ProtectionProfile::Aes128CmHmacSha1_80
            }
            _ => return Err(Error::ErrNoSuchSrtpProfile),
        };
        let material = state.export_keying_material(
            LABEL_EXTRACTOR_DTLS_SRTP,
            &[],
            SrtpKeys::keying_material_len(profile),
        )?;
        SrtpKeys::from_keying_material(profile, material.as_ref(), self.is_client)
    }
}

/// The handshake configuration of `identity` as the DTLS client or server: Cascade's SRTP
/// profiles, extended master secret required, the peer's certificate checked by `verify`
/// (self-signed: no CA chain), and a client certificate required of the peer when serving.
fn handshake_config(
    identity: &DtlsIdentity,
    verify: &VerifyPeerCertificateFn,
    client: bool,
) -> Result<HandshakeConfig, DtlsError> {
    let builder = ConfigBuilder::default()
        .with_crypto_provider(Arc::clone(&identity.inner.crypto))
        .with_certificates(vec![identity.inner.certificate.clone()])
        .with_srtp_protection_profiles(SRTP_PROFILES.to_vec())
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(Some(Arc::clone(verify)))
        .with_extended_master_secret(ExtendedMasterSecretType::Require);
    let builder = if client {
        builder
    } else {
        builder.with_client_auth(ClientAuthType::RequireAnyClientCert)
    };
    builder.build(client, None).map_err(DtlsError::Setup)
}

/// The library's certificate callback: the peer's first certificate must hash (sha-256) to
/// `remote`; the outcome is also recorded in `verdict`, to name the failure.
fn verifier(
    remote: Arc<OnceLock<RemoteFingerprint>>,
    deferred: Arc<Mutex<Option<Vec<u8>>>>,
    verdict: Arc<AtomicU8>,
    crypto: Arc<dyn RTCCryptoProvider>,
) -> VerifyPeerCertificateFn {
    Arc::new(move |certs: &[Vec<u8>], _chains: &[_]| {
        let Some(leaf) = certs.first() else {
            return Err(Error::ErrNonCertificate);
        };
        let digest = crypto
            .crypto()
            .hash(HashAlgorithm::Sha256, leaf)
            .map_err(|e| Error::Crypto(e.to_string()))?;
        let expected = match remote.get() {
            Some(RemoteFingerprint::Sha256(expected)) => expected,
            Some(RemoteFingerprint::Other(_)) => {
                verdict.store(VERDICT_UNSUPPORTED, Ordering::Release);
                return Err(Error::ErrUnsupportedFingerprintAlgorithm);
            }
            None => {
                // Checked when the fingerprint comes (`set_remote_fingerprint`).
                *deferred.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
                return Ok(());
            }
        };
        if digest == *expected {
            verdict.store(VERDICT_MATCH, Ordering::Release);
            Ok(())
        } else {
            verdict.store(VERDICT_MISMATCH, Ordering::Release);
            Err(Error::ErrNoMatchingCertificateFingerprint)
        }
    })
}

/// Parses an `a=fingerprint` value: a hash function name and hex pairs joined by `:` (32 of
/// them for sha-256), any case.
fn parse_fingerprint(value: &str) -> Result<RemoteFingerprint, DtlsError> {
    let bad = || DtlsError::BadRemoteFingerprint(value.to_owned());
    let mut parts = value.split_whitespace();
    let (Some(algorithm), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !algorithm
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad());
    }
    let bytes = hex
        .split(':')
        .map(|pair| {
            let hex_pair = pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit());
            hex_pair.then(|| u8::from_str_radix(pair, 16).ok())?
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let algorithm = algorithm.to_ascii_lowercase();
    if algorithm != "sha-256" {
        return Ok(RemoteFingerprint::Other(algorithm));
    }
    if bytes.len() != 32 {
        return Err(bad());
    }
    Ok(RemoteFingerprint::Sha256(bytes))
}

/// Whether `datagram` is a sequence of whole DTLS records (what the library can unpack).
fn is_well_framed(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while !rest.is_empty() {
        if rest.len() <= RECORD_HEADER_LEN {
            return false;
        }
        let len = usize::from(u16::from_be_bytes([rest[11], rest[12]]));
        let Some(next) = rest.get(RECORD_HEADER_LEN + len..) else {
            return false;
        };
        rest = next;
    }
    !datagram.is_empty()
}

#[cfg(test)]
#[path = "dtls_tests.rs"]
pub(crate) mod tests;
