//! The legacy scheme against the Node WebCrypto vectors (`tests/vectors/rocketchat-otr-v1.json`,
//! made by `tests/vectors/generate.mjs`) and the docs/PROTOCOL.md §1.6 vector, plus the validation
//! rules.

use super::*;
use crate::secure::{LockedKey, SecretBytes, SecretString};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex"))
        .collect()
}

fn locked32(bytes: &[u8]) -> LockedKey<32> {
    let mut a: [u8; 32] = bytes.try_into().expect("32 bytes");
    LockedKey::new(&mut a)
}

fn iv(s: &str) -> [u8; 12] {
    hex(s).try_into().expect("12-byte iv")
}

/// `tests/vectors/rocketchat-otr-v1.json` in this repository (`tests/vectors/generate.mjs` writes
/// it from fixed inputs with Node's WebCrypto).
fn vectors() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/rocketchat-otr-v1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} readable: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors JSON")
}

fn pair_from_jwk(jwk: &Value) -> EphemeralKeyPair {
    let d = URL_SAFE_NO_PAD
        .decode(jwk["d"].as_str().expect("d"))
        .expect("b64url d");
    EphemeralKeyPair::from_private_bytes(locked32(&d)).expect("valid scalar")
}

fn s<'a>(case: &'a Value, k: &str) -> &'a str {
    case[k].as_str().expect(k)
}

#[test]
fn every_vector_case_derives_decrypts_and_encrypts_exactly() {
    let v = vectors();
    let cases = v["cases"].as_array().expect("cases");
    // Three drawn at random once, and the docs/PROTOCOL.md §1.6 example.
    assert_eq!(cases.len(), 4, "the vectors file has four cases");
    assert_eq!(cases[3]["name"], "protocol-1.6");
    for (i, case) in cases.iter().enumerate() {
        let alice = pair_from_jwk(&case["alice_private_jwk"]);
        let bob = pair_from_jwk(&case["bob_private_jwk"]);
        let alice_pub =
            PeerPublicKey::from_jwk(s(case, "alice_public_key_field")).expect("alice jwk");
        let bob_pub = PeerPublicKey::from_jwk(s(case, "bob_public_key_field")).expect("bob jwk");
        // Our export of the imported private keys is the same point, in browser order.
        assert_eq!(alice.public_jwk(), alice_pub.to_jwk(), "case {i}");
        assert_eq!(bob.public_jwk(), bob_pub.to_jwk(), "case {i}");

        let z = hex(s(case, "ecdh_shared_x_hex"));
        assert_eq!(
            alice.shared_x(&bob_pub).expect("ecdh").as_slice(),
            &z[..],
            "case {i}"
        );
        assert_eq!(
            bob.shared_x(&alice_pub).expect("ecdh").as_slice(),
            &z[..],
            "case {i}"
        );
        let key = alice.agree(&bob_pub).expect("agree");
        assert_eq!(
            key.expose().as_slice(),
            &hex(s(case, "aes_128_gcm_key_hex"))[..],
            "case {i}"
        );
        let key_b = bob.agree(&alice_pub).expect("agree");
        assert_eq!(key.expose(), key_b.expose());

        for (field, pt, ivk) in [
            ("message_msg_field", "message_plaintext", "message_iv_hex"),
            ("ack_field", "ack_plaintext", "ack_iv_hex"),
        ] {
            let plain = decrypt(&key_b, s(case, field)).expect("decrypts");
            assert_eq!(plain.expose(), s(case, pt).as_bytes(), "case {i} {field}");
            let again =
                encrypt_with_iv(&key, &iv(s(case, ivk)), s(case, pt).as_bytes()).expect("enc");
            assert_eq!(again, s(case, field), "case {i} {field}");
        }

        let plain = decrypt(&key, s(case, "message_msg_field")).expect("decrypts");
        let inner = InnerMessage::parse(&plain).expect("inner parses");
        assert_eq!(
            inner.to_plaintext().expect("ser").expose(),
            plain.expose(),
            "case {i}"
        );
        let ack_plain = decrypt(&key, s(case, "ack_field")).expect("ack decrypts");
        let ack = AckPayload::parse(&ack_plain).expect("ack parses");
        assert_eq!(
            ack.text, inner.ack,
            "the ack acknowledges the message token"
        );
        assert_eq!(
            ack.to_plaintext().expect("ser").expose(),
            ack_plain.expose()
        );
    }
}

