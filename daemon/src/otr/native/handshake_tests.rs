//! Handshake tests: agreement, tampering by a key-swapping server, MITM, SAS, instance tags.

use super::*;
use rand::rngs::OsRng;
use serde_json::{json, Value};

pub(super) const ROOM: &str = "Kd9fPq2WxYz7mN3aT";
pub(super) const ALICE: &str = "aLiCe7yNSKqG3mZ2p";
pub(super) const BOB: &str = "BobX8dR4tWq2nJ5hE";

pub(super) fn ctx(local: &str, peer: &str) -> SessionContext {
    SessionContext {
        room_id: ROOM.into(),
        local_uid: local.into(),
        peer_uid: peer.into(),
    }
}

fn stock(sender: &str, jwk: &str) -> Value {
    json!({"roomId": ROOM, "userId": sender, "publicKey": jwk})
}

/// One party: identity and instance tag.
pub(super) struct Party {
    pub id: LocalIdentity,
    pub tag: InstanceTag,
}

pub(super) fn party() -> Party {
    Party {
        id: LocalIdentity::generate(&mut OsRng),
        tag: InstanceTag::random(&mut OsRng),
    }
}

/// Everything a run produced, for tests to inspect.
pub(super) struct Run {
    pub alice: Result<NativeSession, NativeError>,
    pub bob: Result<NativeSession, NativeError>,
}

/// Runs the three-frame handshake; the `tamper_*` closures play the server on each frame.
fn run_with(
    a: &Party,
    b: &Party,
    tamper_hs: impl FnOnce(&mut Value),
    tamper_ack: impl FnOnce(&mut Value),
    tamper_confirm: impl FnOnce(&mut Value),
) -> Run {
    let (pending_a, offer) = make_offer(&a.id, a.tag, &mut OsRng);
    let mut hs = stock(ALICE, "{\"kty\":\"EC\",\"x\":\"alice\"}");
    hs["otrd"] = offer;
    let sent_hs = hs.clone();
    tamper_hs(&mut hs);
    let answered = answer(
        &b.id,
        b.tag,
        &ctx(BOB, ALICE),
        &hs,
        stock(BOB, "{\"kty\":\"EC\",\"x\":\"bob\"}"),
        &mut OsRng,
    );
    let (pending_b, mut ack) = match answered {
        Ok(v) => v,
        Err(e) => {
            return Run {
                alice: Err(e.clone()),
                bob: Err(e),
            }
        }
    };
    tamper_ack(&mut ack);
    let (alice, confirm) = match pending_a.complete(&ctx(ALICE, BOB), &sent_hs, &ack, &mut OsRng) {
        Ok(v) => v,
        Err(e) => {
            return Run {
                alice: Err(e),
                bob: Err(NativeError::Malformed("no confirm")),
            }
        }
    };
    let mut frame = json!({"roomId": ROOM, "userId": ALICE, "otrd": confirm.to_value()});
    tamper_confirm(&mut frame);
    Run {
        alice: Ok(alice),
        bob: pending_b.confirm(&frame),
    }
}

/// An established pair (Alice initiated).
pub(super) fn established() -> (NativeSession, NativeSession) {
    let (a, b) = (party(), party());
    let run = run_with(&a, &b, |_| {}, |_| {}, |_| {});
    match (run.alice, run.bob) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => panic!("handshake failed: {:?} / {:?}", x.err(), y.err()),
    }
}

