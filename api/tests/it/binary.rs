//! The `cascade` binary: token minting, start-up banner (text and JSON), graceful drain and
//! exit on SIGTERM, exit at once on a second SIGTERM.

use crate::server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cascade_testkit::TestClient;
use server::clients::{assert_told_to_leave, join};
use server::rest::assert_subscribe_only_token;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_cascade");
const T: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn token_command_prints_a_verifiable_token() {
    let out = Command::new(BIN)
        .args([
            "token",
            "--room",
            "r1",
            "--identity",
            "ida",
            "--no-publish",
            "--ttl",
            "1h",
        ])
        .env("CASCADE_API_KEY", server::KEY)
        .env("CASCADE_API_SECRET", server::SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let (key, secret) = (server::KEY, server::SECRET);
    assert_subscribe_only_token(token.trim(), key, secret, "ida", "r1");
}

/// A running `cascade` on loopback with ephemeral UDP, and its stderr lines.
struct Running {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    http: u16,
    /// Lines of stderr read so far.
    stderr: Vec<String>,
}

impl Running {
    /// Starts the binary with `extra` environment and waits for its "cascade serving" line.
    async fn start(extra: &[(&str, &str)]) -> Self {
        let http = free_port();
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env("CASCADE_HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("CASCADE_UDP_PORT", "0")
            .env("CASCADE_API_KEY", server::KEY)
            .env("CASCADE_API_SECRET", server::SECRET)
            .env("CASCADE_PUBLIC_IP", "127.0.0.1")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut running = Self {
            child,
            lines,
            http,
            stderr: Vec::new(),
        };
        running.read_until("cascade serving").await;
        running
    }

    /// Reads stderr until a line contains `needle`.
    async fn read_until(&mut self, needle: &str) {
        let found = tokio::time::timeout(T, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                self.stderr.push(line.clone());
                if line.contains(needle) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            found == Ok(true),
            "no line with {needle:?}; stderr so far:\n{}",
            self.stderr.join("\n")
        );
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.http)
    }

    fn sigterm(&self) {
        let pid = self.child.id().unwrap() as i32;
        assert_eq!(unsafe { libc_kill(pid, 15) }, 0);
    }

    /// `GET /readyz`: status and body.
    async fn readyz(&self) -> (u16, String) {
        let res = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.http))
            .await
            .unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// Starts the binary with `drain_timeout`, and a participant "x" that joined room "bin".
    async fn with_participant(drain_timeout: &str) -> (Self, TestClient) {
        let srv = Self::start(&[("CASCADE_DRAIN_TIMEOUT", drain_timeout)]).await;
        let c = join(&srv.ws_url(), &server::token("bin", "x"), true).await;
        (srv, c)
    }

    /// Sends SIGTERM and waits until the server says it is draining.
    async fn drain(&mut self) {
        self.sigterm();
        self.read_until("draining").await;
    }

    /// Waits for a successful exit (at most 8 s).
    async fn exits_cleanly(&mut self) {
        let status = self.wait_exit(Duration::from_secs(8)).await;
        assert!(status.success(), "{status:?}");
    }

    /// Waits for the exit (at most `limit`), then reads the rest of stderr.
    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {limit:?}"))
            .unwrap();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(2), self.lines.next_line()).await
        {
            self.stderr.push(line);
        }
        status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_then_drains_on_sigterm_and_tells_participants_at_the_drain_timeout() {
    let (mut srv, c) = Running::with_participant("1s").await;
    let banner = srv.stderr.join("\n");
    assert!(
        banner.contains(&format!("http://127.0.0.1:{}/", srv.http)),
        "{banner}"
    );
    assert!(banner.contains("/ws"), "{banner}");
    // The banner tells where the UDP socket is really bound: loopback, the ephemeral port.
    let udp = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("UDP media:"))
        .unwrap_or_else(|| panic!("no UDP line in {banner}"))
        .trim()
        .to_owned();
    assert!(udp.starts_with("127.0.0.1:"), "{udp}");
    assert!(udp.contains("(loopback only)"), "{udp}");
    assert!(!banner.contains("all interfaces"), "{banner}");
    let port = udp
        .split(['(', ' '])
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert!(
        banner.contains(&format!(
            "ICE-TCP:    TCP port {port}, for clients without UDP"
        )),
        "ICE-TCP on by default, on the media port's number: {banner}"
    );
    assert!(
        banner.contains("WARNING: serving plain HTTP"),
        "an operator secret without TLS is warned about: {banner}"
    );
    let port: u16 = udp["127.0.0.1:".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
        "{port} is bound"
    );

    assert_eq!(srv.readyz().await, (200, "ready".into()));
    let sent = Instant::now();
    // Draining: not ready, but still serving the participant until the 1 s drain timeout.
    srv.drain().await;
    assert_eq!(srv.readyz().await, (503, "draining".into()));
    assert_told_to_leave(&c, "server_shutdown", T).await;
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "told to leave before the drain timeout"
    );
    srv.exits_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drain_exits_when_the_last_participant_leaves() {
    let (mut srv, c) = Running::with_participant("60s").await;
    srv.drain().await;
    assert_eq!(srv.readyz().await, (503, "draining".into()));
    let late = TestClient::connect(&srv.ws_url()).await.unwrap();
    let refused = late
        .join(&server::token("bin", "y"), true)
        .await
        .unwrap_err();
    assert_eq!(refused.code, "server_draining");
    // Still serving the participant a while later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(srv.child.try_wait().unwrap().is_none(), "exited early");
    assert_eq!(srv.readyz().await.0, 503);
    c.leave().await.unwrap();
    srv.exits_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once() {
    let (mut srv, _c) = Running::with_participant("60s").await;
    srv.drain().await;
    let sent = Instant::now();
    srv.sigterm();
    let status = srv.wait_exit(Duration::from_secs(3)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "a cut-short drain is not a clean exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_writes_only_json_lines() {
    // With the development secret, so that its warning is logged too.
    let mut srv = Running::start(&[
        ("CASCADE_LOG_FORMAT", "json"),
        ("CASCADE_API_KEY", ""),
        ("CASCADE_API_SECRET", ""),
    ])
    .await;
    let c = TestClient::connect(&srv.ws_url()).await.unwrap();
    let token = cascade_api::auth::mint(
        cascade_api::config::DEFAULT_API_KEY,
        cascade_api::config::DEFAULT_API_SECRET,
        "x",
        cascade_api::auth::Grants::new("bin"),
        Duration::from_secs(60),
        std::time::SystemTime::now(),
    )
    .unwrap();
    c.join(&token, true).await.unwrap();
    c.leave().await.unwrap();
    srv.sigterm();
    srv.exits_cleanly().await;
    let mut events = Vec::new();
    for line in &srv.stderr {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {line:?}\nstderr:\n{}",
                srv.stderr.join("\n")
            )
        });
        events.push(v);
    }
    let serving = events
        .iter()
        .find(|e| e["fields"]["message"] == "cascade serving")
        .expect("the serving event");
    let udp = serving["fields"]["udp"].as_str().unwrap();
    assert!(
        udp.starts_with("127.0.0.1:") && !udp.ends_with(":0"),
        "{serving}"
    );
    assert_eq!(serving["fields"]["udp_interfaces"], "loopback only");
    assert_eq!(serving["fields"]["ice_tcp"], true);
    assert_eq!(
        serving["fields"]["http"],
        format!("http://127.0.0.1:{}/", srv.http)
    );
    assert!(
        events.iter().any(|e| e["level"] == "WARN"
            && e["fields"]["api_key"] == cascade_api::config::DEFAULT_API_KEY),
        "the development-secret warning is an event"
    );
    assert!(
        events.len() >= 4,
        "start, join, drain and stop are logged: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banner_shows_the_public_url_and_the_generated_certificate() {
    let mut srv = Running::start(&[
        ("CASCADE_TLS_SELF_SIGNED", "true"),
        ("CASCADE_PUBLIC_URL", "https://sfu.example.com"),
    ])
    .await;
    let banner = srv.stderr.join("\n");
    let line = |label: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} line in {banner}"))
            .trim()
            .to_owned()
    };
    assert_eq!(line("Open:"), "https://sfu.example.com");
    assert_eq!(
        line("Listening:"),
        format!("https://127.0.0.1:{}/", srv.http)
    );
    assert_eq!(
        line("WebSocket:"),
        format!("wss://127.0.0.1:{}/ws", srv.http)
    );
    assert!(line("TLS:").starts_with("self-signed"), "{banner}");
    let fingerprint = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("SHA-256 "))
        .expect("the fingerprint");
    assert_eq!(fingerprint.len(), 95, "{fingerprint}");
    assert!(
        banner.contains("NET::ERR_CERT_AUTHORITY_INVALID"),
        "{banner}"
    );
    assert!(
        banner.contains("--ignore-certificate-errors-spki-list="),
        "{banner}"
    );
    assert!(!banner.contains("plain HTTP"), "{banner}");
    srv.sigterm();
    srv.exits_cleanly().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_files() {
    let dir = std::env::temp_dir().join(format!("cascade-bin-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write_pair = || {
        let key_pair = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let pem = params.self_signed(&key_pair).unwrap().pem();
        std::fs::write(&cert, pem).unwrap();
        std::fs::write(&key, key_pair.serialize_pem()).unwrap();
    };
    write_pair();
    let mut srv = Running::start(&[
        ("CASCADE_TLS_CERT", cert.to_str().unwrap()),
        ("CASCADE_TLS_KEY", key.to_str().unwrap()),
    ])
    .await;
    let banner = srv.stderr.join("\n");
    assert!(
        banner.contains("(reloaded on change or SIGHUP)"),
        "{banner}"
    );
    let pid = srv.child.id().unwrap() as i32;
    assert_eq!(unsafe { libc_kill(pid, 1) }, 0);
    srv.read_until("TLS certificate reloaded").await;
    assert!(
        srv.stderr.last().unwrap().contains("SIGHUP"),
        "{:?}",
        srv.stderr.last()
    );
    srv.sigterm();
    srv.exits_cleanly().await;
    let _ = std::fs::remove_dir_all(&dir);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Opens a WebSocket to `/ws` (the handshake only) and leaves it idle.
async fn idle_websocket(http: u16) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", http))
        .await
        .unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "closed during the handshake"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_costs_little_memory() {
    // tungstenite's default 128 KiB read buffer made it ~142 KiB per idle WebSocket.
    const N: usize = 500;
    let srv = Running::start(&[
        ("CASCADE_MAX_CONNECTIONS_PER_IP", "0"),
        ("CASCADE_WORKERS", "1"),
    ])
    .await;
    let pid = srv.child.id().unwrap();
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(idle_websocket(srv.http).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut sockets = Vec::new();
    for _ in 0..N {
        sockets.push(idle_websocket(srv.http).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_socket = (rss_kib(pid).saturating_sub(before)) as f64 / N as f64;
    assert!(
        per_socket < 48.0,
        "{per_socket:.1} KiB of RSS per idle WebSocket (expected about 15)"
    );
}
