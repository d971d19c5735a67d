//! The server (or any user) as the adversary of a native session: every stock signal, forged in
//! the peer's name, in each state a native session can be in — and, for contrast, the stock
//! behaviour that legacy sessions with stock peers keep — and the rules that keep native peers
//! native. The native refresh under attack is in `native_refresh.rs`, which shares the
//! scaffolding here.

use super::*;
use crate::otr::legacy::EphemeralKeyPair;
use crate::otr::native::{self, InstanceTag, LocalIdentity};

pub(super) fn native_policy() -> SessionPolicy {
    SessionPolicy {
        native: Some(NativeSetup {
            identity: LocalIdentity::generate(&mut rand::rngs::OsRng),
            tag: InstanceTag::random(&mut rand::rngs::OsRng),
        }),
        ..SessionPolicy::default()
    }
}

/// Alice and Bob, both otrd, with an established native session started by Alice.
pub(super) fn native_pair() -> Relay {
    let mut r = Relay::new(native_policy(), native_policy());
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    )
    .expect("start");
    r.cmd(Side::B, Input::Accept { seq: None }).expect("accept");
    for s in [&r.a, &r.b] {
        assert_eq!(s.state(), SessionState::Established);
        assert_eq!(s.mode(), Some(crate::engine::Mode::Native));
    }
    r
}

/// A stock P-256 public key the attacker holds the private half of.
pub(super) fn attacker_jwk() -> String {
    let pair = EphemeralKeyPair::generate(&mut rand::rngs::OsRng).expect("key pair");
    pair.public_jwk().to_owned()
}

/// What an attacker can write in `claimed`'s name, labelled as the alarm names it.
pub(super) fn forgeries(claimed: Side) -> Vec<(SignalKind, &'static str, Value)> {
    let base = || json!({"roomId": ROOM, "userId": claimed.uid()});
    let with = |extra: Value| {
        let mut v = base();
        for (k, x) in extra.as_object().expect("object") {
            v[k] = x.clone();
        }
        v
    };
    let (_, attacker_offer) = native::make_offer(
        &LocalIdentity::generate(&mut rand::rngs::OsRng),
        InstanceTag::random(&mut rand::rngs::OsRng),
        &mut rand::rngs::OsRng,
    );
    vec![
        // The issue's attack: a stock refresh with the attacker's key.
        (
            SignalKind::Handshake,
            "refresh handshake",
            with(json!({"publicKey": attacker_jwk(), "refresh": true})),
        ),
        // A native-looking refresh without (or with a made-up) proof.
        (
            SignalKind::Handshake,
            "refresh handshake",
            with(
                json!({"publicKey": attacker_jwk(), "refresh": true, "otrd": attacker_offer.clone()}),
            ),
        ),
        (
            SignalKind::Handshake,
            "refresh handshake",
            with(
                json!({"publicKey": attacker_jwk(), "refresh": true, "otrd": attacker_offer, "otrdAuth": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}),
            ),
        ),
        // A stock first handshake (a "restart" to the stock scheme).
        (
            SignalKind::Handshake,
            "handshake",
            with(json!({"publicKey": attacker_jwk()})),
        ),
        (
            SignalKind::Acknowledge,
            "acknowledge",
            with(json!({"publicKey": attacker_jwk()})),
        ),
        (SignalKind::Deny, "deny", base()),
        (SignalKind::End, "end", base()),
        (
            SignalKind::End,
            "end",
            with(json!({"otrd": {"end": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}})),
        ),
    ]
}

pub(super) fn alarms_of<'a>(out: &'a [Output], code: &str) -> Vec<&'a str> {
    events(out)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Alarm {
                code: c, message, ..
            } if c == code => Some(message.as_str()),
            _ => None,
        })
        .collect()
}

/// A message each way, both delivered: the session is intact and usable.
pub(super) fn assert_usable(r: &mut Relay) {
    let before_a = r.log_a.len();
    let before_b = r.log_b.len();
    let id_a = r.send(Side::A, "still private a");
    let id_b = r.send(Side::B, "still private b");
    assert!(delivered_ids(&r.log_a[before_a..]).contains(&id_a));
    assert!(delivered_ids(&r.log_b[before_b..]).contains(&id_b));
    assert!(received_texts(&r.log_b[before_b..]).contains(&"still private a".to_owned()));
    assert!(received_texts(&r.log_a[before_a..]).contains(&"still private b".to_owned()));
}

