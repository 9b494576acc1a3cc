//! A whole peer transport in memory: a client checks ICE (STUN), handshakes DTLS with an
//! rtc-dtls client and exchanges SRTP/SRTCP sealed by webrtc-rs's own contexts.

use super::*;
use crate::transport::dtls::tests::{CLIENT_ADDR, Client, client_certificate};
use crate::transport::ice_lite::tests::{NOMINATE, request};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::srtp::context::Context;

/// The client's path (its DTLS address, over UDP).
fn client_path() -> Path {
    Path::udp(CLIENT_ADDR)
}

const SERVER: (&str, &str) = ("srvA", "server-password-of-22+chars");

fn credentials() -> Credentials {
    Credentials {
        ufrag: SERVER.0.into(),
        pwd: SERVER.1.into(),
    }
}

/// The server's datagrams, checked to go to `to`.
fn sent_to(transport: &mut PeerTransport, to: Path) -> Vec<bytes::BytesMut> {
    std::iter::from_fn(|| transport.poll_transmit())
        .map(|t| {
            assert_eq!(t.to, to, "sent to the peer's address");
            bytes::BytesMut::from(&t.data[..])
        })
        .collect()
}

/// A transport and a client that has checked ICE (nominating `client_path()`), both before DTLS.
fn checked_pair(now: Instant) -> (PeerTransport, Client) {
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let mut transport = PeerTransport::new(credentials(), &identity, &fingerprint).unwrap();
    let mut check = request(SERVER.0, SERVER.1, NOMINATE, 1);
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut check)
            .unwrap(),
        Received::Handled
    );
    let answers = sent_to(&mut transport, client_path());
    assert_eq!(answers.len(), 1, "the check is answered");
    assert_eq!(transport.ice().selected(), Some(client_path()));
    let client = Client::connect(
        now,
        cert,
        &[SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        identity.fingerprint(),
    );
    (transport, client)
}

/// Shuttles DTLS until the transport reports `Connected`.
fn connect(now: Instant, transport: &mut PeerTransport, client: &mut Client) {
    for _ in 0..8 {
        for mut datagram in client.take() {
            if transport
                .handle_datagram(now, client_path(), &mut datagram)
                .unwrap()
                == Received::Connected
            {
                let last = sent_to(transport, client_path());
                client.receive(now, last);
                return;
            }
        }
        let replies = sent_to(transport, client_path());
        client.receive(now, replies);
    }
    panic!("DTLS did not connect");
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0x60];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe]);
    p.extend((0..60u8).map(|i| i.wrapping_mul(seq as u8)));
    p
}

#[test]
fn ice_then_dtls_then_srtp_both_ways() {
    let now = Instant::now();
    let (mut transport, mut client) = checked_pair(now);
    connect(now, &mut transport, &mut client);
    assert!(transport.is_connected());
    let keys = client.keys();
    let provider = rtc::crypto::default_provider().unwrap();
    let mut client_out = Context::new(
        &keys.keys.local_master_key,
        &keys.keys.local_master_salt,
        keys.profile,
        None,
        None,
        provider.crypto(),
    )
    .unwrap();
    let mut client_in = Context::new(
        &keys.keys.remote_master_key,
        &keys.keys.remote_master_salt,
        keys.profile,
        None,
        None,
        provider.crypto(),
    )
    .unwrap();

    // The client's RTP and RTCP arrive decrypted, in place.
    for seq in 0..20 {
        let plain = rtp(seq);
        let mut datagram = client_out.encrypt_rtp(&plain).unwrap().to_vec();
        let got = transport
            .handle_datagram(now, client_path(), &mut datagram)
            .unwrap();
        assert_eq!(got, Received::Rtp(plain.len()));
        assert_eq!(&datagram[..plain.len()], &plain[..]);
    }
    let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
    let mut datagram = client_out.encrypt_rtcp(&pli).unwrap().to_vec();
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut datagram)
            .unwrap(),
        Received::Rtcp(pli.len())
    );
    assert_eq!(&datagram[..pli.len()], &pli[..]);

    // What the server protects goes to the selected address and opens at the client.
    let plain = rtp(7);
    let mut buf = plain.clone();
    buf.resize(plain.len() + crate::transport::srtp::MAX_RTP_OVERHEAD, 0);
    let (to, len) = transport.protect_rtp(&mut buf, plain.len()).unwrap();
    assert_eq!(to, client_path());
    assert_eq!(&client_in.decrypt_rtp(&buf[..len]).unwrap()[..], &plain[..]);
    let mut buf = pli.to_vec();
    buf.resize(pli.len() + crate::transport::srtp::MAX_RTCP_OVERHEAD, 0);
    let (_, len) = transport.protect_rtcp(&mut buf, pli.len()).unwrap();
    assert_eq!(&client_in.decrypt_rtcp(&buf[..len]).unwrap()[..], &pli[..]);

    // A forged packet is dropped, and the transport goes on.
    let mut forged = client_out.encrypt_rtp(&rtp(100)).unwrap().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut forged)
            .unwrap(),
        Received::Dropped(Dropped::Srtp(SrtpError::AuthFailed))
    );
    let mut next = client_out.encrypt_rtp(&rtp(101)).unwrap().to_vec();
    assert!(matches!(
        transport
            .handle_datagram(now, client_path(), &mut next)
            .unwrap(),
        Received::Rtp(_)
    ));
}

