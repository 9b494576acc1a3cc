//! HTTPS and WSS on the HTTP port, with a test CA made here: the server serves the
//! certificate files over HTTP/2 and HTTP/1.1, a WebSocket joins over `wss:`, a replaced
//! certificate is served without a restart (its serial is checked), a broken replacement
//! leaves the previous one in place, and a client that never completes its handshake is cut
//! off at the handshake timeout.

use crate::server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;

/// How long the reload may take: two polls of the files, with margin.
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// A CA and the leaf certificates it signs for `localhost` and 127.0.0.1.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with `serial`: its certificate PEM, key PEM and DER.
    fn leaf(&self, serial: u64) -> (String, String, CertificateDer<'static>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    /// A client trusting only this CA, offering `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

/// The certificate and key files of one test, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cascade-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    /// Points `config` at these files.
    fn configure(&self, config: &mut cascade_api::config::Config) {
        config.tls_cert = Some(self.cert());
        config.tls_key = Some(self.key());
    }
    /// Writes a new leaf of `ca` with `serial`; returns its DER.
    fn install(&self, ca: &TestCa, serial: u64) -> CertificateDer<'static> {
        let (cert, key, der) = ca.leaf(serial);
        self.write(&cert, &key);
        der
    }
    /// Replaces both files (each written whole, then renamed into place).
    fn write(&self, cert: &str, key: &str) {
        for (path, text) in [(self.cert(), cert), (self.key(), key)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects and completes a handshake with `localhost` as the server name.
async fn handshake(
    srv: &cascade_api::server::ServerHandle,
    connector: &TlsConnector,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(srv.http_addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds")
}

/// The leaf certificate the server serves now.
async fn served(srv: &cascade_api::server::ServerHandle, ca: &TestCa) -> CertificateDer<'static> {
    let tls = handshake(srv, &ca.connector(&[b"http/1.1"])).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Sends one HTTP/1.1 GET over `tls` and returns the whole response.
async fn get(mut tls: TlsStream<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    response
}

/// Sends `message` on `ws` and returns the next message (at most 10 s).
async fn exchange<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, message: Value) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a reply in time")
        .unwrap()
        .unwrap();
    serde_json::from_str(reply.to_text().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_wss_and_reloads_the_certificate() {
    let (ca, files) = (TestCa::new(), Files::new("reload"));
    let der1 = files.install(&ca, 1);
    let srv = server::start_with(|c| files.configure(c)).await;
    assert!(srv.ws_url().starts_with("wss://"), "{}", srv.ws_url());

    // HTTP/1.1 and HTTP/2, chosen by ALPN; the served chain verifies against the test CA.
    let h1 = handshake(&srv, &ca.connector(&[b"http/1.1"])).await;
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let response = get(h1, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    let h2 = handshake(&srv, &ca.connector(&[b"h2", b"http/1.1"])).await;
    assert_eq!(
        h2.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "HTTP/2 is offered"
    );
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(h2),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get("https://localhost/readyz")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);

    // A WebSocket session over TLS joins a room.
    let tls = handshake(&srv, &ca.connector(&[b"http/1.1"])).await;
    let url = format!("wss://localhost:{}/ws", srv.http_addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    let join = json!({"type": "join", "token": server::token("tls-room", "alice")});
    let reply = exchange(&mut ws, join).await;
    assert_eq!(reply["type"], "joined", "{reply}");
    assert_eq!(reply["room"], "tls-room", "{reply}");

    // Replaced files are served from the next handshake on, without a restart; the open
    // WebSocket goes on.
    assert_eq!(served(&srv, &ca).await, der1);
    let (cert2, key2, der2) = ca.leaf(2);
    files.write(&cert2, &key2);
    let started = Instant::now();
    while served(&srv, &ca).await != der2 {
        assert!(
            started.elapsed() < RELOAD_WAIT,
            "certificate 2 not served after {RELOAD_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pong = exchange(&mut ws, json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "{pong}");

    // A broken replacement (a key that is not the certificate's) is refused: serial 2 stays.
    let (cert3, _, _) = ca.leaf(3);
    files.write(&cert3, &key2);
    tokio::time::sleep(cascade_api::tls::RELOAD_POLL * 3).await;
    assert_eq!(
        served(&srv, &ca).await,
        der2,
        "the previous certificate is kept"
    );
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_cut_off_and_plain_http_is_refused() {
    let (ca, files) = (TestCa::new(), Files::new("stall"));
    files.install(&ca, 7);
    let srv = server::start_with(|c| {
        files.configure(c);
        c.tls_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    // Connects and says nothing: closed after the handshake timeout.
    let mut silent = TcpStream::connect(srv.http_addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(8), silent.read(&mut buf))
        .await
        .expect("closed well before 8 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "nothing is written to a client that sent nothing");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    let metrics = get(
        handshake(&srv, &ca.connector(&[b"http/1.1"])).await,
        "/metrics",
    )
    .await;
    assert_eq!(
        server::sample(
            &metrics,
            r#"cascade_http_timeouts_total{phase="tls_handshake"}"#
        ),
        1
    );

    // Plain HTTP to the TLS port gets no HTTP answer and is closed at once.
    let mut plain = TcpStream::connect(srv.http_addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    srv.shutdown().await;
}
