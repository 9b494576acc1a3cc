//! The fuzz targets: every parser a remote party reaches, called the way Cascade calls it.
//! A target returns normally for any input; a panic, an allocation above the bound or a run
//! above the time bound is a finding.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use cascade_api::auth;
use cascade_api::whip::sdpfrag;
use cascade_sfu::demux::{Demuxer, stun_local_ufrag};
use cascade_sfu::feedback_tap::is_feedback;
use cascade_sfu::munger::Munger;
use cascade_sfu::peer::{Mapping, rewrite};
use cascade_sfu::stats::MediaStats;
use cascade_signaling::protocol::{ClientMessage, parse_client};
use rtc::ice::candidate::unmarshal_candidate;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::sansio::Protocol;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use rtc::{rtcp, rtp};

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
            about: "SDP offer/answer text: sfu::sdp inspection and rtc's session-description \
                    parser (RTCSessionDescription::offer/answer)",
            run: sdp,
            max_len: 64 * 1024,
            tokens: g::SDP_TOKENS,
            generate: g::sdp,
        },
        Target {
            name: "sdp-apply",
            about: "SDP offer applied to a server peer connection as Peer::apply_offer does \
                    (set_remote_description, create_answer, set_local_description, rollback)",
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
            name: "peer-datagram",
            about: "UDP datagram handed to a server peer connection (ICE-lite, offer applied) \
                    as the worker does: handle_read, then poll_read/poll_write/poll_event",
            run: peer_datagram,
            max_len: 1500,
            tokens: &[],
            generate: g::datagram,
        },
        Target {
            name: "rtp",
            about: "RTP packet: rtp::Packet::unmarshal, the munger and peer::rewrite (the \
                    subscriber's copy), marshalled",
            run: rtp,
            max_len: 1500,
            tokens: &[],
            generate: g::rtp,
        },
        Target {
            name: "rtcp",
            about: "compound RTCP packet: rtcp::packet::unmarshal, feedback_tap::is_feedback, \
                    marshal of every parsed packet",
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
    let _ = RTCSessionDescription::offer(text.to_string());
    let _ = RTCSessionDescription::answer(text.into_owned());
}

fn sdp_apply(input: &[u8]) {
    let text = text(input).into_owned();
    // What a WHEP viewer's offer goes through first.
    let _ = cascade_sfu::sdp::receiving_kinds(&text);
    if cascade_sfu::sdp::offers_to_send(&text).is_err() {
        return;
    }
    let Ok(offer) = RTCSessionDescription::offer(text) else {
        return;
    };
    let mut pc = server_peer();
    let now = Instant::now();
    if pc.set_remote_description(now, offer).is_err() {
        return;
    }
    let answered = pc.create_answer(None).and_then(|answer| {
        pc.set_local_description(now, answer.clone())?;
        Ok(answer)
    });
    if answered.is_err()
        && let Ok(rollback) = RTCSessionDescription::rollback(None)
    {
        let _ = pc.set_remote_description(now, rollback);
    }
    drain(&mut pc);
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
    let from = SocketAddr::from(([192, 0, 2, 1], 50_000));
    let _ = demux.route(from, input);
    let _ = demux.route(from, input);
    let mut message = rtc::stun::message::Message::new();
    let _ = message.unmarshal_binary(input);
}

fn peer_datagram(input: &[u8]) {
    let mut pc = connected_peer();
    let msg = TaggedBytesMut {
        now: Instant::now(),
        transport: TransportContext {
            local_addr: SERVER_ADDR,
            peer_addr: SocketAddr::from(([192, 0, 2, 1], 50_000)),
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        },
        message: BytesMut::from(input),
    };
    let _ = pc.handle_read(msg);
    drain(&mut pc);
}

fn rtp(input: &[u8]) {
    let Ok(packet) = rtp::Packet::unmarshal(&mut &input[..]) else {
        return;
    };
    let _ = packet.marshal();
    let source = &packet.header;
    let mut munger = Munger::new(90_000);
    let (seq, ts) = munger.rewrite(
        source.ssrc,
        source.sequence_number,
        source.timestamp,
        Instant::now(),
    );
    // The subscriber's copy (ids 1..=14 forwarded, rotated by one; the rest dropped), then
    // marshalled as `write_rtp` does.
    let mapping = Mapping {
        source_pt: source.payload_type,
        pt: 109,
        extensions: (1..=14).map(|id| (id, id % 14 + 1)).collect(),
    };
    let copy = rewrite(&packet, 0x1234_5678, &mapping, seq, ts);
    let _ = copy.marshal();
}

fn rtcp(input: &[u8]) {
    let Ok(packets) = rtcp::packet::unmarshal(&mut &input[..]) else {
        return;
    };
    let _ = is_feedback(&packets);
    for p in &packets {
        let _ = p.marshal();
        let _ = p.destination_ssrc();
    }
}

fn jwt(input: &[u8]) {
    let token = text(input);
    let _ = auth::verify(&token, JWT_KEY, JWT_SECRET, jwt_now());
    let _ = auth::verify_signed(&token, JWT_KEY, JWT_SECRET, jwt_now());
}

/// The server's address in the peer targets.
const SERVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)), 7882);

/// A server peer connection configured as `MediaServer::create_peer` configures it (ICE-lite,
/// fixed credentials, DTLS server, Cascade's codecs and interceptors, one host candidate).
pub fn server_peer() -> RTCPeerConnection {
    cascade_sfu::server::server_peer_connection(
        "serverufrag",
        "serverpassword0123456789abcdef01",
        None,
        Arc::new(MediaStats::default()),
        &[SERVER_ADDR],
    )
    .expect("server peer connection")
}

/// A real browser offer (Chromium, audio + video), the one the `peer-datagram` target's
/// connection has applied.
fn browser_offer() -> &'static str {
    static OFFER: OnceLock<String> = OnceLock::new();
    OFFER.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/corpus/sdp/chromium-offer-audio-video.sdp"
        );
        std::fs::read_to_string(path).expect("the Chromium offer of the seed corpus")
    })
}

/// A server peer connection that has answered [`browser_offer`].
fn connected_peer() -> RTCPeerConnection {
    let mut pc = server_peer();
    let now = Instant::now();
    let offer = RTCSessionDescription::offer(browser_offer().to_owned()).expect("offer");
    pc.set_remote_description(now, offer).expect("remote");
    let answer = pc.create_answer(None).expect("answer");
    pc.set_local_description(now, answer).expect("local");
    drain(&mut pc);
    pc
}

/// Drains what a worker drains after feeding a peer, bounded.
fn drain(pc: &mut RTCPeerConnection) {
    for _ in 0..256 {
        let (e, r, w) = (pc.poll_event(), pc.poll_read(), pc.poll_write());
        if e.is_none() && r.is_none() && w.is_none() {
            break;
        }
    }
}
