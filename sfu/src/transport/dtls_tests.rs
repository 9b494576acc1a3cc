//! Unit tests of the DTLS server: a client built from the same library shuttles datagrams with
//! it in memory, on simulated time.

use super::*;

pub(crate) const CLIENT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
pub(crate) const SERVER_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 6000);
/// Rounds of client-to-server-to-client a handshake may take (it needs 3).
const ROUNDS: usize = 8;

fn crypto() -> Arc<dyn RTCCryptoProvider> {
    rtc::crypto::default_provider().unwrap()
}

fn sha256(der: &[u8]) -> Vec<u8> {
    crypto().crypto().hash(HashAlgorithm::Sha256, der).unwrap()
}

/// A client certificate and its fingerprint as Firefox writes it (lower-case hex).
pub(crate) fn client_certificate() -> (Certificate, String) {
    let cert =
        Certificate::generate_self_signed(vec!["client".to_owned()], crypto().crypto()).unwrap();
    let hex: Vec<String> = sha256(cert.certificate[0].as_ref())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (cert, format!("sha-256 {}", hex.join(":")))
}

/// The test's DTLS peer: a client endpoint and whether its handshake completed.
pub(crate) struct Client {
    endpoint: Endpoint,
    complete: bool,
}

impl Client {
    /// A client presenting `cert`, offering `profiles`, that accepts only the server whose
    /// certificate has `server_fingerprint`.
    pub(crate) fn connect(
        now: Instant,
        cert: Certificate,
        profiles: &[SrtpProtectionProfile],
        server_fingerprint: &str,
    ) -> Self {
        Self::connect_with(now, cert, profiles, server_fingerprint, |b| b)
    }

    /// [`Client::connect`], its configuration changed by `tweak`.
    fn connect_with(
        now: Instant,
        cert: Certificate,
        profiles: &[SrtpProtectionProfile],
        server_fingerprint: &str,
        tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Self {
        let RemoteFingerprint::Sha256(expected) = parse_fingerprint(server_fingerprint).unwrap()
        else {
            panic!("the server's fingerprint is sha-256");
        };
        let verify: VerifyPeerCertificateFn = Arc::new(
            move |certs: &[Vec<u8>], _: &[_]| match certs.first().map(|c| sha256(c)) {
                Some(digest) if digest == expected => Ok(()),
                _ => Err(Error::ErrNoMatchingCertificateFingerprint),
            },
        );
        let config = ConfigBuilder::default()
            .with_crypto_provider(crypto())
            .with_certificates(vec![cert])
            .with_srtp_protection_profiles(profiles.to_vec())
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_server_name("cascade".to_owned());
        let config = tweak(config).build(true, None).unwrap();
        let mut endpoint = Endpoint::new(CLIENT_ADDR, TransportProtocol::UDP, None);
        endpoint
            .connect(now, SERVER_ADDR, Arc::new(config), None)
            .unwrap();
        Self {
            endpoint,
            complete: false,
        }
    }

    /// The datagrams the client has queued.
    pub(crate) fn take(&mut self) -> Vec<BytesMut> {
        std::iter::from_fn(|| self.endpoint.poll_transmit().map(|t| t.message)).collect()
    }

    /// Reads `datagrams` from the server, noting completion (errors are the client's business).
    pub(crate) fn receive(&mut self, now: Instant, datagrams: Vec<BytesMut>) {
        for datagram in datagrams {
            if let Ok(events) = self.endpoint.read(now, SERVER_ADDR, None, datagram) {
                self.complete |= events
                    .iter()
                    .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
            }
        }
    }

    /// The client's SRTP keys, split as the DTLS client.
    pub(crate) fn keys(&self) -> SrtpKeys {
        let state = self.endpoint.get_connection_state(SERVER_ADDR).unwrap();
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
                ProtectionProfile::Aes128CmHmacSha1_80
            }
            other => panic!("unexpected profile {other:?}"),
        };
        let len = SrtpKeys::keying_material_len(profile);
        let material = state
            .export_keying_material(LABEL_EXTRACTOR_DTLS_SRTP, &[], len)
            .unwrap();
        SrtpKeys::from_keying_material(profile, material.as_ref(), true).unwrap()
    }
}

fn server_datagrams(server: &mut DtlsServer) -> Vec<BytesMut> {
    std::iter::from_fn(|| server.poll_transmit()).collect()
}

