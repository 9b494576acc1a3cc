//! The embedded TURN server's policy, sans-I/O: which usernames are admitted (time-limited
//! TURN REST API credentials, [`crate::turn_credentials`]) and which peers may be relayed to
//! (only Cascade's own media addresses: never an open relay).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::turn_credentials;

/// Why a username was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `<expiry-unix>:<identity>`.
    Malformed,
    /// Its expiry has passed.
    Expired,
    /// The user table is full.
    TableFull,
}

impl Refusal {
    /// A short label, for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed username",
            Self::Expired => "expired credential",
            Self::TableFull => "user table full",
        }
    }
}

/// What to do with a username seen in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Already known to the TURN server and not expired.
    Known,
    /// New: once the request proves it holds this password (the genuine credential: its
    /// MESSAGE-INTEGRITY checks with it), [`Policy::learn`] it and teach it to the TURN server.
    Add {
        /// The credential a genuine client holds for this username.
        password: String,
    },
    /// Refused.
    Refused(Refusal),
}

/// Admission of TURN users and the peer allowlist.
#[derive(Debug)]
pub struct Policy {
    secret: Vec<u8>,
    /// Usernames handed to the TURN server, with their expiry (Unix seconds).
    users: HashMap<String, u64>,
    max_users: usize,
    allowed: Vec<SocketAddr>,
}

impl Policy {
    /// A policy checking credentials against `secret`, knowing at most `max_users` usernames,
    /// and relaying only to `allowed` (Cascade's media addresses).
    pub fn new(secret: &[u8], max_users: usize, allowed: Vec<SocketAddr>) -> Self {
        Self {
            secret: secret.to_vec(),
            users: HashMap::new(),
            max_users,
            allowed,
        }
    }

    /// Decides on `username` at `now`. Every request carrying a username is checked, so a
    /// credential stops working at its expiry even though the TURN server still knows it.
    pub fn admit(&self, username: &str, now: SystemTime) -> Admission {
        let Some(expiry) = parse_expiry(username) else {
            return Admission::Refused(Refusal::Malformed);
        };
        if unix_seconds(now) >= expiry {
            return Admission::Refused(Refusal::Expired);
        }
        if self.users.contains_key(username) {
            return Admission::Known;
        }
        if self.users.len() >= self.max_users {
            return Admission::Refused(Refusal::TableFull);
        }
        Admission::Add {
            password: self.password(username),
        }
    }

    /// Records `username` as known to the TURN server, after [`Admission::Add`] and a request
    /// signed with its genuine credential (so that only credential holders fill the table).
    pub fn learn(&mut self, username: &str) {
        if let Some(expiry) = parse_expiry(username)
            && self.users.len() < self.max_users
        {
            self.users.insert(username.to_owned(), expiry);
        }
    }

    /// The credential a genuine client holds for `username`.
    pub fn password(&self, username: &str) -> String {
        turn_credentials::credential(&self.secret, username)
    }

    /// How many usernames the TURN server knows.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Whether the user table is full.
    pub fn is_full(&self) -> bool {
        self.users.len() >= self.max_users
    }

    /// Forgets every username: after the TURN server itself was replaced by a new one.
    pub fn forget_users(&mut self) {
        self.users.clear();
    }

    /// Whether a permission for `ip` may be installed: it is one of Cascade's media IPs.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|a| a.ip() == canonical(ip))
    }

    /// Whether traffic may be relayed to or from `peer`: it is one of Cascade's media
    /// addresses, port included.
    pub fn peer_allowed(&self, peer: SocketAddr) -> bool {
        allowed_peer(&self.allowed, peer)
    }

    /// The allowed peers.
    pub fn allowed(&self) -> &[SocketAddr] {
        &self.allowed
    }
}

/// Whether `peer` is one of `allowed`, port included (IPv4-mapped IPv6 as IPv4).
pub fn allowed_peer(allowed: &[SocketAddr], peer: SocketAddr) -> bool {
    allowed.contains(&SocketAddr::new(canonical(peer.ip()), peer.port()))
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The expiry of a `<expiry-unix>:<identity>` username.
fn parse_expiry(username: &str) -> Option<u64> {
    let (expiry, identity) = username.split_once(':')?;
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) || identity.is_empty() {
        return None;
    }
    expiry.parse().ok()
}

