//! AES-128-GCM envelopes (PROTOCOL.md §1.4–1.5): `IV(12) || ciphertext || tag(16)`, no AAD, as the
//! EJSON string `{"$binary":"<standard base64 with padding>"}` — the `msg` / `ack` field value.

use super::keys::SharedKey;
use super::LegacyError;
use crate::secure::SecretBytes;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// IV length.
pub const IV_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Shortest decodable envelope: an IV and a tag around an empty plaintext.
pub const MIN_ENVELOPE_LEN: usize = IV_LEN + TAG_LEN;

/// Standard alphabet; padding accepted or not on decode (stock clients always pad).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encrypts `plaintext` under `key` with a random IV; returns the envelope string.
pub fn encrypt(
    key: &SharedKey,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, LegacyError> {
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    encrypt_with_iv(key, &iv, plaintext)
}

/// Encrypts with an explicit IV (test vectors, benchmarks). Never reuse an IV under one key.
pub fn encrypt_with_iv(
    key: &SharedKey,
    iv: &[u8; IV_LEN],
    plaintext: &[u8],
) -> Result<String, LegacyError> {
    let cipher = Aes128Gcm::new_from_slice(key.expose()).map_err(|_| LegacyError::Encrypt)?;
    // Sized up front so the plaintext copy is never reallocated (which would leave a stray copy).
    let mut buf = Zeroizing::new(Vec::with_capacity(IV_LEN + plaintext.len() + TAG_LEN));
    buf.extend_from_slice(iv);
    buf.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(&Nonce::from(*iv), b"", &mut buf[IV_LEN..])
        .map_err(|_| LegacyError::Encrypt)?;
    buf.extend_from_slice(&tag);
    Ok(format!(
        r#"{{"$binary":"{}"}}"#,
        STANDARD.encode(buf.as_slice())
    ))
}

/// Decodes an envelope string to its raw bytes (`IV || ct || tag`), checking its shape.
pub fn decode_envelope(envelope: &str) -> Result<Vec<u8>, LegacyError> {
    let value: serde_json::Value =
        serde_json::from_str(envelope).map_err(|_| LegacyError::Envelope("not JSON"))?;
    let obj = value
        .as_object()
        .ok_or(LegacyError::Envelope("not a JSON object"))?;
    if obj.len() != 1 {
        return Err(LegacyError::Envelope(
            "must have exactly one member, $binary",
        ));
    }
    let b64 = obj
        .get("$binary")
        .and_then(|v| v.as_str())
        .ok_or(LegacyError::Envelope("no $binary string"))?;
    let raw = LENIENT
        .decode(b64)
        .map_err(|_| LegacyError::Envelope("$binary is not base64"))?;
    if raw.len() < MIN_ENVELOPE_LEN {
        return Err(LegacyError::Envelope("shorter than IV and tag"));
    }
    Ok(raw)
}

/// Decrypts an envelope string; the plaintext comes back in zeroizing storage.
pub fn decrypt(key: &SharedKey, envelope: &str) -> Result<SecretBytes, LegacyError> {
    let raw = decode_envelope(envelope)?;
    let (iv, body) = raw.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv
        .try_into()
        .map_err(|_| LegacyError::Envelope("shorter than IV and tag"))?;
    let cipher = Aes128Gcm::new_from_slice(key.expose()).map_err(|_| LegacyError::Decrypt)?;
    let mut buf = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_in_place(&Nonce::from(iv), b"", &mut *buf)
        .map_err(|_| LegacyError::Decrypt)?;
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}
