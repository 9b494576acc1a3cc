//! Public-address discovery with a STUN server (RFC 5389 binding): the request and the reading
//! of its response, built and parsed with webrtc-rs's `rtc::stun`. Sans-I/O; the media server
//! sends the request from its media socket at start-up (see `MediaServer::start`), then checks
//! what it learnt: [`assess`] classifies the mapped address, and a probe sent to the mapped
//! address that comes back to the media socket ([`is_probe`]) shows the address reaches it.

use std::net::{IpAddr, SocketAddr};

use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::message::{
    BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter, TransactionId,
};
use rtc::stun::xoraddr::XorMappedAddress;

/// What a datagram received while waiting for the binding response says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The success response to our request: the address the server saw us from.
    Mapped(SocketAddr),
    /// An answer to our request that gives no address (error response, or a success without
    /// XOR-MAPPED-ADDRESS): why.
    Refused(String),
}

/// A binding request with a fresh random transaction id, and that id.
pub fn binding_request() -> (TransactionId, Vec<u8>) {
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> =
        vec![Box::new(BINDING_REQUEST), Box::new(TransactionId::new())];
    m.build(&setters).expect("a valid binding request");
    (m.transaction_id, m.raw)
}

/// Reads `datagram` as the response to the request with `id`: `None` if it is not one (not
/// STUN, another transaction, not a binding response), to be ignored.
pub fn parse_response(datagram: &[u8], id: &TransactionId) -> Option<Reply> {
    let mut m = Message::new();
    m.unmarshal_binary(datagram).ok()?;
    if m.transaction_id != *id {
        return None;
    }
    if m.typ == BINDING_ERROR {
        let mut error = ErrorCodeAttribute::default();
        return Some(Reply::Refused(match error.get_from(&m) {
            Ok(()) => format!("error response {error}"),
            Err(_) => "error response without ERROR-CODE".to_owned(),
        }));
    }
    if m.typ != BINDING_SUCCESS {
        return None;
    }
    let mut mapped = XorMappedAddress::default();
    Some(match mapped.get_from(&m) {
        Ok(()) => Reply::Mapped(SocketAddr::new(mapped.ip, mapped.port)),
        Err(e) => Reply::Refused(format!("no usable XOR-MAPPED-ADDRESS: {e}")),
    })
}

/// What the mapped address says about the path to the STUN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assessment {
    /// One of the addresses already advertised: no NAT in the way.
    AlreadyAdvertised,
    /// Not a public address (private, loopback, link-local, CGNAT shared space): the STUN server
    /// is inside the same network, so the address tells nothing about the internet side.
    NotPublic,
    /// A public address, but the NAT changed the port: other peers reach it only if the NAT
    /// maps endpoint-independently; a 1:1 port forward with `--public-ip` is more reliable.
    PortChanged,
    /// A public address on the media port itself.
    Public,
}

impl Assessment {
    /// A sentence for the operator.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AlreadyAdvertised => "already advertised: no NAT in the way",
            Self::NotPublic => {
                "not a public address: the STUN server is inside this network, so the address \
                 is not reachable from the internet"
            }
            Self::PortChanged => {
                "the NAT changed the port: it works only if the NAT maps every destination to \
                 the same port; forward the UDP port 1:1 and set --public-ip to be sure"
            }
            Self::Public => "a public address on the media port",
        }
    }
}

/// Classifies `mapped`, the address the STUN server saw the media socket (on `local_port`)
/// from, given the addresses already `advertised`.
pub fn assess(mapped: SocketAddr, local_port: u16, advertised: &[SocketAddr]) -> Assessment {
    if advertised.contains(&mapped) {
        return Assessment::AlreadyAdvertised;
    }
    let public = match mapped.ip() {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || shared)
        }
        IpAddr::V6(ip) => {
            let unique_local = (ip.segments()[0] & 0xfe00) == 0xfc00;
            let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
            !(ip.is_loopback() || ip.is_unspecified() || unique_local || link_local)
        }
    };
    match (public, mapped.port() == local_port) {
        (false, _) => Assessment::NotPublic,
        (true, false) => Assessment::PortChanged,
        (true, true) => Assessment::Public,
    }
}

/// Whether `datagram` is the binding request with `id`: the self-check probe, sent to the
/// mapped address, come back to the media socket.
pub fn is_probe(datagram: &[u8], id: &TransactionId) -> bool {
    let mut m = Message::new();
    m.unmarshal_binary(datagram).is_ok() && m.typ == BINDING_REQUEST && m.transaction_id == *id
}

