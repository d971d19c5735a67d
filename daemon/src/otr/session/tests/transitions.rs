//! PROTOCOL.md §8 transitions, from both sides.

use super::*;
use crate::engine::Mode;

fn single(side: Side, policy: SessionPolicy) -> (Session, StdRng) {
    (Session::new(ctx(side), policy), StdRng::seed_from_u64(3))
}

fn handshake_from(from: Side, rng: &mut StdRng, refresh: bool) -> Value {
    let pair = crate::otr::legacy::EphemeralKeyPair::generate(rng).expect("key pair");
    let mut p = json!({"roomId": ROOM, "userId": from.uid(), "publicKey": pair.public_jwk()});
    if refresh {
        p["refresh"] = Value::Bool(true);
    }
    p
}

#[test]
fn start_makes_a_fresh_key_deletes_old_messages_and_sends_a_handshake_without_refresh() {
    let (mut s, mut rng) = single(Side::A, SessionPolicy::default());
    let out = s
        .handle(
            Input::Start {
                scheme: SchemePreference::Legacy,
            },
            T0,
            &mut rng,
        )
        .expect("start");
    assert!(matches!(out[0], Output::DeleteOldMessages));
    let (kind, payload) = signals(&out).remove(0);
    assert_eq!(kind, SignalKind::Handshake);
    let obj = payload.as_object().expect("object");
    assert_eq!(
        obj.len(),
        3,
        "roomId, userId, publicKey and no refresh member: {payload}"
    );
    assert_eq!(obj["roomId"], ROOM);
    assert_eq!(obj["userId"], A_UID);
    let jwk = obj["publicKey"].as_str().expect("string");
    assert!(crate::otr::legacy::PeerPublicKey::from_jwk(jwk).is_ok());
    assert_eq!(s.state(), SessionState::Establishing);
    assert!(s.info().initiator);
    // A second start gets a fresh key pair.
    let mut t = Session::new(ctx(Side::A), SessionPolicy::default());
    let out2 = t
        .handle(
            Input::Start {
                scheme: SchemePreference::Auto,
            },
            T0,
            &mut rng,
        )
        .expect("start");
    assert_ne!(signals(&out2)[0].1["publicKey"], obj["publicKey"]);
}

#[test]
fn native_preference_fails_clearly_and_auto_behaves_as_legacy() {
    let (mut s, mut rng) = single(Side::A, SessionPolicy::default());
    let err = s
        .handle(
            Input::Start {
                scheme: SchemePreference::Native,
            },
            T0,
            &mut rng,
        )
        .expect_err("refused");
    assert_eq!(err, SessionError::NativeUnavailable);
    assert!(err.to_string().contains("native"));
    assert_eq!(s.state(), SessionState::NotStarted);
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    )
    .expect("auto");
    r.cmd(Side::B, Input::Accept { seq: None }).expect("accept");
    assert_eq!(r.a.mode(), Some(Mode::Legacy));
    assert_eq!(r.b.info().trust, crate::engine::Trust::Unverified);
}

#[test]
fn incoming_handshake_prompts_then_accept_establishes_both_sides() {
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    assert_eq!(r.b.state(), SessionState::Requested);
    let inv = events(&r.log_b).into_iter().find_map(|e| match e {
        EventKind::Invitation {
            expires_ms,
            peer,
            mode,
            ..
        } => Some((*expires_ms, peer.clone(), *mode)),
        _ => None,
    });
    assert_eq!(inv, Some((T0 + 10_000, "alice".to_owned(), Mode::Legacy)));
    r.cmd(Side::B, Input::Accept { seq: None }).expect("accept");
    assert_eq!(r.a.state(), SessionState::Established);
    assert_eq!(r.b.state(), SessionState::Established);
    assert_eq!(system_messages(&r.log_a), vec![system::USER_JOINED_OTR]);
    assert!(
        system_messages(&r.log_b).is_empty(),
        "the responder posts nothing"
    );
    let ack = signals(&r.log_b)
        .into_iter()
        .find(|(k, _)| *k == SignalKind::Acknowledge)
        .expect("ack");
    assert_eq!(ack.1["userId"], B_UID);
    assert!(r
        .log_b
        .iter()
        .any(|o| matches!(o, Output::DeleteOldMessages)));
    assert!(!r.b.info().initiator);
    // A second session after an end posts user_joined_otr again; a refresh does not.
    r.cmd(Side::A, Input::End { notify_peer: true })
        .expect("end");
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.cmd(Side::B, Input::Accept { seq: None }).expect("accept");
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    let joined = system_messages(&r.log_a)
        .iter()
        .filter(|k| **k == system::USER_JOINED_OTR)
        .count();
    assert_eq!(joined, 2);
}

