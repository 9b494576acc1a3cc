//! IPv6: a webrtc-rs client bound to `::1` (IPv6 only) exchanges media with an IPv4 client
//! through one dual-stack media port, and through an IPv6-only one; payloads byte-identical.

use crate::server;

use std::net::SocketAddr;
use std::time::Duration;

use cascade_testkit::peer::PeerOptions;
use cascade_testkit::{ClientConfig, MediaKind, TestClient};
use server::clients::{Publisher, VIDEO, participant_id, publish, stream};

const T: Duration = Duration::from_secs(15);

/// Joins `room` over `url` as `name`, its peer connection bound to `udp_addr` only, and
/// publishes a video stream.
async fn publisher_at(url: &str, room: &str, name: &str, udp_addr: &str) -> Publisher {
    let config = ClientConfig {
        peer: PeerOptions {
            udp_addr: udp_addr.into(),
            ..PeerOptions::default()
        },
        ..ClientConfig::default()
    };
    let client = TestClient::connect_with(url, config).await.unwrap();
    let joined = client.join(&server::token(room, name), true).await.unwrap();
    let published = publish(&client, VIDEO, T).await;
    let pumps = stream(&published, VIDEO);
    Publisher {
        client,
        id: participant_id(&joined),
        published,
        pumps,
    }
}

/// Each of `a` and `b` receives 30 packets of the other's video, byte-identical.
async fn exchange(
    srv: &cascade_api::server::ServerHandle,
    room: &str,
    a: &Publisher,
    b: &Publisher,
) {
    for (to, from) in [(a, b), (b, a)] {
        let track = server::clients::track_of(srv, room, &from.id, T).await;
        let pkts = to
            .client
            .wait_for_packets(&track, 30, T)
            .await
            .unwrap_or_else(|e| panic!("no video from {}: {e:#}", from.id));
        for p in pkts.iter().filter(|p| !p.duplicate) {
            let counter = p.counter().unwrap();
            assert_eq!(
                p.payload,
                cascade_testkit::payload::payload_for(MediaKind::Video, counter),
                "payload differs"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv4_and_an_ipv6_client_share_one_dual_stack_media_port() {
    let srv = server::start_with(|c| {
        // Not a loopback HTTP address: the media port is on every address, `[::]`.
        c.http_addr = "0.0.0.0:0".parse().unwrap();
        c.public_ips = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    })
    .await;
    let udp = srv.udp_addr();
    assert!(udp.is_ipv6() && udp.ip().is_unspecified(), "{udp}");
    let url = format!("ws://127.0.0.1:{}/ws", srv.http_addr.port());
    let four = publisher_at(&url, "ds", "four", "127.0.0.1:0").await;
    let six = publisher_at(&url, "ds", "six", "[::1]:0").await;
    exchange(&srv, "ds", &four, &six).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_meet_on_an_ipv6_loopback_server() {
    let srv = server::start_with(|c| {
        c.http_addr = "[::1]:0".parse().unwrap();
        c.public_ips = Vec::new();
    })
    .await;
    assert_eq!(
        srv.udp_addr().ip(),
        "::1".parse::<std::net::IpAddr>().unwrap(),
        "on loopback HTTP, media is on the same loopback address"
    );
    assert_eq!(
        srv.state.media().candidates(),
        [SocketAddr::new(
            "::1".parse().unwrap(),
            srv.udp_addr().port()
        )],
        "the bound address is the candidate"
    );
    let url = srv.ws_url();
    let a = publisher_at(&url, "six", "a", "[::1]:0").await;
    let b = publisher_at(&url, "six", "b", "[::1]:0").await;
    exchange(&srv, "six", &a, &b).await;
}
