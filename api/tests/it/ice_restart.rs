//! ICE restart over the WebSocket: the client re-offers with new ICE credentials, the server
//! answers on the same peer connection with its own (unchanged) credentials, media continues.

use crate::server;

use std::time::Duration;

use cascade_api::server::ServerHandle;
use cascade_testkit::relay::Relay;
use cascade_testkit::{ClientConfig, ReceivedPacket, TestClient};
use server::clients::{Publisher, VIDEO, join, publisher, track_ids};

const T: Duration = Duration::from_secs(20);

/// The first `a=ice-ufrag` of the client's local or remote description.
async fn ufrag(c: &TestClient, local: bool) -> String {
    let pc = c.peer_connection().await.expect("a peer connection");
    let desc = if local {
        pc.local_description().await
    } else {
        pc.remote_description().await
    };
    let sdp = desc.expect("a description").sdp;
    cascade_sfu::sdp::ice_ufrag(&sdp)
        .expect("an ice-ufrag")
        .to_owned()
}

/// Alice in `room` of `srv`, streaming video; returns her and her track.
async fn alice(srv: &ServerHandle, room: &str) -> (Publisher, String) {
    let token = server::token(room, "alice");
    let alice = publisher(&srv.ws_url(), &token, VIDEO, VIDEO, T).await;
    (alice, track_ids(srv, room, 1, T).await.remove(0))
}

/// Waits until more than 50 packets followed the `seen` first on `track`; asserts that each
/// carries a valid counter (byte-identical payloads) and returns them all.
async fn more_packets(c: &TestClient, track: &str, seen: usize) -> Vec<ReceivedPacket> {
    server::eventually(T, "video after the ICE restart", || {
        c.received(track).len() > seen + 50
    })
    .await;
    let after = c.received(track);
    assert!(after[seen..].iter().all(|g| g.counter().is_some()));
    after
}

/// Asserts that the client saw no signaling error.
#[track_caller]
fn assert_no_signaling_errors(c: &TestClient) {
    assert!(
        c.signaling_errors().is_empty(),
        "{:?}",
        c.signaling_errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_restarts_ice_and_media_continues() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (_alice, track) = alice(&srv, "r").await;
    let bob = join(&url, &server::viewer_token("r", "bob"), true).await;
    bob.wait_for_packets(&track, 10, T).await.unwrap();
    let (bob_ufrag, server_ufrag) = (ufrag(&bob, true).await, ufrag(&bob, false).await);

    for round in 0..2 {
        bob.restart_ice().await.unwrap();
        let new_ufrag = ufrag(&bob, true).await;
        assert_ne!(
            new_ufrag, bob_ufrag,
            "round {round}: the client's credentials change"
        );
        assert_eq!(
            ufrag(&bob, false).await,
            server_ufrag,
            "round {round}: the server keeps its credentials"
        );
        // Byte-identical payloads: every packet after the restart carries a valid counter.
        more_packets(&bob, &track, bob.received(&track).len()).await;
        assert_eq!(bob.connection_state().to_string(), "connected");
    }
    assert_no_signaling_errors(&bob);
    assert_eq!(srv.state.rooms.counts().participants, 2);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_path_changes_restarts_ice_and_media_flows_again() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (_alice, track) = alice(&srv, "m").await;

    // Bob reaches the server through a relay (the server's candidate is rewritten to it).
    let media = std::net::SocketAddr::from(([127, 0, 0, 1], srv.udp_port()));
    let relay = Relay::start(media).await.unwrap();
    let config = ClientConfig {
        rewrite_server_sdp: Some((
            format!("127.0.0.1 {} typ", media.port()),
            format!("127.0.0.1 {} typ", relay.front().port()),
        )),
        ..ClientConfig::default()
    };
    let bob = TestClient::connect_with(&url, config).await.unwrap();
    bob.join(&server::viewer_token("m", "bob"), true)
        .await
        .unwrap();
    bob.wait_for_packets(&track, 10, T).await.unwrap();

    // Bob's path changes: the server now sees him at another address, the old one is dead.
    let old = relay.upstream();
    relay.change_path().await.unwrap();
    assert_ne!(relay.upstream(), old);
    // Media towards the old address is lost until bob restarts ICE.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = bob.received(&track).len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lost = bob.received(&track).len() - before;
    bob.restart_ice().await.unwrap();
    let seen = bob.received(&track).len();
    let after = more_packets(&bob, &track, seen).await;
    // Counters continue where the publisher is, byte-identical payloads.
    let last = after.last().unwrap().counter().unwrap();
    assert!(last > after[seen].counter().unwrap());
    eprintln!("packets received on the dead path: {lost}");
    assert_no_signaling_errors(&bob);
    srv.shutdown().await;
}
