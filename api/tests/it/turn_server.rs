//! The embedded TURN server (`turn = true`): coturn's `turnutils_uclient` allocates with the
//! credentials minted into `joined.ice_servers` over UDP, TCP and TLS and relays through it to
//! an allowed peer; expired and forged credentials, and peers that are not Cascade's media
//! addresses, are refused. A raw STUN client checks the exact refusals (401, 403) and that
//! relayed traffic reaches an allowed peer and nothing else.
//!
//! The allowed peer: the test servers advertise `127.0.0.2` beside `127.0.0.1` (`public_ips`),
//! so `127.0.0.2:<media port>` is one of Cascade's media addresses that nothing binds; the test
//! binds it and echoes, standing in for the media socket. `127.0.0.3` is a peer that is not
//! Cascade's.
//!
//! `turnutils_uclient` comes with coturn; without it the uclient tests are skipped with a
//! message, unless `CASCADE_REQUIRE_TOOLS` is set: then they fail. Run inside a private network
//! namespace (`unshare -n`), on loopback only.

use crate::server;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cascade_api::config::Config;
use cascade_api::server::{self as cascade, ServerHandle};
use cascade_api::turn_credentials::mint;
use cascade_testkit::TestClient;
use server::token;
use turn_server_proto::types::attribute::{
    ChannelNumber, Data, Lifetime, RequestedTransport, XorPeerAddress, XorRelayedAddress,
};
use turn_server_proto::types::message::{
    ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, DATA, REFRESH, SEND,
};
use turn_server_proto::types::stun::attribute::{ErrorCode, Nonce, Realm, Username};
use turn_server_proto::types::stun::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageIntegrityCredentials, MessageWrite,
    MessageWriteExt, MessageWriteVec, Method,
};

const SECRET: &str = "embedded-turn-test-secret";
/// How long one `turnutils_uclient` run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The test config with the embedded TURN server on ephemeral ports and `127.0.0.2`
/// advertised too.
fn turn_config(c: &mut Config) {
    c.turn = true;
    c.turn_udp_port = 0;
    c.turn_tcp_port = 0;
    c.turn_secret = Some(SECRET.into());
    c.public_ips = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
}

async fn start() -> ServerHandle {
    server::start_with(turn_config).await
}

/// The allowed peer that stands in for the media socket: `127.0.0.2:<media port>`.
fn allowed_peer(srv: &ServerHandle) -> SocketAddr {
    SocketAddr::new("127.0.0.2".parse().unwrap(), srv.udp_port())
}

