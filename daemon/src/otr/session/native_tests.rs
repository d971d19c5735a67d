//! Native negotiation through the session state machine: two machines wired back to back, the
//! test playing the server (and, where it says so, a tampering one).

use super::*;
use crate::engine::{Mode, SchemePreference, SessionState};
use crate::otr::native::{InstanceTag, LocalIdentity};
use rand::rngs::OsRng;
use serde_json::{json, Value};

const ROOM: &str = "Kd9fPq2WxYz7mN3aT";
const A: &str = "aLiCe7yNSKqG3mZ2p";
const B: &str = "BobX8dR4tWq2nJ5hE";

fn setup() -> Option<NativeSetup> {
    Some(NativeSetup {
        identity: LocalIdentity::generate(&mut OsRng),
        tag: InstanceTag::random(&mut OsRng),
    })
}

fn session(me: &str, peer: &str, name: &str, native: Option<NativeSetup>) -> Session {
    let ctx = RoomContext {
        room_id: ROOM.into(),
        my_uid: me.into(),
        peer_uid: peer.into(),
        peer_username: name.into(),
    };
    let policy = SessionPolicy {
        auto_accept: true,
        native,
        ..SessionPolicy::default()
    };
    Session::new(ctx, policy)
}

fn run(s: &mut Session, input: Input) -> Vec<Output> {
    run_at(s, input, 1_000)
}

fn run_at(s: &mut Session, input: Input, now: i64) -> Vec<Output> {
    s.handle(input, now, &mut OsRng).expect("input accepted")
}

/// Past the handshake timeout of a handshake made at `run`'s time.
const AFTER_TIMEOUT: i64 = 1_000 + 10_000;

/// A rejected answer keeps the handshake waiting; its timeout ends it in `Error`, naming why.
fn assert_waits_then_fails(s: &mut Session, why: &str) {
    assert_eq!(
        s.state(),
        SessionState::Establishing,
        "still waiting for the genuine answer"
    );
    let out = run_at(s, Input::Tick, AFTER_TIMEOUT);
    assert_eq!(s.state(), SessionState::Error, "{out:?}");
    assert!(s.info().detail.contains(why), "{}", s.info().detail);
    assert!(s.native_peer().is_none());
}

fn signals(out: &[Output]) -> Vec<(SignalKind, Value)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signal { kind, payload } => Some((*kind, payload.clone())),
            _ => None,
        })
        .collect()
}

fn the_signal(out: &[Output], kind: SignalKind) -> Value {
    signals(out)
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {} in {out:?}", kind.as_str()))
}

fn alarms(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(crate::engine::EventKind::Alarm { code, .. }) => Some(code.clone()),
            _ => None,
        })
        .collect()
}

/// Alice starts, Bob (auto-accept) answers; returns the outputs of each step.
fn handshake(
    alice: &mut Session,
    bob: &mut Session,
    tamper_ack: impl FnOnce(&mut Value),
) -> (Vec<Output>, Vec<Output>) {
    let start = run(
        alice,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    );
    let hs = the_signal(&start, SignalKind::Handshake);
    let answered = run(
        bob,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs,
        },
    );
    let mut ack = the_signal(&answered, SignalKind::Acknowledge);
    tamper_ack(&mut ack);
    let completed = run(
        alice,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: ack,
        },
    );
    (answered, completed)
}

#[test]
fn two_otrd_daemons_establish_native_only_after_confirmation() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let (answered, completed) = handshake(&mut alice, &mut bob, |_| {});
    // Bob answered natively but is not established before the confirm frame.
    assert!(the_signal(&answered, SignalKind::Acknowledge)
        .get("otrd")
        .is_some());
    assert_eq!(bob.state(), SessionState::Establishing);
    assert_eq!(bob.mode(), None);
    assert_eq!(alice.state(), SessionState::Established);
    assert_eq!(alice.mode(), Some(Mode::Native));
    let confirm = the_signal(&completed, SignalKind::Acknowledge);
    assert!(confirm.get("publicKey").is_none());
    run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: confirm,
        },
    );
    assert_eq!(bob.state(), SessionState::Established);
    assert_eq!(bob.mode(), Some(Mode::Native));
    let (fa, sas_a) = alice.native_peer().expect("alice native");
    let (_fb, sas_b) = bob.native_peer().expect("bob native");
    assert_eq!(sas_a, sas_b);
    assert_ne!(fa.to_hex(), "");

    // A message each way through the ratchet.
    let out = run(
        &mut alice,
        Input::Send {
            text: "hello bob".into(),
        },
    );
    let (id, msg) = out
        .iter()
        .find_map(|o| match o {
            Output::SendMessage { id, msg } => Some((id.clone(), msg.clone())),
            _ => None,
        })
        .expect("sent");
    let message = json!({"_id": id, "rid": ROOM, "msg": msg, "t": "otr",
        "u": {"_id": A, "username": "alice", "name": "alice"}});
    let got = run(
        &mut bob,
        Input::RoomMessage {
            message: message.clone(),
        },
    );
    let text = got.iter().find_map(|o| match o {
        Output::Event(crate::engine::EventKind::Message { text, .. }) => {
            Some(text.expose().to_owned())
        }
        _ => None,
    });
    assert_eq!(text.as_deref(), Some("hello bob"));
    // The same frame again is not shown twice.
    let again = run(&mut bob, Input::RoomMessage { message });
    assert!(!again
        .iter()
        .any(|o| matches!(o, Output::Event(crate::engine::EventKind::Message { .. }))));
}

