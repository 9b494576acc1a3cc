//! The fuzz targets: every parser a remote party reaches, called the way Cascade calls it.
//! A target returns normally for any input; a panic, an allocation above the bound or a run
//! above the time bound is a finding.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use cascade_api::auth;
use cascade_api::whip::sdpfrag;
use cascade_sfu::downtrack::down_track::{DownTrack, DownTrackParams, PayloadMapping};
use cascade_sfu::downtrack::munger::Munger;
use cascade_sfu::downtrack::send_stats::ntp_middle;
use cascade_sfu::engine::router::{MAX_RETRANSMITS, Router};
use cascade_sfu::engine::{PeerIdx, Sink, TrackId};
use cascade_sfu::negotiation::answer::LocalTransport;
use cascade_sfu::negotiation::remote::RemoteDescription;
use cascade_sfu::net::demux::{Demuxer, stun_local_ufrag};
use cascade_sfu::net::{Path, Proto};
use cascade_sfu::rtp::view::RtpView;
use cascade_sfu::track::up_track::{Arrival, UpTrack, UpTrackParams};
use cascade_sfu::transport::dtls::DtlsIdentity;
use cascade_sfu::transport::ice_lite::Credentials;
use cascade_sfu::transport::peer_transport::PeerTransport;
use cascade_sfu::transport::srtp::{SrtpError, SrtpKeys, SrtpSession};
use cascade_sfu::transport::twcc::TwccSender;
use cascade_signaling::protocol::{ClientMessage, parse_client};
use rtc::ice::candidate::unmarshal_candidate;
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::shared::tcp_framing::TcpFrameDecoder;
use rtc::srtp::protection_profile::ProtectionProfile;

/// API key the `jwt` target verifies against (the seed tokens are issued by it).
pub const JWT_KEY: &str = "fuzzkey";
/// API secret the `jwt` target verifies against.
pub const JWT_SECRET: &str = "fuzz-secret-0123456789-0123456789-0123456789";

/// The time the `jwt` target verifies at.
pub fn jwt_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A parser entry point: the input's bytes.
pub type TargetFn = fn(&[u8]);

/// One fuzz target.
pub struct Target {
    /// Name on the command line and folder of its seed corpus.
    pub name: &'static str,
    /// What it feeds the input to.
    pub about: &'static str,
    /// Runs one input.
    pub run: TargetFn,
    /// Largest input generated, in bytes.
    pub max_len: usize,
    /// Dictionary of tokens the mutator inserts.
    pub tokens: &'static [&'static [u8]],
    /// Structured generator.
    pub generate: fn(&mut super::mutate::Rng) -> Vec<u8>,
}

