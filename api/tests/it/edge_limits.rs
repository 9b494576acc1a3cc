//! The HTTP edge: header and body read timeouts, connection caps (per source address and
//! server-wide), WebSockets holding their place in the caps.

use crate::server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use server::clients::join;
use server::rest::basic_b64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(15);

/// Reads until the peer closes (EOF or reset) or `limit` passes; returns what arrived and
/// whether the connection was closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A keep-alive `GET /healthz` on an open connection; true if it was answered 200.
async fn healthz(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).ends_with("\r\n\r\nok") {
        match tokio::time::timeout(T, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    }
    buf.starts_with(b"HTTP/1.1 200")
}

/// The value of one metric line, e.g. `cascade_http_timeouts_total{phase="header"}`.
async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (text, closed) = read_until_closed(&mut s, T).await;
    assert!(closed, "metrics answered and closed");
    server::sample(&text, series) as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_closed_after_the_header_timeout() {
    let srv = server::start_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(srv.http_addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    // One header line every 200 ms: the headers never end.
    let trickle = tokio::spawn(async move {
        for i in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut chunk = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    assert!(
        closed.is_ok(),
        "the slow-header connection is still open after 5 s"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}, expected about the 1 s header timeout"
    );
    // A connection that sends nothing at all is closed after the header timeout too.
    let mut silent = TcpStream::connect(srv.http_addr).await.unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "the silent connection is still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let header_timeouts = r#"cascade_http_timeouts_total{phase="header"}"#;
    assert_eq!(metric(srv.http_addr, header_timeouts).await, 2.0);
    // A client that sends its headers in time is served.
    let mut ok = TcpStream::connect(srv.http_addr).await.unwrap();
    assert!(healthz(&mut ok).await);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_is_answered_408_and_closed_after_the_body_timeout() {
    let srv = server::start_with(|c| c.body_timeout = Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(srv.http_addr).await.unwrap();
    let basic = basic_b64();
    let head = format!(
        "POST /api/rooms HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"name\":"
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // One byte of body every 200 ms: 200 bytes would take 40 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut buf)).await;
    trickle.abort();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(
        closed.is_ok(),
        "the slow-body connection is still open after 5 s: {text}"
    );
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}, expected about the 1 s body timeout"
    );
    let body_timeouts = r#"cascade_http_timeouts_total{phase="body"}"#;
    assert_eq!(metric(srv.http_addr, body_timeouts).await, 1.0);
    assert!(srv.state.rooms.list_rooms().is_empty());
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_source_cap_refuses_the_connection_past_it() {
    let srv = server::start_with(|c| c.max_connections_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(srv.http_addr).await.unwrap();
        assert!(healthz(&mut s).await);
        open.push(s);
    }
    let mut fourth = TcpStream::connect(srv.http_addr).await.unwrap();
    let (text, closed) = read_until_closed(&mut fourth, Duration::from_secs(5)).await;
    assert!(closed, "the connection past the cap is closed at once");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("too_many_connections"), "{text}");
    // A closed connection frees its place.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = TcpStream::connect(srv.http_addr).await.unwrap();
        if healthz(&mut s).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place freed by the closed connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(open);
    server::eventually(T, "the connections to close", || {
        srv.state.metrics.connections().open() == 0
    })
    .await;
    let refused = r#"cascade_http_connections_refused_total{reason="max_connections_per_ip"}"#;
    assert!(metric(srv.http_addr, refused).await >= 1.0);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_holds_its_place_under_the_global_cap() {
    let srv = server::start_with(|c| c.max_connections = 1).await;
    let ws = join(&srv.ws_url(), &server::token("cap", "a"), true).await;
    // The upgraded connection still counts: the next one is refused.
    let mut s = TcpStream::connect(srv.http_addr).await.unwrap();
    let (text, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed && text.starts_with("HTTP/1.1 503"), "{text}");
    assert_eq!(srv.state.metrics.connections().open(), 1);
    ws.close().await.unwrap();
    server::eventually(T, "the WebSocket's place to be freed", || {
        srv.state.metrics.connections().open() == 0
    })
    .await;
    let refused = r#"cascade_http_connections_refused_total{reason="max_connections"}"#;
    assert_eq!(metric(srv.http_addr, refused).await, 1.0);
    srv.shutdown().await;
}
