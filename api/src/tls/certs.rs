//! The served certificate: parsing a PEM chain and key into a rustls [`CertifiedKey`], the
//! resolver that hands the current one to every handshake and can be swapped at any time, and
//! the change detection of the reload (sans-I/O: file stamps are compared, not watched).

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{Context, anyhow, ensure};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// Parses a PEM certificate chain (leaf first) and its PEM private key; fails if either is
/// missing or malformed, or if the key does not belong to the leaf certificate.
pub fn parse_pem(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("certificate PEM: {e}"))?;
    ensure!(!chain.is_empty(), "certificate PEM: no CERTIFICATE block");
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow!("key PEM: {e}"))?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| anyhow!("certificate and key do not go together: {e}"))
}

/// Reads and parses the certificate and key files (see [`parse_pem`]).
pub fn load_files(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> anyhow::Result<CertifiedKey> {
    let cert_pem =
        std::fs::read(cert).with_context(|| format!("reading tls_cert {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading tls_key {}", key.display()))?;
    parse_pem(provider, &cert_pem, &key_pem)
        .with_context(|| format!("{} and {}", cert.display(), key.display()))
}

/// The SHA-256 fingerprint of the leaf certificate, as browsers show it (`AB:CD:…`).
pub fn fingerprint(key: &CertifiedKey) -> String {
    let digest = Sha256::digest(key.cert[0].as_ref());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate handed to every TLS handshake; [`Self::replace`] swaps it for the
/// handshakes that follow (open connections keep theirs).
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// A store serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
        }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Serves `key` from the next handshake on.
    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What is known of one file without reading it: a change of either value means the file was
/// rewritten (or replaced, e.g. by a symlink swap as cert-manager and certbot do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    /// The stamp of `path` now; `None` if it cannot be read (e.g. mid-replacement).
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// Decides when the certificate files are read again (sans-I/O): after a change of either
/// file's stamp, once both stamps have held still for one poll, so that a half-written pair is
/// not loaded; or at once when asked (SIGHUP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadWatch {
    loaded: [Option<FileStamp>; 2],
    seen: [Option<FileStamp>; 2],
}

impl ReloadWatch {
    /// A watch of files whose stamps were `loaded` when they were last read.
    pub fn new(loaded: [Option<FileStamp>; 2]) -> Self {
        Self {
            loaded,
            seen: loaded,
        }
    }

    /// Takes the stamps of one poll; true when the files should be read now.
    pub fn poll(&mut self, now: [Option<FileStamp>; 2]) -> bool {
        let settled = now == self.seen;
        self.seen = now;
        settled && now != self.loaded && now.iter().all(Option::is_some)
    }

    /// Records that the files were read with the stamps of the last poll (whether or not they
    /// parsed: a broken pair is not retried until it changes again).
    pub fn mark_loaded(&mut self) {
        self.loaded = self.seen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn parses_a_matching_pair_and_fingerprints_it() {
        let (cert, key) = pair("a.example");
        let parsed = parse_pem(&provider(), cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(parsed.cert.len(), 1);
        let fp = fingerprint(&parsed);
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert!(fp.split(':').all(|b| b.len() == 2), "{fp}");
        let (other_cert, _) = pair("a.example");
        let other = parse_pem(&provider(), other_cert.as_bytes(), key.as_bytes());
        assert!(
            format!("{:#}", other.unwrap_err()).contains("do not go together"),
            "a key that is not the certificate's is refused"
        );
    }

    #[test]
    fn refuses_missing_or_garbage_pem() {
        let (cert, key) = pair("a.example");
        let p = provider();
        let e = |c: &str, k: &str| {
            format!(
                "{:#}",
                parse_pem(&p, c.as_bytes(), k.as_bytes()).unwrap_err()
            )
        };
        assert!(e("", &key).contains("no CERTIFICATE"));
        assert!(e(&key, &key).contains("no CERTIFICATE"));
        assert!(e(&cert, "").contains("key PEM"));
        assert!(e(&cert, &cert).contains("key PEM"));
        let mangled = cert.replace('M', "*");
        assert!(parse_pem(&p, mangled.as_bytes(), key.as_bytes()).is_err());
    }

    #[test]
    fn store_serves_the_replacement_from_then_on() {
        let (c1, k1) = pair("one.example");
        let (c2, k2) = pair("two.example");
        let p = provider();
        let first = parse_pem(&p, c1.as_bytes(), k1.as_bytes()).unwrap();
        let second = parse_pem(&p, c2.as_bytes(), k2.as_bytes()).unwrap();
        let (fp1, fp2) = (fingerprint(&first), fingerprint(&second));
        let store = CertStore::new(first);
        let held = store.current();
        store.replace(second);
        assert_eq!(fingerprint(&store.current()), fp2);
        assert_eq!(
            fingerprint(&held),
            fp1,
            "a handshake in flight keeps its certificate"
        );
    }

    fn stamp(secs: u64, len: u64) -> Option<FileStamp> {
        Some(FileStamp {
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            len,
        })
    }

    #[test]
    fn reload_waits_for_both_files_to_settle() {
        let mut w = ReloadWatch::new([stamp(1, 10), stamp(1, 20)]);
        assert!(!w.poll([stamp(1, 10), stamp(1, 20)]), "nothing changed");
        assert!(
            !w.poll([stamp(2, 11), stamp(1, 20)]),
            "the cert changed: wait a poll"
        );
        assert!(
            !w.poll([stamp(2, 11), stamp(2, 21)]),
            "then the key: wait again"
        );
        assert!(
            w.poll([stamp(2, 11), stamp(2, 21)]),
            "both held still: reload"
        );
        w.mark_loaded();
        assert!(
            !w.poll([stamp(2, 11), stamp(2, 21)]),
            "loaded: no reload loop"
        );
        assert!(
            !w.poll([None, stamp(2, 21)]),
            "a missing file is never loaded"
        );
        assert!(!w.poll([None, stamp(2, 21)]));
        assert!(!w.poll([stamp(3, 12), stamp(2, 21)]));
        assert!(
            w.poll([stamp(3, 12), stamp(2, 21)]),
            "back, changed and settled"
        );
    }
}
