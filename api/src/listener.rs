//! The HTTP accept loop: caps on open connections (server-wide and per source address), the
//! request-header and request-body read timeouts, and graceful shutdown of what it serves.
//!
//! `axum::serve` offers none of these, so connections are served here with hyper's HTTP/1
//! builder (upgrades enabled, for WebSockets). A connection counts against the caps from
//! `accept` until both its HTTP connection and any WebSocket it was upgraded to have ended:
//! every request carries a [`ConnectionSlot`] that the WebSocket handler keeps.
//! Past a cap the connection gets a `503` written without waiting and is closed at once.
//!
//! With TLS ([`crate::tls`]) a connection's slot is taken before its handshake, which must end
//! within `tls_handshake_timeout`; ALPN then picks HTTP/2 or HTTP/1.1 (WebSockets use
//! HTTP/1.1: extended CONNECT is not offered, so browsers open an HTTP/1.1 connection for
//! them). Plain HTTP is HTTP/1.1 only.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service as _;

use crate::metrics::ConnectionCounters;
use crate::rest::error::{ApiError, codes};
use crate::tls::Tls;

/// Limits of the accept loop (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most open connections server-wide; 0 = unlimited.
    pub max_connections: usize,
    /// Most open connections from one source address; 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers (also bounds an idle keep-alive wait).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body, from the end of its headers.
    pub body_timeout: Duration,
}

/// Why a connection was refused; the label of `cascade_http_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached.
    Global,
    /// `max_connections_per_ip` reached for the source address.
    PerIp,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Global => "max_connections",
            Self::PerIp => "max_connections_per_ip",
        }
    }
}