#[test]
fn auto_accept_policy_answers_without_a_prompt_decision() {
    let auto = SessionPolicy {
        auto_accept: true,
        ..SessionPolicy::default()
    };
    let mut r = Relay::new(SessionPolicy::default(), auto);
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    assert_eq!(r.a.state(), SessionState::Established);
    assert_eq!(r.b.state(), SessionState::Established);
    assert_eq!(
        count_invitations(&r.log_b),
        1,
        "front-ends still learn of the invitation"
    );
}

#[test]
fn decline_sends_deny_and_the_initiator_sees_declined() {
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.cmd(Side::B, Input::Decline).expect("decline");
    assert_eq!(r.b.state(), SessionState::Declined);
    assert_eq!(r.a.state(), SessionState::Declined);
    assert!(r.a.info().detail.contains("bob declined"));
    assert!(matches!(
        r.log_a.last(),
        Some(Output::Event(EventKind::State { .. }))
    ));
    assert_eq!(
        r.b.handle(Input::Accept { seq: None }, r.now, &mut r.rng)
            .expect_err("refused"),
        SessionError::NoInvitation("alice".into())
    );
}

#[test]
fn deny_is_only_honoured_while_establishing() {
    let mut r = Relay::established(Side::A);
    let deny = json!({"roomId": ROOM, "userId": B_UID});
    r.feed(
        Side::A,
        Input::Signal {
            kind: SignalKind::Deny,
            payload: deny.clone(),
        },
    );
    assert_eq!(r.a.state(), SessionState::Established);
    r.feed(
        Side::B,
        Input::Signal {
            kind: SignalKind::Deny,
            payload: json!({"roomId": ROOM, "userId": A_UID}),
        },
    );
    assert_eq!(
        r.b.state(),
        SessionState::Established,
        "a responder never honours deny"
    );
}

#[test]
fn unanswered_handshake_and_unanswered_invitation_time_out_after_10_s() {
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.advance(9_999);
    assert_eq!(r.a.state(), SessionState::Establishing);
    assert_eq!(r.b.state(), SessionState::Requested);
    r.advance(1);
    assert_eq!(r.a.state(), SessionState::Timeout);
    assert_eq!(r.b.state(), SessionState::Timeout);
}

#[test]
fn a_late_accept_still_acknowledges_and_completes() {
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.advance(15_000);
    assert_eq!(r.b.state(), SessionState::Timeout);
    r.cmd(Side::B, Input::Accept { seq: None })
        .expect("late accept");
    assert_eq!(r.b.state(), SessionState::Established);
    assert_eq!(
        r.a.state(),
        SessionState::Established,
        "the initiator kept its keys for a late answer"
    );
    r.send(Side::B, "made it");
    assert_eq!(received_texts(&r.log_a), vec!["made it"]);
}

#[test]
fn keys_of_a_timed_out_handshake_are_dropped_after_the_grace_period() {
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.advance(10_000);
    r.advance(61_000);
    assert!(r.a.own.is_none() && r.b.invitation.is_none());
    assert_eq!(
        r.b.handle(Input::Accept { seq: None }, r.now, &mut r.rng)
            .expect_err("refused"),
        SessionError::NoInvitation("alice".into())
    );
}

