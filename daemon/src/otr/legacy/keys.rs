//! Ephemeral ECDH P-256 key pairs and the shared AES key (PROTOCOL.md §1.1–1.3).
//!
//! The curve arithmetic is AWS-LC's (through `aws-lc-rs`), whose P-256 has assembly and a
//! precomputed base-point table: a handshake costs a fraction of what the portable `p256` crate
//! took (issue 4).
//!
//! Where the private scalar lives: in a [`LockedKey<32>`] from the moment it is drawn. AWS-LC
//! cannot keep its keys in our locked arena, so for each operation — computing the public key
//! once at generation, and the agreement later — the scalar is imported into an AWS-LC key
//! object, used, and the object dropped at once. During that window (one scalar multiplication
//! for the public key, one base-point and one variable-point multiplication for the agreement,
//! tens of microseconds) the scalar also sits in AWS-LC's heap, unlocked; AWS-LC wipes every
//! allocation when it frees it. Keeping the AWS-LC object for the whole handshake instead would
//! save one base-point multiplication but leave the scalar in unlocked memory for as long as the
//! peer takes to answer.
//!
//! Public keys travel as the browser's JWK string, members in the order
//! `crv, ext, key_ops, kty, x, y`; a peer's key is checked on import (exact lengths, on the curve).

use super::LegacyError;
use crate::secure::LockedKey;
use aws_lc_rs::agreement::{self, ParsedPublicKey, PrivateKey, UnparsedPublicKey, ECDH_P256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Length of an uncompressed SEC 1 point: `04 || x || y`.
const POINT_LEN: usize = 65;

/// Draws before giving up on generating a scalar. A uniformly random 256-bit string is a valid
/// P-256 scalar unless it is zero or at least the group order, a chance below 2^-32 per draw, so
/// running out means the generator or AWS-LC is broken, not bad luck.
const MAX_DRAWS: usize = 8;

/// Our side of one handshake: a fresh key pair (one per start, accept and refresh).
pub struct EphemeralKeyPair {
    /// The private scalar, big-endian.
    private: LockedKey<32>,
    /// The public key as the JWK string that goes into `publicKey`.
    public_jwk: String,
}

/// An AWS-LC key object for `private`, for one operation (see the module docs).
fn import(private: &LockedKey<32>) -> Result<PrivateKey, LegacyError> {
    PrivateKey::from_private_key(&ECDH_P256, private.expose())
        .map_err(|_| LegacyError::InvalidPrivateKey)
}

impl EphemeralKeyPair {
    /// Draws a fresh key pair: a uniformly random scalar in [1, n) (rejection sampling, as
    /// WebCrypto and the `p256` crate do), straight from the kernel into locked memory. `rng`
    /// is not used for the scalar (see [`crate::secure::fill_private`]).
    pub fn generate(_rng: &mut (impl RngCore + CryptoRng)) -> Result<Self, LegacyError> {
        Self::generate_with(crate::secure::fill_private)
    }

    /// [`Self::generate`] with the private scalars drawn by `draw` (the kernel in production; a
    /// rigged source in the tests of the redraw rule).
    pub(crate) fn generate_with(mut draw: impl FnMut(&mut [u8])) -> Result<Self, LegacyError> {
        for _ in 0..MAX_DRAWS {
            let mut bytes = [0u8; 32];
            draw(&mut bytes);
            // `LockedKey::new` wipes the stack copy.
            match Self::from_private_bytes(LockedKey::new(&mut bytes)) {
                Err(LegacyError::InvalidPrivateKey) => continue,
                done => return done,
            }
        }
        Err(LegacyError::KeyGeneration)
    }

    /// Rebuilds a key pair from a known private scalar (test vectors, benchmarks).
    pub fn from_private_bytes(private: LockedKey<32>) -> Result<Self, LegacyError> {
        let key = import(&private)?;
        let public = key
            .compute_public_key()
            .map_err(|_| LegacyError::KeyGeneration)?;
        drop(key);
        let public_jwk = public_jwk(public.as_ref()).ok_or(LegacyError::KeyGeneration)?;
        Ok(Self {
            private,
            public_jwk,
        })
    }

    /// The `publicKey` field value: `{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":…,"y":…}`.
    pub fn public_jwk(&self) -> &str {
        &self.public_jwk
    }

    /// The raw ECDH shared x-coordinate with `peer` (`deriveBits(256)`), in zeroizing storage.
    pub fn shared_x(&self, peer: &PeerPublicKey) -> Result<Zeroizing<[u8; 32]>, LegacyError> {
        let key = import(&self.private).map_err(|_| LegacyError::KeyAgreement)?;
        agreement::agree(&key, peer.parsed.clone(), LegacyError::KeyAgreement, |z| {
            let mut x = Zeroizing::new([0u8; 32]);
            if z.len() != x.len() {
                return Err(LegacyError::KeyAgreement);
            }
            x.copy_from_slice(z);
            Ok(x)
        })
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

/// The JWK string of an uncompressed point, in browser member order.
fn public_jwk(point: &[u8]) -> Option<String> {
    let (x, y) = match point {
        [0x04, xy @ ..] if xy.len() == 64 => xy.split_at(32),
        _ => return None,
    };
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    Some(format!(
        r#"{{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"{x}","y":"{y}"}}"#
    ))
}

/// A validated peer public key (not secret).
#[derive(Clone)]
pub struct PeerPublicKey {
    /// `04 || x || y`, as received.
    point: [u8; POINT_LEN],
    /// AWS-LC's parsed form (checked on the curve), shared by every agreement with this key.
    parsed: ParsedPublicKey,
}

impl PartialEq for PeerPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.point == other.point
    }
}

impl Eq for PeerPublicKey {}

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
        let mut point = [0u8; POINT_LEN];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&x);
        point[33..].copy_from_slice(&y);
        // AWS-LC decodes the point and checks that it satisfies the curve equation.
        let parsed = ParsedPublicKey::try_from(UnparsedPublicKey::new(&ECDH_P256, &point[..]))
            .map_err(|_| LegacyError::InvalidPublicKey("point is not on the curve"))?;
        Ok(Self { point, parsed })
    }

    /// The JWK string in browser member order (what a stock client would send for this key).
    pub fn to_jwk(&self) -> String {
        public_jwk(&self.point).unwrap_or_default()
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
