//! The stock client's OTR cryptography (PROTOCOL.md §1) as an attacking server uses it: its own
//! ECDH P-256 key pairs exported as browser-ordered JWKs, the AES-128 key a stock client derives
//! from a peer's JWK (SHA-256 of the raw shared x-coordinate, first 16 bytes), and AES-128-GCM
//! opening of `{"$binary": …}` strings (12-byte IV first, 128-bit tag last, no AAD).
//!
//! Written against AWS-LC directly and checked against the Node vectors in this module's tests,
//! not shared with the daemon's `otr::legacy`: an attacker built from the daemon's own code would
//! share its mistakes.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, NONCE_LEN};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, ECDH_P256};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// GCM tag length; an envelope shorter than IV + tag cannot be a ciphertext.
const TAG_LEN: usize = 16;

/// A P-256 key pair the attacker generated and put into a forged signal.
pub struct AttackerKey {
    private: PrivateKey,
    jwk: String,
}

impl std::fmt::Debug for AttackerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half stays out of logs even in a simulator: tests print reports.
        f.debug_struct("AttackerKey")
            .field("jwk", &self.jwk)
            .finish_non_exhaustive()
    }
}

impl AttackerKey {
    /// A fresh key pair, as a browser's `generateKey({name:"ECDH", namedCurve:"P-256"})`.
    pub fn generate() -> Option<Self> {
        Self::wrap(PrivateKey::generate(&ECDH_P256).ok()?)
    }

    /// A key pair from a 32-byte big-endian scalar (the test vectors' `d`).
    pub fn from_scalar(d: &[u8]) -> Option<Self> {
        Self::wrap(PrivateKey::from_private_key(&ECDH_P256, d).ok()?)
    }

    fn wrap(private: PrivateKey) -> Option<Self> {
        let public = private.compute_public_key().ok()?;
        let jwk = jwk_of_point(public.as_ref())?;
        Some(Self { private, jwk })
    }

    /// The public key as the `publicKey` string of a stock signal (§1.2, browser member order).
    pub fn public_jwk(&self) -> &str {
        &self.jwk
    }

    /// The AES-128 key a stock client holding `peer`'s private key derives from our JWK (and we
    /// from its), or `None` when the agreement fails.
    pub fn derive(&self, peer: &PeerKey) -> Option<StockKey> {
        agreement::agree(
            &self.private,
            UnparsedPublicKey::new(&ECDH_P256, &peer.point),
            (),
            |z| Ok(StockKey::from_shared_x(z)),
        )
        .ok()
    }
}

/// A P-256 public key a client sent, as an uncompressed SEC1 point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKey {
    point: Vec<u8>,
}

impl PeerKey {
    /// Parses the `publicKey` member of a stock signal: a JSON string holding a JWK with
    /// `kty:"EC"`, `crv:"P-256"` and 32-byte base64url `x`/`y`. Anything else is `None`.
    pub fn from_jwk(jwk: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(jwk).ok()?;
        if v.get("kty")?.as_str()? != "EC" || v.get("crv")?.as_str()? != "P-256" {
            return None;
        }
        let coord = |name: &str| -> Option<Vec<u8>> {
            let s = v.get(name)?.as_str()?;
            let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
            (bytes.len() == 32).then_some(bytes)
        };
        let mut point = vec![4u8];
        point.extend(coord("x")?);
        point.extend(coord("y")?);
        Some(Self { point })
    }
}

/// The stock scheme's session key: one AES-128 key for both directions and for acks.
#[derive(Clone, PartialEq, Eq)]
pub struct StockKey([u8; 16]);

impl std::fmt::Debug for StockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StockKey([REDACTED])")
    }
}

impl StockKey {
    /// §1.3: SHA-256 of the raw x-coordinate of the shared point, first 16 bytes.
    pub fn from_shared_x(z: &[u8]) -> Self {
        let digest = Sha256::digest(z);
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        Self(key)
    }

    /// The raw key bytes (for comparing with test vectors).
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Opens a `{"$binary":"<base64>"}` string (a `msg` or `ack` field); `None` unless the tag
    /// verifies under this key.
    pub fn open(&self, field: &str) -> Option<Vec<u8>> {
        let mut buf = binary_bytes(field)?;
        if buf.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&buf[..NONCE_LEN]).ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &self.0).ok()?);
        let plain = key
            .open_in_place(nonce, Aad::empty(), &mut buf[NONCE_LEN..])
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The bytes of an EJSON `{"$binary": …}` string (standard base64, padding optional).
fn binary_bytes(field: &str) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_str(field).ok()?;
    let b64 = v.get("$binary")?.as_str()?;
    STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .ok()
}

