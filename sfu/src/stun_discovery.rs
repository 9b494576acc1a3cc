//! Public-address discovery with a STUN server (RFC 5389 binding): the request and the reading
//! of its response, built and parsed with webrtc-rs's `rtc::stun`. Sans-I/O; the media server
//! sends the request from its media socket at start-up (see `MediaServer::start`).

use std::net::SocketAddr;

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
