//! Demultiplexing of the one shared UDP port: which peer does a datagram belong to?
//!
//! A datagram from an address already bound to a peer goes to that peer, whatever it is
//! (ICE clients such as libnice put their *own* ufrag first in the USERNAME of some STUN
//! messages they send). A datagram from an unbound address is accepted only if it is a STUN
//! binding request whose USERNAME starts with a local ICE username fragment the server handed
//! out (`<server-ufrag>:<client-ufrag>`) and whose MESSAGE-INTEGRITY verifies with that peer's
//! ICE password (short-term credential, HMAC-SHA1; a FINGERPRINT, if present, must match too);
//! the address is then bound to the peer. A verified binding request for another peer from a
//! bound address moves the address to that peer. Everything else is dropped. Sans-I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rtc::crypto::RTCCryptoProvider;
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{BINDING_REQUEST, Message};

use super::Path;

/// STUN attribute type of USERNAME (RFC 8489).
const ATTR_USERNAME: u16 = 0x0006;
/// STUN magic cookie.
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Remote addresses one peer may have bound at once; binding one more forgets its oldest.
pub const MAX_ADDRESSES_PER_PEER: usize = 8;

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

/// Builds a STUN binding request with USERNAME `username`, MESSAGE-INTEGRITY keyed with
/// `password` and FINGERPRINT, as an ICE agent sends it (for tests, benchmarks, load tools).
pub fn binding_request(username: &str, password: &str) -> Vec<u8> {
    binding_request_with_id(username, password, rand::random())
}

/// [`binding_request`] with a given transaction id (reproducible, e.g. for fuzzing).
pub fn binding_request_with_id(
    username: &str,
    password: &str,
    transaction_id: [u8; 12],
) -> Vec<u8> {
    use rtc::stun::message::Setter;
    use rtc::stun::textattrs::Username;
    let provider = rtc::crypto::default_provider().expect("a built-in crypto provider");
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(Username::new(
            rtc::stun::attributes::ATTR_USERNAME,
            username.into(),
        )),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            password.into(),
            provider.crypto(),
        )),
        Box::new(FINGERPRINT),
    ];
    m.transaction_id = rtc::stun::message::TransactionId(transaction_id);
    m.build(&setters).expect("a valid binding request");
    m.raw
}

/// A registered peer: its key, ICE password and the addresses bound to it (oldest first).
#[derive(Debug)]
struct Entry<K> {
    key: K,
    pwd: String,
    addrs: VecDeque<Path>,
}

/// Routes datagrams to peers identified by `K` (e.g. a worker index and peer id).
pub struct Demuxer<K> {
    by_ufrag: HashMap<String, Entry<K>>,
    by_addr: HashMap<Path, (K, String)>,
    crypto: Arc<dyn RTCCryptoProvider>,
}

impl<K> std::fmt::Debug for Demuxer<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demuxer")
            .field("peers", &self.by_ufrag.len())
            .field("addresses", &self.by_addr.len())
            .finish()
    }
}

impl<K: Clone + PartialEq> Default for Demuxer<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            crypto: rtc::crypto::default_provider().expect("a built-in crypto provider"),
        }
    }
}

impl<K: Clone + PartialEq> Demuxer<K> {
    /// Registers the local ICE credentials (username fragment and password) of a new peer.
    pub fn add_peer(&mut self, ufrag: String, pwd: String, key: K) {
        self.by_ufrag.insert(
            ufrag,
            Entry {
                key,
                pwd,
                addrs: VecDeque::new(),
            },
        );
    }

    /// Forgets the peer registered under `ufrag`, with every address bound to it.
    pub fn remove_ufrag(&mut self, ufrag: &str) {
        if let Some(entry) = self.by_ufrag.remove(ufrag) {
            for a in entry.addrs {
                self.by_addr.remove(&a);
            }
        }
    }

    /// Forgets `path` (a closed ICE-TCP connection), whichever peer it was bound to.
    pub fn unbind(&mut self, path: Path) {
        if let Some((_, ufrag)) = self.by_addr.remove(&path)
            && let Some(e) = self.by_ufrag.get_mut(&ufrag)
        {
            e.addrs.retain(|a| *a != path);
        }
    }

    /// Finds the peer a datagram from `from` belongs to, binding the address on a verified
    /// binding request.
    pub fn route(&mut self, from: Path, datagram: &[u8]) -> Option<K> {
        let ufrag = stun_local_ufrag(datagram);
        if let Some((key, bound_ufrag)) = self.by_addr.get(&from) {
            // Any traffic from a bound address is its peer's, unless it is a binding request
            // for another peer (the address moved, e.g. a new session from the same port).
            if ufrag.is_none_or(|u| u == bound_ufrag || !self.by_ufrag.contains_key(u)) {
                return Some(key.clone());
            }
        }
        let ufrag = ufrag?;
        let entry = self.by_ufrag.get(ufrag)?;
        if !self.verified_binding_request(datagram, &entry.pwd) {
            return self.by_addr.get(&from).map(|(k, _)| k.clone());
        }
        let key = entry.key.clone();
        self.bind(from, ufrag.to_owned());
        Some(key)
    }

    /// Whether `datagram` is a STUN binding request whose MESSAGE-INTEGRITY verifies with
    /// `pwd` (and whose FINGERPRINT, if any, matches).
    fn verified_binding_request(&self, datagram: &[u8], pwd: &str) -> bool {
        let mut m = Message::new();
        if m.unmarshal_binary(datagram).is_err() || m.typ != BINDING_REQUEST {
            return false;
        }
        crate::transport::ice_lite::verify_request(&mut m, pwd, self.crypto.as_ref())
    }