const A_PUB: &str = r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE"}"#;
const B_PUB: &str = r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"8_1TENHDdHBs0UNd-4VeZCnn49wGsI8GutgfcfnJHvg","y":"MAjVibTlLlBT1yyZLDVtVF6uDx2MwnPfQQ9yxCCzFtQ"}"#;
const MSG_FIELD: &str = r#"{"$binary":"AAECAwQFBgcICQoLEvkmHYrVktOetyqxLrZKoOnl/XnkWbi6v73LCMrekmAGQZGYdwOjkb7dqR5KqIVhUonBZ4HNCFnANUZujbCwTiTmdxhPWAVpYdPHuIzmUQnBi0CT5qiYt/XWBpXRae7qrDV/664nKIlugW6+m0hLF3GznXShO/jNtzm37jK2sRDvP3cR0eq51dCjfZN613YhDtx4WBZK1k5uKwLM"}"#;
const ACK_FIELD: &str = r#"{"$binary":"CwoJCAcGBQQDAgEAUqyxpibYR/Igx8Da6T+9XGL0aFCpUgGKBRu2NVbNH0lZ8WTDFlWaFdVSS36QJJzcZpyBOsj+/vHPTo1gvGd5p8915UYgU9KigbaILSxh2tTArM5wnw=="}"#;

fn protocol_pairs() -> (EphemeralKeyPair, EphemeralKeyPair) {
    let a = hex("10e484ac2ea48f214714540eedad121acfadc1347a7730e12111724663c94554");
    let b = hex("865dd9c8a37befa5cf3ab56b116aba36aa6d010e1530e5a9f250b0ce0fab6fc7");
    (
        EphemeralKeyPair::from_private_bytes(locked32(&a)).expect("d_A"),
        EphemeralKeyPair::from_private_bytes(locked32(&b)).expect("d_B"),
    )
}

#[test]
fn protocol_section_1_6_vector() {
    let (a, b) = protocol_pairs();
    assert_eq!(a.public_jwk(), A_PUB, "browser member order, byte for byte");
    assert_eq!(b.public_jwk(), B_PUB);
    let a_pub = PeerPublicKey::from_jwk(A_PUB).expect("A");
    let b_pub = PeerPublicKey::from_jwk(B_PUB).expect("B");
    let z = hex("4f41cfeb910e7a46cd80c206f40fd02e927fac0d724c7227b130507aa19d40c4");
    assert_eq!(a.shared_x(&b_pub).expect("ecdh").as_slice(), &z[..]);
    assert_eq!(b.shared_x(&a_pub).expect("ecdh").as_slice(), &z[..]);
    let key = a.agree(&b_pub).expect("agree");
    assert_eq!(
        key.expose().as_slice(),
        &hex("bf9729bfa7a95b189ef66d966d3a57cf")[..]
    );

    let inner = InnerMessage {
        id: "hRfXbqWcTPQ6JkYzN".into(),
        text: SecretString::from("hello from A"),
        user_id: "aLiCe7yNSKqG3mZ2p".into(),
        ack: "k3Jq7vYw2ZbT9xPmNcR4sLa8".into(),
        ts_ms: 1735732800123,
    };
    let plain = inner.to_plaintext().expect("ser");
    let msg = encrypt_with_iv(&key, &iv("000102030405060708090a0b"), plain.expose()).expect("enc");
    assert_eq!(msg, MSG_FIELD);
    assert_eq!(msg.len(), 238);
    let back =
        InnerMessage::parse(&decrypt(&b.agree(&a_pub).expect("agree"), MSG_FIELD).expect("dec"))
            .expect("parse");
    assert_eq!(back, inner);

    let ack = AckPayload {
        text: inner.ack.clone(),
        ack: "Z9yX8wW7uT6sR5qP4nM3kJ2hG".into(),
    };
    let field = encrypt_with_iv(
        &key,
        &iv("0b0a09080706050403020100"),
        ack.to_plaintext().expect("ser").expose(),
    )
    .expect("enc");
    assert_eq!(field, ACK_FIELD);
    assert_eq!(
        AckPayload::parse(&decrypt(&key, ACK_FIELD).expect("dec")).expect("parse"),
        ack
    );
}

