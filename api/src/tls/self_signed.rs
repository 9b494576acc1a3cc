//! The development certificate of `--tls-self-signed`: generated at start-up for the names a
//! developer's browser will use, with what the operator needs to get past the browser's
//! warning (its SHA-256 fingerprint and the hash Chromium's
//! `--ignore-certificate-errors-spki-list` takes).

use std::net::IpAddr;

use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use sha2::{Digest, Sha256};

/// A generated certificate and key, in PEM, with the base64 SHA-256 of its public key.
#[derive(Debug)]
pub struct Generated {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// base64(SHA-256(SubjectPublicKeyInfo)), for `--ignore-certificate-errors-spki-list`.
    pub spki_sha256: String,
}

/// Generates a certificate for `localhost`, `127.0.0.1`, `::1` and each of `names` (host names
/// or IP literals; duplicates and empty ones are skipped).
pub fn generate<'a>(names: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Generated> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for name in names {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if !name.is_empty() && !sans.iter().any(|s| s == name) {
            sans.push(name.to_owned());
        }
    }
    let key = KeyPair::generate().map_err(|e| anyhow!("generating a key: {e}"))?;
    let mut params = CertificateParams::new(sans).map_err(|e| anyhow!("certificate names: {e}"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Cascade development certificate");
    params.distinguished_name = dn;
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("signing the certificate: {e}"))?;
    Ok(Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        spki_sha256: STANDARD.encode(Sha256::digest(key.subject_public_key_info())),
    })
}

/// Whether `name` is an IP literal (for messages: browsers match those against IP SANs).
pub fn is_ip(name: &str) -> bool {
    name.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_loopback_and_the_given_names_once() {
        let g = generate(["sfu.example.com", "127.0.0.1", "[2001:db8::1]", ""]).unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let key =
            super::super::certs::parse_pem(&provider, g.cert_pem.as_bytes(), g.key_pem.as_bytes())
                .unwrap();
        let der = key.cert[0].as_ref();
        // The DNS names appear as IA5 strings in the certificate.
        let has = |s: &[u8]| der.windows(s.len()).any(|w| w == s);
        assert!(has(b"localhost") && has(b"sfu.example.com"));
        assert!(has(&[127, 0, 0, 1]));
        assert!(
            has(&[0x20, 0x01, 0x0d, 0xb8]),
            "the IPv6 literal, without brackets"
        );
        assert_eq!(STANDARD.decode(&g.spki_sha256).unwrap().len(), 32);
        let again = generate([]).unwrap();
        assert_ne!(again.spki_sha256, g.spki_sha256, "a new key every start");
        assert!(is_ip("[::1]") && is_ip("10.0.0.1") && !is_ip("localhost"));
    }
}