#[test]
fn every_forged_stock_signal_leaves_an_established_native_session_untouched() {
    let mut r = native_pair();
    for victim in [Side::B, Side::A] {
        let sas = r.session(victim).native_peer().map(|p| p.1);
        for (kind, label, payload) in forgeries(victim.other()) {
            let out = r
                .direct(
                    victim,
                    Input::Signal {
                        kind,
                        payload: payload.clone(),
                    },
                )
                .expect("network input");
            let s = r.session(victim);
            assert_eq!(s.state(), SessionState::Established, "{payload}");
            assert_eq!(s.mode(), Some(crate::engine::Mode::Native), "{payload}");
            assert_eq!(
                s.native_peer().map(|p| p.1),
                sas,
                "keys unchanged: {payload}"
            );
            assert!(
                signals(&out).is_empty(),
                "nothing is answered: {payload} → {out:?}"
            );
            assert!(count_invitations(&out) == 0, "{payload}");
            let alarm = alarms_of(&out, "forged_signal");
            assert_eq!(alarm.len(), 1, "{payload}: {out:?}");
            assert!(alarm[0].contains(label), "{}", alarm[0]);
            assert!(
                alarm[0].contains(victim.other().name()) && alarm[0].contains(victim.other().uid())
            );
        }
        assert_usable(&mut r);
    }
}

#[test]
fn a_flood_of_forgeries_raises_a_bounded_number_of_alarms() {
    let mut r = native_pair();
    let mut alarms = 0;
    for _ in 0..50 {
        for (kind, _, payload) in forgeries(Side::A) {
            let out = r
                .direct(Side::B, Input::Signal { kind, payload })
                .expect("input");
            alarms += alarms_of(&out, "forged_signal").len();
        }
    }
    // Five kinds (refresh handshake, handshake, acknowledge, deny, end), a burst of five each.
    assert_eq!(alarms, 25);
    r.advance(1_500);
    let (kind, _, payload) = forgeries(Side::A).remove(6);
    let out = r
        .direct(Side::B, Input::Signal { kind, payload })
        .expect("input");
    let alarm = alarms_of(&out, "forged_signal");
    assert!(
        alarm[0].contains("more since the last report"),
        "{}",
        alarm[0]
    );
    assert_eq!(r.b.state(), SessionState::Established);
}

#[test]
fn one_bad_native_frame_is_dropped_and_the_session_goes_on() {
    let mut r = native_pair();
    assert!(
        r.b.policy.decrypt_failure_ends_session,
        "even where legacy would end"
    );
    let bogus = r.server_message(Side::A, "XoXoXoXoXoXoXoXoX", r#"{"$binary":"AgAAAQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#);
    let out = r
        .direct(Side::B, Input::RoomMessage { message: bogus })
        .expect("in");
    assert!(error_codes(&out).contains(&"decrypt_failed".to_owned()));
    assert_eq!(r.b.state(), SessionState::Established);
    assert_usable(&mut r);
}

#[test]
fn legacy_sessions_with_stock_peers_keep_the_stock_behaviour() {
    // refresh: re-keyed at once and answered; handshake: a new invitation; acknowledge:
    // unsolicited, ignored; deny: nothing; end: ended.
    let outcomes = [
        (
            SignalKind::Handshake,
            json!({"refresh": true}),
            SessionState::Established,
            true,
        ),
        (
            SignalKind::Handshake,
            json!({}),
            SessionState::Requested,
            false,
        ),
        (
            SignalKind::Acknowledge,
            json!({}),
            SessionState::Established,
            false,
        ),
        (
            SignalKind::Deny,
            json!({}),
            SessionState::Established,
            false,
        ),
        (SignalKind::End, json!({}), SessionState::Ended, false),
    ];
    for (kind, extra, expected, answers) in outcomes {
        let mut r = Relay::established(Side::A);
        let mut payload = json!({"roomId": ROOM, "userId": A_UID, "publicKey": attacker_jwk()});
        for (k, v) in extra.as_object().expect("object") {
            payload[k] = v.clone();
        }
        let out = r
            .direct(Side::B, Input::Signal { kind, payload })
            .expect("in");
        assert_eq!(r.b.state(), expected, "{kind:?}");
        assert_eq!(
            signals(&out)
                .iter()
                .any(|(k, _)| *k == SignalKind::Acknowledge),
            answers,
            "{kind:?}"
        );
        assert!(alarms_of(&out, "forged_signal").is_empty());
    }
}

#[test]
fn where_the_stock_scheme_cannot_be_genuine_it_is_refused_outright() {
    let mut policy = native_policy();
    policy.legacy_impossible = true;
    policy.auto_accept = true;
    let mut r = Relay::new(policy.clone(), native_policy());
    let offer = json!({"roomId": ROOM, "userId": B_UID, "publicKey": attacker_jwk()});
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: offer,
            },
        )
        .expect("in");
    assert_eq!(alarms_of(&out, "downgrade").len(), 1, "{out:?}");
    assert!(signals(&out).is_empty() && count_invitations(&out) == 0);
    assert_eq!(r.a.state(), SessionState::NotStarted);
    let legacy = r.direct(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    );
    assert!(
        matches!(legacy, Err(SessionError::LegacyRefused(_))),
        "{legacy:?}"
    );
    // `auto` means native here: a stripped answer is refused, never a legacy session.
    let out = r
        .direct(
            Side::A,
            Input::Start {
                scheme: SchemePreference::Auto,
            },
        )
        .expect("start");
    let hs = signals(&out)[0].1.clone();
    assert!(hs.get("otrd").is_some());
    let stock_answer = json!({"roomId": ROOM, "userId": B_UID, "publicKey": attacker_jwk()});
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: stock_answer,
            },
        )
        .expect("in");
    assert_eq!(alarms_of(&out, "downgrade").len(), 1);
    assert_ne!(r.a.state(), SessionState::Established);
}

