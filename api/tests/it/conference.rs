//! Conference: every participant publishes Opus and VP8 and receives every other's tracks.

use crate::server;

use std::collections::BTreeMap;
use std::time::Duration;

use server::clients::{AV, publisher, room_tracks};

const T: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_party_conference_forwards_byte_identical_payloads_without_gaps() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let names = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for name in names {
        clients.push(publisher(&url, &server::token("conf", name), AV, AV, T).await);
    }
    // Each participant's tracks, by publisher id, from the others' point of view.
    let mut tracks_of: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for t in room_tracks(&srv, "conf", 6, T).await {
        tracks_of
            .entry(t.participant.clone())
            .or_default()
            .push((t.id.clone(), format!("{:?}", t.kind)));
    }
    for (i, c) in clients.iter().enumerate() {
        let others: Vec<_> = tracks_of
            .iter()
            .filter(|(p, _)| **p != c.id)
            .flat_map(|(_, v)| v.clone())
            .collect();
        assert_eq!(others.len(), 4, "{} should receive 4 tracks", names[i]);
        for (track, kind) in others {
            let pkts = c
                .client
                .wait_for_packets(&track, 30, T)
                .await
                .unwrap_or_else(|e| panic!("{} got no {kind} on {track}: {e:#}", names[i]));
            // Payload counters increase by exactly one: byte-identical, no gaps.
            let counters: Vec<u32> = pkts
                .iter()
                .filter(|p| !p.duplicate)
                .map(|p| p.counter().unwrap())
                .collect();
            for w in counters.windows(2) {
                assert_eq!(w[1], w[0] + 1, "{} {kind} gap: {counters:?}", names[i]);
            }
            let seqs: Vec<u16> = pkts
                .iter()
                .filter(|p| !p.duplicate)
                .map(|p| p.seq)
                .collect();
            for w in seqs.windows(2) {
                assert_eq!(w[1], w[0].wrapping_add(1), "{} {kind} seq gap", names[i]);
            }
            for p in &pkts {
                assert_eq!(
                    p.payload,
                    cascade_testkit::payload::payload_for(p.kind, p.counter().unwrap()),
                    "payload differs"
                );
            }
        }
    }
    for c in &mut clients {
        c.pumps.clear();
    }
    srv.shutdown().await;
}