    /// Binds `from` to the peer registered under `ufrag` (which exists), unbinding it from
    /// any other peer and forgetting the peer's oldest address past the per-peer limit.
    fn bind(&mut self, from: Path, ufrag: String) {
        if let Some((_, old)) = self.by_addr.remove(&from)
            && let Some(e) = self.by_ufrag.get_mut(&old)
        {
            e.addrs.retain(|a| *a != from);
        }
        let entry = self.by_ufrag.get_mut(&ufrag).expect("registered");
        entry.addrs.push_back(from);
        if entry.addrs.len() > MAX_ADDRESSES_PER_PEER
            && let Some(oldest) = entry.addrs.pop_front()
        {
            self.by_addr.remove(&oldest);
        }
        self.by_addr.insert(from, (entry.key.clone(), ufrag));
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

    const RTP: &[u8] = b"\x80\x60rtp-packet-bytes";

    fn addr(port: u16) -> Path {
        Path::udp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn demuxer() -> Demuxer<u32> {
        let mut d = Demuxer::default();
        d.add_peer("a".into(), "pwd-a".into(), 1u32);
        d.add_peer("b".into(), "pwd-b".into(), 2u32);
        d
    }

    /// A binding request without MESSAGE-INTEGRITY (as the old hand-made one).
    fn unsigned_request(username: &str) -> Vec<u8> {
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
        assert_eq!(
            stun_local_ufrag(&unsigned_request("srv1:cli")),
            Some("srv1")
        );
        assert_eq!(
            stun_local_ufrag(&binding_request("srv1:cli", "p")),
            Some("srv1")
        );
        assert_eq!(stun_local_ufrag(b"\x80\x60garbage-rtp-packet-xxxx"), None);
        assert_eq!(stun_local_ufrag(&[0u8; 3]), None);
        let mut truncated = unsigned_request("srv1:cli");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
    }

    #[test]
    fn a_verified_binding_request_binds_then_routes_by_address() {
        let mut d = demuxer();
        let (x, y) = (addr(5000), addr(6000));
        assert_eq!(d.route(x, RTP), None, "unknown address, not STUN");
        assert_eq!(d.route(x, &binding_request("a:c", "pwd-a")), Some(1));
        assert_eq!(d.route(x, RTP), Some(1));
        assert_eq!(d.route(y, &binding_request("b:c", "pwd-b")), Some(2));
        d.remove_ufrag("a");
        assert_eq!(d.route(x, RTP), None);
        assert_eq!((d.peers(), d.addresses()), (1, 1));
    }

    #[test]
    fn forged_missing_or_truncated_integrity_and_unknown_ufrags_bind_nothing() {
        let mut d = demuxer();
        let x = addr(5000);
        let wrong_mi = binding_request("a:c", "not-the-password");
        let other_peers_pwd = binding_request("a:c", "pwd-b");
        let mut truncated = binding_request("a:c", "pwd-a");
        truncated.truncate(truncated.len() - 12);
        let mut tampered = binding_request("a:c", "pwd-a");
        tampered[8] ^= 1; // transaction id: MESSAGE-INTEGRITY and FINGERPRINT no longer match
        for (what, m) in [
            ("wrong MESSAGE-INTEGRITY", wrong_mi),
            ("another peer's password", other_peers_pwd),
            ("no MESSAGE-INTEGRITY", unsigned_request("a:c")),
            ("truncated", truncated),
            ("tampered", tampered),
            ("unknown ufrag", binding_request("zz:c", "pwd-a")),
        ] {
            assert_eq!(d.route(x, &m), None, "{what}");
            assert_eq!(d.route(x, RTP), None, "{what}: junk after it");
        }
        assert_eq!(d.addresses(), 0);
    }

    #[test]
    fn a_bound_address_keeps_its_peer_whatever_stun_it_sends() {
        let mut d = demuxer();
        let x = addr(5000);
        assert_eq!(d.route(x, &binding_request("a:c", "pwd-a")), Some(1));
        // libnice: the client's own ufrag first (a binding response or its own check).
        assert_eq!(d.route(x, &unsigned_request("c:a")), Some(1));
        // A forged request for another peer does not steal the address...
        assert_eq!(d.route(x, &binding_request("b:c", "forged")), Some(1));
        // ...a verified one moves it.
        assert_eq!(d.route(x, &binding_request("b:c", "pwd-b")), Some(2));
        assert_eq!(d.route(x, RTP), Some(2));
        d.remove_ufrag("a");
        assert_eq!(
            d.route(x, RTP),
            Some(2),
            "a's removal does not unbind b's address"
        );
        assert_eq!(d.addresses(), 1);
    }

    #[test]
    fn a_peer_binds_a_bounded_number_of_addresses() {
        let mut d = demuxer();
        let request = binding_request("a:c", "pwd-a");
        for port in 0..3 * MAX_ADDRESSES_PER_PEER as u16 {
            assert_eq!(d.route(addr(5000 + port), &request), Some(1));
        }
        assert_eq!(d.addresses(), MAX_ADDRESSES_PER_PEER);
        assert_eq!(d.route(addr(5000), RTP), None, "the oldest was forgotten");
        let newest = addr(5000 + 3 * MAX_ADDRESSES_PER_PEER as u16 - 1);
        assert_eq!(d.route(newest, RTP), Some(1));
    }
}
