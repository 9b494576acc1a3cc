//! The `cascade` binary: token minting, start-up banner, graceful exit on SIGTERM.

mod server;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::TestClient;
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
    let claims = cascade_api::auth::verify(
        token.trim(),
        server::KEY,
        server::SECRET,
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.video.room.as_str()),
        ("ida", "r1")
    );
    assert!(!claims.video.can_publish && claims.video.can_subscribe);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_then_exits_within_five_seconds_of_sigterm_telling_participants() {
    let http = free_port();
    let mut child = tokio::process::Command::new(BIN)
        .env("CASCADE_HTTP_ADDR", format!("127.0.0.1:{http}"))
        .env("CASCADE_UDP_PORT", "0")
        .env("CASCADE_API_KEY", server::KEY)
        .env("CASCADE_API_SECRET", server::SECRET)
        .env("CASCADE_PUBLIC_IP", "127.0.0.1")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The banner names the URLs; wait for the server to say it is serving.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut banner = String::new();
    tokio::time::timeout(T, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("cascade serving") {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no start-up line; stderr so far:\n{banner}"));
    assert!(
        banner.contains(&format!("http://127.0.0.1:{http}/")),
        "{banner}"
    );
    assert!(banner.contains("/ws"), "{banner}");

    let c = TestClient::connect(&format!("ws://127.0.0.1:{http}/ws"))
        .await
        .unwrap();
    c.join(&server::token("bin", "x"), true).await.unwrap();
    let pid = child.id().unwrap() as i32;
    let sent = Instant::now();
    assert_eq!(unsafe { libc_kill(pid, 15) }, 0);
    let leave = c.next_message_of_type("leave", T).await.unwrap();
    assert_eq!(leave["reason"], "server_shutdown");
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let status = status.expect("exited within 5 s").unwrap();
    assert!(status.success(), "{status:?}");
    assert!(sent.elapsed() < Duration::from_secs(5));
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