#[test]
fn random_encryption_round_trips_with_fresh_ivs() {
    let mut rng = StdRng::seed_from_u64(1);
    let a = EphemeralKeyPair::generate(&mut rng).expect("key pair");
    let b = EphemeralKeyPair::generate(&mut rng).expect("key pair");
    let key = a
        .agree(&PeerPublicKey::from_jwk(b.public_jwk()).expect("jwk"))
        .expect("agree");
    let one = encrypt(&key, b"same", &mut rng).expect("enc");
    let two = encrypt(&key, b"same", &mut rng).expect("enc");
    assert_ne!(one, two, "random IVs");
    assert_eq!(decrypt(&key, &one).expect("dec").expose(), b"same");
    assert!(a
        .public_jwk()
        .starts_with(r#"{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":""#));
}

#[test]
fn tampered_or_foreign_ciphertext_is_refused() {
    let (a, b) = protocol_pairs();
    let key = a
        .agree(&PeerPublicKey::from_jwk(B_PUB).expect("B"))
        .expect("agree");
    let mut raw = cipher::decode_envelope(MSG_FIELD).expect("decodes");
    raw[20] ^= 1;
    let tampered = format!(
        r#"{{"$binary":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&raw)
    );
    assert_eq!(decrypt(&key, &tampered), Err(LegacyError::Decrypt));
    let other = b
        .agree(&PeerPublicKey::from_jwk(B_PUB).expect("B"))
        .expect("agree");
    assert_eq!(decrypt(&other, MSG_FIELD), Err(LegacyError::Decrypt));
}

#[test]
fn envelope_shape_is_checked() {
    let (a, _) = protocol_pairs();
    let key = a
        .agree(&PeerPublicKey::from_jwk(B_PUB).expect("B"))
        .expect("agree");
    for bad in [
        "not json",
        "[1]",
        r#"{"$binary":"AAEC"}"#,
        r#"{"$binary":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==","x":1}"#,
        r#"{"$binary":"***"}"#,
        r#"{"$binary":5}"#,
        r#"{"$date":1}"#,
    ] {
        assert!(
            matches!(decrypt(&key, bad), Err(LegacyError::Envelope(_))),
            "{bad}"
        );
    }
    // Missing padding is tolerated (stock clients pad, but decoding is defensive).
    let unpadded = ACK_FIELD.replace("==", "");
    assert_eq!(
        decrypt(&key, &unpadded).expect("dec").expose(),
        decrypt(&key, ACK_FIELD).expect("dec").expose()
    );
}

#[test]
fn peer_jwk_validation() {
    let ok = PeerPublicKey::from_jwk(A_PUB).expect("valid");
    assert_eq!(ok.to_jwk(), A_PUB);
    let with = |from: &str, to: &str| A_PUB.replace(from, to);
    let cases = [
        with(r#""kty":"EC""#, r#""kty":"OKP""#),
        with(r#""crv":"P-256""#, r#""crv":"P-384""#),
        with(
            r#""kty":"EC""#,
            r#""kty":"EC","d":"ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo""#,
        ),
        with(
            "ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB1Vo",
            "ioJoe5tCZv1VU__TKiPc9bAEJYCWqsAWfyHaokLB",
        ),
        // y of another point: (x, y') not on the curve.
        with(
            "OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE",
            "MAjVibTlLlBT1yyZLDVtVF6uDx2MwnPfQQ9yxCCzFtQ",
        ),
        with(r#","y":"OtKF0OsmPtW135H8sOG8L6y11nxGPmgFnGGM4ldtDJE""#, ""),
        "{}".to_owned(),
        "nope".to_owned(),
    ];
    for bad in cases {
        assert!(
            matches!(
                PeerPublicKey::from_jwk(&bad),
                Err(LegacyError::InvalidPublicKey(_))
            ),
            "{bad}"
        );
    }
    // Node's member order parses too.
    let v = vectors();
    assert!(PeerPublicKey::from_jwk(s(&v["cases"][0], "alice_public_key_field")).is_ok());
}

#[test]
fn debug_output_hides_keys_and_plaintext() {
    let (a, _) = protocol_pairs();
    let key = a
        .agree(&PeerPublicKey::from_jwk(B_PUB).expect("B"))
        .expect("agree");
    assert!(!format!("{key:?}").contains("bf97"));
    assert!(!format!("{a:?}").contains("10e4"));
    let inner = InnerMessage {
        id: "i".into(),
        text: SecretString::from("very secret words"),
        user_id: "u".into(),
        ack: "tok".into(),
        ts_ms: 0,
    };
    assert!(!format!("{inner:?}").contains("secret words"));
    assert!(!format!("{:?}", SecretBytes::from(b"xyz".to_vec())).contains("xyz"));
}

#[test]
fn canonical_parse_agrees_with_serde_json_or_defers_to_it() {
    let texts = [
        "",
        "hello",
        "the quick brown fox jumps over the lazy dog, twice over: the quick brown fox",
        "line one\nline two\ttab \"quoted\" back\\slash \u{1}",
        "héllo wörld — 😀 / \u{7f}",
    ];
    for (i, text) in texts.iter().enumerate() {
        let msg = InnerMessage {
            id: format!("Hx7dPq2WxYz7mN3a{i}"),
            text: SecretString::from(*text),
            user_id: "aLiCe7yNSKqG3mZ2p".into(),
            ack: "9f8e7d6c5b4a3f2e1d0c".into(),
            ts_ms: [0, 1_735_732_800_456, -5][i % 3],
        };
        let plain = msg.to_plaintext().expect("ser");
        let general = InnerMessage::parse_general(plain.expose()).expect("serde parses");
        assert_eq!(general, msg);
        match InnerMessage::parse_canonical(plain.expose()) {
            Some(fast) => assert_eq!(fast, msg, "{text:?}"),
            // Only texts with escapes leave the fast path.
            None => assert!(text.contains(['\n', '"', '\\', '\u{1}']), "{text:?}"),
        }
        assert_eq!(InnerMessage::parse(&plain).expect("parse"), msg);
    }
    // Valid but not canonical: whitespace, member order, extra members, float dates. The fast
    // path defers and the result is serde_json's.
    for (json, ts) in [
        (
            r#"{ "_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":5}}"#,
            5,
        ),
        (
            r#"{"text":"t","_id":"i","userId":"u","ack":"a","ts":{"$date":5}}"#,
            5,
        ),
        (
            r#"{"_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":5},"x":1}"#,
            5,
        ),
        (
            r#"{"_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":5.0}}"#,
            5,
        ),
        (
            r#"{"_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":12345678901234567890}}"#,
            i64::MAX,
        ),
    ] {
        assert!(
            InnerMessage::parse_canonical(json.as_bytes()).is_none(),
            "{json}"
        );
        let parsed = InnerMessage::parse(&SecretBytes::from(json.as_bytes().to_vec()))
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(
            (parsed.id.as_str(), parsed.text.expose(), parsed.ts_ms),
            ("i", "t", ts)
        );
    }
    // Invalid: refused by both paths.
    for json in [
        r#"{"_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":01}}"#,
        r#"{"_id":"i","text":"t","userId":"u","ack":"a","ts":{"$date":5}}x"#,
        "{\"_id\":\"i\",\"text\":\"raw\ncontrol\",\"userId\":\"u\",\"ack\":\"a\",\"ts\":{\"$date\":5}}",
        r#"{"_id":"i","text":"t","userId":"u","ts":{"$date":5}}"#,
    ] {
        assert!(InnerMessage::parse_canonical(json.as_bytes()).is_none(), "{json}");
        assert!(
            InnerMessage::parse(&SecretBytes::from(json.as_bytes().to_vec())).is_err(),
            "{json}"
        );
    }
    let bad_utf8 =
        b"{\"_id\":\"i\",\"text\":\"\xff\",\"userId\":\"u\",\"ack\":\"a\",\"ts\":{\"$date\":5}}";
    assert!(InnerMessage::parse(&SecretBytes::from(bad_utf8.to_vec())).is_err());
}

#[test]
fn envelopes_in_other_json_forms_decrypt_the_same() {
    let (a, _) = protocol_pairs();
    let key = a
        .agree(&PeerPublicKey::from_jwk(B_PUB).expect("B"))
        .expect("agree");
    let plain = decrypt(&key, MSG_FIELD).expect("canonical");
    let b64 = &MSG_FIELD[r#"{"$binary":""#.len()..MSG_FIELD.len() - 2];
    for form in [
        format!(r#"{{ "$binary" : "{b64}" }}"#),
        format!(r#"{{"\u0024binary":"{b64}"}}"#),
        format!(
            r#"{{"$binary":"\u{:04x}{}"}}"#,
            u32::from(b64.as_bytes()[0]),
            &b64[1..]
        ),
    ] {
        assert_eq!(
            decrypt(&key, &form).expect("decrypts").expose(),
            plain.expose(),
            "{form}"
        );
    }
    // Non-canonical base64 (unused bits set in the last symbol): refused as before.
    let ack_b64 = &ACK_FIELD[r#"{"$binary":""#.len()..ACK_FIELD.len() - 2];
    let last = ack_b64.trim_end_matches('=');
    let tweaked = format!(r#"{{"$binary":"{}B=="}}"#, &last[..last.len() - 1]);
    assert!(
        matches!(decrypt(&key, &tweaked), Err(LegacyError::Envelope(_))),
        "{tweaked}"
    );
}

#[test]
fn peer_coordinates_must_be_reduced() {
    // (0, sqrt(b)) is on P-256; the same point with x written as p (≡ 0) is not an encoding
    // WebCrypto accepts, and neither do we.
    let y = "ZkhceA4vg9ckM71dhKBrtlQcKvMdrocXKL-FahdPk_Q";
    let jwk = |x: &str| {
        format!(r#"{{"crv":"P-256","ext":true,"key_ops":[],"kty":"EC","x":"{x}","y":"{y}"}}"#)
    };
    let zero = PeerPublicKey::from_jwk(&jwk("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        .expect("(0, sqrt(b)) is a valid point");
    assert_eq!(
        zero.to_jwk(),
        jwk("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    );
    assert!(matches!(
        PeerPublicKey::from_jwk(&jwk("_____wAAAAEAAAAAAAAAAAAAAAD_______________8")),
        Err(LegacyError::InvalidPublicKey(_))
    ));
}

/// P-256's group order n, big-endian.
const ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

#[test]
fn private_scalars_outside_one_to_n_are_refused() {
    let n = hex(ORDER);
    let mut n_minus_1 = n.clone();
    n_minus_1[31] -= 1;
    assert!(EphemeralKeyPair::from_private_bytes(locked32(&n_minus_1)).is_ok());
    for bad in [vec![0u8; 32], n, vec![0xff; 32]] {
        assert_eq!(
            EphemeralKeyPair::from_private_bytes(locked32(&bad)).err(),
            Some(LegacyError::InvalidPrivateKey)
        );
    }
}

/// An RNG that first yields `bad` draws of all-ones bytes (≥ n, not a scalar), then counts up.
struct Rigged {
    bad: usize,
    next: u8,
}

impl rand::RngCore for Rigged {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u64(self) as u32
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.bad > 0 {
            self.bad -= 1;
            dest.fill(0xff);
        } else {
            self.next = self.next.wrapping_add(1);
            dest.fill(self.next);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand::CryptoRng for Rigged {}

#[test]
fn generation_redraws_out_of_range_scalars_and_gives_up_cleanly() {
    // Two draws ≥ n, then a valid one: the pair is the third draw's.
    let mut rigged = Rigged { bad: 2, next: 0 };
    let pair = EphemeralKeyPair::generate_with(|b| rand::RngCore::fill_bytes(&mut rigged, b))
        .expect("third draw");
    let expected = EphemeralKeyPair::from_private_bytes(locked32(&[1u8; 32])).expect("valid");
    assert_eq!(pair.public_jwk(), expected.public_jwk());
    // A generator that never yields a scalar: an error, not a loop or a panic.
    let mut never = Rigged {
        bad: usize::MAX,
        next: 0,
    };
    assert_eq!(
        EphemeralKeyPair::generate_with(|b| rand::RngCore::fill_bytes(&mut never, b)).err(),
        Some(LegacyError::KeyGeneration)
    );
}
