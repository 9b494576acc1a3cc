//! HTTPS and WSS on the HTTP port: the rustls server configuration (HTTP/2 and HTTP/1.1 by
//! ALPN), the certificate from `tls_cert`/`tls_key` reloaded without a restart, or a generated
//! development certificate (`tls_self_signed`). The accept loop ([`crate::listener`]) runs the
//! handshake under `tls_handshake_timeout`; the embedded TURN server's TLS listener shares the
//! same [`Tls::acceptor`], and so the same certificate.
//!
//! Reload: every [`RELOAD_POLL`] the files' modification times and sizes are compared with
//! those last loaded ([`certs::ReloadWatch`]); a changed pair is read once both files have held
//! still for a poll, and SIGHUP reads them at once. A pair that does not parse or match is
//! logged and the previous certificate kept. New handshakes get the new certificate; open
//! connections keep theirs.

pub mod certs;
pub mod self_signed;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use certs::{CertStore, FileStamp, ReloadWatch};

/// How often the certificate files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Where the served certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `tls_cert` and `tls_key`, reloaded when they change.
    Files {
        /// The PEM certificate chain.
        cert: PathBuf,
        /// The PEM private key.
        key: PathBuf,
    },
    /// Generated at start-up (`tls_self_signed`); `spki_sha256` is the base64 SHA-256 of its
    /// public key, which Chromium's `--ignore-certificate-errors-spki-list` takes.
    SelfSigned {
        /// base64(SHA-256(SubjectPublicKeyInfo)).
        spki_sha256: String,
    },
}

/// The TLS side of the HTTP port: its acceptor and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    store: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
    /// Where the certificate comes from.
    pub source: Source,
    /// Time a client has to complete its handshake.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_struct!(f, "Tls", self, { source, handshake_timeout })
    }
}

impl Tls {
    /// The TLS set-up `config` asks for, with its certificate loaded or generated; `None` for
    /// plain HTTP. Fails if the files cannot be read or do not hold a matching pair.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Self>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (key, source) = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => (
                certs::load_files(&provider, cert, key)?,
                Source::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            ),
            _ if config.tls_self_signed => {
                let generated =
                    self_signed::generate(development_names(config).iter().map(String::as_str))?;
                let key = certs::parse_pem(
                    &provider,
                    generated.cert_pem.as_bytes(),
                    generated.key_pem.as_bytes(),
                )?;
                let source = Source::SelfSigned {
                    spki_sha256: generated.spki_sha256,
                };
                (key, source)
            }
            _ => return Ok(None),
        };
        let store = Arc::new(CertStore::new(key));
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            store,
            provider,
            source,
            handshake_timeout: config.tls_handshake_timeout,
        }))
    }

    /// The acceptor of TLS connections (HTTP port, TURN over TLS).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// The SHA-256 fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        certs::fingerprint(&self.store.current())
    }

    /// Reads the certificate files again and serves them from the next handshake on; an error
    /// leaves the current certificate in place. Generated certificates are not reloaded.
    pub fn reload(&self) -> anyhow::Result<()> {
        if let Source::Files { cert, key } = &self.source {
            let loaded = certs::load_files(&self.provider, cert, key)?;
            self.store.replace(loaded);
        }
        Ok(())
    }

    /// Starts reloading the certificate files when they change or on SIGHUP, until `stop`
    /// turns true. The SIGHUP handler is installed before this returns, so a SIGHUP right after
    /// start-up reloads rather than kills. Does nothing for a generated certificate. Call from
    /// within the runtime.
    pub fn spawn_watch(&self, stop: watch::Receiver<bool>) {
        let Source::Files { cert, key } = self.source.clone() else {
            return;
        };
        let hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP, certificates reload on change only: {e}");
                None
            }
        };
        tokio::spawn(self.clone().watch(cert, key, hangup, stop));
    }

    /// The reload loop of [`Self::spawn_watch`].
    async fn watch(
        self,
        cert: PathBuf,
        key: PathBuf,
        mut hangup: Option<tokio::signal::unix::Signal>,
        mut stop: watch::Receiver<bool>,
    ) {
        let stamps = || [FileStamp::of(&cert), FileStamp::of(&key)];
        let mut watch = ReloadWatch::new(stamps());
        let mut poll = tokio::time::interval(RELOAD_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = poll.tick() => false,
                Some(()) = async { hangup.as_mut()?.recv().await } => true,
                _ = stop.changed() => return,
            };
            if !watch.poll(stamps()) && !forced {
                continue;
            }
            watch.mark_loaded();
            match self.reload() {
                Ok(()) => tracing::info!(
                    fingerprint = %self.fingerprint(),
                    trigger = if forced { "SIGHUP" } else { "file change" },
                    "TLS certificate reloaded"
                ),
                Err(e) => tracing::warn!(
                    "TLS certificate not reloaded, still serving the previous one: {e:#}"
                ),
            }
        }
    }
}

/// The names a development certificate covers beyond loopback: the public URL's host, the
/// public IPs and a specific listen address.
fn development_names(config: &Config) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|url| crate::config::parse_public_url(url).ok())
        .and_then(|url| url.host_str().map(str::to_owned))
    {
        names.push(host);
    }
    names.extend(config.public_ips.iter().map(ToString::to_string));
    if !config.http_addr.ip().is_unspecified() {
        names.push(config.http_addr.ip().to_string());
    }
    names
}
