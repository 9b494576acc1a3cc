//! SRTP and SRTCP of one peer (RFC 3711, with AEAD_AES_128_GCM of RFC 7714), in place: a packet
//! is protected in the buffer it was written into, its tag appended in the buffer's spare room,
//! and unprotected where it was received. No allocation per packet.
//!
//! Two profiles, the ones Cascade's DTLS offers: `AEAD_AES_128_GCM` (preferred) and
//! `AES_CM_128_HMAC_SHA1_80`. Session keys are derived from the DTLS-exported master keys once
//! (RFC 3711 §4.3, key derivation rate 0). Each SSRC has its rollover counter (RFC 3711 §3.3.1,
//! the receiver's estimate of Appendix A) and a 64-packet replay window, kept for at most
//! [`MAX_STREAMS`] SSRCs per direction (the least recently used is forgotten first). An inbound
//! SSRC is remembered only once a packet of it has authenticated.

use rtc::crypto::{
    AeadAlgorithm, AeadCipher, BlockCipherAlgorithm, HmacAlgorithm, Mac, RTCCrypto, StreamCipher,
    StreamCipherAlgorithm,
};
use rtc::srtp::config::{Config, SessionKeys};
use rtc::srtp::protection_profile::ProtectionProfile;

/// SSRCs remembered per direction and packet kind.
pub const MAX_STREAMS: usize = 1024;
/// Bytes an RTP packet grows by when protected, at most (the GCM tag).
pub const MAX_RTP_OVERHEAD: usize = 16;
/// Bytes an RTCP packet grows by when protected, at most (the GCM tag and the SRTCP index).
pub const MAX_RTCP_OVERHEAD: usize = 20;

const HMAC_TAG_LEN: usize = 10;
const GCM_TAG_LEN: usize = 16;
const SRTCP_INDEX_LEN: usize = 4;
const SRTCP_E_FLAG: u32 = 0x8000_0000;
const REPLAY_WINDOW: u64 = 64;

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

/// Why a packet could not be protected or unprotected. The packet must then be dropped; the
/// session stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The profile is not one Cascade supports.
    #[error("unsupported SRTP profile {0}")]
    UnsupportedProfile(String),
    /// A master key or salt has the wrong length for the profile.
    #[error("master key or salt of the wrong length")]
    BadKeys,
    /// Shorter than its headers (and tag), or a header that runs past the end.
    #[error("packet too short or malformed")]
    Malformed,
    /// The buffer has no room for the tag (see [`MAX_RTP_OVERHEAD`], [`MAX_RTCP_OVERHEAD`]).
    #[error("no room in the buffer for the authentication tag")]
    NoRoom,
    /// The authentication tag does not verify: forged, corrupted, or another key.
    #[error("authentication failed")]
    AuthFailed,
    /// Already received, or older than the replay window.
    #[error("replayed or too old")]
    Replayed,
    /// SRTCP with its E flag clear (authenticated only): not accepted.
    #[error("unencrypted SRTCP is not accepted")]
    Unencrypted,
    /// 2^31 SRTCP packets sent with one key: a new DTLS handshake is needed.
    #[error("SRTCP index exhausted")]
    IndexExhausted,
    /// The crypto provider failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

fn crypto_error(e: rtc::crypto::CryptoError) -> SrtpError {
    SrtpError::Crypto(e.to_string())
}

/// The SRTP session of one peer: outbound (our keys) and inbound (the peer's), RTP and RTCP.
pub struct SrtpSession {
    out_rtp: Keys,
    out_rtcp: Keys,
    in_rtp: Keys,
    in_rtcp: Keys,
    /// Per SSRC we send: the highest extended sequence number sent.
    out_rtp_streams: Streams<u64>,
    /// Per SSRC we send RTCP from: the last SRTCP index used.
    out_rtcp_streams: Streams<u32>,
    in_rtp_streams: Streams<Replay>,
    in_rtcp_streams: Streams<Replay>,
}