/// Feeds the client's queued datagrams to the server: its events, or its first error.
fn to_server(
    now: Instant,
    client: &mut Client,
    server: &mut DtlsServer,
) -> Result<Vec<DtlsEvent>, DtlsError> {
    let mut events = Vec::new();
    for datagram in client.take() {
        events.extend(server.handle_datagram(now, &datagram)?);
    }
    Ok(events)
}

/// Shuttles datagrams until both sides completed: the server's `Connected` keys.
fn handshake(
    now: Instant,
    client: &mut Client,
    server: &mut DtlsServer,
) -> Result<SrtpKeys, DtlsError> {
    let mut keys = None;
    for _ in 0..ROUNDS {
        for event in to_server(now, client, server)? {
            match event {
                DtlsEvent::Connected(k) => {
                    assert!(keys.is_none(), "Connected reported twice");
                    keys = Some(k);
                }
                DtlsEvent::Closed => panic!("closed during the handshake"),
            }
        }
        client.receive(now, server_datagrams(server));
        if client.complete && keys.is_some() {
            break;
        }
    }
    assert!(client.complete, "the client did not complete");
    Ok(keys.expect("the server did not report Connected"))
}

/// A server and a client offering `profiles` that started its handshake at `now`.
fn pair(now: Instant, profiles: &[SrtpProtectionProfile]) -> (DtlsServer, Client) {
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let server = DtlsServer::new(&identity, &fingerprint).unwrap();
    let client = Client::connect(now, cert, profiles, identity.fingerprint());
    (server, client)
}

/// A connected server and client, at `now`.
fn connected(now: Instant) -> (DtlsServer, Client, SrtpKeys) {
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    let keys = handshake(now, &mut client, &mut server).unwrap();
    (server, client, keys)
}

fn assert_mirrored(server: &SrtpKeys, client: &SrtpKeys) {
    let profile_name = |k: &SrtpKeys| format!("{:?}", k.profile);
    assert_eq!(profile_name(server), profile_name(client));
    let (s, c) = (&server.keys, &client.keys);
    assert_eq!(s.local_master_key, c.remote_master_key);
    assert_eq!(s.local_master_salt, c.remote_master_salt);
    assert_eq!(s.remote_master_key, c.local_master_key);
    assert_eq!(s.remote_master_salt, c.local_master_salt);
    assert_ne!(s.local_master_key, s.remote_master_key, "directions differ");
    assert_eq!(s.local_master_key.len(), server.profile.key_len());
}

#[test]
fn the_handshake_exports_mirrored_aes_128_gcm_keys() {
    let now = Instant::now();
    let (mut server, client, keys) = connected(now);
    assert!(matches!(keys.profile, ProtectionProfile::AeadAes128Gcm));
    assert_mirrored(&keys, &client.keys());
    assert_eq!(server.state(), DtlsState::Connected);
    assert_eq!(server.poll_timeout(), None, "no timer once connected");
    server.handle_timeout(now + HANDSHAKE_TIMEOUT * 2).unwrap();
    assert_eq!(server.state(), DtlsState::Connected);
}

#[test]
fn a_client_offering_only_aes_cm_80_gets_it() {
    let now = Instant::now();
    let only_cm = [SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80];
    let (mut server, mut client) = pair(now, &only_cm);
    let keys = handshake(now, &mut client, &mut server).unwrap();
    assert!(matches!(
        keys.profile,
        ProtectionProfile::Aes128CmHmacSha1_80
    ));
    assert_mirrored(&keys, &client.keys());
}

#[test]
fn a_client_offering_no_common_profile_fails_the_handshake() {
    let now = Instant::now();
    let gcm_256 = [SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm];
    let (mut server, mut client) = pair(now, &gcm_256);
    let err = handshake(now, &mut client, &mut server).unwrap_err();
    let no_match = Error::ErrServerNoMatchingSrtpProfile;
    assert!(
        matches!(&err, DtlsError::HandshakeFailed(e) if *e == no_match),
        "{err}"
    );
    assert_eq!(server.state(), DtlsState::Failed);
}

