//! Structured generation: inputs built from each format's grammar with random field values
//! (edge-case numbers, odd lengths, unknown types), so the parsers' deeper paths are reached
//! even where byte mutation of the corpus rarely stays well-formed.

use std::fmt::Write;

use cascade_signaling::protocol::CLIENT_TYPES;

use super::mutate::Rng;
use super::targets::{JWT_KEY, JWT_SECRET};

/// Dictionary of the JSON targets.
pub const JSON_TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"\\u0000",
    b"\\ud800",
    b"\"type\"",
    b"\"join\"",
    b"\"offer\"",
    b"\"candidate\"",
    b"\"ref\"",
    b"\"data\"",
    b"\"sdp\"",
    b"\"tracks\"",
    b"18446744073709551616",
    b"[[[[[[[[[[[[[[[[",
];

/// Dictionary of the SDP targets.
pub const SDP_TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"a=",
    b"m=",
    b"c=",
    b"o=",
    b"v=0",
    b"t=0 0",
    b"b=AS:",
    b"rtpmap:",
    b"fmtp:",
    b"ssrc:",
    b"ssrc-group:FID ",
    b"extmap:",
    b"mid:",
    b"rid:",
    b"simulcast:",
    b"candidate:",
    b"ice-ufrag:",
    b"ice-pwd:",
    b"fingerprint:sha-256 ",
    b"setup:",
    b"group:BUNDLE ",
    b"rtcp-fb:",
    b"sendonly",
    b"recvonly",
    b"inactive",
    b" typ host",
    b" raddr ",
    b"/90000",
    b"/48000/2",
    b" UDP/TLS/RTP/SAVPF ",
    b"webrtc-datachannel",
    b"4294967296",
    b"65536",
    b"-1",
    b" ",
    b":",
];

/// Dictionary of the token target.
pub const JWT_TOKENS: &[&[u8]] = &[b".", b"eyJ", b"=", b"-", b"_", b"+", b"/", b"AAAA"];

fn json_string(rng: &mut Rng) -> String {
    let pieces = [
        "",
        "a",
        "TR_abc",
        "room",
        "\u{0}",
        "\u{1F600}",
        "\\",
        "\"",
        "é",
        "candidate:1 1 udp 1 1.2.3.4 5 typ host",
    ];
    let mut s = String::new();
    for _ in 0..rng.below(4) {
        let piece: &&str = rng.pick(&pieces);
        s.push_str(piece);
    }
    if rng.one_in(16) {
        s.push_str(&"x".repeat(rng.below(70_000)));
    }
    s
}