impl SrtpSession {
    /// A session with `keys`, its ciphers keyed once from `crypto`.
    pub fn new(keys: &SrtpKeys, crypto: &dyn RTCCrypto) -> Result<Self, SrtpError> {
        let k = &keys.keys;
        let derive = |key: &[u8], salt: &[u8], rtcp: bool| {
            Keys::derive(keys.profile, key, salt, rtcp, crypto)
        };
        Ok(Self {
            out_rtp: derive(&k.local_master_key, &k.local_master_salt, false)?,
            out_rtcp: derive(&k.local_master_key, &k.local_master_salt, true)?,
            in_rtp: derive(&k.remote_master_key, &k.remote_master_salt, false)?,
            in_rtcp: derive(&k.remote_master_key, &k.remote_master_salt, true)?,
            out_rtp_streams: Streams::default(),
            out_rtcp_streams: Streams::default(),
            in_rtp_streams: Streams::default(),
            in_rtcp_streams: Streams::default(),
        })
    }

    /// Protects the RTP packet in `buf[..len]` in place, appending its tag; the protected length.
    /// `buf` needs [`MAX_RTP_OVERHEAD`] bytes of room after `len`.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let header = rtp_header_len(buf.get(..len).ok_or(SrtpError::Malformed)?)?;
        let tag_len = self.out_rtp.tag_len();
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        // The sender's index: its highest so far, or a packet sent again (a retransmission
        // on the same SSRC) placed next to it.
        let highest = self.out_rtp_streams.get(ssrc).copied();
        let index = highest.map_or(u64::from(seq), |h| estimate_index(h, seq));
        self.out_rtp_streams
            .insert(ssrc, highest.map_or(index, |h| h.max(index)));
        let roc = (index >> 16) as u32;
        let (packet, rest) = buf.split_at_mut(len);
        let (head, payload) = packet.split_at_mut(header);
        match &mut self.out_rtp.cipher {
            Cipher::Gcm(aead) => {
                let nonce = gcm_nonce(&self.out_rtp.salt, ssrc, roc, seq);
                aead.seal_in_place(&nonce, head, payload, &mut rest[..GCM_TAG_LEN])
                    .map_err(crypto_error)?;
            }
            Cipher::CmHmac(ctr, mac) => {
                let iv = cm_iv(&self.out_rtp.salt, ssrc, index);
                ctr.apply_keystream(&iv, payload).map_err(crypto_error)?;
                let mut full = [0u8; 20];
                mac.sign(&[packet, &roc.to_be_bytes()], &mut full)
                    .map_err(crypto_error)?;
                rest[..HMAC_TAG_LEN].copy_from_slice(&full[..HMAC_TAG_LEN]);
            }
        }
        Ok(len + tag_len)
    }

    /// Unprotects the SRTP packet `buf` in place; the length of the RTP packet now at its start.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.in_rtp.tag_len();
        let len = buf.len().checked_sub(tag_len).ok_or(SrtpError::Malformed)?;
        let header = rtp_header_len(&buf[..len])?;
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let replay = self.in_rtp_streams.get(ssrc).copied();
        let index = replay.map_or(u64::from(seq), |r| estimate_index(r.highest, seq));
        if replay.is_some_and(|r| !r.fresh(index)) {
            return Err(SrtpError::Replayed);
        }
        let roc = (index >> 16) as u32;
        let (packet, tag) = buf.split_at_mut(len);
        match &mut self.in_rtp.cipher {
            Cipher::Gcm(aead) => {
                let nonce = gcm_nonce(&self.in_rtp.salt, ssrc, roc, seq);
                let (head, payload) = packet.split_at_mut(header);
                aead.open_in_place(&nonce, head, payload, tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
            Cipher::CmHmac(ctr, mac) => {
                verify_truncated(mac.as_mut(), &[packet, &roc.to_be_bytes()], tag)?;
                let iv = cm_iv(&self.in_rtp.salt, ssrc, index);
                ctr.apply_keystream(&iv, &mut packet[header..])
                    .map_err(crypto_error)?;
            }
        }
        let mut replay = replay.unwrap_or(Replay::first(index));
        replay.accept(index);
        self.in_rtp_streams.insert(ssrc, replay);
        Ok(len)
    }

    /// Protects the (compound) RTCP packet in `buf[..len]` in place, encrypted, appending the
    /// SRTCP index and tag; the protected length. `buf` needs [`MAX_RTCP_OVERHEAD`] bytes of
    /// room after `len`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 || len > buf.len() {
            return Err(SrtpError::Malformed);
        }
        let tag_len = self.out_rtcp.tag_len();
        let total = len + SRTCP_INDEX_LEN + tag_len;
        if buf.len() < total {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let index = match self.out_rtcp_streams.get(ssrc) {
            Some(&last) if last >= SRTCP_E_FLAG - 1 => return Err(SrtpError::IndexExhausted),
            Some(&last) => last + 1,
            None => 0,
        };
        self.out_rtcp_streams.insert(ssrc, index);
        let trailer = (SRTCP_E_FLAG | index).to_be_bytes();
        match &mut self.out_rtcp.cipher {
            Cipher::Gcm(aead) => {
                // header || ciphertext || tag || E+index; the AAD is header || E+index.
                let nonce = gcm_rtcp_nonce(&self.out_rtcp.salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&trailer);
                let (packet, rest) = buf.split_at_mut(len);
                aead.seal_in_place(&nonce, &aad, &mut packet[8..], &mut rest[..GCM_TAG_LEN])
                    .map_err(crypto_error)?;
                rest[GCM_TAG_LEN..GCM_TAG_LEN + SRTCP_INDEX_LEN].copy_from_slice(&trailer);
            }
            Cipher::CmHmac(ctr, mac) => {
                // header || ciphertext || E+index || tag; the tag covers all before it.
                let iv = cm_iv(&self.out_rtcp.salt, ssrc, u64::from(index));
                ctr.apply_keystream(&iv, &mut buf[8..len])
                    .map_err(crypto_error)?;
                buf[len..len + SRTCP_INDEX_LEN].copy_from_slice(&trailer);
                let (covered, rest) = buf.split_at_mut(len + SRTCP_INDEX_LEN);
                let mut full = [0u8; 20];
                mac.sign(&[covered], &mut full).map_err(crypto_error)?;
                rest[..HMAC_TAG_LEN].copy_from_slice(&full[..HMAC_TAG_LEN]);
            }
        }
        Ok(total)
    }

    /// Unprotects the SRTCP packet `buf` in place; the length of the RTCP packet now at its
    /// start. SRTCP without encryption (the E flag clear), which no browser sends, is refused.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.in_rtcp.tag_len();
        let len = buf
            .len()
            .checked_sub(tag_len + SRTCP_INDEX_LEN)
            .filter(|&l| l >= 8)
            .ok_or(SrtpError::Malformed)?;
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let gcm = matches!(self.in_rtcp.cipher, Cipher::Gcm(_));
        // GCM: header || payload || tag || E+index; AES-CM: header || payload || E+index || tag.
        let trailer_at = if gcm { len + tag_len } else { len };
        let trailer: [u8; 4] = buf[trailer_at..trailer_at + SRTCP_INDEX_LEN]
            .try_into()
            .map_err(|_| SrtpError::Malformed)?;
        let word = u32::from_be_bytes(trailer);
        if word & SRTCP_E_FLAG == 0 {
            return Err(SrtpError::Unencrypted);
        }
        let index = word & !SRTCP_E_FLAG;
        let replay = self.in_rtcp_streams.get(ssrc).copied();
        if replay.is_some_and(|r| !r.fresh(u64::from(index))) {
            return Err(SrtpError::Replayed);
        }
        match &mut self.in_rtcp.cipher {
            Cipher::Gcm(aead) => {
                let nonce = gcm_rtcp_nonce(&self.in_rtcp.salt, ssrc, index);
                let (packet, rest) = buf.split_at_mut(len);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&packet[..8]);
                aad[8..].copy_from_slice(&trailer);
                aead.open_in_place(&nonce, &aad, &mut packet[8..], &rest[..GCM_TAG_LEN])
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
            Cipher::CmHmac(ctr, mac) => {
                let (covered, tag) = buf.split_at_mut(len + SRTCP_INDEX_LEN);
                verify_truncated(mac.as_mut(), &[covered], tag)?;
                let iv = cm_iv(&self.in_rtcp.salt, ssrc, u64::from(index));
                ctr.apply_keystream(&iv, &mut buf[8..len])
                    .map_err(crypto_error)?;
            }
        }
        let mut replay = replay.unwrap_or(Replay::first(u64::from(index)));
        replay.accept(u64::from(index));
        self.in_rtcp_streams.insert(ssrc, replay);
        Ok(len)
    }
}

