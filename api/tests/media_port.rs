//! The shared media port under attack (issue 9, finding 3) and the candidates of answers
//! (finding 8g): a forged STUN binding request (a real session's server ufrag, a wrong
//! MESSAGE-INTEGRITY) binds nothing, and the junk sent after it is dropped and counted as
//! from an unknown source; junk from a *bound* address reaches the peer, but the log lines it
//! makes the media path write are rate-limited (counted in a metric instead). Answers over
//! WebSocket and WHIP carry component-1 candidates only, in every active m-section.
//! Run in a network namespace (`unshare -n`), like every networked test.

mod server;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use cascade_sfu::log_limit::{LINES_PER_INTERVAL, MediaLogLimit, is_media_path};
use cascade_sfu::net::demux::binding_request;
use cascade_testkit::TestClient;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

const T: Duration = Duration::from_secs(10);
/// Junk datagrams per phase.
const JUNK: u64 = 5000;

/// Counts the media-path events the server's own threads (`cascade-…`) get to log.
struct ServerLines(Arc<AtomicU64>);

impl<S: Subscriber> Layer<S> for ServerLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        use tracing_log::NormalizeEvent;
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let server_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("cascade-"));
        if server_thread && is_media_path(meta.target()) {
            self.0.fetch_add(1, Relaxed);
        }
    }
}

/// The value of one sample line of `/metrics` (0 if absent).
async fn metric(addr: SocketAddr, sample: &str) -> u64 {
    server::find_sample(&server::scrape(addr).await, sample).unwrap_or(0)
}

/// The value of `a=<attr>:` in an SDP.
fn attr<'a>(sdp: &'a str, attr: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(&format!("a={attr}:")))
        .unwrap_or_else(|| panic!("no a={attr} in:\n{sdp}"))
}

/// Every candidate is component 1, and every active m-section carries the same ones.
fn assert_candidates_everywhere(what: &str, sdp: &str) {
    let sections: Vec<&str> = sdp.split("\nm=").skip(1).collect();
    assert!(
        sections.len() >= 2,
        "{what}: audio and video sections:\n{sdp}"
    );
    let candidates = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .map(|l| l.trim_end().to_owned())
            .collect()
    };
    let first = candidates(sections[0]);
    assert!(!first.is_empty(), "{what}: candidates in the first section");
    for c in &first {
        assert_eq!(c.split(' ').nth(1), Some("1"), "{what}: component of {c}");
    }
    for s in &sections {
        if s.split(' ').nth(1) != Some("0") {
            assert_eq!(candidates(s), first, "{what}: section m={s}");
        }
    }
}

/// Junk of the kinds a peer's stack would try to parse: RTP/RTCP-like, DTLS-like, STUN-like.
fn junk(i: u64) -> Vec<u8> {
    let first = [0x80u8, 0x81, 0x16, 0x17, 0x00, 0xC8][(i % 6) as usize];
    let mut d = vec![first, 0x60, (i >> 8) as u8, i as u8];
    d.extend(std::iter::repeat_n(0xA5u8, 60 + (i % 40) as usize));
    d
}