#[test]
fn require_native_refuses_stock_offers_and_legacy_sends() {
    let mut policy = native_policy();
    policy.require_native = true;
    policy.auto_accept = true;
    let mut r = Relay::new(policy, SessionPolicy::default());
    let offer = json!({"roomId": ROOM, "userId": B_UID, "publicKey": attacker_jwk()});
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: offer,
            },
        )
        .expect("in");
    assert!(
        error_codes(&out).contains(&"native_required".to_owned()),
        "{out:?}"
    );
    assert!(signals(&out).is_empty());
    assert_eq!(r.a.state(), SessionState::NotStarted);
    // A legacy session made before the option was set cannot be used for sending.
    let mut r = Relay::established(Side::A);
    r.a.set_require_native(true);
    let refused = r.direct(Side::A, Input::Send { text: "x".into() });
    assert!(
        matches!(refused, Err(SessionError::LegacyRefused(_))),
        "{refused:?}"
    );
}

#[test]
fn a_known_native_peer_in_a_legacy_session_carries_the_warning() {
    let mut r = Relay::established(Side::A);
    assert_eq!(
        r.a.info().warning,
        None,
        "a stock peer: nothing to warn about"
    );
    // Bob's daemon has spoken native before; the stock-scheme session with him is exposed.
    let known = SessionPolicy {
        peer_known_native: true,
        refuse_downgrade: false,
        ..SessionPolicy::default()
    };
    let mut r2 = Relay::new(known, SessionPolicy::default());
    r2.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r2.cmd(Side::B, Input::Accept { seq: None })
        .expect("accept");
    assert_eq!(r2.a.state(), SessionState::Established);
    assert_eq!(r2.a.info().warning.as_deref(), Some(LEGACY_WARNING));
    let warned = events(&r2.log_a)
        .into_iter()
        .any(|e| matches!(e, EventKind::State { warning: Some(w), .. } if w == LEGACY_WARNING));
    assert!(warned, "the state event says so too");
    r.cmd(Side::A, Input::End { notify_peer: true })
        .expect("end");
    r2.cmd(Side::A, Input::End { notify_peer: true })
        .expect("end");
    assert_eq!(r2.a.info().warning, None);
}

#[test]
fn the_servers_word_that_the_peer_went_offline_does_not_end_a_native_session() {
    let mut r = native_pair();
    let out = r
        .direct(Side::A, Input::PeerPresence { online: false })
        .expect("in");
    assert!(signals(&out).is_empty(), "{out:?}");
    assert_eq!(r.a.state(), SessionState::Established);
    assert_usable(&mut r);
}

#[test]
fn a_stock_offer_cannot_talk_a_native_handshake_down() {
    // Bob (auto-accept) has answered Alice natively and waits for her confirmation; a stock
    // offer in Alice's name must not replace it with a legacy session under the attacker's key.
    let mut bob_policy = native_policy();
    bob_policy.auto_accept = true;
    let mut r = Relay::new(native_policy(), bob_policy);
    r.connected = false;
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    )
    .expect("start");
    let hs = signals(&r.log_a)[0].1.clone();
    r.connected = true;
    r.direct(
        Side::B,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs,
        },
    )
    .expect("in");
    assert!(r.b.native_answer.is_some());
    let stock = json!({"roomId": ROOM, "userId": A_UID, "publicKey": attacker_jwk()});
    let out = r
        .direct(
            Side::B,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: stock.clone(),
            },
        )
        .expect("in");
    assert!(signals(&out).is_empty(), "{out:?}");
    assert_eq!(alarms_of(&out, "downgrade").len(), 1);
    assert!(r.b.native_answer.is_some() && r.b.mode() != Some(crate::engine::Mode::Legacy));
    // And Alice, waiting on her native offer, keeps it (a stock peer would answer it anyway).
    let mut stock = stock;
    stock["userId"] = json!(B_UID);
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: stock,
            },
        )
        .expect("in");
    assert!(
        signals(&out).is_empty() && count_invitations(&out) == 0,
        "{out:?}"
    );
    assert!(r.a.own.is_some());
}

#[test]
fn a_flood_of_undecryptable_frames_is_reported_in_bursts_and_changes_nothing() {
    let mut r = native_pair();
    let mut reported = 0;
    for i in 0..200 {
        let bogus = r.server_message(
            Side::A,
            &format!("bogus{i:012}"),
            r#"{"$binary":"AgAAAQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
        );
        let out = r
            .direct(Side::B, Input::RoomMessage { message: bogus })
            .expect("in");
        reported += error_codes(&out)
            .iter()
            .filter(|c| *c == "decrypt_failed")
            .count();
    }
    assert_eq!(reported, 5, "a burst, then held back");
    assert_eq!(r.b.state(), SessionState::Established);
    assert_usable(&mut r);
}
