//! Webhooks: a local receiver gets every event type, signed; failed deliveries are retried;
//! a dead receiver slows neither joining nor media.

use crate::server;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cascade_testkit::{MediaKind, TestClient};
use hmac::{Hmac, Mac};
use serde_json::Value;
use server::clients::{AV, Publisher, join, publish, publisher, room_tracks, stream};
use sha2::Sha256;

const T: Duration = Duration::from_secs(15);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Vec<u8>,
    json: Value,
    /// The status the receiver answered.
    status: u16,
}

impl Hit {
    fn event(&self) -> &str {
        self.json["event"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct ReceiverState {
    hits: Mutex<Vec<Hit>>,
    /// Answer 500 to this many requests first.
    fail_first: usize,
}

/// A webhook receiver on 127.0.0.1 that records every POST to `/hook`.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        async fn hook(
            State(state): State<Arc<ReceiverState>>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let mut hits = state.hits.lock().unwrap();
            let status = if hits.len() < state.fail_first {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            hits.push(Hit {
                json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                headers,
                body: body.to_vec(),
                status: status.as_u16(),
            });
            status
        }
        let state = Arc::new(ReceiverState {
            fail_first,
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    /// Accepted (2xx) requests.
    fn accepted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }

    /// Waits until an accepted request satisfies `f`, and returns it.
    async fn wait_for(&self, what: &str, f: impl Fn(&Hit) -> bool) -> Hit {
        let mut found = None;
        server::eventually(T, what, || {
            found = self.accepted().into_iter().find(|h| f(h));
            found.is_some()
        })
        .await;
        found.unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks a request the way a receiver would, computing the HMAC here (not with the server's
/// code): `Cascade-Signature: v1=hex(HMAC-SHA256(secret, "<Cascade-Timestamp>.<body>"))`,
/// and a timestamp close to now.
fn assert_signed(hit: &Hit, secret: &str) {
    assert_eq!(hit.header("content-type"), "application/json", "{hit:?}");
    let ts = hit.header("cascade-timestamp");
    let ts_num: u64 = ts.parse().unwrap_or_else(|_| panic!("timestamp {ts:?}"));
    assert!(
        ts_num.abs_diff(unix_now()) < 60,
        "timestamp {ts} is not now"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hit.header("cascade-signature"),
        format!("v1={expected}"),
        "signature of {}",
        String::from_utf8_lossy(&hit.body)
    );
    // And a wrong key does not verify.
    let mut other = Hmac::<Sha256>::new_from_slice(b"some other secret").unwrap();
    other.update(format!("{ts}.").as_bytes());
    other.update(&hit.body);
    assert!(
        other
            .verify_slice(&decode_hex(&hit.header("cascade-signature")[3..]))
            .is_err()
    );
    let id = hit.json["id"].as_str().unwrap();
    assert!(id.starts_with("EV_"), "{id}");
    assert_eq!(hit.header("cascade-event-id"), id);
    let created = hit.json["created_at"].as_u64().unwrap();
    assert!(created.abs_diff(unix_now()) < 60, "created_at {created}");
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Waits until the scraped value of `series` satisfies `f`.
async fn wait_metric(
    srv: &cascade_api::server::ServerHandle,
    series: &str,
    f: impl Fn(u64) -> bool,
) {
    let deadline = Instant::now() + T;
    loop {
        let value = server::sample(&server::scrape(srv.http_addr).await, series);
        if f(value) {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_and_in_order() {
    let hook = Receiver::start(0).await;
    let second = Receiver::start(0).await;
    let srv = server::start_with(|c| {
        c.webhook_urls = vec![hook.url.clone(), second.url.clone()];
        c.room_empty_timeout = Duration::from_millis(200);
    })
    .await;
    let url = srv.ws_url();

    // A participant joins, publishes audio and video, unpublishes the video, and leaves.
    let Publisher {
        client: alice,
        id: alice_id,
        published,
        pumps,
    } = publisher(&url, &server::token("hooks", "alice"), AV, AV, T).await;
    let published_hit = |kind: &'static str| {
        move |h: &Hit| h.event() == "track_published" && h.json["track"]["kind"] == kind
    };
    let audio = hook
        .wait_for("audio published", published_hit("audio"))
        .await;
    let video = hook
        .wait_for("video published", published_hit("video"))
        .await;
    let video_id = video.json["track"]["id"].as_str().unwrap().to_owned();
    let audio_id = audio.json["track"]["id"].as_str().unwrap().to_owned();
    assert_eq!(video.json["track"]["participant"], alice_id.as_str());
    assert_eq!(video.json["participant"]["identity"], "alice");
    assert_eq!(video.json["room"], "hooks");

    alice
        .unpublish(published.track(MediaKind::Video).unwrap())
        .await
        .unwrap();
    hook.wait_for("video unpublished", |h| {
        h.event() == "track_unpublished" && h.json["track"]["id"] == video_id.as_str()
    })
    .await;
    drop(pumps);
    alice.leave().await.unwrap();
    let left = hook
        .wait_for("participant_left", |h| h.event() == "participant_left")
        .await;
    assert_eq!(left.json["reason"], "leave");
    assert_eq!(left.json["participant"]["id"], alice_id.as_str());
    let finished = hook
        .wait_for("room_finished", |h| h.event() == "room_finished")
        .await;
    assert_eq!(finished.json["room"]["name"], "hooks");
    assert_eq!(finished.json["room"]["num_participants"], 0);

    // Every event, in the order it happened, each signed with the API secret.
    let hits = hook.hits();
    assert!(hits.iter().all(|h| h.status == 200));
    // `WEBHOOK_DUMP=1 cargo test --test webhooks -- --nocapture` prints the bodies (the
    // examples in docs/webhooks.md come from there).
    if std::env::var_os("WEBHOOK_DUMP").is_some() {
        for h in &hits {
            eprintln!("{}", serde_json::to_string_pretty(&h.json).unwrap());
        }
    }
    let names: Vec<&str> = hits.iter().map(Hit::event).collect();
    assert_eq!(
        names,
        [
            "room_started",
            "participant_joined",
            "track_published",
            "track_published",
            "track_unpublished",
            "track_unpublished",
            "participant_left",
            "room_finished",
        ],
        "{hits:#?}"
    );
    for h in &hits {
        assert_signed(h, server::SECRET);
    }
    assert_eq!(hits[0].json["room"]["name"], "hooks");
    assert_eq!(hits[1].json["participant"]["identity"], "alice");
    assert_eq!(hits[1].json["participant"]["id"], alice_id.as_str());
    assert_eq!(
        hits[5].json["track"]["id"],
        audio_id.as_str(),
        "leaving unpublishes the audio track before participant_left"
    );
    let ids: HashSet<&str> = hits
        .iter()
        .map(|h| h.json["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), hits.len(), "event ids are unique");

    // The second receiver got the same events, with the same ids.
    server::eventually(T, "second receiver", || {
        second.accepted().len() == hits.len()
    })
    .await;
    let second_ids: Vec<Value> = second.hits().iter().map(|h| h.json["id"].clone()).collect();
    let first_ids: Vec<Value> = hits.iter().map(|h| h.json["id"].clone()).collect();
    assert_eq!(second_ids, first_ids);

    let text = server::scrape(srv.http_addr).await;
    assert_eq!(
        server::sample(&text, r#"cascade_webhook_deliveries_total{result="ok"}"#),
        2 * hits.len() as u64
    );
    assert_eq!(server::sample(&text, "cascade_webhook_retries_total"), 0);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_the_event_on_retry() {
    let hook = Receiver::start(2).await;
    let secret = "a-separate-webhook-secret-0123456789abcdef";
    let srv = server::start_with(|c| {
        c.webhook_urls = vec![hook.url.clone()];
        c.webhook_secret = Some(secret.into());
    })
    .await;
    let _bob = join(&srv.ws_url(), &server::token("retry", "bob"), true).await;
    hook.wait_for("participant_joined", |h| h.event() == "participant_joined")
        .await;

    // room_started was answered 500, 500, then 200; participant_joined waited behind it.
    let hits = hook.hits();
    let summary: Vec<(&str, u16)> = hits.iter().map(|h| (h.event(), h.status)).collect();
    assert_eq!(
        summary,
        [
            ("room_started", 500),
            ("room_started", 500),
            ("room_started", 200),
            ("participant_joined", 200),
        ]
    );
    for h in &hits {
        assert_signed(h, secret);
    }
    assert_eq!(hits[0].body, hits[2].body, "a retry sends the same event");
    wait_metric(&srv, "cascade_webhook_retries_total", |v| v == 2).await;
    wait_metric(
        &srv,
        r#"cascade_webhook_deliveries_total{result="ok"}"#,
        |v| v == 2,
    )
    .await;
    let text = server::scrape(srv.http_addr).await;
    assert_eq!(
        server::sample(
            &text,
            r#"cascade_webhook_deliveries_total{result="failed"}"#
        ),
        0
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_receivers_slow_neither_joining_nor_media() {
    // A port that refuses connections, and a receiver that accepts and never answers.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hanging_url = format!("http://{}/hook", hanging.local_addr().unwrap());
    let hanging_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = hanging.accept().await {
            held.push(sock);
        }
    });
    let good = Receiver::start(0).await;
    let srv = server::start_with(|c| {
        c.webhook_urls = vec![refused, hanging_url, good.url.clone()];
        c.webhook_timeout = Duration::from_secs(1);
        c.webhook_max_attempts = 2;
    })
    .await;
    let url = srv.ws_url();

    // Joins complete promptly while the dead receivers' queues back up.
    let mut clients = Vec::new();
    for name in ["alice", "bob", "carol", "dave"] {
        let c = TestClient::connect(&url).await.unwrap();
        let started = Instant::now();
        c.join(&server::token("dead", name), true).await.unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{name}'s join took {took:?}");
        clients.push(c);
    }

    // Media flows from alice to the others.
    let published = publish(&clients[0], AV, T).await;
    let _pumps = stream(&published, AV);
    for t in room_tracks(&srv, "dead", 2, T).await {
        for c in &clients[1..] {
            c.wait_for_packets(&t.id, 20, T).await.unwrap();
        }
    }

    // The working receiver is not held up by the dead ones.
    good.wait_for("dave joined", |h| {
        h.event() == "participant_joined" && h.json["participant"]["identity"] == "dave"
    })
    .await;
    good.wait_for("a track published", |h| h.event() == "track_published")
        .await;
    // The refused deliveries are given up after two attempts and counted.
    wait_metric(
        &srv,
        r#"cascade_webhook_deliveries_total{result="failed"}"#,
        |v| v >= 1,
    )
    .await;
    wait_metric(&srv, "cascade_webhook_retries_total", |v| v >= 1).await;

    // Shutdown does not wait for the hanging receiver beyond its grace period.
    let started = Instant::now();
    srv.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    hanging_task.abort();
}