/// The browser's JWK for an uncompressed P-256 point: `crv, ext, key_ops, kty, x, y`.
fn jwk_of_point(point: &[u8]) -> Option<String> {
    if point.len() != 65 || point[0] != 4 {
        return None;
    }
    let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
    let y = URL_SAFE_NO_PAD.encode(&point[33..]);
    Some(format!(
        r#"{{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"{x}","y":"{y}"}}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    /// PROTOCOL.md §1.6: the documented key pairs, shared key and message.
    #[test]
    fn derives_and_opens_the_protocol_vector() {
        let a = AttackerKey::from_scalar(&hex(
            "10e484ac2ea48f214714540eedad121acfadc1347a7730e12111724663c94554",
        ))
        .expect("vector A");
        assert_eq!(
            a.public_jwk(),
            r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}"#
        );
        let b = PeerKey::from_jwk(r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"8_1TENHDdHBs0UNd-4VeZCnn49wGsI8GutgfcfnJHvg","y":"MAjVibTlLlBT1yyZLDVtVF6uDx2MwnPfQQ9yxCCzFtQ"}"#)
            .expect("vector B");
        let key = a.derive(&b).expect("agreement");
        assert_eq!(
            key.bytes().to_vec(),
            hex("bf9729bfa7a95b189ef66d966d3a57cf")
        );
        let msg = r#"{"$binary":"AAECAwQFBgcICQoLEvkmHYrVktOetyqxLrZKoOnl/XnkWbi6v73LCMrekmAGQZGYdwOjkb7dqR5KqIVhUonBZ4HNCFnANUZujbCwTiTmdxhPWAVpYdPHuIzmUQnBi0CT5qiYt/XWBpXRae7qrDV/664nKIlugW6+m0hLF3GznXShO/jNtzm37jK2sRDvP3cR0eq51dCjfZN613YhDtx4WBZK1k5uKwLM"}"#;
        let plain = key.open(msg).expect("opens");
        assert!(String::from_utf8_lossy(&plain).contains("hello from A"));
        let other = AttackerKey::generate().expect("fresh key");
        assert!(other.derive(&b).expect("agreement").open(msg).is_none());
    }

    /// The Node vectors (`vectors/rocketchat-otr-v1.json`, case 0): Node's member order parses.
    #[test]
    fn opens_the_node_vector_message_and_ack() {
        let d = URL_SAFE_NO_PAD
            .decode("bXYpkKa7dut7UAh525kIp64JWOwPyq8-ut7LcUQwKt8")
            .expect("d");
        let alice = AttackerKey::from_scalar(&d).expect("alice");
        let bob = PeerKey::from_jwk(r#"{"key_ops":[],"ext":true,"kty":"EC","x":"n2r6KDyCjdlnCzkL6irXGE1Rsmwv-EM-Av7p1x_h63o","y":"JF_cCitGLd7lKvA-d4U9Ql99RLTPHEOu_wO2A9e_0pc","crv":"P-256"}"#)
            .expect("bob");
        let key = alice.derive(&bob).expect("agreement");
        assert_eq!(
            key.bytes().to_vec(),
            hex("bc380d7aafb15f91913ed68ba7baf4e5")
        );
        let ack = r#"{"$binary":"g32o/zCWTQeEN3/LxJQY8Ls9Y6DlNkeiEKS34Sd2S2+VywE5WwidwaVoR8oonswIU0kiLyAhKfP7E0aApMwFysyuDNKhXCERNBRpHmVrg5QJtIgVr1aJlLfmSWgEllPC"}"#;
        let plain = key.open(ack).expect("ack opens");
        assert_eq!(
            plain,
            br#"{"text":"ackAAAAAAAAAAAAAAAAA","ack":"ackreplyBBBBBBBBBBBBBBBBBBBB"}"#
        );
    }

    #[test]
    fn rejects_what_is_not_a_p256_jwk_or_a_ciphertext() {
        assert!(PeerKey::from_jwk(r#"{"kty":"OKP","crv":"X25519","x":"AA"}"#).is_none());
        assert!(PeerKey::from_jwk(r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#).is_none());
        assert!(PeerKey::from_jwk("not json").is_none());
        let key = StockKey::from_shared_x(&[1u8; 32]);
        assert!(key.open(r#"{"$binary":"AAAA"}"#).is_none());
        assert!(key.open("plain text").is_none());
        assert_eq!(format!("{key:?}"), "StockKey([REDACTED])");
    }
}
