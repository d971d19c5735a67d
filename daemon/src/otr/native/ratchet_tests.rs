//! Double Ratchet tests: speaker changes, out-of-order, window, replay, reflection, associated
//! data, forward secrecy.

use super::handshake_tests::{established, ALICE, BOB, ROOM};
use super::ratchet::RatchetInit;
use super::*;
use rand::rngs::OsRng;

fn ab() -> Vec<u8> {
    message_context(ROOM, ALICE, BOB)
}

fn ba() -> Vec<u8> {
    message_context(ROOM, BOB, ALICE)
}

fn send(s: &mut NativeSession, text: &str, ad: &[u8]) -> Vec<u8> {
    s.encrypt(text.as_bytes(), ad, &mut OsRng).expect("encrypt")
}

fn recv(s: &mut NativeSession, frame: &[u8], ad: &[u8]) -> Result<String, NativeError> {
    s.decrypt(frame, ad)
        .map(|p| String::from_utf8_lossy(p.expose()).into_owned())
}

#[test]
fn many_messages_both_ways_with_speaker_changes() {
    let (mut alice, mut bob) = established();
    // Bob may speak first (he has no sending chain until he does).
    let f = send(&mut bob, "bob first", &ba());
    assert_eq!(recv(&mut alice, &f, &ba()).as_deref(), Ok("bob first"));
    for round in 0..20 {
        let burst = round % 4 + 1;
        for i in 0..burst {
            let text = format!("a{round}-{i}");
            let f = send(&mut alice, &text, &ab());
            assert_eq!(recv(&mut bob, &f, &ab()), Ok(text));
        }
        for i in 0..(5 - burst) {
            let text = format!("b{round}-{i}");
            let f = send(&mut bob, &text, &ba());
            assert_eq!(recv(&mut alice, &f, &ba()), Ok(text));
        }
    }
    assert_eq!(alice.skipped_keys(), 0);
    assert_eq!(bob.skipped_keys(), 0);
}

#[test]
fn each_speaker_change_uses_a_new_ratchet_key() {
    let (mut alice, mut bob) = established();
    let a1 = send(&mut alice, "1", &ab());
    let a2 = send(&mut alice, "2", &ab());
    recv(&mut bob, &a1, &ab()).expect("a1");
    recv(&mut bob, &a2, &ab()).expect("a2");
    let b1 = send(&mut bob, "3", &ba());
    recv(&mut alice, &b1, &ba()).expect("b1");
    let a3 = send(&mut alice, "4", &ab());
    let key = |f: &[u8]| {
        Header::decode(f)
            .map(|(h, _, _)| (h.ratchet, h.pn, h.n))
            .expect("hdr")
    };
    assert_eq!(key(&a1).0, key(&a2).0);
    assert_ne!(key(&a1).0, key(&a3).0);
    assert_eq!(
        (key(&a3).1, key(&a3).2),
        (2, 0),
        "PN counts the previous chain"
    );
}

#[test]
fn out_of_order_within_the_window_is_accepted_across_ratchet_steps() {
    let (mut alice, mut bob) = established();
    let early: Vec<_> = (0..5)
        .map(|i| send(&mut alice, &format!("e{i}"), &ab()))
        .collect();
    // Bob sees only the last of the first chain, answers, and Alice moves to a new chain.
    assert_eq!(recv(&mut bob, &early[4], &ab()).as_deref(), Ok("e4"));
    let b = send(&mut bob, "ack", &ba());
    recv(&mut alice, &b, &ba()).expect("ack");
    let late = send(&mut alice, "new chain", &ab());
    assert_eq!(recv(&mut bob, &late, &ab()).as_deref(), Ok("new chain"));
    // The old chain's messages still open, in any order, exactly once.
    for i in [2usize, 0, 3, 1] {
        assert_eq!(recv(&mut bob, &early[i], &ab()), Ok(format!("e{i}")));
    }
    assert_eq!(bob.skipped_keys(), 0);
    assert_eq!(
        recv(&mut bob, &early[2], &ab()),
        Err(NativeError::KeyUnavailable)
    );
}

#[test]
fn beyond_the_window_is_rejected_and_changes_nothing() {
    let (mut alice, mut bob) = established();
    let frames: Vec<_> = (0..=MAX_SKIP + 1)
        .map(|i| send(&mut alice, &i.to_string(), &ab()))
        .collect();
    let last = frames.last().expect("frames");
    assert_eq!(recv(&mut bob, last, &ab()), Err(NativeError::TooFarAhead));
    assert_eq!(bob.skipped_keys(), 0);
    // Exactly at the window's edge it works.
    let edge = &frames[MAX_SKIP as usize];
    assert_eq!(recv(&mut bob, edge, &ab()), Ok(MAX_SKIP.to_string()));
    assert_eq!(bob.skipped_keys(), MAX_SKIP as usize);
}