#[test]
fn a_tampered_acknowledge_raises_key_confirmation_failed_and_establishes_nothing() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let (_a, completed) = handshake(&mut alice, &mut bob, |ack| {
        let swapped = crate::otr::legacy::EphemeralKeyPair::generate(&mut OsRng).expect("key pair");
        ack["publicKey"] = json!(swapped.public_jwk());
    });
    // The swapped stock key changes the transcript: confirmation fails, nothing is established;
    // the handshake waits for a genuine answer until its timeout.
    assert!(alice.native_peer().is_none());
    assert_eq!(
        alarms(&completed),
        vec!["key_confirmation_failed".to_owned()]
    );
    assert!(signals(&completed).is_empty(), "no confirm frame is sent");
    assert_waits_then_fails(&mut alice, "did not verify");
}

#[test]
fn a_tampered_otrd_answer_raises_the_alarm() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let (_a, completed) = handshake(&mut alice, &mut bob, |ack| {
        ack["otrd"]["tag"] = json!("0000beef")
    });
    assert_eq!(
        alarms(&completed),
        vec!["key_confirmation_failed".to_owned()]
    );
    assert!(alice.native_peer().is_none());
    assert_waits_then_fails(&mut alice, "did not verify");
}

#[test]
fn a_forged_answer_does_not_abandon_the_handshake_and_the_genuine_one_still_completes() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let start = run(
        &mut alice,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    );
    let hs = the_signal(&start, SignalKind::Handshake);
    let answered = run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs.clone(),
        },
    );
    let genuine = the_signal(&answered, SignalKind::Acknowledge);
    // A third party answers first: with its own native identity, then with the stock scheme.
    let mut mallory = session(B, A, "alice", setup());
    let forged = the_signal(
        &run(
            &mut mallory,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: hs,
            },
        ),
        SignalKind::Acknowledge,
    );
    let mut tampered = forged.clone();
    tampered["otrd"]["confirm"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = run(
        &mut alice,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: tampered,
        },
    );
    assert_eq!(alarms(&out), vec!["key_confirmation_failed".to_owned()]);
    assert!(signals(&out).is_empty());
    assert_eq!(alice.state(), SessionState::Establishing);
    let done = run(
        &mut alice,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: genuine,
        },
    );
    assert_eq!(alice.state(), SessionState::Established);
    assert_eq!(alice.mode(), Some(Mode::Native));
    let confirm = the_signal(&done, SignalKind::Acknowledge);
    run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: confirm,
        },
    );
    assert_eq!(bob.state(), SessionState::Established);
    assert_eq!(
        alice.native_peer().map(|p| p.1),
        bob.native_peer().map(|p| p.1)
    );
}

#[test]
fn a_tampered_confirm_frame_leaves_the_responder_without_a_session() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let (_a, completed) = handshake(&mut alice, &mut bob, |_| {});
    let mut confirm = the_signal(&completed, SignalKind::Acknowledge);
    confirm["otrd"]["confirm"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: confirm,
        },
    );
    assert_eq!(alarms(&out), vec!["key_confirmation_failed".to_owned()]);
    assert_eq!(bob.mode(), None);
    // The genuine confirmation may still come; only the timeout ends it.
    assert_waits_then_fails(&mut bob, "did not verify");
}

#[test]
fn a_known_native_peer_answering_legacy_is_a_refused_downgrade() {
    let mut alice = session(A, B, "bob", setup());
    alice.policy.peer_known_native = true;
    let mut bob = session(B, A, "alice", None); // the server stripped the offer, or a stock peer
    let (answered, completed) = handshake(&mut alice, &mut bob, |_| {});
    assert!(the_signal(&answered, SignalKind::Acknowledge)
        .get("otrd")
        .is_none());
    assert_eq!(alarms(&completed), vec!["downgrade".to_owned()]);
    assert!(
        signals(&completed).is_empty(),
        "nothing answers a refused answer"
    );
    assert!(alice
        .handle(Input::Send { text: "x".into() }, 1_000, &mut OsRng)
        .is_err());
    // At the timeout the session fails, and the (stock) peer that thinks it is established is
    // told.
    let out = run_at(&mut alice, Input::Tick, AFTER_TIMEOUT);
    assert_eq!(alice.state(), SessionState::Error);
    assert!(signals(&out).iter().any(|(k, _)| *k == SignalKind::End));
    assert!(
        alice.info().detail.contains("possible downgrade"),
        "{}",
        alice.info().detail
    );
}