/// Runs a handshake whose server expects `remote_fingerprint` of a client configured with
/// `tweak`: the error it fails with.
fn failed_handshake(
    remote_fingerprint: impl FnOnce(&str) -> String,
    tweak: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
) -> DtlsError {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let mut server = DtlsServer::new(&identity, &remote_fingerprint(&fingerprint)).unwrap();
    let mut client = Client::connect_with(now, cert, &SRTP_PROFILES, identity.fingerprint(), tweak);
    let mut error = None;
    for _ in 0..ROUNDS {
        match to_server(now, &mut client, &mut server) {
            Ok(events) => assert!(events.is_empty(), "unexpected {events:?}"),
            Err(e) => {
                assert!(error.is_none(), "a second error after the first: {e}");
                error = Some(e);
            }
        }
        client.receive(now, server_datagrams(&mut server));
    }
    assert!(!client.complete, "the client completed");
    assert_eq!(server.state(), DtlsState::Failed);
    assert_eq!(server.poll_timeout(), None);
    error.expect("the handshake did not fail")
}

#[test]
fn a_wrong_remote_fingerprint_fails_the_handshake() {
    let other = client_certificate().1;
    let err = failed_handshake(|_| other, |b| b);
    assert!(matches!(err, DtlsError::FingerprintMismatch), "{err}");
}

#[test]
fn a_client_without_certificate_fails_the_handshake() {
    let err = failed_handshake(str::to_owned, |b| b.with_certificates(vec![]));
    let required = Error::ErrClientCertificateRequired;
    assert!(
        matches!(&err, DtlsError::HandshakeFailed(e) if *e == required),
        "{err}"
    );
}

#[test]
fn a_client_without_extended_master_secret_fails_the_handshake() {
    let disable =
        |b: ConfigBuilder| b.with_extended_master_secret(ExtendedMasterSecretType::Disable);
    let err = failed_handshake(str::to_owned, disable);
    let required = Error::ErrServerRequiredButNoClientEms;
    assert!(
        matches!(&err, DtlsError::HandshakeFailed(e) if *e == required),
        "{err}"
    );
}

#[test]
fn the_right_fingerprint_in_upper_case_is_accepted() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let mut server = DtlsServer::new(&identity, &fingerprint.to_uppercase()).unwrap();
    let mut client = Client::connect(now, cert, &SRTP_PROFILES, identity.fingerprint());
    handshake(now, &mut client, &mut server).unwrap();
}

#[test]
fn a_fingerprint_of_another_hash_function_fails_the_handshake() {
    let err = failed_handshake(|_| format!("sha-1 {}", ["AB"; 20].join(":")), |b| b);
    assert!(
        matches!(&err, DtlsError::UnsupportedFingerprintAlgorithm(alg) if alg == "sha-1"),
        "{err}"
    );
}

#[test]
fn a_malformed_remote_fingerprint_is_refused() {
    let identity = DtlsIdentity::generate().unwrap();
    let good = ["ab"; 32].join(":");
    let bad = [
        String::new(),
        "sha-256".to_owned(),
        good.clone(),
        format!("sha-256 {good} extra"),
        format!("sha-256 {}", ["ab"; 31].join(":")),
        format!("sha-256 {}", ["ab"; 33].join(":")),
        format!("sha-256 {}:", ["ab"; 32].join(":")),
        format!("sha-256 {}:+f", ["ab"; 31].join(":")),
        format!("sha-256 {}:zz", ["ab"; 31].join(":")),
        format!("sha-256 {}:abc", ["ab"; 31].join(":")),
        format!("sha_256! {good}"),
    ];
    for value in bad {
        let err = DtlsServer::new(&identity, &value).unwrap_err();
        assert!(
            matches!(&err, DtlsError::BadRemoteFingerprint(v) if *v == value),
            "{value:?}: {err}"
        );
    }
    DtlsServer::new(&identity, &format!("  SHA-256   {good} ")).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}

/// Garbage a DTLS demultiplexer would let through: random bytes with a DTLS first byte, and
/// truncations of `real`.
fn garbage(seed: &mut u64, real: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut d = noise(seed, 1 + (i * 37) % 300);
            d[0] = 20 + d[0] % 44;
            d
        })
        .collect();
    out.extend([1, 5, 13, 14, real.len() / 2, real.len() - 1].map(|n| real[..n].to_vec()));
    out
}