/// The session keys of one direction and packet kind.
struct Keys {
    cipher: Cipher,
    /// The session salt (14 bytes for AES-CM, the first 12 for GCM).
    salt: [u8; 14],
}

enum Cipher {
    Gcm(Box<dyn AeadCipher>),
    CmHmac(Box<dyn StreamCipher>, Box<dyn Mac>),
}

impl Keys {
    /// Derives the session keys of RTP (or RTCP) from a master key and salt (RFC 3711 §4.3).
    fn derive(
        profile: ProtectionProfile,
        master_key: &[u8],
        master_salt: &[u8],
        rtcp: bool,
        crypto: &dyn RTCCrypto,
    ) -> Result<Self, SrtpError> {
        let gcm = match profile {
            ProtectionProfile::AeadAes128Gcm => true,
            ProtectionProfile::Aes128CmHmacSha1_80 => false,
            other => return Err(SrtpError::UnsupportedProfile(format!("{other:?}"))),
        };
        if master_key.len() != 16 || master_salt.len() != profile.salt_len() {
            return Err(SrtpError::BadKeys);
        }
        // Labels: encryption 0/3, authentication 1/4, salt 2/5 (RTP/RTCP).
        let base = if rtcp { 3 } else { 0 };
        let prf = |label: u8, out: &mut [u8]| kdf(crypto, master_key, master_salt, label, out);
        let mut key = [0u8; 16];
        prf(base, &mut key)?;
        let mut salt = [0u8; 14];
        prf(base + 2, &mut salt[..profile.salt_len()])?;
        let cipher = if gcm {
            Cipher::Gcm(
                crypto
                    .new_aead(AeadAlgorithm::Aes128Gcm, &key)
                    .map_err(crypto_error)?,
            )
        } else {
            let mut auth = [0u8; 20];
            prf(base + 1, &mut auth)?;
            Cipher::CmHmac(
                crypto
                    .new_stream_cipher(StreamCipherAlgorithm::Aes128Ctr, &key)
                    .map_err(crypto_error)?,
                crypto
                    .new_hmac(HmacAlgorithm::Sha1, &auth)
                    .map_err(crypto_error)?,
            )
        };
        Ok(Self { cipher, salt })
    }