/// Sends `n` junk datagrams, paced so that the kernel keeps them all.
async fn send_junk(socket: &UdpSocket, to: SocketAddr, n: u64) {
    for i in 0..n {
        socket.send_to(&junk(i), to).unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stun_binds_nothing_and_junk_logs_stay_bounded() {
    let lines = Arc::new(AtomicU64::new(0));
    tracing_subscriber::registry()
        .with(LevelFilter::DEBUG)
        .with(MediaLogLimit::default())
        .with(ServerLines(lines.clone()))
        .try_init()
        .expect("the only subscriber of this test binary");

    let srv = server::start().await;
    let client = TestClient::connect(&srv.ws_url()).await.unwrap();
    client
        .join(&server::token("port", "alice"), true)
        .await
        .unwrap();
    client.publish(true, true).await.unwrap();
    let pc = client.ensure_peer_connection().await.unwrap();
    let answer = pc.remote_description().await.expect("an answer").sdp;
    assert_candidates_everywhere("WebSocket answer", &answer);

    // The same offer over WHIP.
    let offer = pc.local_description().await.expect("an offer").sdp;
    let client_ufrag = attr(&offer, "ice-ufrag").to_owned();
    let whip = reqwest::Client::new()
        .post(format!("http://{}/whip/port-whip", srv.http_addr))
        .bearer_auth(server::token("port-whip", "whip"))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(whip.status(), 201);
    assert_candidates_everywhere("WHIP answer", &whip.text().await.unwrap());

    let (ufrag, pwd) = (attr(&answer, "ice-ufrag"), attr(&answer, "ice-pwd"));
    let port = SocketAddr::from(([127, 0, 0, 1], srv.udp_port()));
    let unknown = r#"cascade_media_dropped_datagrams_total{reason="unknown_source"}"#;
    let suppressed = "cascade_log_lines_suppressed_total";

    // A forged binding request (known ufrag, wrong password), then junk: nothing is bound,
    // everything is dropped as from an unknown source, almost nothing is logged.
    let forger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let before = metric(srv.http_addr, unknown).await;
    let lines_before = lines.load(Relaxed);
    forger
        .send_to(
            &binding_request(&format!("{ufrag}:forged"), "wrong-password"),
            port,
        )
        .unwrap();
    send_junk(&forger, port, JUNK).await;
    let deadline = tokio::time::Instant::now() + T;
    while metric(srv.http_addr, unknown).await < before + JUNK + 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forged request and all the junk after it count as from an unknown source: {}",
            metric(srv.http_addr, unknown).await - before
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logged = lines.load(Relaxed) - lines_before;
    eprintln!("forged binding request + {JUNK} junk datagrams: {logged} media-path lines");
    assert!(
        logged <= 2 * u64::from(LINES_PER_INTERVAL),
        "{logged} lines for {JUNK} junk datagrams"
    );

    // A binding request signed with the right password binds; the junk after it reaches the
    // peer, which drops it with at most a rate-limited line per call site.
    let member = UdpSocket::bind("127.0.0.1:0").unwrap();
    let suppressed_before = metric(srv.http_addr, suppressed).await;
    let unknown_before = metric(srv.http_addr, unknown).await;
    let lines_before = lines.load(Relaxed);
    member
        .send_to(
            &binding_request(&format!("{ufrag}:{client_ufrag}"), pwd),
            port,
        )
        .unwrap();
    let mut response = [0u8; 1500];
    member.set_read_timeout(Some(T)).unwrap();
    let (n, _) = member.recv_from(&mut response).expect("a binding response");
    assert_eq!(&response[..2], &[0x01, 0x01], "binding success ({n} bytes)");
    send_junk(&member, port, JUNK).await;
    // The peer handles its datagrams in order: an answer to a check sent after the junk means
    // every junk datagram reached it, and that the junk left it working.
    member
        .send_to(
            &binding_request(&format!("{ufrag}:{client_ufrag}"), pwd),
            port,
        )
        .unwrap();
    let (n, _) = member
        .recv_from(&mut response)
        .expect("the peer still answers after the junk");
    assert_eq!(&response[..2], &[0x01, 0x01], "binding success ({n} bytes)");
    assert_eq!(
        metric(srv.http_addr, unknown).await,
        unknown_before,
        "a bound address is not an unknown source"
    );
    let logged = lines.load(Relaxed) - lines_before;
    eprintln!(
        "verified binding request + {JUNK} junk datagrams: {logged} media-path lines, {} \
         suppressed",
        metric(srv.http_addr, suppressed).await - suppressed_before
    );
    // At most a handful of call sites complain (each at most LINES_PER_INTERVAL lines per
    // window, twice if a window turns over): far fewer lines than datagrams.
    assert!(
        logged <= JUNK / 10,
        "{logged} lines for {JUNK} junk datagrams"
    );
    srv.shutdown().await;
}