#[test]
fn replays_are_rejected() {
    let (mut alice, mut bob) = established();
    let f = send(&mut alice, "once", &ab());
    assert!(recv(&mut bob, &f, &ab()).is_ok());
    assert_eq!(recv(&mut bob, &f, &ab()), Err(NativeError::KeyUnavailable));
    // Also after a ratchet step (the old peer key would trigger a bogus step).
    let g = send(&mut bob, "reply", &ba());
    recv(&mut alice, &g, &ba()).expect("reply");
    let h = send(&mut alice, "next", &ab());
    recv(&mut bob, &h, &ab()).expect("next");
    assert!(recv(&mut bob, &f, &ab()).is_err());
    assert!(recv(&mut alice, &g, &ba()).is_err());
    // And the session still works afterwards.
    let i = send(&mut bob, "still fine", &ba());
    assert_eq!(recv(&mut alice, &i, &ba()).as_deref(), Ok("still fine"));
}

#[test]
fn reflections_are_rejected() {
    let (mut alice, mut bob) = established();
    let f = send(&mut alice, "to bob", &ab());
    assert_eq!(recv(&mut alice, &f, &ab()), Err(NativeError::Reflection));
    assert_eq!(recv(&mut alice, &f, &ba()), Err(NativeError::Reflection));
    assert_eq!(recv(&mut bob, &f, &ab()).as_deref(), Ok("to bob"));
}

#[test]
fn frames_for_another_instance_are_ignored() {
    let (mut alice, mut bob) = established();
    let mut f = send(&mut alice, "x", &ab());
    f[5..9].copy_from_slice(&0x0bad_f00du32.to_be_bytes());
    assert_eq!(
        recv(&mut bob, &f, &ab()),
        Err(NativeError::NotForThisInstance)
    );
}

#[test]
fn wrong_associated_data_or_altered_frames_fail() {
    let (mut alice, mut bob) = established();
    let f = send(&mut alice, "secret", &ab());
    let other_room = message_context("another-room", ALICE, BOB);
    let relayed = message_context(ROOM, "carol", BOB);
    assert_eq!(
        recv(&mut bob, &f, &other_room),
        Err(NativeError::DecryptFailed)
    );
    assert_eq!(
        recv(&mut bob, &f, &relayed),
        Err(NativeError::DecryptFailed)
    );
    let mut g = f.clone();
    let last = g.len() - 1;
    g[last] ^= 1;
    assert_eq!(recv(&mut bob, &g, &ab()), Err(NativeError::DecryptFailed));
    let mut h = f.clone();
    h[44] ^= 1; // PN
    assert!(recv(&mut bob, &h, &ab()).is_err());
    // None of that consumed the key.
    assert_eq!(recv(&mut bob, &f, &ab()).as_deref(), Ok("secret"));
}

/// A frame for `to` with this header and a ciphertext nobody sealed (a third user's forgery).
fn forged(to: &NativeSession, from: &NativeSession, ratchet: [u8; 32], pn: u32, n: u32) -> Vec<u8> {
    let header = Header {
        sender_tag: from.own_instance_tag(),
        receiver_tag: to.own_instance_tag(),
        ratchet,
        pn,
        n,
    };
    let mut f = header.encode().to_vec();
    f.extend_from_slice(&[0x5a; 40]);
    f
}

#[test]
fn forged_frames_on_the_slow_path_store_nothing_and_change_nothing() {
    let (mut alice, mut bob) = established();
    let early: Vec<_> = (0..4)
        .map(|i| send(&mut alice, &format!("m{i}"), &ab()))
        .collect();
    assert_eq!(recv(&mut bob, &early[3], &ab()).as_deref(), Ok("m3"));
    assert_eq!(bob.skipped_keys(), 3);
    // Bob has a sending chain now, so a frame under a new ratchet key reaches the DH step.
    let reply = send(&mut bob, "r", &ba());
    let untouched = bob.snapshot();
    let current = Header::decode(&early[0]).expect("header").0.ratchet;
    let stranger = super::keys::public_of(&super::keys::random_key(&mut OsRng));
    let mut tampered = early[1].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let forgeries = [
        // Under a skipped key: looked up, never removed.
        tampered,
        // Far ahead in the current chain: would have stored MAX_SKIP keys.
        forged(&bob, &alice, current, 0, 3 + MAX_SKIP),
        // A new ratchet key whose PN and N would skip keys in both chains.
        forged(&bob, &alice, stranger, 4 + MAX_SKIP / 2, MAX_SKIP),
    ];
    for f in &forgeries {
        assert_eq!(recv(&mut bob, f, &ab()), Err(NativeError::DecryptFailed));
        assert_eq!(
            bob.skipped_keys(),
            3,
            "a forged frame stored or removed keys"
        );
    }
    // Beyond the window: refused before any key is derived.
    let beyond = forged(&bob, &alice, stranger, 4 + MAX_SKIP + 1, 0);
    assert_eq!(
        recv(&mut bob, &beyond, &ab()),
        Err(NativeError::TooFarAhead)
    );
    assert_eq!(bob.skipped_keys(), 3);
    // Everything genuine opens exactly as in the copy that never saw a forgery.
    let mut twin = untouched;
    recv(&mut alice, &reply, &ba()).expect("reply");
    let next_chain = send(&mut alice, "new chain", &ab());
    for f in [&early[1], &early[0], &next_chain, &early[2]] {
        let got = recv(&mut bob, f, &ab());
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(got, recv(&mut twin, f, &ab()));
    }
    assert_eq!((bob.skipped_keys(), twin.skipped_keys()), (0, 0));
    let back = send(&mut bob, "still in step", &ba());
    assert_eq!(
        recv(&mut alice, &back, &ba()).as_deref(),
        Ok("still in step")
    );
}