/// The outcome of discovery and its self-check, kept for the banner and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The address the STUN server saw.
    pub mapped: SocketAddr,
    /// What that address says.
    pub assessment: Assessment,
    /// Whether a probe sent to the mapped address came back to the media socket (false: no
    /// hairpinning at the NAT, or the port is not forwarded — check from outside).
    pub reaches_socket: bool,
}

#[cfg(test)]
mod tests {
    use rtc::stun::error_code::CODE_BAD_REQUEST;

    use super::*;

    /// A binding response to `id` built with `rtc::stun` from `setters`.
    fn response(id: &TransactionId, setters: Vec<Box<dyn Setter>>) -> Vec<u8> {
        let mut m = Message::new();
        m.transaction_id = *id;
        m.build(&setters).unwrap();
        m.raw
    }

    fn success(id: &TransactionId, addr: SocketAddr) -> Vec<u8> {
        let mapped = XorMappedAddress {
            ip: addr.ip(),
            port: addr.port(),
        };
        response(id, vec![Box::new(BINDING_SUCCESS), Box::new(mapped)])
    }

    #[test]
    fn request_is_a_binding_request_with_its_id() {
        let (id, raw) = binding_request();
        let mut m = Message::new();
        m.unmarshal_binary(&raw).unwrap();
        assert_eq!(m.typ, BINDING_REQUEST);
        assert_eq!(m.transaction_id, id);
        assert_ne!(binding_request().0, id, "every request has its own id");
    }

    #[test]
    fn success_gives_the_mapped_address() {
        let (id, _) = binding_request();
        for addr in ["203.0.113.7:40000", "[2001:db8::7]:3478"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(
                parse_response(&success(&id, addr), &id),
                Some(Reply::Mapped(addr))
            );
        }
    }

    #[test]
    fn another_transaction_is_ignored() {
        let (id, _) = binding_request();
        let (other, _) = binding_request();
        let addr = "203.0.113.7:40000".parse().unwrap();
        assert_eq!(parse_response(&success(&other, addr), &id), None);
    }

    #[test]
    fn error_response_is_refused() {
        let (id, _) = binding_request();
        let raw = response(
            &id,
            vec![Box::new(BINDING_ERROR), Box::new(CODE_BAD_REQUEST)],
        );
        let Some(Reply::Refused(why)) = parse_response(&raw, &id) else {
            panic!("an error response is a refusal");
        };
        assert!(why.contains("400"), "{why}");
    }

    #[test]
    fn success_without_address_is_refused() {
        let (id, _) = binding_request();
        let raw = response(&id, vec![Box::new(BINDING_SUCCESS)]);
        assert!(matches!(parse_response(&raw, &id), Some(Reply::Refused(_))));
    }

    #[test]
    fn assessment_of_mapped_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let advertised = [a("198.51.100.1:7882")];
        let cases = [
            ("198.51.100.1:7882", Assessment::AlreadyAdvertised),
            ("203.0.113.7:7882", Assessment::Public),
            ("203.0.113.7:40000", Assessment::PortChanged),
            ("10.1.2.3:7882", Assessment::NotPublic),
            ("192.168.1.10:7882", Assessment::NotPublic),
            ("100.64.0.1:7882", Assessment::NotPublic),
            ("100.128.0.1:7882", Assessment::Public),
            ("127.0.0.1:9", Assessment::NotPublic),
            ("[fd00::1]:7882", Assessment::NotPublic),
            ("[fe80::1]:7882", Assessment::NotPublic),
            ("[2001:db8::7]:7882", Assessment::Public),
        ];
        for (mapped, want) in cases {
            assert_eq!(assess(a(mapped), 7882, &advertised), want, "{mapped}");
        }
        assert!(Assessment::PortChanged.describe().contains("--public-ip"));
    }

    #[test]
    fn probe_is_recognised_by_its_id_only() {
        let (id, request) = binding_request();
        assert!(is_probe(&request, &id));
        let (other, other_request) = binding_request();
        assert!(!is_probe(&other_request, &id));
        let reply = success(&id, "203.0.113.7:40000".parse().unwrap());
        assert!(!is_probe(&reply, &id), "a response is not the probe");
        assert!(!is_probe(b"garbage", &other));
    }

    #[test]
    fn garbage_and_requests_are_ignored() {
        let (id, request) = binding_request();
        assert_eq!(
            parse_response(&request, &id),
            None,
            "our own request echoed"
        );
        for garbage in [&b""[..], b"hello", &[0u8; 20], &[0xffu8; 64]] {
            assert_eq!(parse_response(garbage, &id), None);
        }
        let mut truncated = success(&id, "203.0.113.7:40000".parse().unwrap());
        truncated.truncate(24);
        assert_eq!(parse_response(&truncated, &id), None);
    }
}
