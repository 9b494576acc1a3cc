//! SRTP and SRTCP (RFC 3711; AEAD_AES_128_GCM of RFC 7714) for one peer, in place.

use rtc::srtp::config::{Config, SessionKeys};
use rtc::srtp::protection_profile::ProtectionProfile;

/// The SRTP master keys of one DTLS association: the profile it negotiated and the master key
/// and salt of each direction (`local`: what we send).
#[derive(Debug, Clone)]
pub struct SrtpKeys {
    /// The negotiated protection profile.
    pub profile: ProtectionProfile,
    /// Master keys and salts, ours (`local_*`) and the peer's (`remote_*`).
    pub keys: SessionKeys,
}

impl SrtpKeys {
    /// Bytes of DTLS exporter output (label `EXTRACTOR-dtls_srtp`) that `profile` needs.
    pub fn keying_material_len(profile: ProtectionProfile) -> usize {
        2 * (profile.key_len() + profile.salt_len())
    }

    /// Splits DTLS-SRTP exporter output into the two directions (RFC 5764 §4.2); `is_client`:
    /// whether we were the DTLS client.
    pub fn from_keying_material(
        profile: ProtectionProfile,
        material: &[u8],
        is_client: bool,
    ) -> Result<Self, rtc::shared::error::Error> {
        let mut config = Config {
            profile,
            ..Config::default()
        };
        config.set_session_keys_from_keying_material(material, is_client)?;
        Ok(Self {
            profile,
            keys: config.keys,
        })
    }
}
