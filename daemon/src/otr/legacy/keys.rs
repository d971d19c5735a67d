//! Ephemeral ECDH P-256 key pairs and the shared AES key (PROTOCOL.md §1.1–1.3).
//!
//! The private scalar lives in a [`LockedKey<32>`]; a `p256::SecretKey` is rebuilt from it for one
//! agreement and dropped (it zeroizes itself). Public keys travel as the browser's JWK string, members
//! in the order `crv, ext, key_ops, kty, x, y`.

use super::LegacyError;
use crate::secure::LockedKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ToEncodedPoint};
use p256::{NistP256, PublicKey, SecretKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Our side of one handshake: a fresh key pair (one per start, accept and refresh).
pub struct EphemeralKeyPair {
    /// The private scalar, big-endian.
    private: LockedKey<32>,
    /// The public key as the JWK string that goes into `publicKey`.
    public_jwk: String,
}

impl EphemeralKeyPair {
    /// Draws a fresh key pair.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let secret = SecretKey::random(rng);
        Self::from_secret(&secret)
    }

    /// Rebuilds a key pair from a known private scalar (test vectors, benchmarks).
    pub fn from_private_bytes(private: LockedKey<32>) -> Result<Self, LegacyError> {
        let secret = SecretKey::from_bytes(private.expose().into())
            .map_err(|_| LegacyError::InvalidPrivateKey)?;
        let public_jwk = public_jwk(&secret.public_key());
        Ok(Self {
            private,
            public_jwk,
        })
    }

    fn from_secret(secret: &SecretKey) -> Self {
        let mut field = secret.to_bytes();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&field);
        field[..].zeroize();
        Self {
            private: LockedKey::new(&mut bytes),
            public_jwk: public_jwk(&secret.public_key()),
        }
    }

    /// The `publicKey` field value: `{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":…,"y":…}`.
    pub fn public_jwk(&self) -> &str {
        &self.public_jwk
    }

    /// The raw ECDH shared x-coordinate with `peer` (`deriveBits(256)`), in zeroizing storage.
    pub fn shared_x(&self, peer: &PeerPublicKey) -> Result<Zeroizing<[u8; 32]>, LegacyError> {
        let secret = SecretKey::from_bytes(self.private.expose().into())
            .map_err(|_| LegacyError::KeyAgreement)?;
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.key.as_affine());
        let mut x = Zeroizing::new([0u8; 32]);
        x.copy_from_slice(shared.raw_secret_bytes());
        Ok(x)
    }

    /// The session's AES-128 key with `peer`: first 16 bytes of SHA-256 of the shared x-coordinate.
    pub fn agree(&self, peer: &PeerPublicKey) -> Result<SharedKey, LegacyError> {
        let x = self.shared_x(peer)?;
        let mut digest: [u8; 32] = Sha256::digest(x.as_slice()).into();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        digest.zeroize();
        Ok(SharedKey(LockedKey::new(&mut key)))
    }
}

impl fmt::Debug for EphemeralKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EphemeralKeyPair")
            .field("public_jwk", &self.public_jwk)
            .finish_non_exhaustive()
    }
}

/// The JWK string of a public key, in browser member order.
fn public_jwk(key: &PublicKey) -> String {
    let point = key.to_encoded_point(false);
    // An uncompressed point of a valid public key always has both coordinates.
    let (x, y) = match (point.x(), point.y()) {
        (Some(x), Some(y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
        _ => (String::new(), String::new()),
    };
    format!(r#"{{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"{x}","y":"{y}"}}"#)
}

/// A validated peer public key (not secret).
#[derive(Clone, PartialEq, Eq)]
pub struct PeerPublicKey {
    key: PublicKey,
}

impl PeerPublicKey {
    /// Parses and validates a `publicKey` field: a JSON object with `kty:"EC"`, `crv:"P-256"`,
    /// `x`/`y` of exactly 32 bytes (base64url, padding tolerated), on the curve, and no `d`.
    pub fn from_jwk(jwk: &str) -> Result<Self, LegacyError> {
        let value: serde_json::Value =
            serde_json::from_str(jwk).map_err(|_| LegacyError::InvalidPublicKey("not JSON"))?;
        let obj = value
            .as_object()
            .ok_or(LegacyError::InvalidPublicKey("not a JSON object"))?;
        if obj.get("kty").and_then(|v| v.as_str()) != Some("EC") {
            return Err(LegacyError::InvalidPublicKey("kty is not EC"));
        }
        if obj.get("crv").and_then(|v| v.as_str()) != Some("P-256") {
            return Err(LegacyError::InvalidPublicKey("crv is not P-256"));
        }
        if obj.contains_key("d") {
            return Err(LegacyError::InvalidPublicKey("carries a private member d"));
        }
        let x = coordinate(obj.get("x"))?;
        let y = coordinate(obj.get("y"))?;
        let point =
            EncodedPoint::<NistP256>::from_affine_coordinates((&x).into(), (&y).into(), false);
        let key = Option::<PublicKey>::from(PublicKey::from_encoded_point(&point))
            .ok_or(LegacyError::InvalidPublicKey("point is not on the curve"))?;
        Ok(Self { key })
    }

    /// The JWK string in browser member order (what a stock client would send for this key).
    pub fn to_jwk(&self) -> String {
        public_jwk(&self.key)
    }
}

impl fmt::Debug for PeerPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PeerPublicKey")
            .field(&self.to_jwk())
            .finish()
    }
}

fn coordinate(v: Option<&serde_json::Value>) -> Result<[u8; 32], LegacyError> {
    let s = v
        .and_then(|v| v.as_str())
        .ok_or(LegacyError::InvalidPublicKey("missing x or y"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| LegacyError::InvalidPublicKey("x or y is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| LegacyError::InvalidPublicKey("x or y is not 32 bytes"))
}

/// The session's AES-128-GCM key (same key both ways, for messages and acks).
#[derive(Clone)]
pub struct SharedKey(LockedKey<16>);

impl SharedKey {
    /// Wraps known key bytes (test vectors).
    pub fn from_locked(key: LockedKey<16>) -> Self {
        Self(key)
    }

    /// The key bytes, to build an AES cipher for one operation.
    pub fn expose(&self) -> &[u8; 16] {
        self.0.expose()
    }
}

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey([REDACTED])")
    }
}
