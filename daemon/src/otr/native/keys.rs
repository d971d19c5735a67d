//! Key material for the native scheme: the long-term identity, fingerprints, and the small
//! primitives (X25519, HKDF, HMAC) every other file builds on. Private keys live in
//! [`LockedKey`]s; library key types exist only inside one function call.

use super::NativeError;
use crate::secure::LockedKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// A long-term X25519 identity (one per account and machine).
///
/// Cloning shares the one locked copy of the private key: every session's policy holds a clone,
/// and copying the key into each would leave one more copy of the long-term secret in the arena
/// per room for the life of the daemon.
#[derive(Clone)]
pub struct LocalIdentity {
    secret: std::sync::Arc<LockedKey<32>>,
    public: [u8; 32],
}

impl LocalIdentity {
    /// The identity whose private key is `secret` (as stored by `crate::identity`).
    pub fn from_secret(secret: LockedKey<32>) -> Self {
        let public = public_of(&secret);
        Self {
            secret: std::sync::Arc::new(secret),
            public,
        }
    }

    /// A fresh random identity.
    pub fn generate<R: rand::RngCore + rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_secret(random_key(rng))
    }

    /// The public key (what peers see as `ik`).
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The fingerprint users compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.public)
    }

    /// The private key at rest, for persisting it.
    pub fn secret(&self) -> &LockedKey<32> {
        &self.secret
    }
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of an identity public key. `Display` gives 8 groups of 8 uppercase hex digits;
/// [`Fingerprint::to_hex`] the 64 digits without spaces (the trust store's form).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of an identity public key.
    pub fn of(public: &[u8; 32]) -> Self {
        Self(Sha256::digest(public).into())
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 uppercase hex digits, no separators.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }

    /// Parses 64 hex digits, ignoring spaces and case (accepts the `Display` form).
    pub fn from_hex(s: &str) -> Option<Self> {
        let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
        if digits.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).ok()?;
            out[i] = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        for (i, group) in hex.as_bytes().chunks(8).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(std::str::from_utf8(group).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// 32 random bytes straight from the kernel into locked storage (X25519 clamps at use).
///
/// Private keys never come from `rng` (a user-space generator whose state could be read back from
/// swap or a core dump and replayed): see [`crate::secure::fill_private`]. The parameter
/// stays so every key maker keeps the one-generator signature its callers pass.
pub(crate) fn random_key<R: rand::RngCore + rand::CryptoRng + ?Sized>(
    _rng: &mut R,
) -> LockedKey<32> {
    let mut bytes = [0u8; 32];
    crate::secure::fill_private(&mut bytes);
    LockedKey::new(&mut bytes)
}

/// The X25519 public key of a private key.
pub(crate) fn public_of(secret: &LockedKey<32>) -> [u8; 32] {
    let sk = StaticSecret::from(*secret.expose());
    PublicKey::from(&sk).to_bytes()
}

/// X25519(ours, theirs); an all-zero result (a low-order peer key) is an error.
pub(crate) fn dh(
    ours: &LockedKey<32>,
    theirs: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, NativeError> {
    let sk = StaticSecret::from(*ours.expose());
    let shared = sk.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(NativeError::WeakKey);
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

/// HKDF-SHA256 extract-and-expand into `out`.
pub(crate) fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let kdf = Hkdf::<Sha256>::new(Some(salt), ikm);
    // The only failure is an output longer than 255 * 32 bytes; callers ask for at most 96.
    if kdf.expand(info, out).is_err() {
        out.fill(0);
    }
}

/// HMAC-SHA256(key, parts concatenated).
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    // HMAC accepts keys of any length, so construction cannot fail for 32 bytes.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Zeroizing::new([0u8; 32]),
    };
    for p in parts {
        mac.update(p);
    }
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// HMAC-SHA256(key, [0x01]) and HMAC-SHA256(key, [0x02]): the Double Ratchet's chain step, run
/// once per message on each side.
///
/// Written out on the SHA-256 compression function (`sha2::compress256`, SHA-NI where the CPU has
/// it) because the generic `hmac` path spends about as long on buffering as on hashing here:
/// the key's two pad blocks are compressed once, then each output is one inner and one outer
/// block with fixed padding — 6 compressions in all. `hmac_pair_matches_hmac` checks it against
/// the `hmac` crate. Every key-derived block and state is wiped on return.
pub(crate) fn hmac_pair(key: &[u8; 32]) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
    const IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    // sha2 0.10 takes its blocks as generic-array 0.14 values, deprecated upstream in favour of
    // 1.x; borrowing our (wiped) arrays in place avoids an unwiped copy of a key-derived block.
    #[allow(deprecated)]
    let compress = |state: &mut [u32; 8], block: &[u8; 64]| {
        let block = sha2::digest::generic_array::GenericArray::from_slice(block);
        sha2::compress256(state, std::slice::from_ref(block));
    };
    let keyed = |pad: u8| {
        let mut block = Zeroizing::new([pad; 64]);
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut state = Zeroizing::new(IV);
        compress(&mut state, &block);
        state
    };
    let (inner, outer) = (keyed(0x36), keyed(0x5c));
    let one = |byte: u8| {
        // Inner: one message byte after the 64-byte pad block → 65 bytes = 520 bits.
        let mut block = Zeroizing::new([0u8; 64]);
        block[0] = byte;
        block[1] = 0x80;
        block[56..].copy_from_slice(&520u64.to_be_bytes());
        let mut state = inner.clone();
        compress(&mut state, &block);
        // Outer: the 32-byte inner digest after the pad block → 96 bytes = 768 bits.
        for (chunk, word) in block[..32].chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        block[32] = 0x80;
        block[33..56].fill(0);
        block[56..].copy_from_slice(&768u64.to_be_bytes());
        state.copy_from_slice(&outer[..]);
        compress(&mut state, &block);
        let mut out = Zeroizing::new([0u8; 32]);
        for (chunk, word) in out.chunks_exact_mut(4).zip(state.iter()) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    };
    (one(0x01), one(0x02))
}

/// Constant-time equality of two MACs.
pub(crate) fn mac_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Standard padded base64 of 32 bytes.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes standard base64 that must hold exactly 32 bytes.
pub(crate) fn unb64_32(s: &str) -> Option<[u8; 32]> {
    let v = B64.decode(s).ok()?;
    v.try_into().ok()
}

/// Splits a 32-byte slice of a derived buffer into a locked key.
pub(crate) fn locked_from(slice: &[u8]) -> LockedKey<32> {
    let mut k = [0u8; 32];
    k.copy_from_slice(&slice[..32]);
    LockedKey::new(&mut k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn hmac_pair_matches_hmac() {
        let mut key = [0u8; 32];
        for round in 0..200 {
            match round {
                0 => key = [0; 32],
                1 => key = [0xff; 32],
                _ => rand::rngs::OsRng.fill_bytes(&mut key),
            }
            let (one, two) = hmac_pair(&key);
            assert_eq!(*one, *hmac(&key, &[&[0x01]]), "key {key:?}");
            assert_eq!(*two, *hmac(&key, &[&[0x02]]), "key {key:?}");
        }
        // RFC 4231 does not cover 1-byte messages; one fixed answer from an outside tool
        // (`printf '\x01' | openssl dgst -sha256 -mac HMAC -macopt hexkey:00…00`).
        let (one, _) = hmac_pair(&[0u8; 32]);
        assert_eq!(hex(&*one), EXPECTED_ZERO_KEY_ONE);
    }

    const EXPECTED_ZERO_KEY_ONE: &str =
        "3d7afb663124ecbf2c953f863d4fc8796eeb2d372b64aad58697ec5264649cdb";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