    fn tag_len(&self) -> usize {
        match self.cipher {
            Cipher::Gcm(_) => GCM_TAG_LEN,
            Cipher::CmHmac(..) => HMAC_TAG_LEN,
        }
    }
}

/// The AES-CM PRF of RFC 3711 §4.3.3 with key derivation rate 0: `out` filled with the
/// keystream of `master_key` from the IV (master salt, `label` at byte 7) · 2^16.
fn kdf(
    crypto: &dyn RTCCrypto,
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    out: &mut [u8],
) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    for (counter, chunk) in out.chunks_mut(16).enumerate() {
        let mut block = iv;
        block[14..].copy_from_slice(&(counter as u16).to_be_bytes());
        crypto
            .block_encrypt(BlockCipherAlgorithm::Aes128, master_key, &mut block)
            .map_err(crypto_error)?;
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    Ok(())
}

/// The AES-CM IV of RFC 3711 §4.1.1: (salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16).
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// The GCM nonce of an RTP packet (RFC 7714 §8.1): (0 0 SSRC ROC SEQ) XOR salt.
fn gcm_nonce(salt: &[u8; 14], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[2..6].copy_from_slice(&ssrc.to_be_bytes());
    nonce[6..10].copy_from_slice(&roc.to_be_bytes());
    nonce[10..].copy_from_slice(&seq.to_be_bytes());
    for (n, s) in nonce.iter_mut().zip(salt) {
        *n ^= s;
    }
    nonce
}