#[test]
fn both_sides_agree_and_see_each_other() {
    let (a, b) = (party(), party());
    let run = run_with(&a, &b, |_| {}, |_| {}, |_| {});
    let (mut alice, mut bob) = (run.alice.expect("alice"), run.bob.expect("bob"));
    assert_eq!(alice.peer_identity(), b.id.public());
    assert_eq!(bob.peer_identity(), a.id.public());
    assert_eq!(alice.peer_instance_tag(), b.tag);
    assert_eq!(bob.peer_instance_tag(), a.tag);
    assert_eq!(alice.sas(), bob.sas());
    // Same keys: each side decrypts the other's first message.
    let ad_ab = message_context(ROOM, ALICE, BOB);
    let f = alice
        .encrypt(b"hi bob", &ad_ab, &mut OsRng)
        .expect("encrypt");
    assert_eq!(
        bob.decrypt(&f, &ad_ab).expect("decrypt").expose(),
        b"hi bob"
    );
    let ad_ba = message_context(ROOM, BOB, ALICE);
    let g = bob
        .encrypt(b"hi alice", &ad_ba, &mut OsRng)
        .expect("encrypt");
    assert_eq!(
        alice.decrypt(&g, &ad_ba).expect("decrypt").expose(),
        b"hi alice"
    );
}

#[test]
fn a_fresh_handshake_gives_a_fresh_sas() {
    let (a, b) = (party(), party());
    let one = run_with(&a, &b, |_| {}, |_| {}, |_| {})
        .alice
        .expect("first")
        .sas();
    let two = run_with(&a, &b, |_| {}, |_| {}, |_| {})
        .alice
        .expect("second")
        .sas();
    assert_ne!(one, two);
}

/// A server's edit of one frame.
type Tamper<'a> = Box<dyn Fn(&mut Value) + 'a>;

fn fails(run: Run) -> bool {
    // Tampering must leave at least one side without a session, and never both with one.
    !(run.alice.is_ok() && run.bob.is_ok())
}

#[test]
fn tampering_with_any_handshake_member_fails_confirmation() {
    let evil = party();
    let evil_key = |k: &'static str| {
        let v = keys_b64(&evil.id.public());
        move |p: &mut Value| p["otrd"][k] = Value::String(v.clone())
    };
    let (a, b) = (party(), party());
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "strip offer",
            Box::new(|p| drop(p.as_object_mut().map(|m| m.remove("otrd")))),
        ),
        (
            "swap P-256 key",
            Box::new(|p| p["publicKey"] = json!("{\"kty\":\"EC\",\"x\":\"mallory\"}")),
        ),
        ("add refresh", Box::new(|p| p["refresh"] = json!(true))),
        ("swap ek", Box::new(evil_key("ek"))),
        ("swap ik", Box::new(evil_key("ik"))),
        (
            "change tag",
            Box::new(|p| p["otrd"]["tag"] = json!("0000abcd")),
        ),
        ("extra member", Box::new(|p| p["otrd"]["x"] = json!(1))),
        ("change room", Box::new(|p| p["roomId"] = json!("other"))),
    ];
    for (name, t) in cases {
        let run = run_with(&a, &b, |p| t(p), |_| {}, |_| {});
        assert!(fails(run), "tampered handshake ({name}) must not establish");
    }
}

fn keys_b64(k: &[u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(k)
}

#[test]
fn tampering_with_any_acknowledge_member_fails_confirmation() {
    let evil = party();
    let ev = keys_b64(&evil.id.public());
    let (a, b) = (party(), party());
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "strip answer",
            Box::new(|p| drop(p.as_object_mut().map(|m| m.remove("otrd")))),
        ),
        (
            "swap P-256 key",
            Box::new(|p| p["publicKey"] = json!("{\"kty\":\"EC\",\"x\":\"m\"}")),
        ),
        ("swap ek", Box::new(|p| p["otrd"]["ek"] = json!(ev))),
        ("swap ik", Box::new(|p| p["otrd"]["ik"] = json!(ev))),
        (
            "change tag",
            Box::new(|p| p["otrd"]["tag"] = json!("0000abcd")),
        ),
        (
            "change to",
            Box::new(|p| p["otrd"]["to"] = json!("0000abcd")),
        ),
        (
            "flip confirm",
            Box::new(|p| p["otrd"]["confirm"] = json!(ev)),
        ),
        ("add member", Box::new(|p| p["refresh"] = json!(false))),
    ];
    for (name, t) in cases {
        let run = run_with(&a, &b, |_| {}, |p| t(p), |_| {});
        assert!(
            run.alice.is_err(),
            "tampered acknowledge ({name}) must not establish"
        );
    }
}