#[test]
fn downgrade_policy_warn_accepts_legacy_with_an_alarm() {
    let mut alice = session(A, B, "bob", setup());
    alice.policy.peer_known_native = true;
    alice.policy.refuse_downgrade = false;
    let mut bob = session(B, A, "alice", None);
    let (_a, completed) = handshake(&mut alice, &mut bob, |_| {});
    assert_eq!(alarms(&completed), vec!["downgrade".to_owned()]);
    assert_eq!(alice.state(), SessionState::Established);
    assert_eq!(alice.mode(), Some(Mode::Legacy));
}

#[test]
fn an_unknown_peer_answering_legacy_is_plain_legacy() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", None);
    let (_a, completed) = handshake(&mut alice, &mut bob, |_| {});
    assert!(alarms(&completed).is_empty());
    assert_eq!(alice.mode(), Some(Mode::Legacy));
    assert_eq!(bob.mode(), Some(Mode::Legacy));
}

#[test]
fn native_only_start_refuses_a_legacy_answer() {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", None);
    let start = run(
        &mut alice,
        Input::Start {
            scheme: SchemePreference::Native,
        },
    );
    let hs = the_signal(&start, SignalKind::Handshake);
    let answered = run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs,
        },
    );
    let ack = the_signal(&answered, SignalKind::Acknowledge);
    let out = run(
        &mut alice,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: ack,
        },
    );
    assert!(out.iter().any(|o| matches!(o,
        Output::Event(crate::engine::EventKind::Error { code, .. }) if code == "native_required")));
    assert_ne!(alice.mode(), Some(Mode::Legacy));
    assert_waits_then_fails(&mut alice, "only native is acceptable");
    let mut legacy_only = session(A, B, "bob", None);
    let refused = legacy_only.handle(
        Input::Start {
            scheme: SchemePreference::Native,
        },
        1_000,
        &mut OsRng,
    );
    assert_eq!(refused.err(), Some(SessionError::NativeUnavailable));
}

/// Alice and Bob with an established native session (Bob has seen Alice's confirm frame).
fn established_pair() -> (Session, Session) {
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", setup());
    let (_, completed) = handshake(&mut alice, &mut bob, |_| {});
    let confirm = the_signal(&completed, SignalKind::Acknowledge);
    run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: confirm,
        },
    );
    assert_eq!(bob.state(), SessionState::Established);
    (alice, bob)
}

fn forged_codes(out: &[Output]) -> usize {
    alarms(out).iter().filter(|c| *c == "forged_signal").count()
}

#[test]
fn a_native_end_needs_the_peers_proof_and_a_forged_one_changes_nothing() {
    let (mut alice, mut bob) = established_pair();
    // The genuine `end` Alice would send, taken from a throwaway copy of the session so that
    // Alice stays established: a different session's proof must not work either.
    let (mut other_alice, _) = established_pair();
    let other_end = the_signal(
        &run(&mut other_alice, Input::End { notify_peer: true }),
        SignalKind::End,
    );
    let forged = [
        // What a third user sharing a room can send today: the stock `end` in Alice's name.
        json!({"roomId": ROOM, "userId": A}),
        json!({"roomId": ROOM, "userId": A, "otrd": {"end": "AAAA"}}),
        json!({"roomId": ROOM, "userId": A, "otrd": {"end": 7}}),
        other_end,
    ];
    for (i, payload) in forged.into_iter().enumerate() {
        // Spaced out: forged-signal alarms of one kind are limited to one a second.
        let out = run_at(
            &mut bob,
            Input::Signal {
                kind: SignalKind::End,
                payload: payload.clone(),
            },
            1_000 + 2_000 * i as i64,
        );
        assert_eq!(forged_codes(&out), 1, "{payload}: {out:?}");
        assert_eq!(bob.state(), SessionState::Established, "{payload}");
    }

    // Alice's own `end` carries the proof, and Bob honours it.
    let ended = run(&mut alice, Input::End { notify_peer: true });
    let end = the_signal(&ended, SignalKind::End);
    assert!(
        end["otrd"]["end"].as_str().is_some_and(|t| !t.is_empty()),
        "{end}"
    );
    let out = run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::End,
            payload: end,
        },
    );
    assert_eq!(forged_codes(&out), 0, "{out:?}");
    assert_eq!(bob.state(), SessionState::Ended);
}

#[test]
fn a_legacy_end_keeps_the_stock_behaviour_and_carries_no_proof() {
    // Bob without native: the session is legacy, and a bare `end` still ends it.
    let mut alice = session(A, B, "bob", setup());
    let mut bob = session(B, A, "alice", None);
    handshake(&mut alice, &mut bob, |_| {});
    assert_eq!(bob.state(), SessionState::Established);
    assert_eq!(bob.mode(), Some(Mode::Legacy));
    let end = the_signal(
        &run(&mut alice, Input::End { notify_peer: true }),
        SignalKind::End,
    );
    assert!(end.get("otrd").is_none(), "{end}");
    run(
        &mut bob,
        Input::Signal {
            kind: SignalKind::End,
            payload: json!({"roomId": ROOM, "userId": A}),
        },
    );
    assert_eq!(bob.state(), SessionState::Ended);
}
