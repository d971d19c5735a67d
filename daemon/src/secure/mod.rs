//! Secrets in memory: zeroizing, redacted types for passwords, tokens and plaintext; keys at rest in
//! locked memory; process hardening.
//!
//! Rule of the house: a secret is never a bare `String` or `Vec<u8>`. Library key types (`p256`,
//! `x25519-dalek`, `aes-gcm`) are built from a [`LockedKey`] for one operation and dropped (they
//! zeroize themselves), so key bytes at rest live only in locked memory.

mod secret;

pub use secret::{LockedKey, SecretBytes, SecretString};