#[test]
fn tampering_with_the_confirm_frame_fails_on_the_responder() {
    let ev = keys_b64(&party().id.public());
    let (a, b) = (party(), party());
    let run = run_with(&a, &b, |_| {}, |_| {}, |p| p["otrd"]["rk"] = json!(ev));
    assert_eq!(run.bob.err(), Some(NativeError::KeyConfirmationFailed));
    let run = run_with(&a, &b, |_| {}, |_| {}, |p| p["otrd"]["confirm"] = json!(ev));
    assert_eq!(run.bob.err(), Some(NativeError::KeyConfirmationFailed));
    // The revealed secret is under the initiator's MAC: a server cannot swap it either.
    let run = run_with(&a, &b, |_| {}, |_| {}, |p| p["otrd"]["n"] = json!(ev));
    assert_eq!(run.bob.err(), Some(NativeError::KeyConfirmationFailed));
    let run = run_with(
        &a,
        &b,
        |_| {},
        |_| {},
        |p| p["otrd"]["to"] = json!("0000abcd"),
    );
    assert_eq!(run.bob.err(), Some(NativeError::NotForThisInstance));
}

#[test]
fn key_swapping_server_is_detected_by_confirmation() {
    // Mallory answers Alice's offer with her own ephemeral key under Bob's identity.
    let (a, b, m) = (party(), party(), party());
    let (pa, offer) = make_offer(&a.id, a.tag, &mut OsRng);
    let mut hs = stock(ALICE, "{}");
    hs["otrd"] = offer;
    let (_pm, mut ack) = answer(
        &m.id,
        b.tag,
        &ctx(BOB, ALICE),
        &hs,
        stock(BOB, "{}"),
        &mut OsRng,
    )
    .expect("answer");
    ack["otrd"]["ik"] = json!(keys_b64(&b.id.public()));
    let err = pa.complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng).err();
    assert_eq!(err, Some(NativeError::KeyConfirmationFailed));
}

#[test]
fn mitm_with_own_identity_changes_fingerprint_and_sas() {
    let (a, b, m) = (party(), party(), party());
    let honest = run_with(&a, &b, |_| {}, |_| {}, |_| {});
    let bob_fp = honest.alice.expect("honest").peer_fingerprint();

    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("otrd");
    let mut trust = crate::identity::TrustStore::open(&state).expect("trust store");
    let bob = crate::identity::PeerId {
        server: "https://chat.example.com",
        account_uid: ALICE,
        uid: BOB,
        username: "bob",
    };
    assert!(matches!(
        trust.observe(&bob, &bob_fp).expect("observe").decision,
        crate::identity::TrustDecision::New
    ));

    // Mallory terminates both handshakes with her own identity.
    let to_alice = run_with(&a, &m, |_| {}, |_| {}, |_| {});
    let to_bob = run_with(&m, &b, |_| {}, |_| {}, |_| {});
    let alice_view = to_alice.alice.expect("alice-mallory");
    let bob_view = to_bob.bob.expect("mallory-bob");
    assert_ne!(alice_view.peer_fingerprint(), bob_fp);
    assert_ne!(alice_view.sas(), bob_view.sas());
    match trust
        .observe(&bob, &alice_view.peer_fingerprint())
        .expect("observe")
        .decision
    {
        crate::identity::TrustDecision::NewDevice { previous } => {
            assert_eq!(previous, Some(bob_fp))
        }
        other => panic!("expected NewDevice, got {other:?}"),
    }
}