#[test]
fn nothing_but_stun_is_taken_from_an_address_without_a_valid_check() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (cert, fingerprint) = client_certificate();
    let mut transport = PeerTransport::new(credentials(), &identity, &fingerprint).unwrap();
    let mut client = Client::connect(
        now,
        cert,
        &[SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm],
        identity.fingerprint(),
    );
    // DTLS before any check: dropped, nothing sent.
    for mut datagram in client.take() {
        assert_eq!(
            transport
                .handle_datagram(now, client_path(), &mut datagram)
                .unwrap(),
            Received::Dropped(Dropped::UnknownAddress)
        );
    }
    assert_eq!(transport.poll_transmit(), None);
    // A check signed with another password: no answer, and the address stays unknown.
    let mut bad = request(SERVER.0, "another-password-of-22chars", NOMINATE, 2);
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut bad)
            .unwrap(),
        Received::Handled
    );
    assert_eq!(transport.poll_transmit(), None);
    let mut media = rtp(1);
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut media)
            .unwrap(),
        Received::Dropped(Dropped::UnknownAddress)
    );
    // Nothing can be sent yet.
    let mut buf = vec![0u8; 100];
    assert_eq!(
        transport.protect_rtp(&mut buf, 80),
        Err(SendError::NotConnected)
    );
}

#[test]
fn media_before_dtls_and_undemultiplexable_bytes_are_dropped() {
    let now = Instant::now();
    let (mut transport, _client) = checked_pair(now);
    let mut media = rtp(1);
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut media)
            .unwrap(),
        Received::Dropped(Dropped::NotConnected)
    );
    for first in [4u8, 19, 64, 127, 192, 255] {
        let mut junk = vec![first, 1, 2, 3];
        assert_eq!(
            transport
                .handle_datagram(now, client_path(), &mut junk)
                .unwrap(),
            Received::Dropped(Dropped::NotDemultiplexed),
            "first byte {first}"
        );
    }
    assert_eq!(
        transport
            .handle_datagram(now, client_path(), &mut [])
            .unwrap(),
        Received::Dropped(Dropped::NotDemultiplexed)
    );
}

#[test]
fn stun_answers_waiting_to_be_sent_are_bounded() {
    let now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let (_, fingerprint) = client_certificate();
    let mut transport = PeerTransport::new(credentials(), &identity, &fingerprint).unwrap();
    for id in 0..(MAX_PENDING as u8 + 10) {
        let mut check = request(SERVER.0, SERVER.1, NOMINATE, id);
        transport
            .handle_datagram(now, client_path(), &mut check)
            .unwrap();
    }
    assert_eq!(
        std::iter::from_fn(|| transport.poll_transmit()).count(),
        MAX_PENDING
    );
}
