//! The stock Rocket.Chat client's OTR scheme ("legacy"), byte-compatible (PROTOCOL.md §1–2).
//!
//! - [`keys`] — ephemeral ECDH P-256 key pairs, the browser JWK export/import of public keys, and
//!   the shared AES-128 key (first 16 bytes of SHA-256 of the raw shared x-coordinate).
//! - [`cipher`] — AES-128-GCM with a random 12-byte IV, `IV || ct || tag`, wrapped as the EJSON
//!   string `{"$binary":"<base64>"}`.
//! - [`inner`] — the plaintext JSON inside: chat messages and ack payloads (written by `json`).
//!
//! The scheme is weak by design (no authentication, one key both ways, PROTOCOL.md §9); the
//! session layer adds the protections that do not break stock peers.

pub mod cipher;
pub mod inner;
mod json;
pub mod keys;

#[cfg(test)]
mod tests;

pub use cipher::{decrypt, encrypt, encrypt_with_iv, IV_LEN, MIN_ENVELOPE_LEN, TAG_LEN};
pub use inner::{AckPayload, InnerMessage};
pub use keys::{EphemeralKeyPair, PeerPublicKey, SharedKey};

/// What can go wrong in the legacy scheme. Messages never contain key or plaintext bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    /// The peer's `publicKey` string is not an acceptable P-256 JWK.
    #[error("invalid peer public key: {0}")]
    InvalidPublicKey(&'static str),
    /// A private key given for import is not a valid P-256 scalar.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// No key pair could be made (the generator or the curve library failed).
    #[error("key generation failed")]
    KeyGeneration,
    /// The ECDH computation failed.
    #[error("key agreement failed")]
    KeyAgreement,
    /// The `{"$binary":…}` envelope is malformed.
    #[error("malformed ciphertext envelope: {0}")]
    Envelope(&'static str),
    /// AES-GCM refused (wrong key or tampered ciphertext).
    #[error("decryption failed (wrong key or tampered ciphertext)")]
    Decrypt,
    /// AES-GCM encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// The decrypted JSON is not the expected shape.
    #[error("malformed plaintext: {0}")]
    Plaintext(&'static str),
}