#[test]
fn reflected_offer_and_foreign_answers_are_refused() {
    let a = party();
    let (pa, offer) = make_offer(&a.id, a.tag, &mut OsRng);
    let mut hs = stock(ALICE, "{}");
    hs["otrd"] = offer;
    // Our own offer echoed back to us (same tag): reflection.
    let reflected = answer(
        &a.id,
        a.tag,
        &ctx(ALICE, ALICE),
        &hs,
        stock(ALICE, "{}"),
        &mut OsRng,
    );
    assert_eq!(reflected.err(), Some(NativeError::Reflection));
    // An answer addressed to our other instance is not ours.
    let b = party();
    let other_instance = party();
    let (_o, other_offer) = make_offer(&a.id, other_instance.tag, &mut OsRng);
    let mut other_hs = stock(ALICE, "{}");
    other_hs["otrd"] = other_offer;
    let (_pb, ack) = answer(
        &b.id,
        b.tag,
        &ctx(BOB, ALICE),
        &other_hs,
        stock(BOB, "{}"),
        &mut OsRng,
    )
    .expect("answer");
    assert_eq!(parse_answer(&ack).map(|x| x.to), Some(other_instance.tag));
    let err = pa.complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng).err();
    assert_eq!(err, Some(NativeError::NotForThisInstance));
}

#[test]
fn parse_offer_detects_otrd_peers_only() {
    let a = party();
    let (_p, offer) = make_offer(&a.id, a.tag, &mut OsRng);
    let mut hs = stock(ALICE, "{}");
    assert_eq!(parse_offer(&hs), None, "a stock handshake has no offer");
    hs["otrd"] = offer;
    let parsed = parse_offer(&hs).expect("offer");
    assert_eq!(parsed.tag, a.tag);
    assert_eq!(parsed.ik, a.id.public());
    for other in [1, 2, 4] {
        hs["otrd"]["v"] = json!(other);
        assert_eq!(parse_offer(&hs), None, "other versions are not ours");
    }
    hs["otrd"]["v"] = json!(NATIVE_VERSION);
    // An offer without its commitment is no native offer: the server cannot strip it to get a
    // grindable SAS (what is left is a stock offer, judged by the downgrade rules).
    let mut stripped = hs.clone();
    if let Some(m) = stripped["otrd"].as_object_mut() {
        m.remove("commit");
    }
    assert_eq!(parse_offer(&stripped), None);
    hs["otrd"]["ek"] = json!("short");
    assert_eq!(parse_offer(&hs), None);
}

/// Alice's offer and Bob's answer, in full.
fn offer_and_answer(a: &Party, b: &Party) -> (PendingInitiator, Value, PendingResponder, Value) {
    let (pa, offer) = make_offer(&a.id, a.tag, &mut OsRng);
    let mut hs = stock(ALICE, "{}");
    hs["otrd"] = offer;
    let (pb, ack) = answer(
        &b.id,
        b.tag,
        &ctx(BOB, ALICE),
        &hs,
        stock(BOB, "{}"),
        &mut OsRng,
    )
    .expect("answer");
    (pa, hs, pb, ack)
}

#[test]
fn the_offer_commits_to_a_secret_revealed_only_in_the_confirm_frame() {
    let (a, b) = (party(), party());
    let (pa, hs, pb, ack) = offer_and_answer(&a, &b);
    let member = hs["otrd"].as_object().expect("member");
    assert!(member.contains_key("commit"));
    assert!(!member.contains_key("n"), "the secret is not in the offer");
    assert!(ack["otrd"].get("n").is_none());
    let (alice, confirm) = pa
        .complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng)
        .expect("complete");
    let revealed = unb64(&confirm.n);
    assert_eq!(
        keys_b64(&commit_of(&revealed)),
        hs["otrd"]["commit"].as_str().unwrap_or_default()
    );
    let bob = pb.confirm(&confirm.to_value()).expect("confirm");
    assert_eq!(alice.sas(), bob.sas());
}

fn unb64(s: &str) -> [u8; 32] {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64");
    bytes.try_into().expect("32 bytes")
}

/// SHA-256("otrd v3 sas commit" ‖ n), written out here so the test checks the documented rule.
fn commit_of(n: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"otrd v3 sas commit");
    h.update(n);
    h.finalize().into()
}