#[test]
fn garbage_is_ignored_before_during_and_after_the_handshake() {
    let now = Instant::now();
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    let hello = client.take();
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for junk in garbage(&mut seed, &hello[0]) {
        assert!(server.handle_datagram(now, &junk).unwrap().is_none());
    }
    assert_eq!(server.state(), DtlsState::New, "garbage starts nothing");
    assert!(server.poll_transmit().is_none(), "garbage is not answered");
    for datagram in hello {
        assert!(server.handle_datagram(now, &datagram).unwrap().is_none());
    }
    let verify_request = server_datagrams(&mut server);
    for junk in garbage(&mut seed, &verify_request[0]) {
        assert!(server.handle_datagram(now, &junk).unwrap().is_none());
    }
    client.receive(now, verify_request);
    let keys = handshake(now, &mut client, &mut server).unwrap();
    assert_mirrored(&keys, &client.keys());

    // A forged plaintext close_notify: epoch 0, sequence 9, 2 bytes.
    let forged = vec![21, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0];
    let mut real = client.take();
    client.endpoint.write(now, SERVER_ADDR, b"probe").unwrap();
    real.extend(client.take());
    for junk in garbage(&mut seed, &real[0]).into_iter().chain([forged]) {
        assert!(server.handle_datagram(now, &junk).unwrap().is_none());
        assert_eq!(server.state(), DtlsState::Connected);
    }
    // Still decrypting the client's records.
    for datagram in real {
        assert!(server.handle_datagram(now, &datagram).unwrap().is_none());
    }
    assert_eq!(server.dropped_application_data(), 1);
    assert!(server.dropped_datagrams() >= 3 * 40);
}

#[test]
fn a_lost_server_flight_is_retransmitted_at_poll_timeout() {
    let now = Instant::now();
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    // ClientHello, HelloVerifyRequest (not retransmitted by a server: it keeps no state).
    to_server(now, &mut client, &mut server).unwrap();
    client.receive(now, server_datagrams(&mut server));
    // ClientHello with the cookie; the server's flight (ServerHello .. ServerHelloDone) is lost.
    to_server(now, &mut client, &mut server).unwrap();
    let lost = server_datagrams(&mut server);
    assert!(!lost.is_empty());
    let at = server.poll_timeout().expect("a retransmission timer");
    assert!(at > now && at <= now + Duration::from_secs(1), "{at:?}");
    server.handle_timeout(at).unwrap();
    let again = server_datagrams(&mut server);
    assert_eq!(again.len(), lost.len(), "the flight is sent again");
    client.receive(at, again);
    let keys = handshake(at, &mut client, &mut server).unwrap();
    assert_mirrored(&keys, &client.keys());
}

/// Drives only the server's timers from `start`, for at most 64 firings: the error and when.
fn run_timers(server: &mut DtlsServer) -> (DtlsError, Instant) {
    for _ in 0..64 {
        let at = server.poll_timeout().expect("a timer while connecting");
        if let Err(e) = server.handle_timeout(at) {
            assert_eq!(server.state(), DtlsState::Failed);
            assert_eq!(server.poll_timeout(), None);
            return (e, at);
        }
        assert_eq!(server.state(), DtlsState::Connecting);
        server_datagrams(server);
    }
    panic!("no timeout after 64 timers");
}

#[test]
fn a_client_silent_after_its_hello_times_out_at_the_deadline() {
    let now = Instant::now();
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    to_server(now, &mut client, &mut server).unwrap();
    server_datagrams(&mut server);
    assert_eq!(server.state(), DtlsState::Connecting);
    server
        .handle_timeout(now + HANDSHAKE_TIMEOUT - Duration::from_millis(1))
        .unwrap();
    let (err, at) = run_timers(&mut server);
    assert!(matches!(err, DtlsError::HandshakeTimeout), "{err}");
    assert_eq!(at, now + HANDSHAKE_TIMEOUT);
    // Late datagrams are ignored.
    client.endpoint.handle_timeout(SERVER_ADDR, at).unwrap();
    assert!(to_server(at, &mut client, &mut server).unwrap().is_empty());
    assert!(server.poll_transmit().is_none());
}

#[test]
fn a_client_silent_mid_handshake_times_out_within_the_deadline() {
    let now = Instant::now();
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    to_server(now, &mut client, &mut server).unwrap();
    client.receive(now, server_datagrams(&mut server));
    to_server(now, &mut client, &mut server).unwrap();
    let (err, at) = run_timers(&mut server);
    assert!(matches!(err, DtlsError::HandshakeTimeout), "{err}");
    assert!(at <= now + HANDSHAKE_TIMEOUT);
}