/// The GCM nonce of an RTCP packet (RFC 7714 §9.1): (0 0 SSRC 0 0 index) XOR salt.
fn gcm_rtcp_nonce(salt: &[u8; 14], ssrc: u32, index: u32) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[2..6].copy_from_slice(&ssrc.to_be_bytes());
    nonce[8..].copy_from_slice(&index.to_be_bytes());
    for (n, s) in nonce.iter_mut().zip(salt) {
        *n ^= s;
    }
    nonce
}

/// Checks an 80-bit truncated HMAC-SHA1 tag in constant time.
fn verify_truncated(mac: &mut dyn Mac, input: &[&[u8]], tag: &[u8]) -> Result<(), SrtpError> {
    let mut full = [0u8; 20];
    mac.sign(input, &mut full).map_err(crypto_error)?;
    let diff = full[..HMAC_TAG_LEN]
        .iter()
        .zip(tag)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if tag.len() == HMAC_TAG_LEN && diff == 0 {
        Ok(())
    } else {
        Err(SrtpError::AuthFailed)
    }
}

/// The length of an RTP packet's header: fixed part, CSRCs and extension.
fn rtp_header_len(packet: &[u8]) -> Result<usize, SrtpError> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    if len > packet.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

/// The 48-bit index of sequence number `seq` nearest to the highest index seen (RFC 3711
/// Appendix A).
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let last = (highest & 0xffff) as u16;
    let roc = if last < 0x8000 {
        if seq > last && seq - last > 0x8000 {
            // From the previous cycle (there is none before the first).
            roc.saturating_sub(1)
        } else {
            roc
        }
    } else if last - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    ((roc << 16) | u64::from(seq)) & 0xffff_ffff_ffff
}

/// A receiver's replay window: the highest index and a bitmap of the 64 below it.
#[derive(Debug, Clone, Copy)]
struct Replay {
    highest: u64,
    seen: u64,
}

impl Replay {
    fn first(index: u64) -> Self {
        Self {
            highest: index,
            seen: 0,
        }
    }

    /// Whether `index` is new and within the window.
    fn fresh(&self, index: u64) -> bool {
        if index > self.highest {
            return true;
        }
        let behind = self.highest - index;
        behind < REPLAY_WINDOW && self.seen & (1 << behind) == 0
    }

    fn accept(&mut self, index: u64) {
        if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.highest = index;
        }
        self.seen |= 1 << (self.highest - index);
    }
}

/// Per-SSRC state, at most [`MAX_STREAMS`] entries; inserting into a full table forgets the
/// least recently used. A linear scan: a peer has a few SSRCs per direction.
struct Streams<T> {
    entries: Vec<(u32, u64, T)>,
    tick: u64,
}

impl<T> Default for Streams<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            tick: 0,
        }
    }
}

impl<T> Streams<T> {
    fn get(&self, ssrc: u32) -> Option<&T> {
        self.entries
            .iter()
            .find(|(s, _, _)| *s == ssrc)
            .map(|(_, _, t)| t)
    }

    fn insert(&mut self, ssrc: u32, value: T) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.entries.iter_mut().find(|(s, _, _)| *s == ssrc) {
            *entry = (ssrc, tick, value);
        } else if self.entries.len() < MAX_STREAMS {
            self.entries.push((ssrc, tick, value));
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|(_, used, _)| *used) {
            *oldest = (ssrc, tick, value);
        }
    }
}

#[cfg(test)]
#[path = "srtp_tests.rs"]
mod tests;
