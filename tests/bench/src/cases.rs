//! The crypto and decoder cases, as fixtures plus one-call operations. Shared (by `#[path]`) by
//! the load driver (`otrd-bench`, which times them for the report) and the criterion benches in
//! `daemon/benches/crypto.rs` (for detailed local investigation), so both measure the same code.
//!
//! Everything is built outside the timed closure; each closure does exactly one operation.
//! Randomness (IVs, key pairs) comes from [`SecureRng`], the generator the daemon's engine uses,
//! so the figures include what the daemon pays for it and no more.

use otrd::otr::legacy::{self, EphemeralKeyPair, InnerMessage, PeerPublicKey, SharedKey};
use otrd::otr::native::{self, InstanceTag, LocalIdentity, NativeSession, SessionContext};
use otrd::secure::{SecretString, SecureRng};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::hint::black_box;
use x25519_dalek::{PublicKey, StaticSecret};

/// The payload sizes of the per-message figures.
pub const SIZES: [usize; 3] = [64, 256, 4096];

const ROOM: &str = "Kd9fPq2WxYz7mN3aT";
const ALICE: &str = "aLiCe7yNSKqG3mZ2p";
const BOB: &str = "BobX8dR4tWq2nJ5hE";

/// An ASCII text of `len` bytes (what a user types; no escaping needed in JSON).
pub fn text(len: usize) -> String {
    "the quick brown fox jumps over the lazy dog "
        .chars()
        .cycle()
        .take(len)
        .collect()
}

/// The daemon's generator, seeded from the kernel.
pub fn rng() -> SecureRng {
    SecureRng::from_os()
}

/// A legacy shared key agreed the way two stock clients agree it.
pub fn legacy_key() -> SharedKey {
    let a = EphemeralKeyPair::generate(&mut rng()).expect("key pair");
    let b = EphemeralKeyPair::generate(&mut rng()).expect("key pair");
    let b_pub = PeerPublicKey::from_jwk(b.public_jwk()).expect("own JWK parses");
    a.agree(&b_pub).expect("agreement on fresh keys")
}

/// The whole legacy message path, sender and receiver: inner JSON, AES-128-GCM with a fresh
/// random IV, `$binary` envelope, then envelope decode, AES-GCM open and inner JSON parse.
pub fn legacy_roundtrip(key: &SharedKey, msg: &InnerMessage, rng: &mut SecureRng) {
    let pt = msg.to_plaintext().expect("serialize");
    let env = legacy::encrypt(key, pt.expose(), rng).expect("encrypt");
    let back = legacy::decrypt(key, &env).expect("decrypt");
    black_box(InnerMessage::parse(&back).expect("parse"));
}

/// A chat message of `len` text bytes, as the session layer builds it.
pub fn inner_message(len: usize) -> InnerMessage {
    InnerMessage {
        id: "Hx7dPq2WxYz7mN3aT".into(),
        text: SecretString::from(text(len)),
        user_id: ALICE.into(),
        ack: "9f8e7d6c5b4a3f2e1d0c".into(),
        ts_ms: 1_735_732_800_456,
    }
}

/// AES-128-GCM seal of `buf` in place with a context built for the call, as the legacy scheme
/// does (AWS-LC; keys live in locked memory and library cipher values are made per operation).
pub fn aead_seal(key: &[u8; 16], buf: &mut [u8]) {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
    let cipher = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, key).expect("16-byte key"));
    let nonce = Nonce::assume_unique_for_key([7u8; 12]);
    let tag = cipher
        .seal_in_place_separate_tag(nonce, Aad::empty(), buf)
        .expect("seal");
    black_box(tag.as_ref());
}

/// One side of a stock (P-256) handshake: generate our key pair, import the peer's JWK (with its
/// on-curve check) and derive the shared AES key.
pub fn p256_handshake(peer_jwk: &str, rng: &mut SecureRng) {
    let ours = EphemeralKeyPair::generate(rng).expect("key pair");
    let peer = PeerPublicKey::from_jwk(peer_jwk).expect("valid JWK");
    black_box(ours.agree(&peer).expect("agree"));
}

/// A peer's P-256 public key as a JWK string.
pub fn p256_peer_jwk() -> String {
    EphemeralKeyPair::generate(&mut rng())
        .expect("key pair")
        .public_jwk()
        .to_owned()
}

/// Two otrd identities (initiator, responder) with instance tags.
pub struct NativeParties {
    a: (LocalIdentity, InstanceTag),
    b: (LocalIdentity, InstanceTag),
    /// Both sides' generator (one engine each in reality; the cost is the same).
    rng: RefCell<SecureRng>,
}

/// Fresh parties for [`native_handshake`].
pub fn native_parties() -> NativeParties {
    NativeParties {
        a: (
            LocalIdentity::generate(&mut OsRng),
            InstanceTag::random(&mut OsRng),
        ),
        b: (
            LocalIdentity::generate(&mut OsRng),
            InstanceTag::random(&mut OsRng),
        ),
        rng: RefCell::new(rng()),
    }
}

fn ctx(local: &str, peer: &str) -> SessionContext {
    SessionContext {
        room_id: ROOM.into(),
        local_uid: local.into(),
        peer_uid: peer.into(),
    }
}

