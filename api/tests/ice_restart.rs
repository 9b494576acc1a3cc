//! ICE restart over the WebSocket: the client re-offers with new ICE credentials, the server
//! answers on the same peer connection with its own (unchanged) credentials, media continues.

mod server;

use std::time::Duration;

use cascade_testkit::relay::Relay;
use cascade_testkit::{ClientConfig, MediaKind, TestClient};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_restarts_ice_and_media_continues() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let alice = TestClient::connect(&url).await.unwrap();
    alice
        .join(&server::token("r", "alice"), true)
        .await
        .unwrap();
    let p = alice.publish(false, true).await.unwrap();
    alice.wait_connected(T).await.unwrap();
    let _pump = p
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    server::eventually(T, "alice's track", || {
        srv.state.rooms.tracks("r").len() == 1
    })
    .await;
    let track = srv.state.rooms.tracks("r")[0].id.clone();

    let bob = TestClient::connect(&url).await.unwrap();
    bob.join(&server::viewer_token("r", "bob"), true)
        .await
        .unwrap();
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
        let seen = bob.received(&track).len();
        server::eventually(T, "video after the ICE restart", || {
            bob.received(&track).len() > seen + 50
        })
        .await;
        // Byte-identical payloads: every packet after the restart carries a valid counter.
        let after = bob.received(&track);
        assert!(after[seen..].iter().all(|g| g.counter().is_some()));
        assert_eq!(bob.connection_state().to_string(), "connected");
    }
    assert!(
        bob.signaling_errors().is_empty(),
        "{:?}",
        bob.signaling_errors()
    );
    assert_eq!(srv.state.rooms.counts().participants, 2);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_path_changes_restarts_ice_and_media_flows_again() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let alice = TestClient::connect(&url).await.unwrap();
    alice
        .join(&server::token("m", "alice"), true)
        .await
        .unwrap();
    let p = alice.publish(false, true).await.unwrap();
    alice.wait_connected(T).await.unwrap();
    let _pump = p
        .pump(MediaKind::Video, 0, 100_000, Duration::from_millis(10))
        .unwrap();
    server::eventually(T, "alice's track", || {
        srv.state.rooms.tracks("m").len() == 1
    })
    .await;
    let track = srv.state.rooms.tracks("m")[0].id.clone();

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
    server::eventually(T, "video on the new path", || {
        bob.received(&track).len() > seen + 50
    })
    .await;
    let after = bob.received(&track);
    assert!(after[seen..].iter().all(|g| g.counter().is_some()));
    // Counters continue where the publisher is, byte-identical payloads.
    let last = after.last().unwrap().counter().unwrap();
    assert!(last > after[seen].counter().unwrap());
    eprintln!("packets received on the dead path: {lost}");
    assert!(
        bob.signaling_errors().is_empty(),
        "{:?}",
        bob.signaling_errors()
    );
    srv.shutdown().await;
}
