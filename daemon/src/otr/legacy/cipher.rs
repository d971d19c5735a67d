//! AES-128-GCM envelopes (PROTOCOL.md §1.4–1.5): `IV(12) || ciphertext || tag(16)`, no AAD, as the
//! EJSON string `{"$binary":"<standard base64 with padding>"}` — the `msg` / `ack` field value.
//!
//! AES-GCM is AWS-LC's (through `aws-lc-rs`): its AES-NI/VAES and carry-less-multiply assembly
//! seals and opens a chat message several times faster than the portable `aes-gcm` crate, whose
//! GHASH was most of a message's cost (issue 4). The AEAD context (expanded key and GHASH table)
//! is built from the locked key for each call and freed after it — AWS-LC wipes its allocations
//! on free — so the key schedule never outlives one message; keeping it per session would save
//! ~0.15 µs per call but leave key material in unlocked heap memory for the session's life.
//!
//! The envelope is written and read without a generic JSON value: the canonical form every
//! stock client produces is recognised directly, its base64 coded with `base64-simd` (SIMD, several
//! times the `base64` crate's speed on these sizes); anything else — whitespace, escapes, missing
//! padding — goes through `serde_json` and the `base64` crate with the same rules as before.

use super::keys::SharedKey;
use super::LegacyError;
use crate::secure::SecretBytes;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use std::borrow::Cow;

/// IV length.
pub const IV_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
/// Shortest decodable envelope: an IV and a tag around an empty plaintext.
pub const MIN_ENVELOPE_LEN: usize = IV_LEN + TAG_LEN;

/// What a stock client writes before the base64 text (EJSON of a `Uint8Array`).
const PREFIX: &str = r#"{"$binary":""#;
/// And after it.
const SUFFIX: &str = r#""}"#;

/// Standard alphabet; padding accepted or not on decode (stock clients always pad).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The AEAD context for one operation (see the module docs for why it is not kept).
fn aead(key: &SharedKey) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_128_GCM, key.expose())
        .ok()
        .map(LessSafeKey::new)
}

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
    let aead = aead(key).ok_or(LegacyError::Encrypt)?;
    // Sized up front so the plaintext copy is never reallocated (which would leave a stray copy),
    // and wiped on drop while it may hold plaintext (until sealed, or for good if sealing fails).
    let mut secret = SecretBytes::with_capacity(IV_LEN + plaintext.len() + TAG_LEN);
    let buf = secret.vec_mut();
    buf.extend_from_slice(iv);
    buf.extend_from_slice(plaintext);
    let tag = aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*iv),
            Aad::empty(),
            &mut buf[IV_LEN..],
        )
        .map_err(|_| LegacyError::Encrypt)?;
    drop(aead);
    buf.extend_from_slice(tag.as_ref());
    // Sealed: only ciphertext from here on, which needs no wiping.
    let buf = std::mem::take(buf);
    let mut out = String::with_capacity(PREFIX.len() + buf.len().div_ceil(3) * 4 + SUFFIX.len());
    out.push_str(PREFIX);
    base64_simd::STANDARD.encode_append(buf.as_slice(), &mut out);
    out.push_str(SUFFIX);
    Ok(out)
}

/// The `$binary` text of an envelope: borrowed in the canonical form, else through a JSON parse.
fn binary_member(envelope: &str) -> Result<Cow<'_, str>, LegacyError> {
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
    obj.get("$binary")
        .and_then(|v| v.as_str())
        .map(|s| Cow::Owned(s.to_owned()))
        .ok_or(LegacyError::Envelope("no $binary string"))
}

/// Decodes canonical base64 (standard alphabet, padded, or unpadded when the length says so;
/// unused bits zero). Everything it accepts, [`LENIENT`] accepts too, with the same bytes.
fn decode_canonical(b64: &str) -> Option<Vec<u8>> {
    // A multiple of four symbols is padded (or needs no padding); anything else is unpadded.
    let codec = if b64.len() & 3 == 0 {
        &base64_simd::STANDARD
    } else {
        &base64_simd::STANDARD_NO_PAD
    };
    let mut raw = Vec::with_capacity(codec.decoded_length(b64.as_bytes()).ok()?);
    codec.decode_append(b64, &mut raw).ok()?;
    Some(raw)
}

/// Base64-decodes `b64` with [`LENIENT`], into a fresh buffer sized once.
fn decode_lenient(b64: &str) -> Option<Vec<u8>> {
    let mut raw = Vec::with_capacity(base64::decoded_len_estimate(b64.len()));
    LENIENT.decode_vec(b64, &mut raw).ok()?;
    Some(raw)
}

/// Decodes an envelope string to its raw bytes (`IV || ct || tag`), checking its shape.
pub fn decode_envelope(envelope: &str) -> Result<Vec<u8>, LegacyError> {
    // The canonical form: `{"$binary":"…"}` around canonical base64. Base64 text has no quote,
    // backslash or control character, so such a string is exactly that JSON object with that
    // string value; anything else takes the general path and its precise errors.
    let fast = envelope
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(SUFFIX))
        .and_then(decode_canonical);
    let raw = match fast {
        Some(raw) => raw,
        None => decode_lenient(&binary_member(envelope)?)
            .ok_or(LegacyError::Envelope("$binary is not base64"))?,
    };
    if raw.len() < MIN_ENVELOPE_LEN {
        return Err(LegacyError::Envelope("shorter than IV and tag"));
    }
    Ok(raw)
}

/// Decrypts an envelope string; the plaintext comes back in zeroizing storage.
pub fn decrypt(key: &SharedKey, envelope: &str) -> Result<SecretBytes, LegacyError> {
    // Wiped on drop from here on: it holds plaintext once opened (and AES-GCM may have written
    // unauthenticated plaintext into it before refusing the tag).
    let mut secret = SecretBytes::new(decode_envelope(envelope)?);
    let buf = secret.vec_mut();
    let (iv, body) = buf.split_at_mut(IV_LEN);
    let iv: [u8; IV_LEN] = (&*iv)
        .try_into()
        .map_err(|_| LegacyError::Envelope("shorter than IV and tag"))?;
    let aead = aead(key).ok_or(LegacyError::Decrypt)?;
    let len = aead
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), body)
        .map_err(|_| LegacyError::Decrypt)?
        .len();
    drop(aead);
    // The plaintext moves to the front of the same buffer: no second copy to wipe (the stale
    // tail beyond the new length is spare capacity, which the wipe covers too).
    buf.copy_within(IV_LEN..IV_LEN + len, 0);
    buf.truncate(len);
    Ok(secret)
}
