//! Unit tests of the ICE-lite agent: checks as a client sends them, answers decoded and verified.

use super::*;
use rtc::stun::attributes::{ATTR_ICE_CONTROLLING, AttrType};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::message::{Getter, TransactionId};
use rtc::stun::textattrs::Username;
use std::net::SocketAddr;

const SERVER: (&str, &str) = ("srvA", "server-password-of-22+chars");
pub(crate) const CLIENT_UFRAG: &str = "cli1";

fn creds((ufrag, pwd): (&str, &str)) -> Credentials {
    Credentials {
        ufrag: ufrag.into(),
        pwd: pwd.into(),
    }
}

fn addr(port: u16) -> Path {
    Path::udp(SocketAddr::from(([192, 0, 2, 7], port)))
}

/// A raw attribute, as a setter.
struct Raw(AttrType, Vec<u8>);

impl Setter for Raw {
    fn add_to(&self, m: &mut Message) -> rtc::shared::error::Result<()> {
        m.add(self.0, &self.1);
        Ok(())
    }
}

/// What a check carries besides USERNAME, MESSAGE-INTEGRITY and FINGERPRINT.
#[derive(Default, Clone, Copy)]
pub(crate) struct Check {
    pub(crate) nominate: bool,
    pub(crate) controlled: bool,
}

/// A check with USE-CANDIDATE from a controlling client.
pub(crate) const NOMINATE: Check = Check {
    nominate: true,
    controlled: false,
};

/// A binding request from the client for the server's `ufrag`, signed with `pwd`.
pub(crate) fn request(ufrag: &str, pwd: &str, check: Check, id: u8) -> Vec<u8> {
    let provider = rtc::crypto::default_provider().unwrap();
    let role = if check.controlled {
        ATTR_ICE_CONTROLLED
    } else {
        ATTR_ICE_CONTROLLING
    };
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(Username::new(
            ATTR_USERNAME,
            format!("{ufrag}:{CLIENT_UFRAG}"),
        )),
        Box::new(Raw(role, 0x0123_4567_89ab_cdefu64.to_be_bytes().to_vec())),
    ];
    if check.nominate {
        setters.push(Box::new(Raw(ATTR_USE_CANDIDATE, Vec::new())));
    }
    setters.push(Box::new(
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.into(), provider.crypto()),
    ));
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.transaction_id = TransactionId([id; 12]);
    m.build(&setters).unwrap();
    m.raw
}

/// Decodes a response and checks what every answer must have: the request's transaction id,
/// a MESSAGE-INTEGRITY keyed with the server's password, a valid FINGERPRINT.
fn answer(reply: Reply, id: u8) -> Message {
    let Reply::Send(bytes) = reply else {
        panic!("expected an answer, got {reply:?}");
    };
    let mut m = Message::new();
    m.unmarshal_binary(&bytes).unwrap();
    assert_eq!(m.transaction_id, TransactionId([id; 12]));
    FINGERPRINT.check(&m).expect("a valid FINGERPRINT");
    let provider = rtc::crypto::default_provider().unwrap();
    assert!(
        verify_request(&mut m, SERVER.1, provider.as_ref()),
        "signed with the server's password"
    );
    m
}

/// Sends `ice` a check with the server's credentials from `from` and returns its checked answer.
fn checked(ice: &mut IceLite, from: Path, check: Check, id: u8, now: Instant) -> Message {
    answer(
        ice.handle(from, &request(SERVER.0, SERVER.1, check, id), now),
        id,
    )
}

fn mapped(m: &Message) -> SocketAddr {
    let mut x = XorMappedAddress::default();
    x.get_from(m).unwrap();
    SocketAddr::new(x.ip, x.port)
}

#[test]
fn a_good_check_is_answered_with_the_mapped_address_and_a_nomination_selects_it() {
    let mut ice = IceLite::new(creds(SERVER));
    let now = Instant::now();
    let m = checked(&mut ice, addr(5000), Check::default(), 1, now);
    assert_eq!(m.typ, BINDING_SUCCESS);
    assert_eq!(mapped(&m), addr(5000).remote);
    assert_eq!(ice.selected(), None, "not nominated yet");

    checked(&mut ice, addr(5000), NOMINATE, 2, now);
    assert_eq!(ice.selected(), Some(addr(5000)));
    // The controlling client nominates another address later: it wins.
    checked(&mut ice, addr(6000), NOMINATE, 3, now);
    assert_eq!(ice.selected(), Some(addr(6000)));
}