/// Seconds since the Unix epoch (0 before it).
fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::turn_credentials::{mint, verify};

    const SECRET: &[u8] = b"policy-secret";

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    fn policy(max_users: usize) -> Policy {
        Policy::new(
            SECRET,
            max_users,
            vec![
                "127.0.0.1:7882".parse().unwrap(),
                "203.0.113.5:7882".parse().unwrap(),
            ],
        )
    }

    #[test]
    fn a_minted_username_is_added_with_its_genuine_credential_then_known() {
        let mut p = policy(8);
        let now = at(1_700_000_000);
        let (username, credential) = mint(SECRET, "alice", Duration::from_secs(60), now);
        assert_eq!(
            p.admit(&username, now),
            Admission::Add {
                password: credential.clone()
            }
        );
        assert_eq!(verify(SECRET, &username, &credential, now), Ok("alice"));
        assert!(
            matches!(p.admit(&username, now), Admission::Add { .. }),
            "until learnt"
        );
        assert_eq!(p.users(), 0);
        p.learn(&username);
        assert_eq!(p.admit(&username, now), Admission::Known);
        assert_eq!(p.users(), 1);
    }

    #[test]
    fn a_forged_username_gets_a_password_its_holder_does_not_have() {
        // The TURN server checks MESSAGE-INTEGRITY with the password given here: a client that
        // signed with a credential minted under another secret fails that check.
        let p = policy(8);
        let now = at(1_700_000_000);
        let (username, forged) = mint(b"not-the-secret", "mallory", Duration::from_secs(60), now);
        let Admission::Add { password } = p.admit(&username, now) else {
            panic!("a well-formed, unexpired username is added");
        };
        assert_ne!(password, forged);
    }

    #[test]
    fn expired_usernames_are_refused_even_once_known() {
        let mut p = policy(8);
        let now = at(1_700_000_000);
        let (username, _) = mint(SECRET, "alice", Duration::from_secs(60), now);
        assert!(matches!(p.admit(&username, now), Admission::Add { .. }));
        p.learn(&username);
        assert_eq!(
            p.admit(&username, at(1_700_000_059)),
            Admission::Known,
            "valid until its last second"
        );
        assert_eq!(
            p.admit(&username, at(1_700_000_060)),
            Admission::Refused(Refusal::Expired)
        );
        assert_eq!(p.admit("1:bob", now), Admission::Refused(Refusal::Expired));
    }

    #[test]
    fn malformed_usernames_are_refused() {
        let p = policy(8);
        for username in [
            "",
            "alice",
            ":alice",
            "1700000100:",
            "-1:a",
            "1e9:a",
            "99999999999999999999999:a",
        ] {
            assert_eq!(
                p.admit(username, at(1_600_000_000)),
                Admission::Refused(Refusal::Malformed),
                "{username:?}"
            );
        }
        assert_eq!(p.users(), 0);
    }

    #[test]
    fn the_user_table_is_bounded() {
        let mut p = policy(2);
        let now = at(1_700_000_000);
        let names: Vec<String> = (0..3).map(|i| format!("1700000100:user{i}")).collect();
        for name in &names[..2] {
            assert!(matches!(p.admit(name, now), Admission::Add { .. }));
            p.learn(name);
        }
        assert!(p.is_full());
        p.learn(&names[2]);
        assert_eq!(p.users(), 2, "learn respects the bound too");
        assert_eq!(
            p.admit(&names[2], now),
            Admission::Refused(Refusal::TableFull)
        );
        // Known ones still pass; after the server is replaced, new ones fit again.
        assert_eq!(p.admit(&names[0], now), Admission::Known);
        p.forget_users();
        assert!(matches!(p.admit(&names[2], now), Admission::Add { .. }));
    }

    #[test]
    fn only_cascade_media_addresses_are_allowed_peers() {
        let p = policy(1);
        assert!(p.ip_allowed("127.0.0.1".parse().unwrap()));
        assert!(p.ip_allowed("203.0.113.5".parse().unwrap()));
        assert!(p.ip_allowed("::ffff:127.0.0.1".parse().unwrap()));
        for ip in [
            "127.0.0.2",
            "10.0.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "0.0.0.0",
        ] {
            assert!(!p.ip_allowed(ip.parse().unwrap()), "{ip}");
        }
        assert!(p.peer_allowed("127.0.0.1:7882".parse().unwrap()));
        assert!(p.peer_allowed("[::ffff:203.0.113.5]:7882".parse().unwrap()));
        for peer in [
            "127.0.0.1:7883",
            "127.0.0.1:22",
            "203.0.113.5:53",
            "127.0.0.2:7882",
        ] {
            assert!(!p.peer_allowed(peer.parse().unwrap()), "{peer}");
        }
    }
}