/// Every target.
pub fn all() -> &'static [Target] {
    use super::generate as g;
    &[
        Target {
            name: "signaling",
            about: "WebSocket text frame: protocol::parse_client, then the candidate a \
                    `candidate` message carries (ICE candidate parser)",
            run: signaling,
            max_len: 70 * 1024,
            tokens: g::JSON_TOKENS,
            generate: g::signaling,
        },
        Target {
            name: "sdp",
            about: "SDP offer/answer text: sfu::sdp inspection, sdpfrag::ice_ufrag and the \
                    engine's parser (negotiation::remote::RemoteDescription::parse)",
            run: sdp,
            max_len: 64 * 1024,
            tokens: g::SDP_TOKENS,
            generate: g::sdp,
        },
        Target {
            name: "sdp-apply",
            about: "SDP offer answered by the engine as the shard does (RemoteDescription::parse, \
                    sdp checks, Router::open + renegotiate, again after set_slots for a recvonly \
                    offer; want of a Chromium publisher's tracks, the server's offer answered \
                    with the input, unwant, renegotiate again, timers)",
            run: sdp_apply,
            max_len: 16 * 1024,
            tokens: g::SDP_TOKENS,
            generate: g::sdp,
        },
        Target {
            name: "sdpfrag",
            about: "WHIP/WHEP PATCH body: whip::sdpfrag::parse and its candidates, plus the \
                    ICE-restart SDP edits",
            run: sdpfrag,
            max_len: sdpfrag::MAX_FRAGMENT + 1024,
            tokens: g::SDP_TOKENS,
            generate: g::sdpfrag,
        },
        Target {
            name: "stun",
            about: "UDP datagram from an unknown address: demux::stun_local_ufrag, \
                    Demuxer::route and rtc's STUN decoder",
            run: stun,
            max_len: 1500,
            tokens: &[],
            generate: g::stun,
        },
        Target {
            name: "ice-tcp",
            about: "ICE-TCP byte stream in chunks of every size: RFC 4571 frames decoded \
                    (rtc's TcpFrameDecoder) and each routed by Demuxer::route on a TCP path",
            run: ice_tcp,
            max_len: 8 * 1024,
            tokens: &[],
            generate: g::ice_tcp,
        },
        Target {
            name: "peer-datagram",
            about: "UDP datagram to an engine peer that answered a Chromium offer: \
                    Router::handle_datagram from an unchecked then an ICE-checked address, \
                    handle_timeout, poll_event; a PeerTransport as DTLS server and client; \
                    RtpView::parse",
            run: peer_datagram,
            max_len: 1500,
            tokens: &[],
            generate: g::datagram,
        },
        Target {
            name: "rtp",
            about: "RTP packet through the engine's in-place path: RtpView::parse, setters and \
                    remap_extensions, the munger, UpTrack::on_rtp and repair (RTX), \
                    DownTrack::forward and retransmit, SRTP protect/unprotect round trip",
            run: rtp,
            max_len: 1500,
            tokens: &[],
            generate: g::rtp,
        },
        Target {
            name: "rtcp",
            about: "compound RTCP packet: rtcp::packet::unmarshal and marshal, the router's \
                    downcasts (NACK, PLI, FIR, SR, RR), TwccSender::on_feedback on transport-cc",
            run: rtcp,
            max_len: 1500,
            tokens: &[],
            generate: g::rtcp,
        },
        Target {
            name: "jwt",
            about: "access token: auth::verify (join) and auth::verify_signed (room API)",
            run: jwt,
            max_len: 8 * 1024,
            tokens: g::JWT_TOKENS,
            generate: g::jwt,
        },
    ]
}

/// The target named `name`.
pub fn by_name(name: &str) -> Option<&'static Target> {
    all().iter().find(|t| t.name == name)
}

fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

fn signaling(input: &[u8]) {
    if let Ok((ClientMessage::Candidate { candidate }, _)) = parse_client(&text(input)) {
        let value = candidate.candidate;
        let _ = unmarshal_candidate(value.strip_prefix("candidate:").unwrap_or(&value));
    }
}

fn sdp(input: &[u8]) {
    let text = text(input);
    let _ = cascade_sfu::sdp::offers_to_send(&text);
    let _ = cascade_sfu::sdp::receiving_kinds(&text);
    let _ = sdpfrag::ice_ufrag(&text);
    let _ = RemoteDescription::parse(&text);
}

fn sdp_apply(input: &[u8]) {
    let text = text(input);
    let _ = RemoteDescription::parse(&text);
    // What `Shard::apply_offer` checks before the router sees the offer.
    let Ok(sends) = cascade_sfu::sdp::offers_to_send(&text) else {
        return;
    };
    let viewer =
        !sends && cascade_sfu::sdp::receiving_kinds(&text).is_ok_and(|kinds| !kinds.is_empty());
    let now = Instant::now();
    let mut sink = Discard;
    let mut router = Router::explicit(identity());
    // A publisher (a real Chromium offer), so the fuzzed peer has tracks to receive.
    let publisher = router.open(local("publisher")).expect("a free peer slot");
    router
        .renegotiate(publisher, PUBLISH)
        .expect("the Chromium offer is answered");
    let tracks: Vec<TrackId> = (0..8)
        .filter(|&t| router.publication(t).is_some())
        .collect();
    // As a peer that may publish, then (a recvonly offer) as a WHEP viewer with slots.
    for slots in [false, true] {
        if slots && !viewer {
            continue;
        }
        let idx = router.open(local(SERVER_UFRAG)).expect("a free peer slot");
        if slots {
            router.set_slots(idx);
        }
        if router.renegotiate(idx, &text).is_ok() {
            for &track in &tracks {
                router.want(now, idx, track, &mut sink);
            }
            // The server's offer of the tracks it wants (`Shard::create_offer`), answered with
            // the input; then one track dropped and offered again; then the input offered
            // again (a renegotiation on the same transport).
            server_offer(&mut router, now, idx, &text, &mut sink);
            if let Some(&first) = tracks.first() {
                router.unwant(idx, first);
                server_offer(&mut router, now, idx, &text, &mut sink);
            }
            let _ = router.renegotiate(idx, &text);
            let _ = router.handle_timeout(now + Duration::from_secs(2), &mut sink);
        }
        while router.poll_event().is_some() {}
        router.leave(idx);
    }
    router.leave(publisher);
    while router.poll_event().is_some() {}
}