#[test]
fn an_initiator_that_reveals_another_secret_than_it_committed_to_is_caught() {
    // A man in the middle facing Bob: it committed, saw Bob's key, and now wants another secret
    // (one that would make Bob's SAS equal Alice's). Its MAC is genuine; the commitment is not.
    let (m, b) = (party(), party());
    let (mut pm, hs, pb, ack) = offer_and_answer(&m, &b);
    pm.cheat_with_secret([7u8; 32]);
    let (_, confirm) = pm
        .complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng)
        .expect("the cheat completes its own side");
    assert_eq!(
        pb.confirm(&confirm.to_value()).err(),
        Some(NativeError::CommitmentMismatch)
    );
}

#[test]
fn a_responder_that_changes_its_key_after_the_reveal_is_refused() {
    // A man in the middle facing Alice: it answered, learnt her secret from the confirm frame,
    // and now answers again with a key searched for a SAS of its choice. The offer is spent.
    let (a, m) = (party(), party());
    let (pa, hs, _pm, ack) = offer_and_answer(&a, &m);
    let (first, _confirm) = pa
        .complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng)
        .expect("first answer");
    let (_, ack2) = answer(
        &m.id,
        m.tag,
        &ctx(BOB, ALICE),
        &hs,
        stock(BOB, "{}"),
        &mut OsRng,
    )
    .expect("second answer");
    assert_ne!(ack2["otrd"]["ek"], ack["otrd"]["ek"]);
    let again = pa.complete(&ctx(ALICE, BOB), &hs, &ack2, &mut OsRng);
    assert_eq!(again.err(), Some(NativeError::AlreadyCompleted));
    // Even the same answer again does not make a second session.
    let same = pa.complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng);
    assert_eq!(same.err(), Some(NativeError::AlreadyCompleted));
    assert!(!first.sas().is_empty());
}

#[test]
fn a_forged_answer_before_the_genuine_one_does_not_spend_the_offer() {
    // The commitment must not turn a forged answer into a denial of service: a failed answer
    // reveals nothing, and the genuine answer still completes.
    let (a, b) = (party(), party());
    let (pa, hs, pb, ack) = offer_and_answer(&a, &b);
    let mut forged = ack.clone();
    forged["otrd"]["confirm"] = json!(keys_b64(&[9u8; 32]));
    assert_eq!(
        pa.complete(&ctx(ALICE, BOB), &hs, &forged, &mut OsRng)
            .err(),
        Some(NativeError::KeyConfirmationFailed)
    );
    let (alice, confirm) = pa
        .complete(&ctx(ALICE, BOB), &hs, &ack, &mut OsRng)
        .expect("genuine");
    assert_eq!(
        alice.sas(),
        pb.confirm(&confirm.to_value()).expect("bob").sas()
    );
}

#[test]
fn low_order_keys_are_rejected() {
    let (a, b) = (party(), party());
    let zero = keys_b64(&[0u8; 32]);
    let run = run_with(&a, &b, |p| p["otrd"]["ek"] = json!(zero), |_| {}, |_| {});
    assert_eq!(run.bob.err(), Some(NativeError::WeakKey));
}

#[test]
fn instance_tags_round_trip_and_stay_above_the_reserved_range() {
    for _ in 0..100 {
        let t = InstanceTag::random(&mut OsRng);
        assert!(t.value() >= InstanceTag::MIN);
        assert_eq!(InstanceTag::from_hex(&t.to_hex()), Some(t));
    }
    assert_eq!(InstanceTag::from_hex("000000ff"), None);
    assert_eq!(InstanceTag::from_hex("100"), None);
    let fp = party().id.fingerprint();
    let shown = fp.to_string();
    assert_eq!(shown.len(), 71);
    assert_eq!(shown.split(' ').count(), 8);
    assert_eq!(Fingerprint::from_hex(&shown), Some(fp));
    assert!(!format!("{:?}", party().id).contains("secret"));
}