/// Open connections, in total and per source address (sans-I/O).
#[derive(Debug, Default)]
struct ConnectionTable {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnectionTable {
    /// Counts a new connection from `ip`, unless that would pass a cap.
    fn open(&mut self, ip: IpAddr, limits: &Limits) -> Result<(), Refusal> {
        if limits.max_connections > 0 && self.total >= limits.max_connections {
            return Err(Refusal::Global);
        }
        let n = self.per_ip.entry(ip).or_default();
        if limits.max_connections_per_ip > 0 && *n >= limits.max_connections_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Forgets one connection from `ip`.
    fn close(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// One open connection's place in the caps; freed when the last clone drops. Requests carry
/// it as an extension so that a WebSocket session can keep it for its lifetime.
#[derive(Clone)]
pub struct ConnectionSlot {
    _guard: Arc<SlotGuard>,
}

struct SlotGuard {
    ip: IpAddr,
    table: Arc<Mutex<ConnectionTable>>,
    counters: ConnectionCounters,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        lock(&self.table).close(self.ip);
        self.counters.closed();
    }
}

fn lock(table: &Mutex<ConnectionTable>) -> std::sync::MutexGuard<'_, ConnectionTable> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

/// The answer written to a refused connection before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: application/json\r\nRetry-After: 1\r\nContent-Length: 87\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many connections, retry later\"}}";

/// The HTTP protocol builders shared by all connections.
struct Http {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` turns true, within
/// `limits`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Tls>,
    counters: ConnectionCounters,
    mut stop: watch::Receiver<bool>,
) {
    let table = Arc::new(Mutex::new(ConnectionTable::default()));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout)
        .max_concurrent_streams(100);
    let http = Arc::new(Http { http1, http2 });
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // little rather than spin.
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let ip = peer.ip().to_canonical();
        if let Err(refusal) = lock(&table).open(ip, &limits) {
            counters.refused(refusal);
            tracing::debug!(%peer, reason = refusal.label(), "connection refused");
            refuse(stream);
            continue;
        }
        counters.opened();
        let slot = ConnectionSlot {
            _guard: Arc::new(SlotGuard {
                ip,
                table: table.clone(),
                counters: counters.clone(),
            }),
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            http: http.clone(),
            slot,
            body_timeout: limits.body_timeout,
            counters: counters.clone(),
            stop: stop.clone(),
        };
        match &tls {
            None => tokio::spawn(conn.serve(stream, false)),
            Some(tls) => tokio::spawn(conn.handshake(stream, tls.clone())),
        };
    }
}

/// Writes [`REFUSED`] if the socket takes it at once, then closes the connection.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSED);
}

/// One accepted connection and what serving it takes.
struct Connection {
    app: Router,
    http: Arc<Http>,
    slot: ConnectionSlot,
    body_timeout: Duration,
    counters: ConnectionCounters,
    stop: watch::Receiver<bool>,
}

impl Connection {
    /// Runs the TLS handshake within its timeout, then serves the protocol ALPN chose.
    async fn handshake(self, stream: TcpStream, tls: Tls) {
        let accepted =
            tokio::time::timeout(tls.handshake_timeout, tls.acceptor().accept(stream)).await;
        match accepted {
            Ok(Ok(stream)) => {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                self.serve(stream, h2).await
            }
            Ok(Err(e)) => tracing::debug!("TLS handshake: {e}"),
            Err(_) => {
                self.counters.timed_out("tls_handshake");
                tracing::debug!("TLS handshake timed out");
            }
        }
    }

    /// Serves HTTP/2 (`h2`) or HTTP/1.1 with upgrades on `io` until it closes or `stop`.
    async fn serve<I>(self, io: I, h2: bool)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            app,
            http,
            slot,
            body_timeout,
            counters,
            stop,
        } = self;
        let request_counters = counters.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(slot.clone());
            handle(app.clone(), req, body_timeout, request_counters.clone())
        });
        let io = TokioIo::new(io);
        let result = if h2 {
            let conn = http.http2.serve_connection(io, service);
            until_stopped(conn, stop, |c| c.graceful_shutdown()).await
        } else {
            let conn = http.http1.serve_connection(io, service).with_upgrades();
            until_stopped(conn, stop, |c| c.graceful_shutdown()).await
        };
        if let Err(e) = result {
            if e.is_timeout() {
                counters.timed_out("header");
            }
            tracing::debug!("http connection: {e}");
        }
    }
}

/// Drives a connection to its end; when `stop` turns true first, shuts it down gracefully
/// (`shutdown`) and waits for that.
async fn until_stopped<C>(
    conn: C,
    mut stop: watch::Receiver<bool>,
    shutdown: impl FnOnce(Pin<&mut C>),
) -> C::Output
where
    C: Future,
{
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        _ = stop.changed() => {
            shutdown(conn.as_mut());
            conn.await
        }
    }
}

/// Runs one request with a deadline on its body; a request whose body did not arrive in
/// time is answered `408 request_timeout` and its connection closed.
async fn handle(
    mut app: Router,
    req: Request<Incoming>,
    body_timeout: Duration,
    counters: ConnectionCounters,
) -> Result<Response, Infallible> {
    let expired = Arc::new(AtomicBool::new(false));
    let deadline = tokio::time::Instant::now() + body_timeout;
    let req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline,
            sleep: None,
            expired: expired.clone(),
        })
    });
    let response = app.call(req).await?;
    if !expired.load(Relaxed) {
        return Ok(response);
    }
    counters.timed_out("body");
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        codes::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {}",
            humantime::format_duration(body_timeout)
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// A request body that fails once its deadline has passed (the timer starts on first poll).
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    expired: Arc<AtomicBool>,
}

/// The error of a [`DeadlineBody`] past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body timed out")]
struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_ip: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn per_ip_cap_counts_each_address() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let l = limits(0, 2);
        let mut t = ConnectionTable::default();
        assert_eq!(t.open(a, &l), Ok(()));
        assert_eq!(t.open(a, &l), Ok(()));
        assert_eq!(t.open(a, &l), Err(Refusal::PerIp));
        assert_eq!(t.open(b, &l), Ok(()), "another address has its own count");
        t.close(a);
        assert_eq!(t.open(a, &l), Ok(()), "a closed connection frees its place");
        assert_eq!(t.total, 3);
    }

    #[test]
    fn global_cap_and_cleanup() {
        let ips: Vec<IpAddr> = (1..=4)
            .map(|i| format!("10.0.0.{i}").parse().unwrap())
            .collect();
        let l = limits(3, 0);
        let mut t = ConnectionTable::default();
        for ip in &ips[..3] {
            assert_eq!(t.open(*ip, &l), Ok(()));
        }
        assert_eq!(t.open(ips[3], &l), Err(Refusal::Global));
        for ip in &ips[..3] {
            t.close(*ip);
        }
        assert_eq!(t.total, 0);
        assert!(
            t.per_ip.is_empty(),
            "no entry is kept for an address without connections"
        );
        t.close(ips[0]);
        assert_eq!(t.total, 0, "closing an unknown address changes nothing");
    }

    #[test]
    fn refusal_is_a_complete_http_response() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections");
    }
}