#[test]
fn a_later_snapshot_cannot_open_earlier_frames() {
    let (mut alice, mut bob) = established();
    let frames: Vec<_> = (0..3)
        .map(|i| send(&mut alice, &format!("m{i}"), &ab()))
        .collect();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(recv(&mut bob, f, &ab()), Ok(format!("m{i}")));
    }
    let reply = send(&mut bob, "r", &ba());
    recv(&mut alice, &reply, &ba()).expect("reply");
    // Whoever copies Bob's whole state now (a memory dump) cannot read what was already read.
    let mut stolen = bob.snapshot();
    for f in &frames {
        assert!(stolen.decrypt(f, &ab()).is_err());
    }
    // ...and a snapshot of Alice cannot read Bob's reply either.
    let mut stolen_alice = alice.snapshot();
    assert!(stolen_alice.decrypt(&reply, &ba()).is_err());
}

#[test]
fn skipped_keys_expire_after_enough_later_messages() {
    let (mut alice, mut bob) = established();
    let lost = send(&mut alice, "lost", &ab());
    let mut last = Vec::new();
    for i in 0..=SKIPPED_KEY_LIFETIME {
        last = send(&mut alice, &i.to_string(), &ab());
        recv(&mut bob, &last, &ab()).expect("in order");
    }
    assert!(!last.is_empty());
    assert_eq!(bob.skipped_keys(), 0);
    assert_eq!(
        recv(&mut bob, &lost, &ab()),
        Err(NativeError::KeyUnavailable)
    );
}

#[test]
fn end_tokens_agree_across_sides_and_bind_room_and_sender() {
    let (mut alice, mut bob) = established();
    // Still valid after the ratchet has moved on both sides.
    let f = send(&mut alice, "1", &ab());
    recv(&mut bob, &f, &ab()).expect("a1");
    let f = send(&mut bob, "2", &ba());
    recv(&mut alice, &f, &ba()).expect("b1");
    let token = alice.end_token(ROOM, ALICE);
    assert!(bob.verify_end_token(ROOM, ALICE, &token));
    assert!(!bob.verify_end_token(ROOM, BOB, &token), "reflected");
    assert!(!bob.verify_end_token("otherRoom", ALICE, &token), "moved");
    assert!(
        !bob.verify_end_token(ROOM, ALICE, &token[..31]),
        "truncated"
    );
    let (other, _) = established();
    assert!(
        !bob.verify_end_token(ROOM, ALICE, &other.end_token(ROOM, ALICE)),
        "another session"
    );
}

/// Pins the version-2 message format with an independent computation (RustCrypto HMAC and
/// AWS-LC AES-GCM called directly): the message key is HMAC-SHA256(CK, 0x01), used as the
/// AES-256-GCM key with nonce 0⁸ ‖ N over header ‖ context; the next chain key is
/// HMAC-SHA256(CK, 0x02). A change to any of these breaks interoperability and fails here.
#[test]
fn message_format_is_hmac_keyed_aes_gcm() {
    use crate::secure::LockedKey;
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    use hmac::{Hmac, Mac};
    let hmac1 = |key: &[u8; 32], byte: u8| -> [u8; 32] {
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
        m.update(&[byte]);
        m.finalize().into_bytes().into()
    };
    let ck0 = [0x42u8; 32];
    let init = |sending| RatchetInit {
        own_tag: InstanceTag::new(0x1111).expect("tag"),
        peer_tag: InstanceTag::new(0x2222).expect("tag"),
        root: LockedKey::new(&mut [0x11u8; 32]),
        sending,
        peer_ratchet: [9u8; 32],
        receiving: None,
        peer_identity: [5u8; 32],
        sas: String::new(),
    };
    let ratchet_pub = [7u8; 32];
    let mut alice = NativeSession::new(init(Some((
        LockedKey::new(&mut [3u8; 32]),
        ratchet_pub,
        LockedKey::new(&mut ck0.clone()),
    ))));
    let ad = ab();
    let ck1 = hmac1(&ck0, 0x02);
    for (n, ck) in [(0u32, ck0), (1, ck1)] {
        let frame = send(&mut alice, "pinned", &ad);
        let (header, head, _) = Header::decode(&frame).expect("header");
        assert_eq!((header.n, header.pn, header.ratchet), (n, 0, ratchet_pub));
        assert_eq!(head[0], 2, "version byte");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &hmac1(&ck, 0x01)).expect("key"));
        let mut nonce = [0u8; 12];
        nonce[8..].copy_from_slice(&n.to_be_bytes());
        let mut expected = b"pinned".to_vec();
        let aad = [head, &ad[..]].concat();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&aad[..]),
            &mut expected,
        )
        .expect("seal");
        assert_eq!(&frame[HEADER_LEN..], &expected[..], "message {n}");
    }
}