#[test]
fn refresh_works_in_both_directions_without_a_prompt() {
    for side in [Side::A, Side::B] {
        let mut r = Relay::established(side);
        let peer = side.other();
        r.send(side, "before");
        let invitations = count_invitations(r.log(peer));
        r.cmd(side, Input::Refresh).expect("refresh");
        let hs = signals(r.log(side))
            .into_iter()
            .rev()
            .find(|(k, _)| *k == SignalKind::Handshake)
            .expect("hs");
        assert_eq!(hs.1["refresh"], Value::Bool(true));
        assert!(system_messages(r.log(side)).contains(&system::USER_REQUESTED_OTR_KEY_REFRESH));
        assert!(system_messages(r.log(peer)).contains(&system::USER_KEY_REFRESHED_SUCCESSFULLY));
        assert_eq!(
            count_invitations(r.log(peer)),
            invitations,
            "no prompt for a refresh"
        );
        assert_eq!(r.a.state(), SessionState::Established);
        assert_eq!(r.b.state(), SessionState::Established);
        r.send(side, "after");
        r.send(peer, "reply");
        assert_eq!(received_texts(r.log(peer)), vec!["before", "after"]);
        assert_eq!(received_texts(r.log(side)), vec!["reply"]);
        assert!(
            r.a.pending.is_empty() && r.b.pending.is_empty(),
            "everything acknowledged"
        );
    }
}

#[test]
fn end_works_in_both_directions_and_peer_end_only_counts_when_established() {
    for side in [Side::A, Side::B] {
        let mut r = Relay::established(side);
        r.cmd(side.other(), Input::End { notify_peer: true })
            .expect("end");
        assert_eq!(r.a.state(), SessionState::Ended);
        assert_eq!(r.b.state(), SessionState::Ended);
        assert!(r.a.cipher.is_none() && r.b.cipher.is_none(), "keys wiped");
        let err = r.session(side).handle(
            Input::End { notify_peer: true },
            T0,
            &mut StdRng::seed_from_u64(1),
        );
        assert!(matches!(err, Err(SessionError::NotActive(_))));
    }
    let mut r = Relay::default_pair();
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.feed(
        Side::A,
        Input::Signal {
            kind: SignalKind::End,
            payload: json!({"roomId": ROOM, "userId": B_UID}),
        },
    );
    assert_eq!(
        r.a.state(),
        SessionState::Establishing,
        "end ignored unless established"
    );
}

#[test]
fn ending_without_notifying_sends_nothing_to_the_peer() {
    let mut r = Relay::established(Side::A);
    let before = signals(&r.log_a).len();
    r.cmd(Side::A, Input::End { notify_peer: false })
        .expect("end");
    assert_eq!(signals(&r.log_a).len(), before);
    assert_eq!(r.b.state(), SessionState::Established);
}

#[test]
fn glare_leaves_exactly_one_offer_and_completes() {
    let mut r = Relay::default_pair();
    // Both start before either handshake arrives.
    r.connected = false;
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("a");
    r.cmd(
        Side::B,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("b");
    r.connected = true;
    let hs_a = signals(&r.log_a).remove(0).1;
    let hs_b = signals(&r.log_b).remove(0).1;
    r.feed(
        Side::B,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs_a,
        },
    );
    r.feed(
        Side::A,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs_b,
        },
    );
    // B's uid sorts lower, so B keeps its offer; A abandons its own and answers B's.
    assert_eq!(r.b.state(), SessionState::Establishing);
    assert_eq!(r.a.state(), SessionState::Requested);
    r.cmd(Side::A, Input::Accept { seq: None }).expect("accept");
    assert_eq!(r.a.state(), SessionState::Established);
    assert_eq!(r.b.state(), SessionState::Established);
    r.send(Side::A, "glare ok");
    assert_eq!(received_texts(&r.log_b), vec!["glare ok"]);
}

#[test]
fn glare_with_auto_accept_on_the_higher_uid_completes_without_the_user() {
    let auto = SessionPolicy {
        auto_accept: true,
        ..SessionPolicy::default()
    };
    let (mut a, mut rng) = single(Side::A, auto);
    a.handle(
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
        T0,
        &mut rng,
    )
    .expect("start");
    let out = a
        .handle(
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: handshake_from(Side::B, &mut rng, false),
            },
            T0,
            &mut rng,
        )
        .expect("net");
    assert_eq!(a.state(), SessionState::Established);
    assert!(signals(&out)
        .iter()
        .any(|(k, _)| *k == SignalKind::Acknowledge));
}