#[test]
fn application_data_is_dropped_and_counted_and_close_notify_closes() {
    let now = Instant::now();
    let (mut server, mut client, _) = connected(now);
    for i in 0..3u8 {
        client.endpoint.write(now, SERVER_ADDR, &[i; 100]).unwrap();
    }
    assert!(to_server(now, &mut client, &mut server).unwrap().is_empty());
    assert_eq!(server.dropped_application_data(), 3);
    assert_eq!(server.state(), DtlsState::Connected);

    client.endpoint.close(now).unwrap();
    let events = to_server(now, &mut client, &mut server).unwrap();
    assert!(
        matches!(events.as_slice(), [DtlsEvent::Closed]),
        "{events:?}"
    );
    assert_eq!(server.state(), DtlsState::Closed);
    assert!(server.poll_transmit().is_some(), "the close_notify reply");
    assert_eq!(server.poll_timeout(), None);
    // A new ClientHello is not a new association.
    let (cert, _) = client_certificate();
    let any = format!("sha-256 {}", ["00"; 32].join(":"));
    let mut again = Client::connect(now, cert, &SRTP_PROFILES, &any);
    assert!(to_server(now, &mut again, &mut server).unwrap().is_empty());
    assert!(server.poll_transmit().is_none());
}

#[test]
fn close_sends_close_notify() {
    let now = Instant::now();
    let (mut server, mut client, _) = connected(now);
    server.close(now);
    assert_eq!(server.state(), DtlsState::Closed);
    let closed = server_datagrams(&mut server).into_iter().any(|d| {
        let events = client.endpoint.read(now, SERVER_ADDR, None, d).unwrap();
        events
            .iter()
            .any(|e| matches!(e, EndpointEvent::PeerClosed))
    });
    assert!(closed, "the client saw close_notify");
}

#[test]
fn the_fingerprint_is_the_upper_case_sha_256_of_the_certificate() {
    let identity = DtlsIdentity::generate().unwrap();
    let fingerprint = identity.fingerprint();
    let hex = fingerprint.strip_prefix("sha-256 ").expect(fingerprint);
    let pairs: Vec<&str> = hex.split(':').collect();
    assert_eq!(pairs.len(), 32);
    assert!(pairs.iter().all(|p| {
        p.len() == 2
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    }));
    let der = identity.inner.certificate.certificate[0].as_ref();
    let digest: Vec<u8> = pairs
        .iter()
        .map(|p| u8::from_str_radix(p, 16).unwrap())
        .collect();
    assert_eq!(digest, sha256(der));
    assert_ne!(DtlsIdentity::generate().unwrap().fingerprint(), fingerprint);
    let clone = identity.clone();
    assert!(
        std::ptr::eq(clone.fingerprint(), fingerprint),
        "shared, not copied"
    );
}

#[test]
fn at_most_max_handshake_datagrams_reach_the_library_before_connected() {
    let now = Instant::now();
    let (mut server, mut client) = pair(now, &SRTP_PROFILES);
    // Well framed, but of a far epoch: the library discards them silently.
    let far_epoch = [22, 0xfe, 0xfd, 0, 9, 0, 0, 0, 0, 0, 1, 0, 1, 0];
    for _ in 0..MAX_HANDSHAKE_DATAGRAMS {
        assert!(server.handle_datagram(now, &far_epoch).unwrap().is_none());
    }
    assert_eq!(server.state(), DtlsState::Connecting);
    assert_eq!(server.dropped_datagrams(), 0);
    assert!(to_server(now, &mut client, &mut server).unwrap().is_empty());
    assert_eq!(server.dropped_datagrams(), 1, "the hello is over budget");
    assert!(server.poll_transmit().is_none());
}

#[test]
fn a_handshake_that_completes_before_the_fingerprint_holds_its_keys_until_it_matches() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let gcm = [SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm];
    let mut server = DtlsServer::awaiting(&identity).unwrap();
    let mut client = Client::connect(now, cert, &gcm, identity.fingerprint());
    for _ in 0..ROUNDS {
        let events = to_server(now, &mut client, &mut server).unwrap();
        assert!(
            events.is_empty(),
            "no keys before the fingerprint: {events:?}"
        );
        client.receive(now, server_datagrams(&mut server));
    }
    assert!(client.complete, "the client completed");
    assert_eq!(server.state(), DtlsState::Connected);
    let keys = server
        .set_remote_fingerprint(&fingerprint)
        .unwrap()
        .expect("the held keys, once the certificate matches");
    assert_mirrored(&keys, &client.keys());
    assert!(
        server
            .set_remote_fingerprint(&fingerprint)
            .unwrap()
            .is_none(),
        "given once"
    );

    // The same, but the answer names another certificate: the association fails.
    let (cert, _) = client_certificate();
    let (_, other) = client_certificate();
    let mut server = DtlsServer::awaiting(&identity).unwrap();
    let mut client = Client::connect(now, cert, &gcm, identity.fingerprint());
    for _ in 0..ROUNDS {
        to_server(now, &mut client, &mut server).unwrap();
        client.receive(now, server_datagrams(&mut server));
    }
    assert!(matches!(
        server.set_remote_fingerprint(&other),
        Err(DtlsError::FingerprintMismatch)
    ));
    assert_eq!(server.state(), DtlsState::Failed);
}

