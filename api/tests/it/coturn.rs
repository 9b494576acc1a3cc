//! A real coturn (`turnserver` with `use-auth-secret`) accepts the TURN credentials a Cascade
//! server mints into `joined.ice_servers`: `turnutils_uclient` allocates a relay with them and
//! exchanges packets through it; an expired or a forged credential is refused.
//!
//! Needs coturn's `turnserver` and `turnutils_uclient` (`.ci/run` installs the `coturn`
//! package). Without them the test is skipped with a message, unless `CASCADE_REQUIRE_TOOLS`
//! is set (`.ci/run` sets it): then it fails.

use crate::server;

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cascade_testkit::TestClient;
use server::token;

const SECRET: &str = "shared-with-coturn";
/// How long one `turnutils_uclient` run may take (a successful one takes about 5 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// coturn's listening port is the first free one from here, and its relay ports are
/// [`RELAY_PORTS`]: both outside Linux's ephemeral range (32768-60999), where the other tests of
/// this binary bind their sockets, so that none of them can take coturn's ports meanwhile.
const FIRST_PORT: u16 = 62_000;
const RELAY_PORTS: (u16, u16) = (61_000, 61_999);

/// The first port from [`FIRST_PORT`] free on 127.0.0.1 for both UDP and TCP.
fn free_fixed_port() -> u16 {
    (FIRST_PORT..FIRST_PORT + 1000)
        .find(|&p| {
            UdpSocket::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p)).is_ok()
        })
        .expect("a free port for coturn")
}

/// Whether a STUN Binding request to 127.0.0.1:`port` over UDP is answered (coturn is up).
fn answers_stun(port: u16) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Binding request: type 0x0001, no attributes, the magic cookie, a transaction id.
    let mut request = [0u8; 20];
    request[..2].copy_from_slice(&1u16.to_be_bytes());
    request[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    request[8..].copy_from_slice(b"cascade-test");
    if socket.send_to(&request, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    // A Binding success response (0x0101) with our transaction id.
    matches!(socket.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[..2] == [0x01, 0x01] && buf[8..20] == request[8..])
}

/// A `turnserver` on 127.0.0.1 with `use-auth-secret`, killed on drop.
struct Coturn {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Coturn {
    /// Starts coturn with [`SECRET`] and waits until it listens; `None` if it is not installed
    /// and `CASCADE_REQUIRE_TOOLS` is unset.
    fn start() -> Option<Self> {
        let port = free_fixed_port();
        let dir = std::env::temp_dir().join(format!("cascade-coturn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("turnserver.log")).unwrap();
        let spawned = Command::new("turnserver")
            .args([
                "-n",
                "--use-auth-secret",
                "--realm=cascade",
                "--no-tls",
                "--no-dtls",
            ])
            .arg(format!("--static-auth-secret={SECRET}"))
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={}", RELAY_PORTS.0))
            .arg(format!("--max-port={}", RELAY_PORTS.1))
            // turnutils_uclient's peers are on loopback too.
            .args(["--allow-loopback-peers", "--no-cli", "--log-file=stdout"])
            .arg(format!(
                "--pidfile={}",
                dir.join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .stdout(log)
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && std::env::var_os("CASCADE_REQUIRE_TOOLS").is_none() =>
            {
                eprintln!(
                    "SKIPPED: coturn's `turnserver` is not installed (apt-get install coturn); \
                     with CASCADE_REQUIRE_TOOLS set (.ci/run) this test fails instead"
                );
                return None;
            }
            Err(e) => panic!("cannot start turnserver (apt-get install coturn): {e}"),
        };
        let coturn = Self { child, dir, port };
        // Up when it answers STUN on the UDP port the clients use.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_stun(port) {
            assert!(
                Instant::now() < deadline,
                "turnserver does not listen:\n{}",
                coturn.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(coturn)
    }

    /// What `turnserver` has logged.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turnserver.log")).unwrap_or_default()
    }

    /// What the last `turnutils_uclient` run printed.
    fn client_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("uclient.log")).unwrap_or_default()
    }

    /// Whether `turnutils_uclient` allocates a relay with `username` and `credential` and
    /// exchanges packets through it (UDP, client to client).
    fn relays(&self, username: &str, credential: &str) -> bool {
        let out = std::fs::File::create(self.dir.join("uclient.log")).unwrap();
        let mut client = Command::new("turnutils_uclient")
            .args(["-y", "-n", "3", "-p", &self.port.to_string()])
            .args(["-u", username, "-w", credential, "127.0.0.1"])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("turnutils_uclient (coturn) runs");
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        loop {
            if let Some(status) = client.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = client.kill();
                let _ = client.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coturn_accepts_minted_credentials_and_refuses_expired_or_forged_ones() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let turn_url = format!("turn:127.0.0.1:{}?transport=udp", coturn.port);
    let srv = server::start_with(|c| {
        c.turn_secret = Some(SECRET.into());
        c.turn_urls = vec![turn_url.clone()];
    })
    .await;
    let client = TestClient::connect(&srv.ws_url()).await.unwrap();
    let joined = client.join(&token("relay", "alice"), false).await.unwrap();
    let turn = &joined["ice_servers"][0];
    assert_eq!(turn["urls"][0], turn_url.as_str());
    let username = turn["username"].as_str().unwrap().to_owned();
    let credential = turn["credential"].as_str().unwrap().to_owned();

    let (expired, (_, forged)) = server::bad_turn_credentials(SECRET, "alice");

    let coturn = tokio::task::spawn_blocking(move || {
        assert!(
            coturn.relays(&username, &credential),
            "coturn refused the minted credential:\n{}\nturnutils_uclient:\n{}",
            coturn.log(),
            coturn.client_log()
        );
        assert!(!coturn.relays(&expired.0, &expired.1), "expired accepted");
        assert!(!coturn.relays(&username, &forged), "forged accepted");
        coturn
    })
    .await
    .unwrap();
    drop(coturn);
    client.close().await.unwrap();
    srv.shutdown().await;
}