#[test]
fn duplicated_handshakes_prompt_once_and_old_repeats_are_reported() {
    let (mut b, mut rng) = single(Side::B, SessionPolicy::default());
    let hs = handshake_from(Side::A, &mut rng, false);
    let mut log = Vec::new();
    for dt in [0, 500, 2_000] {
        log.extend(
            b.handle(
                Input::Signal {
                    kind: SignalKind::Handshake,
                    payload: hs.clone(),
                },
                T0 + dt,
                &mut rng,
            )
            .expect("net"),
        );
    }
    assert_eq!(count_invitations(&log), 1);
    assert!(error_codes(&log).is_empty());
    let late = b
        .handle(
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: hs,
            },
            T0 + 60_000,
            &mut rng,
        )
        .expect("net");
    assert_eq!(error_codes(&late), vec!["replayed_event"]);
    // A new offer while still invited replaces the old one (the peer restarted).
    let newer = b
        .handle(
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: handshake_from(Side::A, &mut rng, false),
            },
            T0 + 3_000,
            &mut rng,
        )
        .expect("net");
    assert_eq!(count_invitations(&newer), 1);
}

#[test]
fn a_fresh_handshake_while_established_resets_and_prompts() {
    let mut r = Relay::established(Side::A);
    r.connected = false;
    let id = r.send(Side::A, "in flight");
    r.connected = true;
    let hs = handshake_from(Side::B, &mut r.rng, false);
    r.feed(
        Side::A,
        Input::Signal {
            kind: SignalKind::Handshake,
            payload: hs,
        },
    );
    assert_eq!(r.a.state(), SessionState::Requested);
    assert!(r.a.cipher.is_none());
    let failed = events(&r.log_a).into_iter().any(
        |e| matches!(e, EventKind::Error { code, id: i, .. } if code == "send_failed" && *i == id),
    );
    assert!(failed, "the pending message is reported, not lost");
}

#[test]
fn refused_commands_leave_the_session_unchanged() {
    let mut r = Relay::established(Side::A);
    let err =
        r.a.handle(
            Input::Start {
                scheme: SchemePreference::Legacy,
            },
            r.now,
            &mut r.rng,
        )
        .expect_err("refused");
    assert!(matches!(err, SessionError::AlreadyActive { .. }));
    assert!(r.a.handle(Input::Decline, r.now, &mut r.rng).is_err());
    let (mut s, mut rng) = single(Side::A, SessionPolicy::default());
    assert!(matches!(
        s.handle(Input::Refresh, T0, &mut rng),
        Err(SessionError::NotEstablished { .. })
    ));
    assert!(matches!(
        s.handle(Input::End { notify_peer: true }, T0, &mut rng),
        Err(SessionError::NotActive(_))
    ));
    assert_eq!(s.state(), SessionState::NotStarted);
}

#[test]
fn peer_going_offline_ends_the_session() {
    let mut r = Relay::established(Side::A);
    let before = signals(&r.log_a).len();
    r.feed(Side::A, Input::PeerPresence { online: false });
    assert_eq!(r.a.state(), SessionState::Ended);
    assert!(r.a.info().detail.contains("offline"));
    assert_eq!(signals(&r.log_a)[before].0, SignalKind::End);
    assert!(matches!(
        r.a.handle(Input::Send { text: "x".into() }, r.now, &mut r.rng),
        Err(SessionError::NotEstablished { .. })
    ));
    r.feed(Side::A, Input::PeerPresence { online: true });
    assert_eq!(r.a.state(), SessionState::Ended);
}

#[test]
fn reconnect_while_establishing_resends_the_same_handshake() {
    let mut r = Relay::default_pair();
    r.connected = false;
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    r.connected = true;
    assert_eq!(r.b.state(), SessionState::NotStarted, "lost in the gap");
    r.feed(Side::A, Input::Reconnected);
    let hs = signals(&r.log_a);
    assert_eq!(hs.len(), 2);
    assert_eq!(hs[0].1, hs[1].1);
    assert_eq!(r.b.state(), SessionState::Requested);
}