/// The server offers `idx` what changed (`Shard::create_offer`) and applies `answer`.
fn server_offer(router: &mut Router, now: Instant, idx: PeerIdx, answer: &str, sink: &mut Discard) {
    router.mark_renegotiate(idx);
    if let Some(offer) = router.offer(idx) {
        let _ = RemoteDescription::parse(&offer);
        let _ = router.offered_tracks(idx);
        let _ = router.apply_answer(now, idx, answer, sink);
    }
}

fn sdpfrag(input: &[u8]) {
    let text = text(input);
    if let Ok(frag) = sdpfrag::parse(&text) {
        for c in &frag.candidates {
            let value = &c.candidate;
            let _ = unmarshal_candidate(value.strip_prefix("candidate:").unwrap_or(value));
        }
    }
    let _ = sdpfrag::restart_offer(&text, "ufrag", "pwd");
    let _ = sdpfrag::from_answer(&text);
}

fn stun(input: &[u8]) {
    let _ = stun_local_ufrag(input);
    let mut demux = Demuxer::default();
    demux.add_peer(
        "serverufrag".to_owned(),
        super::generate::STUN_PASSWORD.to_owned(),
        1u32,
    );
    let from = CLIENT;
    let _ = demux.route(from, input);
    let _ = demux.route(from, input);
    let mut message = rtc::stun::message::Message::new();
    let _ = message.unmarshal_binary(input);
}

fn ice_tcp(input: &[u8]) {
    let mut demux = Demuxer::default();
    demux.add_peer(
        "serverufrag".to_owned(),
        super::generate::STUN_PASSWORD.to_owned(),
        1u32,
    );
    let from = Path {
        proto: Proto::Tcp,
        ..CLIENT
    };
    // The stream arrives in chunks whose sizes the input's first byte picks (1 to 256 bytes).
    let chunk = usize::from(input.first().copied().unwrap_or(0)) + 1;
    let mut frames = TcpFrameDecoder::new();
    for part in input.chunks(chunk) {
        frames.extend_from_slice(part);
        while let Some(frame) = frames.next_packet() {
            let _ = demux.route(from, &frame);
        }
    }
    assert!(
        frames.buffered_len() < 2 + 65_536,
        "at most one partial frame is buffered"
    );
}

fn peer_datagram(input: &[u8]) {
    let now = Instant::now();
    let mut sink = Discard;
    // A router peer that has answered a real Chromium offer (audio, video, a data channel),
    // given the datagram from an address that never passed an ICE check, then from one that
    // did (so DTLS and SRTP are reached), then its timers.
    let mut router = Router::explicit(identity());
    let idx = router.open(local(SERVER_UFRAG)).expect("a free peer slot");
    router
        .renegotiate(idx, PUBLISH)
        .expect("the Chromium offer is answered");
    let mut failed = false;
    for (from, checked) in [(STRANGER, false), (CLIENT, true)] {
        if checked {
            let mut check = ice_check().to_vec();
            failed |= router
                .handle_datagram(now, idx, from, &mut check, &mut sink)
                .is_err();
        }
        let mut buf = input.to_vec();
        failed |= router
            .handle_datagram(now, idx, from, &mut buf, &mut sink)
            .is_err();
        if failed {
            break;
        }
    }
    let _ = router.handle_timeout(now + Duration::from_secs(2), &mut sink);
    let _ = router.poll_timeout();
    while router.poll_event().is_some() {}
    router.close(now, idx, &mut sink);

    // The transport alone, as DTLS server and (the peer answered `a=setup:passive`) client.
    for dtls_client in [false, true] {
        let Ok(mut transport) = PeerTransport::new(
            Credentials {
                ufrag: SERVER_UFRAG.into(),
                pwd: super::generate::STUN_PASSWORD.into(),
            },
            &identity(),
            publish_fingerprint(),
        ) else {
            panic!("a transport for the Chromium offer's fingerprint");
        };
        let mut check = ice_check().to_vec();
        let _ = transport.handle_datagram(now, CLIENT, &mut check);
        if dtls_client && transport.dtls_connect(now).is_err() {
            continue;
        }
        let mut buf = input.to_vec();
        if transport.handle_datagram(now, CLIENT, &mut buf).is_ok() {
            let _ = transport.handle_timeout(now + Duration::from_secs(2));
        }
        for _ in 0..64 {
            if transport.poll_transmit().is_none() {
                break;
            }
        }
        let _ = transport.poll_timeout();
    }

    // The in-place RTP view a decrypted packet is read with.
    let mut copy = input.to_vec();
    if let Ok(view) = RtpView::parse(&mut copy) {
        let _ = (view.marker(), view.payload_type(), view.seq(), view.ssrc());
        let _ = (view.timestamp(), view.payload().len(), view.extension(1));
    }
}