#[test]
fn a_fingerprint_set_before_the_certificate_is_checked_in_the_handshake() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, _) = client_certificate();
    let (_, other) = client_certificate();
    let mut server = DtlsServer::awaiting(&identity).unwrap();
    assert!(server.set_remote_fingerprint(&other).unwrap().is_none());
    assert!(
        matches!(
            server.set_remote_fingerprint(&client_certificate().1),
            Err(DtlsError::FingerprintMismatch)
        ),
        "the first fingerprint stays"
    );
    let gcm = [SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm];
    let mut client = Client::connect(now, cert, &gcm, identity.fingerprint());
    assert!(matches!(
        handshake(now, &mut client, &mut server),
        Err(DtlsError::FingerprintMismatch)
    ));
}

/// The test's DTLS server peer (the server offered first and its peer answered
/// `a=setup:passive`): it requires a client certificate, and accepts `client_fingerprint`'s.
fn server_peer(identity_cert: Certificate, client_fingerprint: &str) -> Endpoint {
    let RemoteFingerprint::Sha256(expected) = parse_fingerprint(client_fingerprint).unwrap() else {
        panic!("sha-256");
    };
    let verify: VerifyPeerCertificateFn =
        Arc::new(
            move |certs: &[Vec<u8>], _: &[_]| match certs.first().map(|c| sha256(c)) {
                Some(digest) if digest == expected => Ok(()),
                _ => Err(Error::ErrNoMatchingCertificateFingerprint),
            },
        );
    let config = ConfigBuilder::default()
        .with_crypto_provider(crypto())
        .with_certificates(vec![identity_cert])
        .with_srtp_protection_profiles(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm])
        .with_client_auth(ClientAuthType::RequireAnyClientCert)
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(Some(verify))
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .build(false, None)
        .unwrap();
    Endpoint::new(CLIENT_ADDR, TransportProtocol::UDP, Some(Arc::new(config)))
}

#[test]
fn connect_makes_it_the_dtls_client_of_a_passive_peer() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (peer_cert, peer_fingerprint) = client_certificate();
    let mut peer = server_peer(peer_cert, identity.fingerprint());
    let mut ours = DtlsServer::awaiting(&identity).unwrap();
    assert!(
        ours.set_remote_fingerprint(&peer_fingerprint)
            .unwrap()
            .is_none()
    );
    ours.connect(now).unwrap();
    assert_eq!(ours.state(), DtlsState::Connecting);
    let mut keys = None;
    let mut peer_done = false;
    for _ in 0..ROUNDS {
        for datagram in server_datagrams(&mut ours) {
            let events = peer.read(now, SERVER_ADDR, None, datagram).unwrap();
            peer_done |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        }
        let replies: Vec<BytesMut> =
            std::iter::from_fn(|| peer.poll_transmit().map(|t| t.message)).collect();
        for datagram in replies {
            if let Some(DtlsEvent::Connected(k)) = ours.handle_datagram(now, &datagram).unwrap() {
                keys = Some(k);
            }
        }
        if peer_done && keys.is_some() {
            break;
        }
    }
    assert!(peer_done, "the passive peer completed");
    let keys = keys.expect("our side connected as the client");
    let state = peer.get_connection_state(SERVER_ADDR).unwrap();
    let material = state
        .export_keying_material(
            LABEL_EXTRACTOR_DTLS_SRTP,
            &[],
            SrtpKeys::keying_material_len(ProtectionProfile::AeadAes128Gcm),
        )
        .unwrap();
    let peer_keys =
        SrtpKeys::from_keying_material(ProtectionProfile::AeadAes128Gcm, material.as_ref(), false)
            .unwrap();
    assert_mirrored(&keys, &peer_keys);
    ours.connect(now).unwrap();
    assert_eq!(
        ours.state(),
        DtlsState::Connected,
        "connect twice is nothing"
    );
}