#[test]
fn wrong_integrity_wrong_fingerprint_unknown_ufrag_and_garbage_get_no_answer() {
    let mut ice = IceLite::new(creds(SERVER));
    let now = Instant::now();
    let wrong_pwd = request(SERVER.0, "not-the-password-at-all", NOMINATE, 1);
    assert_eq!(ice.handle(addr(1), &wrong_pwd, now), Reply::Drop);
    let mut bad_fingerprint = request(SERVER.0, SERVER.1, NOMINATE, 2);
    let last = bad_fingerprint.len() - 1;
    bad_fingerprint[last] ^= 0x01;
    assert_eq!(ice.handle(addr(2), &bad_fingerprint, now), Reply::Drop);
    let other_ufrag = request("zzzz", SERVER.1, NOMINATE, 3);
    assert_eq!(ice.handle(addr(3), &other_ufrag, now), Reply::Drop);
    let good = request(SERVER.0, SERVER.1, NOMINATE, 4);
    for junk in [
        &b""[..],
        &[0u8; 19],
        &good[..good.len() - 9],
        b"\x80\x60 an RTP packet, not STUN",
    ] {
        assert_eq!(ice.handle(addr(4), junk, now), Reply::Drop);
    }
    assert_eq!(ice.selected(), None, "nothing was learned");
    assert!(ice.remotes.is_empty());
}

#[test]
fn a_client_that_claims_to_be_controlled_gets_a_role_conflict() {
    let mut ice = IceLite::new(creds(SERVER));
    let check = Check {
        nominate: true,
        controlled: true,
    };
    let m = answer(
        ice.handle(
            addr(5000),
            &request(SERVER.0, SERVER.1, check, 9),
            Instant::now(),
        ),
        9,
    );
    assert_eq!(m.typ, BINDING_ERROR);
    let mut code = ErrorCodeAttribute::default();
    code.get_from(&m).unwrap();
    assert!(code.code == CODE_ROLE_CONFLICT, "487 Role Conflict");
    assert_eq!(
        ice.selected(),
        None,
        "a conflicting check nominates nothing"
    );
}

#[test]
fn consent_is_lost_thirty_seconds_after_the_last_check_and_refreshed_by_each() {
    let mut ice = IceLite::new(creds(SERVER));
    let t0 = Instant::now();
    checked(&mut ice, addr(5000), NOMINATE, 1, t0);
    assert_eq!(ice.poll_timeout(), Some(t0 + CONSENT_TIMEOUT));
    // A check 20 s later refreshes consent: still selected at 45 s.
    let t20 = t0 + Duration::from_secs(20);
    checked(&mut ice, addr(5000), Check::default(), 2, t20);
    assert_eq!(
        ice.handle_timeout(t0 + Duration::from_secs(45)),
        Timeout::Nothing
    );
    assert_eq!(ice.selected(), Some(addr(5000)));
    // Checks from another address do not keep the selected one alive.
    answer(
        ice.handle(
            addr(6000),
            &request(SERVER.0, SERVER.1, Check::default(), 3),
            t20 + Duration::from_secs(25),
        ),
        3,
    );
    assert_eq!(
        ice.handle_timeout(t20 + CONSENT_TIMEOUT),
        Timeout::ConsentLost(addr(5000))
    );
    assert_eq!(ice.selected(), None);
    assert_eq!(ice.poll_timeout(), None);
    assert_eq!(
        ice.handle_timeout(t20 + CONSENT_TIMEOUT * 2),
        Timeout::Nothing
    );
}

#[test]
fn after_a_restart_old_credentials_are_answered_until_the_new_ones_are_used() {
    let mut ice = IceLite::new(creds(SERVER));
    let now = Instant::now();
    checked(&mut ice, addr(5000), NOMINATE, 1, now);
    let new = ("srvB", "a-new-server-password-22chars");
    ice.restart(creds(new));
    assert_eq!(ice.local(), &creds(new));
    // Media still flows on the old path: its checks are answered (with the old password).
    let Reply::Send(_) = ice.handle(
        addr(5000),
        &request(SERVER.0, SERVER.1, Check::default(), 2),
        now,
    ) else {
        panic!("the old credentials are answered during the restart");
    };
    // The client's first check with the new credentials ends the old ones.
    let Reply::Send(bytes) = ice.handle(addr(7000), &request(new.0, new.1, NOMINATE, 3), now)
    else {
        panic!("the new credentials are answered");
    };
    let mut m = Message::new();
    m.unmarshal_binary(&bytes).unwrap();
    let provider = rtc::crypto::default_provider().unwrap();
    assert!(
        verify_request(&mut m, new.1, provider.as_ref()),
        "signed with the new password"
    );
    assert_eq!(ice.selected(), Some(addr(7000)));
    assert_eq!(
        ice.handle(addr(5000), &request(SERVER.0, SERVER.1, NOMINATE, 4), now),
        Reply::Drop
    );
}

#[test]
fn remote_addresses_are_bounded_and_the_least_recently_checked_is_forgotten() {
    let mut ice = IceLite::new(creds(SERVER));
    let t0 = Instant::now();
    checked(&mut ice, addr(1), NOMINATE, 1, t0);
    for i in 0..(MAX_REMOTES as u16 * 3) {
        let at = t0 + Duration::from_millis(u64::from(i) + 1);
        checked(&mut ice, addr(100 + i), Check::default(), 2, at);
        assert!(ice.remotes.len() <= MAX_REMOTES);
    }
    assert_eq!(
        ice.selected(),
        None,
        "the selected address was the least recently checked: forgotten"
    );
}