fn rtp(input: &[u8]) {
    let now = Instant::now();
    // The in-place view: read, rewritten (as a down-track rewrites), and still a packet.
    let mut buf = input.to_vec();
    let Ok(mut view) = RtpView::parse(&mut buf) else {
        return;
    };
    let (pt, seq, ts, ssrc) = (
        view.payload_type(),
        view.seq(),
        view.timestamp(),
        view.ssrc(),
    );
    let _ = (view.marker(), view.payload().len());
    for id in [1, 3, 5, 14, 15, 200] {
        let _ = view.extension(id);
        if let Some(data) = view.extension_mut(id) {
            data.fill(0xA5);
        }
    }
    view.set_payload_type(pt ^ 1);
    view.set_seq(seq.wrapping_add(1));
    view.set_timestamp(ts.wrapping_add(3000));
    view.set_ssrc(ssrc ^ 0x1234_5678);
    view.remap_extensions(remap);
    if let Err(e) = RtpView::parse(&mut buf) {
        panic!("an RTP packet rewritten in place no longer parses: {e:?}");
    }
    let mut munger = Munger::new(90_000);
    let _ = munger.rewrite(ssrc, seq, ts, now);

    // The publisher's up-track: the packet as media, and as RTX repaired (its payload type is
    // an RTX type of VP8 here).
    let mut up = UpTrack::new(UpTrackParams {
        ssrc,
        local_ssrc: 1,
        clock_rate: 90_000,
        rtx_payload_types: vec![(97, VP8), (pt, VP8)],
        nack: true,
        cache: cascade_sfu::track::up_track::AUDIO_CACHE_PACKETS,
    });
    let mut repaired = vec![0u8; ENGINE_BUFFER];
    let repaired = match up.repair(input, &mut repaired) {
        Ok(len) => Some(&repaired[..len]),
        Err(_) => None,
    };
    // A subscriber's down-track (VP8 with RTX, the input's payload type with RTX if even),
    // its transport-wide counter and SRTP sessions (ours, and the subscriber's to check).
    let mut down = DownTrack::new(DownTrackParams {
        ssrc: 0x1000,
        rtx_ssrc: 0x2000,
        clock_rate: 90_000,
        payload_types: vec![
            PayloadMapping {
                track: VP8,
                subscriber: 100,
                rtx: Some(101),
            },
            PayloadMapping {
                track: pt,
                subscriber: 102,
                rtx: (pt % 2 == 0).then_some(103),
            },
        ],
        extensions: (1..=16).filter_map(|id| Some((id, remap(id)?))).collect(),
        transport_cc: Some(5),
    });
    let mut twcc = TwccSender::default();
    let profile = if ssrc % 2 == 0 {
        ProtectionProfile::AeadAes128Gcm
    } else {
        ProtectionProfile::Aes128CmHmacSha1_80
    };
    let (mut ours, mut theirs) = (srtp_session(profile, false), srtp_session(profile, true));
    // The router's send buffer: the largest cached packet, an RTX header and the SRTCP tag.
    let mut out = vec![0u8; ENGINE_BUFFER];
    for packet in std::iter::once(input).chain(repaired) {
        let Ok(Arrival::New(ext)) = up.on_rtp(packet, now) else {
            continue;
        };
        if let Ok(len) = down.forward(packet, ext, &mut out, &mut twcc, now) {
            let sent = u16::from_be_bytes([out[2], out[3]]);
            protect_round_trip(&mut ours, &mut theirs, &mut out, len);
            // A NACK of what was just sent, and of something never sent.
            if let Ok(len) = down.retransmit(sent, up.cache(), &mut out, &mut twcc, now) {
                protect_round_trip(&mut ours, &mut theirs, &mut out, len);
            }
            let _ = down.retransmit(sent ^ 0x8000, up.cache(), &mut out, &mut twcc, now);
        }
    }
    let _ = down.sender_report(now, SystemTime::UNIX_EPOCH + Duration::from_secs(1));
    let _ = up.poll_nack(now + Duration::from_secs(1));
    let _ = up.reception_report(now + Duration::from_secs(1));
    let _ = up.keyframe_request(now);
    let _ = up.missing();
    let mut srtp_in = input.to_vec();
    let _ = theirs.unprotect_rtp(&mut srtp_in);
}

