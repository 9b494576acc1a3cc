//! Demultiplexing of the one shared UDP port: which peer does a datagram belong to?
//!
//! A peer is found by its remote address once known. A datagram from an unknown address is
//! accepted only if it is a STUN binding request whose USERNAME starts with a local ICE
//! username fragment the server handed out (`<server-ufrag>:<client-ufrag>`); that address is
//! then bound to the peer. Everything else from unknown addresses is dropped. Sans-I/O.

use std::collections::HashMap;
use std::net::SocketAddr;

/// STUN attribute type of USERNAME (RFC 8489).
const ATTR_USERNAME: u16 = 0x0006;
/// STUN magic cookie.
const MAGIC_COOKIE: u32 = 0x2112_A442;

/// Returns the local (server) username fragment of a STUN message's USERNAME attribute, or
/// `None` if the datagram is not a well-formed STUN message carrying one.
pub fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < 20 || datagram[0] & 0xC0 != 0 {
        return None;
    }
    let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
    if cookie != MAGIC_COOKIE {
        return None;
    }
    let body_len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(20..20 + body_len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let ty = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if ty == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Routes datagrams to peers identified by `K` (e.g. a worker index and peer id).
#[derive(Debug)]
pub struct Demuxer<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
}

impl<K: Clone + PartialEq> Default for Demuxer<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }
}

impl<K: Clone + PartialEq> Demuxer<K> {
    /// Registers the local ICE username fragment of a new peer.
    pub fn add_peer(&mut self, ufrag: String, key: K) {
        self.by_ufrag.insert(ufrag, key);
    }

    /// Forgets a peer: its ufrag and every address bound to it.
    pub fn remove_peer(&mut self, key: &K) {
        self.by_ufrag.retain(|_, k| k != key);
        self.by_addr.retain(|_, k| k != key);
    }

    /// Forgets the peer registered under `ufrag`, with every address bound to it.
    pub fn remove_ufrag(&mut self, ufrag: &str) {
        if let Some(key) = self.by_ufrag.remove(ufrag) {
            self.by_addr.retain(|_, k| *k != key);
        }
    }

    /// Finds the peer a datagram from `from` belongs to, binding the address on first contact.
    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<K> {
        if let Some(ufrag) = stun_local_ufrag(datagram) {
            // A binding request names its peer explicitly; it may also move the peer to a new
            // address (network change, ICE restart on another path).
            let key = self.by_ufrag.get(ufrag)?.clone();
            self.by_addr.insert(from, key.clone());
            return Some(key);
        }
        self.by_addr.get(&from).cloned()
    }

    /// Number of registered peers.
    pub fn peers(&self) -> usize {
        self.by_ufrag.len()
    }

    /// Number of bound remote addresses.
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn parses_local_ufrag() {
        assert_eq!(stun_local_ufrag(&binding_request("srv1:cli")), Some("srv1"));
        assert_eq!(stun_local_ufrag(b"\x80\x60garbage-rtp-packet-xxxx"), None);
        assert_eq!(stun_local_ufrag(&[0u8; 3]), None);
        let mut truncated = binding_request("srv1:cli");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
    }

    #[test]
    fn binds_address_on_binding_request_then_routes_by_address() {
        let mut d = Demuxer::default();
        d.add_peer("a".into(), 1u32);
        d.add_peer("b".into(), 2u32);
        let x: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let y: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        assert_eq!(
            d.route(x, b"\x80\x60rtp"),
            None,
            "unknown address, not STUN"
        );
        assert_eq!(d.route(x, &binding_request("a:c")), Some(1));
        assert_eq!(d.route(x, b"\x80\x60rtp"), Some(1));
        assert_eq!(d.route(y, &binding_request("zz:c")), None, "unknown ufrag");
        assert_eq!(d.route(y, &binding_request("b:c")), Some(2));
        d.remove_peer(&1);
        assert_eq!(d.route(x, b"\x80\x60rtp"), None);
        assert_eq!((d.peers(), d.addresses()), (1, 1));
    }
}
