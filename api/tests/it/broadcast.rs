//! Broadcast: one publisher, many subscribe-only viewers.

use crate::server;

use std::time::Duration;

use server::clients::{AV, join, publisher, track_ids};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_viewers_receive_and_a_viewer_cannot_publish() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let _host = publisher(&url, &server::token("show", "host"), AV, AV, T).await;
    let tracks = track_ids(&srv, "show", 2, T).await;

    let mut viewers = Vec::new();
    for i in 0..20 {
        let token = server::viewer_token("show", &format!("viewer{i}"));
        viewers.push(join(&url, &token, true).await);
    }
    for (i, v) in viewers.iter().enumerate() {
        for t in &tracks {
            v.wait_for_packets(t, 10, T)
                .await
                .unwrap_or_else(|e| panic!("viewer{i} on {t}: {e:#}"));
        }
    }

    // A viewer tries to publish: refused with permission_denied, and it keeps viewing.
    let v = &viewers[0];
    let err = v
        .publish(false, true)
        .await
        .err()
        .expect("publishing must be refused");
    assert!(format!("{err:#}").contains("permission_denied"), "{err:#}");
    let before = v.received(&tracks[1]).len();
    server::eventually(T, "viewing continues", || {
        v.received(&tracks[1]).len() > before + 20
    })
    .await;
    assert_eq!(
        srv.state.rooms.tracks("show").len(),
        2,
        "the viewer published nothing"
    );
    srv.shutdown().await;
}
