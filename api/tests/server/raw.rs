//! Raw WebSocket clients of the signaling endpoint: for tests that need exact control over
//! what is sent and read.

use std::time::Duration;

use cascade_api::server::ServerHandle;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

/// A raw WebSocket client.
pub type RawWs = WebSocketStream<TcpStream>;

/// How long [`next_json`] waits.
const T: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `srv`'s `/ws` over `tcp` (a plain connection when `None`).
pub async fn connect(srv: &ServerHandle, tcp: Option<TcpStream>) -> RawWs {
    let tcp = match tcp {
        Some(tcp) => tcp,
        None => TcpStream::connect(srv.http_addr).await.unwrap(),
    };
    client_async(srv.ws_url(), tcp).await.unwrap().0
}

/// Sends `value` as a text message.
pub async fn send(ws: &mut RawWs, value: &Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

/// The next text message, as JSON (at most 10 s).
pub async fn next_json(ws: &mut RawWs) -> Value {
    loop {
        match tokio::time::timeout(T, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}

/// The next text message of type `ty`, skipping others (at most 10 s each).
pub async fn next_of_type(ws: &mut RawWs, ty: &str) -> Value {
    loop {
        let m = next_json(ws).await;
        if m["type"] == ty {
            return m;
        }
    }
}