/// Extension ids of the `rtp` target's subscriber: 1..=14 rotated by one, 15 and 16 to
/// two-byte ids; the rest removed.
fn remap(id: u8) -> Option<u8> {
    match id {
        1..=14 => Some(id % 14 + 1),
        15 => Some(16),
        16 => Some(255),
        _ => None,
    }
}

/// Protects `out[..len]` with `ours` as the router does, unprotects it with `theirs` (the
/// subscriber's session): the packet must come back as it was (or be refused as a replay).
fn protect_round_trip(
    ours: &mut SrtpSession,
    theirs: &mut SrtpSession,
    out: &mut [u8],
    len: usize,
) {
    let plain = out[..len].to_vec();
    let Ok(protected) = ours.protect_rtp(out, len) else {
        return;
    };
    match theirs.unprotect_rtp(&mut out[..protected]) {
        Ok(n) => assert!(
            out[..n] == plain[..],
            "SRTP round trip changed a forwarded packet"
        ),
        // A plain retransmission (no RTX) repeats the original's index: the subscriber's
        // replay window rightly refuses it once the original arrived.
        Err(SrtpError::Replayed) => {}
        Err(e) => panic!("a packet SRTP-protected by the engine does not unprotect: {e}"),
    }
}

/// An SRTP session for `profile` with fixed keys, on the DTLS server's side or the client's.
fn srtp_session(profile: ProtectionProfile, client: bool) -> SrtpSession {
    let material: Vec<u8> = (0..SrtpKeys::keying_material_len(profile))
        .map(|i| 0x5A ^ i as u8)
        .collect();
    let keys = SrtpKeys::from_keying_material(profile, &material, client).expect("keys");
    let provider = rtc::crypto::default_provider().expect("a crypto provider");
    SrtpSession::new(&keys, provider.crypto()).expect("an SRTP session")
}

fn rtcp(input: &[u8]) {
    let Ok(packets) = rtcp::packet::unmarshal(&mut &input[..]) else {
        return;
    };
    let _ = rtcp::packet::marshal(&packets);
    let now = Instant::now();
    let twcc = stamped_twcc(now);
    // What the router does with each packet of a compound (`Router::on_rtcp`), and what the
    // engine's bandwidth side does with transport-cc feedback.
    let mut up = UpTrack::new(UpTrackParams {
        ssrc: 0x1234_5678,
        local_ssrc: 1,
        clock_rate: 90_000,
        rtx_payload_types: vec![],
        nack: false,
        cache: 1,
    });
    for p in &packets {
        let _ = p.marshal();
        let _ = p.destination_ssrc();
        let any = p.as_any();
        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            let seqs = nack.nacks.iter().flat_map(|pair| pair.into_iter());
            std::hint::black_box(seqs.take(MAX_RETRANSMITS).count());
        } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
            std::hint::black_box(pli.media_ssrc);
        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
            std::hint::black_box(fir.fir.iter().fold(0, |a, e| a ^ e.ssrc));
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            up.on_sender_report(ntp_middle(sr.ntp_time), now);
            std::hint::black_box(sr.reports.len());
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            std::hint::black_box(rr.reports.iter().fold(0, |a, r| a ^ r.last_sender_report));
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            std::hint::black_box(twcc.on_feedback(cc));
            // The same feedback about the stamped packets (its base among them).
            let mut rebased = cc.clone();
            rebased.base_sequence_number %= 100;
            std::hint::black_box(twcc.on_feedback(&rebased));
        }
    }
}

