//! `data` messages: relayed to the rest of the room only, and only with `can_publish_data`.

use crate::server;

use std::time::Duration;

use serde_json::json;
use server::clients::{assert_data, joined};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_reaches_the_room_and_nobody_else() {
    let srv = server::start().await;
    let url = srv.ws_url();
    let (a, a_id) = joined(&url, &server::token("chat", "ann")).await;
    let (b, _) = joined(&url, &server::token("chat", "bob")).await;
    let (other, _) = joined(&url, &server::token("elsewhere", "eve")).await;
    let (mute, _) = joined(
        &url,
        &server::token_with("chat", "quiet", |g| g.can_publish_data = false),
    )
    .await;

    let payload = json!({"kind": "chat", "text": "hello", "n": [1, 2]});
    a.send_json(&json!({"type": "data", "payload": payload}))
        .await
        .unwrap();
    for c in [&b, &mute] {
        assert_data(c, (&a_id, "ann"), &payload, T).await;
    }
    a.expect_no_message(|m| m["type"] == "data", Duration::from_millis(300))
        .await
        .unwrap();
    // Nothing of room "chat" reaches room "elsewhere": no data, no participant events.
    other
        .expect_no_message(
            |m| m["type"] == "data" || m["type"] == "participant_joined",
            Duration::from_millis(300),
        )
        .await
        .unwrap();

    mute.send_json(&json!({"type": "data", "payload": "x", "ref": 5}))
        .await
        .unwrap();
    let e = mute.next_message_of_type("error", T).await.unwrap();
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("permission_denied"), Some(5))
    );
    b.expect_no_message(
        |m| m["type"] == "data" && m["payload"] == "x",
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    srv.shutdown().await;
}