fn json_value(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(if depth > 6 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => serde_json::json!(rng.interesting()),
        3 => Value::String(json_string(rng)),
        4 => serde_json::json!((rng.interesting() as i64).wrapping_neg() as f64 / 3.0),
        5 => Value::Array(
            (0..rng.below(5))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (json_string(rng), json_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// A signaling message: a known or unknown `type`, known fields with values of random JSON
/// types, sometimes deep nesting.
pub fn signaling(rng: &mut Rng) -> Vec<u8> {
    // Every client type, plus a server-only type, an empty and a wrongly cased one.
    let odd_types = ["pong", "", "JOIN"];
    let fields = [
        "token",
        "room",
        "auto_subscribe",
        "sdp",
        "candidate",
        "sdp_mid",
        "sdp_mline_index",
        "username_fragment",
        "tracks",
        "track",
        "muted",
        "payload",
        "ref",
    ];
    let mut obj = serde_json::Map::new();
    if !rng.one_in(16) {
        let ty = if rng.one_in(5) {
            rng.pick(&odd_types)
        } else {
            rng.pick(CLIENT_TYPES)
        };
        obj.insert("type".into(), (*ty).into());
    }
    for _ in 0..rng.below(5) {
        let field = *rng.pick(&fields);
        let value = if field == "candidate" && rng.one_in(2) {
            serde_json::json!({
                "candidate": String::from_utf8_lossy(&candidate(rng)),
                "sdp_mid": json_value(rng, 5),
                "sdp_mline_index": json_value(rng, 5),
            })
        } else if field == "sdp" && rng.one_in(2) {
            String::from_utf8_lossy(&sdp(rng)).into_owned().into()
        } else {
            json_value(rng, 0)
        };
        obj.insert(field.into(), value);
    }
    let mut text = serde_json::Value::Object(obj).to_string();
    if rng.one_in(32) {
        let depth = rng.below(10_000);
        text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    }
    text.into_bytes()
}

/// An ICE candidate attribute value.
pub fn candidate(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::from("candidate:");
    let _ = write!(
        s,
        "{} {} {} {} ",
        rng.interesting(),
        rng.pick(&["1", "2", "0", "256", "-1"]),
        rng.pick(&["udp", "UDP", "tcp", "sctp", ""]),
        rng.interesting()
    );
    let address: &&str = rng.pick(&[
        "192.0.2.1",
        "::1",
        "fe80::1%eth0",
        "abc.local",
        "999.1.1.1",
        "",
        "0.0.0.0",
    ]);
    s.push_str(address);
    let _ = write!(
        s,
        " {} typ {}",
        rng.interesting(),
        rng.pick(&["host", "srflx", "prflx", "relay", "x"])
    );
    for _ in 0..rng.below(4) {
        let key = rng.pick(&[
            "raddr",
            "rport",
            "tcptype",
            "generation",
            "ufrag",
            "network-id",
            "network-cost",
        ]);
        let _ = write!(
            s,
            " {key} {}",
            rng.pick(&["0", "active", "1.2.3.4", "65536", "-5", ""])
        );
    }
    s.into_bytes()
}

fn sdp_attribute(rng: &mut Rng, s: &mut String) {
    let pt = if rng.one_in(4) {
        rng.interesting()
    } else {
        96 + rng.below(32) as u64
    };
    let n = rng.interesting();
    let line = match rng.below(20) {
        0 => format!(
            "a=rtpmap:{pt} {}/{}",
            rng.pick(&["VP8", "opus", "H264", "rtx", "AV1", "VP9", "red", "x"]),
            rng.pick(&["90000", "48000/2", "0", "4294967296", "", "48000/99999999999"])
        ),
        1 => format!(
            "a=fmtp:{pt} {}",
            rng.pick(&[
                "apt=96",
                "apt=",
                "minptime=10;useinbandfec=1",
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                ";;;=",
                "profile-id=2",
            ])
        ),
        2 => format!("a=rtcp-fb:{pt} {}", rng.pick(&["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc", "*"])),
        3 => format!("a=ssrc:{n} {}", rng.pick(&["cname:x", "msid:a b", "", ":"])),
        4 => format!("a=ssrc-group:FID {n} {}", rng.interesting()),
        5 => format!(
            "a=extmap:{} {}",
            rng.pick(&["1", "14", "15", "255", "256", "0", "3/sendonly", "-1"]),
            rng.pick(&[
                "urn:ietf:params:rtp-hdrext:sdes:mid",
                "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
                "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            ])
        ),
        6 => format!("a=mid:{}", rng.pick(&["0", "1", "", "a b", "0"])),
        7 => format!("a=rid:{} {}", rng.pick(&["h", "m", "l", ""]), rng.pick(&["send", "recv", "send pt=96", ""])),
        8 => format!("a=simulcast:{}", rng.pick(&["send h;m;l", "recv ~h", "send", "send ;;"])),
        9 => format!("a={}", String::from_utf8_lossy(&candidate(rng))),
        10 => format!("a=ice-ufrag:{}", rng.pick(&["serverufrag", "Drel", "", "a:b"])),
        11 => format!("a=ice-pwd:{}", rng.pick(&["t0vTQwb4yJ9CsuIqrxWNGvAh", ""])),
        12 => format!(
            "a=fingerprint:{} {}",
            rng.pick(&["sha-256", "sha-1", "md5", "x"]),
            rng.pick(&["87:50:D2:6D:77:5E:EC:F0:D1:CF:54:C2:8E:4C:B2:DD:A5:26:25:91:55:18:2C:1B:53:4F:92:C4:A3:29:47:8D", "", "ZZ"])
        ),
        13 => format!("a=setup:{}", rng.pick(&["actpass", "active", "passive", "holdconn", ""])),
        14 => (*rng.pick(&["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive", "a=rtcp-mux", "a=rtcp-rsize", "a=end-of-candidates", "a=ice-lite"])).to_owned(),
        15 => format!("a=msid:{} {}", rng.pick(&["-", "s"]), rng.pick(&["t", ""])),
        16 => format!("a=sctp-port:{n}"),
        17 => format!("a=max-message-size:{n}"),
        18 => format!("b={}:{n}", rng.pick(&["AS", "TIAS", "X"])),
        _ => format!("c=IN {} {}", rng.pick(&["IP4", "IP6", "X"]), rng.pick(&["0.0.0.0", "::", ""])),
    };
    s.push_str(&line);
    s.push_str(if rng.one_in(16) { "\n" } else { "\r\n" });
}

/// An SDP: session lines, bundle group, m-lines of random kinds, ports, protocols and
/// payload types, each with random attributes.
pub fn sdp(rng: &mut Rng) -> Vec<u8> {
    let mut s = format!(
        "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
        rng.interesting()
    );
    if !rng.one_in(4) {
        s.push_str("a=group:BUNDLE 0 1 2\r\n");
    }
    for _ in 0..rng.below(3) {
        sdp_attribute(rng, &mut s);
    }
    let mlines = if rng.one_in(32) {
        rng.below(300)
    } else {
        rng.below(5)
    };
    for i in 0..mlines {
        let kind = *rng.pick(&["audio", "video", "application", "text", ""]);
        let port = *rng.pick(&["9", "0", "65536", "9/2", "-1"]);
        let proto = *rng.pick(&["UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP", "RTP/AVP", "x"]);
        let pts: Vec<String> = (0..rng.below(6))
            .map(|_| {
                if rng.one_in(6) {
                    rng.interesting().to_string()
                } else {
                    (96 + rng.below(32)).to_string()
                }
            })
            .collect();
        let _ = write!(s, "m={kind} {port} {proto} {}\r\n", pts.join(" "));
        if !rng.one_in(8) {
            let _ = write!(s, "a=mid:{i}\r\n");
        }
        let attrs = if rng.one_in(32) {
            rng.below(2000)
        } else {
            rng.below(10)
        };
        for _ in 0..attrs {
            sdp_attribute(rng, &mut s);
        }
    }
    s.into_bytes()
}

/// A trickle fragment: optional credentials, m-lines with mids and candidates.
pub fn sdpfrag(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::new();
    if rng.one_in(2) {
        s.push_str("a=ice-ufrag:abcd\r\n");
    }
    if rng.one_in(2) {
        s.push_str("a=ice-pwd:0123456789abcdef01234567\r\n");
    }
    let mlines = if rng.one_in(32) { 70_000 } else { rng.below(4) };
    for i in 0..mlines {
        if s.len() > 20_000 {
            break;
        }
        let _ = write!(s, "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{i}\r\n");
        for _ in 0..rng.below(4) {
            let _ = write!(s, "a={}\r\n", String::from_utf8_lossy(&candidate(rng)));
        }
    }
    if rng.one_in(2) {
        s.push_str("a=end-of-candidates\r\n");
    }
    s.into_bytes()
}

fn stun_attr(out: &mut Vec<u8>, ty: u16, value: &[u8], declared: Option<u16>) {
    out.extend_from_slice(&ty.to_be_bytes());
    let len = declared.unwrap_or(value.len() as u16);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// The ICE password of the fuzzed demultiplexer's peer (`serverufrag`).
pub const STUN_PASSWORD: &str = "serverpassword-0123456789";

/// A STUN message: random class and method, USERNAME (often with a known server ufrag) and
/// other attributes of random types, values and declared lengths; one in four is a binding
/// request signed with [`STUN_PASSWORD`] (or a wrong one), as an ICE agent sends it.
pub fn stun(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(4) {
        let user = *rng.pick(&["serverufrag:Drel", "serverufrag", "other:Drel"]);
        let pwd = *rng.pick(&[STUN_PASSWORD, STUN_PASSWORD, "wrong", ""]);
        let id: [u8; 12] = std::array::from_fn(|_| rng.next_u64() as u8);
        return cascade_sfu::net::demux::binding_request_with_id(user, pwd, id);
    }
    let mut body = Vec::new();
    for _ in 0..rng.below(8) {
        let declared = rng.one_in(8).then(|| rng.interesting() as u16);
        match rng.below(4) {
            0 => {
                let user = *rng.pick(&[
                    "serverufrag:Drel",
                    "serverufrag",
                    ":",
                    "",
                    "serverufrag:\u{0}",
                ]);
                stun_attr(&mut body, 0x0006, user.as_bytes(), declared);
            }
            1 => {
                let ty = *rng.pick(&[
                    0x0008u16, 0x8028, 0x0024, 0x0025, 0x8029, 0x802A, 0x0020, 0x0009, 0xC057,
                ]);
                let len = rng.below(40);
                let value: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                stun_attr(&mut body, ty, &value, declared);
            }
            _ => {
                let len = rng.below(64);
                let value: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                stun_attr(&mut body, rng.next_u64() as u16, &value, declared);
            }
        }
    }
    let any = rng.next_u64() as u16 & 0x3FFF;
    let ty = *rng.pick(&[0x0001u16, 0x0101, 0x0111, 0x0011, 0x0003, any]);
    let mut out = ty.to_be_bytes().to_vec();
    let len = if rng.one_in(8) {
        rng.interesting() as u16
    } else {
        body.len() as u16
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    out.extend((0..12).map(|_| rng.next_u64() as u8));
    out.extend_from_slice(&body);
    out
}

/// An RTP packet: random header bits, CSRCs, one- or two-byte (or unknown-profile) extension
/// blocks with random elements and declared lengths, padding.
pub fn rtp(rng: &mut Rng) -> Vec<u8> {
    let csrc = rng.below(16);
    let extension = rng.one_in(2);
    let padding = rng.one_in(4);
    let version = if rng.one_in(16) {
        rng.below(4) as u8
    } else {
        2
    };
    let mut out = vec![
        version << 6 | u8::from(padding) << 5 | u8::from(extension) << 4 | csrc as u8,
        rng.next_u64() as u8,
    ];
    out.extend_from_slice(&(rng.next_u64() as u16).to_be_bytes());
    out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    for _ in 0..csrc {
        out.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    }
    if extension {
        let any = rng.next_u64() as u16;
        let profile = *rng.pick(&[0xBEDEu16, 0x1000, 0x1001, any]);
        let mut elems = Vec::new();
        for _ in 0..rng.below(8) {
            let len = rng.below(20);
            if profile == 0xBEDE {
                elems.push((rng.below(16) as u8) << 4 | (len.max(1) - 1).min(15) as u8);
            } else {
                elems.push(rng.next_u64() as u8);
                elems.push(len as u8);
            }
            elems.extend((0..len).map(|_| rng.next_u64() as u8));
            if rng.one_in(4) {
                elems.push(0);
            }
        }
        elems.resize(elems.len().div_ceil(4) * 4, 0);
        let words = if rng.one_in(8) {
            rng.interesting() as u16
        } else {
            (elems.len() / 4) as u16
        };
        out.extend_from_slice(&profile.to_be_bytes());
        out.extend_from_slice(&words.to_be_bytes());
        out.extend_from_slice(&elems);
    }
    out.extend((0..rng.below(64)).map(|_| rng.next_u64() as u8));
    if padding {
        out.push(if rng.one_in(2) {
            rng.next_u64() as u8
        } else {
            4
        });
    }
    out
}

/// A compound RTCP packet: packets of known and unknown types with random counts, declared
/// lengths and bodies (report blocks, feedback FCI, SDES items).
pub fn rtcp(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let any = rng.next_u64() as u8;
        let pt = *rng.pick(&[200u8, 201, 202, 203, 204, 205, 206, 207, 195, any]);
        let count = rng.below(32) as u8;
        let words = rng.below(24);
        let mut body: Vec<u8> = (0..words * 4).map(|_| rng.next_u64() as u8).collect();
        if pt == 202 && !body.is_empty() {
            // SDES: an item type and length that may overrun.
            let at = 4.min(body.len() - 1);
            body[at] = rng.below(10) as u8;
        }
        let declared = if rng.one_in(8) {
            rng.interesting() as u16
        } else {
            words as u16
        };
        let padding = rng.one_in(8);
        out.push(0x80 | u8::from(padding) << 5 | count);
        out.push(pt);
        out.extend_from_slice(&declared.to_be_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// An ICE-TCP byte stream: RFC 4571 frames (a 16-bit length, then a datagram), some lengths
/// wrong.
pub fn ice_tcp(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let frame = datagram(rng);
        let len = match rng.below(8) {
            0 => rng.next_u64() as u16,
            1 => (frame.len() as u16).wrapping_add(1),
            _ => frame.len() as u16,
        };
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// A datagram for a peer connection: STUN, RTP, RTCP or bytes in DTLS's first-byte range.
pub fn datagram(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => stun(rng),
        1 => rtp(rng),
        2 => rtcp(rng),
        _ => {
            // DTLS record: content type 20..=63, version, epoch, sequence, length.
            let mut out = vec![20 + rng.below(44) as u8, 0xFE, *rng.pick(&[0xFDu8, 0xFF])];
            out.extend((0..8).map(|_| rng.next_u64() as u8));
            let len = rng.below(200);
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend((0..len).map(|_| rng.next_u64() as u8));
            out
        }
    }
}

/// A token: Cascade's claims, each well-formed most of the time (so every check is reached)
/// and otherwise of a random JSON type, correctly signed; sometimes another algorithm.
pub fn jwt(rng: &mut Rng) -> Vec<u8> {
    let mut claims = serde_json::Map::new();
    let well_formed = !rng.one_in(3);
    let fields = [
        ("iss", serde_json::json!(JWT_KEY)),
        ("sub", serde_json::json!("alice")),
        (
            "nbf",
            serde_json::json!(1_700_000_000u64 + rng.below(200_000_000) as u64),
        ),
        (
            "exp",
            serde_json::json!(1_700_000_000u64 + rng.below(300_000_000) as u64),
        ),
        ("iat", serde_json::json!(1_700_000_000u64)),
        ("name", serde_json::json!("Alice")),
        (
            "video",
            serde_json::json!({
                "room": "demo",
                "room_join": !rng.one_in(8),
                "can_publish": rng.one_in(2),
                "room_admin": rng.one_in(4),
            }),
        ),
    ];
    for (key, value) in fields {
        if rng.one_in(16) {
            continue;
        }
        let value = if well_formed && !rng.one_in(16) {
            value
        } else {
            json_value(rng, 3)
        };
        claims.insert(key.into(), value);
    }
    let alg = *rng.pick(&["HS256", "HS256", "HS512", "none", "RS256", "", "hs256"]);
    let header = serde_json::json!({ "alg": alg, "typ": "JWT" });
    let b64 = |b: &[u8]| base64_url(b);
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(serde_json::Value::Object(claims).to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap_or_default();
    format!("{signing_input}.{signature}").into_bytes()
}

/// Unpadded base64url.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_matches_rfc_4648_vectors() {
        assert_eq!(base64_url(b"f"), "Zg");
        assert_eq!(base64_url(b"foob"), "Zm9vYg");
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_url(&[0xFB, 0xFF]), "-_8");
    }

    #[test]
    fn generated_tokens_verify_when_well_formed() {
        let now = super::super::targets::jwt_now();
        let ok = (0..400)
            .filter(|i| {
                let token = String::from_utf8(jwt(&mut Rng::new(1, *i))).unwrap();
                cascade_api::auth::verify_signed(&token, JWT_KEY, JWT_SECRET, now).is_ok()
            })
            .count();
        assert!(
            ok > 0,
            "no generated token passed the signature and claim checks"
        );
    }
}