/// A transport-wide counter that has stamped the packets its feedback reports on (sequence
/// numbers 0..100, one every millisecond).
fn stamped_twcc(now: Instant) -> TwccSender {
    let mut twcc = TwccSender::default();
    let mut packet = [0u8; 20];
    packet[0] = 0x90;
    packet[12..16].copy_from_slice(&[0xBE, 0xDE, 0, 1]);
    packet[16] = 0x51; // id 5, two bytes
    for i in 0..100u64 {
        if let Ok(mut view) = RtpView::parse(&mut packet) {
            twcc.stamp(&mut view, 5, 1200, now + Duration::from_millis(i));
        }
    }
    twcc
}

fn jwt(input: &[u8]) {
    let token = text(input);
    let _ = auth::verify(&token, JWT_KEY, JWT_SECRET, jwt_now());
    let _ = auth::verify_signed(&token, JWT_KEY, JWT_SECRET, jwt_now());
}

/// Cascade's VP8 payload type in the `rtp` target (what RTX repairs to).
const VP8: u8 = 96;
/// The engine's send buffer (`router::BUFFER`): the largest cached packet, an RTX header and
/// the SRTCP tag.
const ENGINE_BUFFER: usize = cascade_sfu::track::packet_cache::MAX_PACKET
    + 2
    + cascade_sfu::transport::srtp::MAX_RTCP_OVERHEAD;

/// The server's ICE username fragment in the peer targets (its password is the stun target's,
/// so the generated signed binding requests are valid).
const SERVER_UFRAG: &str = "serverufrag";
/// A client that passes an ICE check.
const CLIENT: Path = udp(SocketAddr::new(
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    50_000,
));
/// An address that never sent a check.
const STRANGER: Path = udp(SocketAddr::new(
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
    40_000,
));

/// A UDP path from the IPv4 address `remote`.
const fn udp(remote: SocketAddr) -> Path {
    Path {
        proto: Proto::Udp,
        remote,
        local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// A real browser offer: Chromium publishing audio and video with a data channel.
const PUBLISH: &str =
    include_str!("../../../sfu/tests/fixtures/sdp/chromium-publish-datachannel.sdp");

/// A sink that discards what the engine sends.
struct Discard;

impl Sink for Discard {
    fn send(&mut self, _peer: PeerIdx, _to: Path, datagram: &[u8]) {
        std::hint::black_box(datagram);
    }
}

/// The server's DTLS identity (generated once; clones share it).
fn identity() -> DtlsIdentity {
    static IDENTITY: OnceLock<DtlsIdentity> = OnceLock::new();
    IDENTITY
        .get_or_init(|| DtlsIdentity::generate().expect("a DTLS identity"))
        .clone()
}

/// The server's side of a peer's transport, as the server opens a peer (one host candidate).
fn local(ufrag: &str) -> LocalTransport {
    LocalTransport {
        ice_ufrag: ufrag.into(),
        ice_pwd: super::generate::STUN_PASSWORD.into(),
        fingerprint: String::new(),
        candidates: vec!["1 1 udp 2130706431 192.0.2.100 7882 typ host".into()],
        session_id: 7,
        session_version: 1,
    }
}

/// The DTLS fingerprint of [`PUBLISH`].
fn publish_fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        RemoteDescription::parse(PUBLISH)
            .expect("the Chromium offer parses")
            .fingerprint
    })
}

/// A valid ICE check of [`CLIENT`] (the Chromium offer's ufrag) for [`SERVER_UFRAG`].
fn ice_check() -> &'static [u8] {
    static CHECK: OnceLock<Vec<u8>> = OnceLock::new();
    CHECK.get_or_init(|| {
        let ufrag = RemoteDescription::parse(PUBLISH)
            .expect("the Chromium offer parses")
            .ice_ufrag;
        cascade_sfu::net::demux::binding_request_with_id(
            &format!("{SERVER_UFRAG}:{ufrag}"),
            super::generate::STUN_PASSWORD,
            [7; 12],
        )
    })
}