/// A UDP socket that echoes every datagram until dropped; counts them.
struct Echo {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    fn bind(addr: SocketAddr) -> Self {
        let socket = UdpSocket::bind(addr).expect("the peer address is free");
        let addr = socket.local_addr().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    r.fetch_add(1, Ordering::Relaxed);
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        Self {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `turnutils_uclient` with `args`; whether it exited successfully, and its output.
/// `None` when it is not installed and `CASCADE_REQUIRE_TOOLS` is unset.
fn uclient(args: &[String]) -> Option<(bool, String)> {
    let spawned = Command::new("turnutils_uclient")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e)
            if e.kind() == ErrorKind::NotFound
                && std::env::var_os("CASCADE_REQUIRE_TOOLS").is_none() =>
        {
            eprintln!(
                "SKIPPED: coturn's `turnutils_uclient` is not installed (apt-get install \
                 coturn); with CASCADE_REQUIRE_TOOLS set (.ci/run) this test fails instead"
            );
            return None;
        }
        Err(e) => panic!("cannot start turnutils_uclient (apt-get install coturn): {e}"),
    };
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let success = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((success, text))
}

/// `turnutils_uclient` arguments: 5 messages to `peer`, over the given transport flags.
fn uclient_args(
    flags: &[&str],
    port: u16,
    peer: SocketAddr,
    username: &str,
    credential: &str,
) -> Vec<String> {
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend(
        [
            // Send indications, not channels: uclient also opens an "RTCP" leg to the peer's
            // port + 1, which is not Cascade's; its ChannelBind would get 403 and end the run,
            // while its Send indications are dropped.
            "-s",
            "-n",
            "5",
            "-p",
            &port.to_string(),
            "-e",
            &peer.ip().to_string(),
            "-r",
            &peer.port().to_string(),
            "-u",
            username,
            "-w",
            credential,
            "127.0.0.1",
        ]
        .map(str::to_owned),
    );
    args
}

/// Joins a room and returns the minted TURN entry of `joined.ice_servers`.
async fn minted(srv: &ServerHandle, identity: &str) -> (Vec<String>, String, String) {
    let client = TestClient::connect(&srv.ws_url()).await.unwrap();
    let joined = client.join(&token("turn", identity), false).await.unwrap();
    let turn = joined["ice_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"].is_string())
        .expect("a minted TURN entry")
        .clone();
    client.close().await.unwrap();
    let urls = turn["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    let username = turn["username"].as_str().unwrap().to_owned();
    let credential = turn["credential"].as_str().unwrap().to_owned();
    (urls, username, credential)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_to_cascade_over_udp_with_minted_credentials_only() {
    let srv = start().await;
    let udp = srv.turn_udp_addr().expect("the TURN server runs");
    let tcp = srv.turn_tcp_addr().unwrap();
    let (urls, username, credential) = minted(&srv, "alice").await;
    assert_eq!(
        urls,
        [
            format!("turn:127.0.0.1:{}?transport=udp", udp.port()),
            format!("turn:127.0.0.1:{}?transport=tcp", tcp.port()),
        ]
    );
    let peer = allowed_peer(&srv);
    let echo = Echo::bind(peer);
    let (expired, forged) = server::bad_turn_credentials(SECRET, "alice");
    let forbidden: SocketAddr = "127.0.0.3:40000".parse().unwrap();
    let echo = tokio::task::spawn_blocking(move || {
        let run = |peer, user: &str, cred: &str| {
            uclient(&uclient_args(&[], udp.port(), peer, user, cred))
        };
        let Some((ok, out)) = run(peer, &username, &credential) else {
            return (echo, false);
        };
        assert!(ok, "uclient failed with a minted credential:\n{out}");
        assert!(
            echo.received() >= 5,
            "the peer got {} packets:\n{out}",
            echo.received()
        );
        let before = echo.received();
        let (ok, out) = run(peer, &expired.0, &expired.1).unwrap();
        assert!(!ok, "an expired credential was accepted:\n{out}");
        let (ok, out) = run(peer, &forged.0, &forged.1).unwrap();
        assert!(!ok, "a forged credential was accepted:\n{out}");
        assert_eq!(
            echo.received(),
            before,
            "nothing relayed with refused credentials"
        );
        let far = Echo::bind(forbidden);
        let (ok, out) = run(forbidden, &username, &credential).unwrap();
        assert!(!ok, "a peer that is not Cascade's was relayed to:\n{out}");
        assert_eq!(far.received(), 0, "the forbidden peer got packets");
        (echo, true)
    })
    .await
    .unwrap();
    let (echo, ran) = echo;
    drop(echo);
    let metrics = server::scrape(srv.http_addr).await;
    let expired = r#"cascade_turn_refused_total{reason="expired"}"#;
    assert!(!ran || server::sample(&metrics, expired) >= 1, "{metrics}");
    srv.shutdown().await;
}

/// Asserts `cascade_turn_refused_total{reason}` is `n`, then stops the server.
async fn refused_then_stop(srv: ServerHandle, reason: &str, n: u64) {
    let metrics = server::scrape(srv.http_addr).await;
    let series = format!(r#"cascade_turn_refused_total{{reason="{reason}"}}"#);
    assert_eq!(server::sample(&metrics, &series), n, "{series}");
    srv.shutdown().await;
}

/// Runs `turnutils_uclient` with `flags` against `port` with the given credentials, relaying to
/// an echo peer at the allowed address; asserts it succeeds and the peer got its messages.
async fn relays_to_an_allowed_peer(
    srv: &ServerHandle,
    flags: &'static [&'static str],
    port: u16,
    username: String,
    credential: String,
    over: &'static str,
) {
    let echo = Echo::bind(allowed_peer(srv));
    let peer = echo.addr;
    tokio::task::spawn_blocking(move || {
        let args = uclient_args(flags, port, peer, &username, &credential);
        if let Some((ok, out)) = uclient(&args) {
            assert!(ok, "uclient over {over} failed:\n{out}");
            assert!(
                echo.received() >= 5,
                "the peer got {}:\n{out}",
                echo.received()
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tcp() {
    let srv = start().await;
    let tcp = srv.turn_tcp_addr().unwrap();
    let (_, username, credential) = minted(&srv, "bob").await;
    relays_to_an_allowed_peer(&srv, &["-t"], tcp.port(), username, credential, "TCP").await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tls() {
    // TURN over TLS serves the HTTPS certificate: here one generated at start-up.
    let mut config = server::config();
    turn_config(&mut config);
    config.turn_tls_port = Some(0);
    config.tls_self_signed = true;
    let srv = cascade::start(config).await.unwrap();
    let tls = srv.turn_tls_addr().expect("the TLS listener runs");
    // The HTTP port speaks TLS now: read the minted URLs from the state the server mints from.
    let urls = srv.state.embedded_turn_urls(None);
    assert!(
        urls.contains(&format!("turns:127.0.0.1:{}?transport=tcp", tls.port())),
        "{urls:?}"
    );
    let (username, credential) = mint(
        SECRET.as_bytes(),
        "carol",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    relays_to_an_allowed_peer(&srv, &["-t", "-S"], tls.port(), username, credential, "TLS").await;
    srv.shutdown().await;
}

#[tokio::test]
async fn turn_over_tls_without_a_certificate_is_a_start_up_error() {
    let mut config = server::config();
    turn_config(&mut config);
    config.turn_tls_port = Some(0);
    let e = cascade::start(config).await.err().expect("start fails");
    assert!(format!("{e:#}").contains("no TLS certificate"), "{e:#}");
}

/// A raw TURN client over UDP with long-term credentials.
struct RawClient {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    key: Option<(String, String, MessageIntegrityCredentials)>, // realm, nonce, key
}

impl RawClient {
    fn new(server: SocketAddr, username: &str, credential: &str) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut client = Self {
            socket,
            server,
            username: username.into(),
            key: None,
        };
        // The first request learns the realm and nonce from the 401.
        let reply = client.request(ALLOCATE, |m| {
            m.add_attribute(&RequestedTransport::new(RequestedTransport::UDP))
                .unwrap();
        });
        let msg = Message::from_bytes(&reply).unwrap();
        assert_eq!(error_code(&reply), Some(401));
        let realm = msg.attribute::<Realm>().unwrap().realm().to_owned();
        let nonce = msg.attribute::<Nonce>().unwrap().nonce().to_owned();
        let key = LongTermKeyCredentials::new(username.into(), credential.into(), realm.clone());
        client.key = Some((realm, nonce, key.into()));
        client
    }

    /// Sends a request built by `f` (signed once the realm is known); the raw reply.
    fn request(&self, method: Method, f: impl FnOnce(&mut MessageWriteVec)) -> Vec<u8> {
        let mut m = Message::builder_request(method, MessageWriteVec::new());
        f(&mut m);
        self.sign(&mut m);
        let id = m.transaction_id();
        let bytes = m.finish();
        for _ in 0..5 {
            self.socket.send_to(&bytes, self.server).unwrap();
            let mut buf = [0u8; 2048];
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                    break;
                };
                if Message::from_bytes(&buf[..n]).is_ok_and(|r| r.transaction_id() == id) {
                    return buf[..n].to_vec();
                }
            }
        }
        panic!("no reply to {method:?}");
    }

    /// Signs the next requests as `username` with `credential` (same realm and nonce).
    fn set_user(&mut self, username: &str, credential: &str) {
        let (realm, nonce, _) = self.key.take().expect("the realm is known");
        let key = LongTermKeyCredentials::new(username.into(), credential.into(), realm.clone());
        self.username = username.into();
        self.key = Some((realm, nonce, key.into()));
    }

    fn sign(&self, m: &mut MessageWriteVec) {
        if let Some((realm, nonce, key)) = &self.key {
            m.add_attribute(&Username::new(&self.username).unwrap())
                .unwrap();
            m.add_attribute(&Realm::new(realm).unwrap()).unwrap();
            m.add_attribute(&Nonce::new(nonce).unwrap()).unwrap();
            m.add_message_integrity(key, IntegrityAlgorithm::Sha1)
                .unwrap();
        }
    }

    fn create_permission(&self, peer: SocketAddr) -> Option<u16> {
        let reply = self.request(CREATE_PERMISSION, |m| {
            let id = m.transaction_id();
            m.add_attribute(&XorPeerAddress::new(peer, id)).unwrap();
        });
        error_code(&reply)
    }

    fn channel_bind(&self, channel: u16, peer: SocketAddr) -> Option<u16> {
        let reply = self.request(CHANNEL_BIND, |m| {
            let id = m.transaction_id();
            m.add_attribute(&ChannelNumber::new(channel)).unwrap();
            m.add_attribute(&XorPeerAddress::new(peer, id)).unwrap();
        });
        error_code(&reply)
    }

    /// Sends `data` to `peer` in a Send indication.
    fn send(&self, peer: SocketAddr, data: &[u8]) {
        let mut m = Message::builder_indication(SEND, MessageWriteVec::new());
        let id = m.transaction_id();
        m.add_attribute(&XorPeerAddress::new(peer, id)).unwrap();
        m.add_attribute(&Data::new(data)).unwrap();
        self.socket.send_to(&m.finish(), self.server).unwrap();
    }

    /// The data of the next Data indication, if one comes within a second.
    fn data_indication(&self) -> Option<(SocketAddr, Vec<u8>)> {
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            let Ok((n, _)) = self.socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(msg) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            if msg.method() == DATA {
                let peer = msg.attribute::<XorPeerAddress>().ok()?;
                let data = msg.attribute::<Data>().ok()?;
                return Some((peer.addr(msg.transaction_id()), data.data().to_vec()));
            }
        }
        None
    }
}

/// The ERROR-CODE of a reply; `None` for a success.
fn error_code(reply: &[u8]) -> Option<u16> {
    let msg = Message::from_bytes(reply).unwrap();
    msg.attribute::<ErrorCode>().ok().map(|e| e.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cascade_media_addresses_are_relayed_to() {
    let srv = start().await;
    let server = srv.turn_udp_addr().unwrap();
    let (_, username, credential) = minted(&srv, "dave").await;
    let peer = allowed_peer(&srv);
    let echo = Echo::bind(peer);
    let other_port = Echo::bind(SocketAddr::new(peer.ip(), 0));
    let other_port_addr = other_port.socket_addr();
    let other_ip = Echo::bind("127.0.0.3:0".parse().unwrap());
    let other_ip_addr = other_ip.socket_addr();
    tokio::task::spawn_blocking(move || {
        let client = RawClient::new(server, &username, &credential);
        let reply = client.request(ALLOCATE, |m| {
            m.add_attribute(&RequestedTransport::new(RequestedTransport::UDP))
                .unwrap();
        });
        assert_eq!(error_code(&reply), None, "allocated");
        let msg = Message::from_bytes(&reply).unwrap();
        let relayed = msg
            .attribute::<XorRelayedAddress>()
            .unwrap()
            .addr(msg.transaction_id());
        assert_eq!(relayed.ip().to_string(), "127.0.0.1");

        // Permissions: Cascade's IPs only; 403 for any other, loopback or not.
        for ip in ["127.0.0.3", "10.0.0.1", "192.168.1.1", "169.254.169.254"] {
            let other = SocketAddr::new(ip.parse().unwrap(), 5000);
            assert_eq!(client.create_permission(other), Some(403), "{ip}");
        }
        assert_eq!(client.create_permission(peer), None);

        // Relayed both ways to the allowed peer; nothing to another port of its IP (the
        // permission covers the IP) or to another IP.
        client.send(peer, b"to the media port");
        let (from, data) = client.data_indication().expect("the echo comes back");
        assert_eq!((from, data.as_slice()), (peer, &b"to the media port"[..]));
        client.send(other_port_addr, b"not to another port");
        client.send(other_ip_addr, b"not to another ip");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(echo.received(), 1);
        assert_eq!(other_port.received(), 0, "another port of an allowed IP");
        assert_eq!(other_ip.received(), 0, "another IP");

        // Channels name a port: only the media port.
        assert_eq!(client.channel_bind(0x4000, other_port_addr), Some(403));
        assert_eq!(client.channel_bind(0x4001, other_ip_addr), Some(403));
        assert_eq!(client.channel_bind(0x4002, peer), None);

        // An unsigned request naming a forbidden peer learns nothing but 401.
        let mut m = Message::builder_request(CREATE_PERMISSION, MessageWriteVec::new());
        let id = m.transaction_id();
        m.add_attribute(&XorPeerAddress::new(other_ip_addr, id))
            .unwrap();
        client.socket.send_to(&m.finish(), server).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = client.socket.recv_from(&mut buf).expect("a reply");
        assert_eq!(error_code(&buf[..n]), Some(401));
        drop((echo, other_port, other_ip));
    })
    .await
    .unwrap();
    assert_eq!(srv.state.turn.as_ref().unwrap().allocations(), 1);
    let metrics = server::scrape(srv.http_addr).await;
    assert_eq!(server::sample(&metrics, "cascade_turn_allocations"), 1);
    // 4 permissions, 2 sends, 2 channels, 1 unsigned permission.
    let refused = r#"cascade_turn_refused_total{reason="forbidden_peer"}"#;
    assert_eq!(server::sample(&metrics, refused), 9);
    srv.shutdown().await;
}

impl Echo {
    fn socket_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_secret_one_is_generated_and_its_credentials_work() {
    let srv = server::start_with(|c| {
        turn_config(c);
        c.turn_secret = None;
    })
    .await;
    let generated = srv.state.config.turn_secret.clone().expect("generated");
    assert_eq!(generated.len(), 64, "32 random bytes, hex");
    let server = srv.turn_udp_addr().unwrap();
    let (_, username, credential) = minted(&srv, "erin").await;
    let forged = mint(
        SECRET.as_bytes(),
        "erin",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            allocate(&RawClient::new(server, &username, &credential)),
            None
        );
        // A credential minted with another secret fails MESSAGE-INTEGRITY: 401.
        assert_eq!(
            allocate(&RawClient::new(server, &forged.0, &forged.1)),
            Some(401)
        );
    })
    .await
    .unwrap();
    refused_then_stop(srv, "forged", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_past_the_cap_get_508() {
    let srv = server::start_with(|c| {
        turn_config(c);
        c.turn_max_allocations = 1;
    })
    .await;
    let server = srv.turn_udp_addr().unwrap();
    let (_, username, credential) = minted(&srv, "frank").await;
    tokio::task::spawn_blocking(move || {
        let first = RawClient::new(server, &username, &credential);
        assert_eq!(allocate(&first), None);
        let second = RawClient::new(server, &username, &credential);
        assert_eq!(allocate(&second), Some(508), "past turn_max_allocations");
    })
    .await
    .unwrap();
    refused_then_stop(srv, "capacity", 1).await;
}

/// Allocates with a signed request; the error code, if any.
fn allocate(client: &RawClient) -> Option<u16> {
    let reply = client.request(ALLOCATE, |m| {
        m.add_attribute(&RequestedTransport::new(RequestedTransport::UDP))
            .unwrap();
    });
    error_code(&reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_table_is_bounded_and_starts_afresh_once_no_allocation_is_live() {
    // One allocation allowed: the table holds 1024 usernames (the floor).
    let srv = server::start_with(|c| {
        turn_config(c);
        c.turn_max_allocations = 1;
    })
    .await;
    let server = srv.turn_udp_addr().unwrap();
    let now = SystemTime::now();
    let user = move |i: usize| {
        mint(
            SECRET.as_bytes(),
            &format!("u{i}"),
            Duration::from_secs(600),
            now,
        )
    };
    tokio::task::spawn_blocking(move || {
        let (name, credential) = user(0);
        let holder = RawClient::new(server, &name, &credential);
        assert_eq!(allocate(&holder), None, "a live allocation");
        // 1023 more genuine usernames, in signed Allocate requests from another client (each
        // learnt, then refused for capacity: the one allocation is taken).
        let (name, credential) = user(1);
        let mut flood = RawClient::new(server, &name, &credential);
        for i in 1..1024 {
            let (name, credential) = user(i);
            flood.set_user(&name, &credential);
            assert_eq!(allocate(&flood), Some(508));
        }
        // The table is full and an allocation is live: a new username gets 486.
        let (name, credential) = user(1024);
        let late = RawClient::new(server, &name, &credential);
        assert_eq!(allocate(&late), Some(486));
        // Known usernames still work.
        let (name, credential) = user(5);
        let known = RawClient::new(server, &name, &credential);
        assert_eq!(
            allocate(&known),
            Some(508),
            "known, but past the allocation cap"
        );
        // Once the allocation ends, the next new username starts a fresh server.
        let reply = holder.request(REFRESH, |m| {
            m.add_attribute(&Lifetime::new(0)).unwrap();
        });
        assert_eq!(error_code(&reply), None, "deallocated");
        let (name, credential) = user(1025);
        let fresh = RawClient::new(server, &name, &credential);
        // Its nonce came from the replaced server: 438 Stale Nonce, and a retry with the new
        // server's nonce (as clients do) allocates.
        assert_eq!(allocate(&fresh), Some(438));
        let fresh = RawClient::new(server, &name, &credential);
        assert_eq!(allocate(&fresh), None, "allocated after the fresh start");
    })
    .await
    .unwrap();
    refused_then_stop(srv, "user_table_full", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_address_this_host_does_not_hold_is_relayed_to_the_local_media_socket() {
    // 192.0.2.1 (TEST-NET-1) stands for a 1:1 NAT's public address: no interface holds it, so
    // without translation the relay could not reach it at all in this namespace.
    let public: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let srv = server::start_with(|c| {
        turn_config(c);
        c.public_ips = vec![public];
    })
    .await;
    let server = srv.turn_udp_addr().unwrap();
    let media = SocketAddr::new(public, srv.udp_port());
    let (_, username, credential) = minted(&srv, "grace").await;
    let unknown = || srv.state.media().stats().datagrams_unknown_source;
    let before = unknown();
    tokio::task::spawn_blocking(move || {
        let client = RawClient::new(server, &username, &credential);
        assert_eq!(allocate(&client), None);
        assert_eq!(client.create_permission(media), None);
        client.send(media, b"not STUN: dropped by the media socket as unknown");
    })
    .await
    .unwrap();
    server::eventually(Duration::from_secs(2), "the media socket sees it", || {
        unknown() > before
    })
    .await;
    srv.shutdown().await;
}