fn stock(sender: &str) -> Value {
    json!({"roomId": ROOM, "userId": sender, "publicKey": "{\"kty\":\"EC\"}"})
}

/// The full native handshake, both sides' computation: offer, answer, complete, confirm. Needs
/// [`X25519_BASEPOINT_OPS`] key generations and [`X25519_DH_OPS`] agreements.
pub fn native_handshake(p: &NativeParties) -> (NativeSession, NativeSession) {
    let rng = &mut *p.rng.borrow_mut();
    let (pending_a, offer) = native::make_offer(&p.a.0, p.a.1, rng);
    let mut hs = stock(ALICE);
    hs["otrd"] = offer;
    let (pending_b, ack) =
        native::answer(&p.b.0, p.b.1, &ctx(BOB, ALICE), &hs, stock(BOB), rng).expect("answer");
    let (alice, confirm) = pending_a
        .complete(&ctx(ALICE, BOB), &hs, &ack, rng)
        .expect("complete");
    let bob = pending_b.confirm(&confirm.to_value()).expect("confirm");
    (alice, bob)
}

/// X25519 public-key computations in one native handshake (two ephemeral keys and the
/// initiator's first ratchet key).
pub const X25519_BASEPOINT_OPS: u32 = 3;
/// X25519 agreements in one native handshake (3DH on each side, and the first ratchet step on
/// each side).
pub const X25519_DH_OPS: u32 = 8;

/// One X25519 public-key computation.
pub fn x25519_basepoint(secret: &StaticSecret) {
    black_box(PublicKey::from(secret));
}

/// One X25519 agreement.
pub fn x25519_dh(secret: &StaticSecret, peer: &PublicKey) {
    black_box(secret.diffie_hellman(peer));
}

/// A random X25519 secret.
pub fn x25519_secret() -> StaticSecret {
    StaticSecret::random_from_rng(OsRng)
}

/// An established native session pair plus the associated data each direction uses.
pub struct NativePair {
    alice: NativeSession,
    bob: NativeSession,
    ad_ab: Vec<u8>,
    ad_ba: Vec<u8>,
    rng: SecureRng,
}

/// A pair established through [`native_handshake`].
pub fn native_pair() -> NativePair {
    let (alice, bob) = native_handshake(&native_parties());
    NativePair {
        alice,
        bob,
        ad_ab: native::message_context(ROOM, ALICE, BOB),
        ad_ba: native::message_context(ROOM, BOB, ALICE),
        rng: rng(),
    }
}

/// One native message sent and received in the same direction as the previous one (symmetric
/// ratchet step + AES-256-GCM, both sides).
pub fn native_roundtrip(pair: &mut NativePair, plaintext: &[u8]) {
    let frame = pair
        .alice
        .encrypt(plaintext, &pair.ad_ab, &mut pair.rng)
        .expect("encrypt");
    black_box(pair.bob.decrypt(&frame, &pair.ad_ab).expect("decrypt"));
}

/// Two native messages, one each way, so every message starts a new DH ratchet step.
pub fn native_pingpong(pair: &mut NativePair, plaintext: &[u8]) {
    native_roundtrip(pair, plaintext);
    let frame = pair
        .bob
        .encrypt(plaintext, &pair.ad_ba, &mut pair.rng)
        .expect("encrypt");
    black_box(pair.alice.decrypt(&frame, &pair.ad_ba).expect("decrypt"));
}

/// A 4 KB DDP `changed` frame carrying a `t:"otr"` message as the 7.x server emits it.
pub fn ddp_otr_frame() -> String {
    let mut body = vec![0u8; 2500];
    OsRng.fill_bytes(&mut body);
    use base64::Engine as _;
    let env = format!(
        r#"{{"$binary":"{}"}}"#,
        base64::engine::general_purpose::STANDARD.encode(&body)
    );
    let user = json!({"_id": ALICE, "username": "alice", "name": "Alice Example", "type": "user"});
    let message = json!({
        "_id": "Hx7dPq2WxYz7mN3aT", "rid": ROOM, "msg": env, "t": "otr",
        "ts": {"$date": 1_735_732_800_456_i64}, "u": user,
    });
    let room = json!({
        "_id": ROOM, "t": "d", "usernames": ["alice", "bob"], "uids": [ALICE, BOB],
        "usersCount": 2, "msgs": 0, "ts": {"$date": 1_735_000_000_000_i64},
        "_updatedAt": {"$date": 1_735_732_800_000_i64},
    });
    let frame = json!({
        "msg": "changed", "collection": "stream-room-messages", "id": "id",
        "fields": {"eventName": ROOM, "args": [message, user, room]},
    });
    let mut s = frame.to_string();
    // Pad the sender's display name so the frame is 4 KiB, as the budget names.
    if s.len() < 4096 {
        let pad = "x".repeat(4096 - s.len());
        s = s.replacen("Alice Example", &format!("Alice Example{pad}"), 1);
    }
    s
}

/// The DDP decoder under test.
pub fn ddp_decode(frame: &str) {
    black_box(otrd::rocketchat::ddp::decode_server_frame(frame).expect("decodes"));
}

/// The floor for the decoder: parsing the same text into a generic JSON value.
pub fn json_parse(frame: &str) {
    black_box(serde_json::from_str::<Value>(frame).expect("JSON"));
}
