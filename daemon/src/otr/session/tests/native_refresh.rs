//! The native refresh under a hostile server: a proven re-key that keeps the live session
//! usable, forged answers, refusals and confirmations that change nothing, a new session offered
//! beside the live one, and messages under the new keys that overtake their confirmation.
//! Shared scaffolding (the native pair, the forgeries) is in `forged.rs`.

use super::forged::{alarms_of, assert_usable, forgeries, native_pair};
use super::*;

#[test]
fn a_native_refresh_is_a_proven_native_rekey() {
    let mut r = native_pair();
    let before = r.a.native_peer().expect("native");
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    let handshakes: Vec<_> = signals(&r.log_a)
        .into_iter()
        .filter(|(k, p)| *k == SignalKind::Handshake && p["refresh"] == json!(true))
        .collect();
    assert_eq!(handshakes.len(), 1);
    assert!(handshakes[0].1.get("otrd").is_some() && handshakes[0].1.get("otrdAuth").is_some());
    for s in [&r.a, &r.b] {
        assert_eq!(s.state(), SessionState::Established);
        assert_eq!(s.mode(), Some(crate::engine::Mode::Native));
        assert!(
            s.previous.is_some(),
            "the old keys stay readable for what is in flight"
        );
    }
    let after = r.a.native_peer().expect("native");
    assert_eq!(before.0, after.0, "same identity");
    assert_ne!(before.1, after.1, "a fresh handshake, so a new SAS");
    assert_eq!(r.b.native_peer().map(|p| p.1), Some(after.1));
    assert_usable(&mut r);
    // Item 8: once nothing of the old epoch is pending, the old keys go after a handshake timeout.
    r.advance(11_000);
    assert!(r.a.previous.is_none() && r.b.previous.is_none());
    assert_usable(&mut r);
}

#[test]
fn while_refreshing_the_session_stays_usable_and_forged_answers_change_nothing() {
    let mut r = native_pair();
    r.connected = false; // the refresh handshake is lost: Alice waits
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    r.connected = true;
    assert_eq!(r.a.state(), SessionState::Established);
    assert!(r.a.own.is_some());
    for (kind, _, payload) in forgeries(Side::B)
        .into_iter()
        .filter(|(k, _, _)| matches!(k, SignalKind::Acknowledge | SignalKind::Deny))
    {
        r.advance(1_500);
        let out = r
            .direct(Side::A, Input::Signal { kind, payload })
            .expect("input");
        assert_eq!(alarms_of(&out, "forged_signal").len(), 1, "{out:?}");
        assert!(
            r.a.own.is_some(),
            "the refresh still waits for the genuine answer"
        );
    }
    assert_usable(&mut r);
    // No answer within the timeout: the refresh is given up, the session goes on.
    r.advance(11_000);
    assert!(r.a.own.is_none());
    assert!(error_codes(&r.log_a).contains(&"refresh_failed".to_owned()));
    assert_eq!(r.a.state(), SessionState::Established);
    assert_usable(&mut r);
}

#[test]
fn a_proven_refusal_of_our_refresh_keeps_the_current_keys() {
    let mut r = native_pair();
    r.connected = false;
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    r.connected = true;
    let offer = signals(&r.log_a).last().expect("handshake").1.clone();
    // Bob's refusal, as his daemon makes it when it cannot answer: proven, naming the offer.
    let mut deny =
        json!({"roomId": ROOM, "userId": B_UID, "otrd": {"refuses": offer["otrd"]["ek"]}});
    r.b.prove(SignalKind::Deny, &mut deny);
    // Replayed against another offer it fails; against this one it is honoured.
    let mut stale = deny.clone();
    stale["otrd"]["refuses"] = json!("AAAA");
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Deny,
                payload: stale,
            },
        )
        .expect("in");
    assert_eq!(alarms_of(&out, "forged_signal").len(), 1);
    let out = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Deny,
                payload: deny,
            },
        )
        .expect("in");
    assert!(alarms_of(&out, "forged_signal").is_empty(), "{out:?}");
    assert!(r.a.own.is_none());
    assert_eq!(r.a.state(), SessionState::Established);
    assert_usable(&mut r);
}

#[test]
fn a_forged_confirmation_of_a_refresh_keeps_the_answer_waiting() {
    let mut r = native_pair();
    // Bob answers Alice's refresh, but the confirm frame is held back and a forged one comes.
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    let mut s = native_pair();
    s.connected = false;
    s.cmd(Side::A, Input::Refresh).expect("refresh");
    let hs = signals(&s.log_a).last().expect("handshake").1.clone();
    s.connected = true;
    let out = s
        .direct(
            Side::B,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: hs,
            },
        )
        .expect("in");
    assert!(s.b.native_answer.is_some());
    let ack = signals(&out)
        .into_iter()
        .find(|(k, _)| *k == SignalKind::Acknowledge)
        .expect("ack")
        .1;
    let done = s
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: ack,
            },
        )
        .expect("in");
    let mut confirm = signals(&done)
        .into_iter()
        .find(|(k, _)| *k == SignalKind::Acknowledge)
        .expect("confirm")
        .1;
    let genuine = confirm.clone();
    confirm["otrd"]["confirm"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let out = s
        .direct(
            Side::B,
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: confirm,
            },
        )
        .expect("in");
    assert_eq!(alarms_of(&out, "key_confirmation_failed").len(), 1);
    assert!(s.b.native_answer.is_some());
    assert_eq!(s.b.state(), SessionState::Established);
    s.direct(
        Side::B,
        Input::Signal {
            kind: SignalKind::Acknowledge,
            payload: genuine,
        },
    )
    .expect("in");
    assert!(s.b.native_answer.is_none());
    assert_eq!(
        s.a.native_peer().map(|p| p.1),
        s.b.native_peer().map(|p| p.1)
    );
    assert_usable(&mut s);
    assert_usable(&mut r);
}

#[test]
fn a_new_native_session_from_the_peer_is_an_invitation_beside_the_live_one() {
    let mut r = native_pair();
    // Bob's daemon restarts: a fresh machine with the same identity policy, offering anew.
    let bob_policy = r.b.policy.clone();
    r.b = Session::new(ctx(Side::B), bob_policy);
    r.cmd(
        Side::B,
        Input::Start {
            scheme: SchemePreference::Auto,
        },
    )
    .expect("start");
    assert_eq!(
        r.a.state(),
        SessionState::Established,
        "the live session stays"
    );
    assert_eq!(count_invitations(&r.log_a), 1);
    assert!(r.a.invitation.is_some());
    r.a.set_invitation_seq(41);
    // An accept naming another invitation lands on nothing.
    let wrong = r.direct(Side::A, Input::Accept { seq: Some(40) });
    assert!(
        matches!(
            wrong,
            Err(SessionError::InvitationReplaced {
                asked: 40,
                current: Some(41),
                ..
            })
        ),
        "{wrong:?}"
    );
    assert!(r.a.native_answer.is_none());
    r.cmd(Side::A, Input::Accept { seq: Some(41) })
        .expect("accept the offer seen");
    for s in [&r.a, &r.b] {
        assert_eq!(s.state(), SessionState::Established);
        assert_eq!(s.mode(), Some(crate::engine::Mode::Native));
    }
    assert!(
        r.a.previous.is_none(),
        "the peer lost the old keys: they go"
    );
    assert_usable(&mut r);
}

#[test]
fn messages_under_refreshed_keys_that_overtake_the_confirmation_are_not_lost() {
    let mut r = native_pair();
    // Alice refreshes; Bob answers; Alice completes and sends at once, but her confirmation
    // reaches Bob only after her first message under the new keys.
    r.connected = false;
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    let hs = signals(&r.log_a).last().expect("handshake").1.clone();
    r.connected = true;
    let answered = r
        .direct(
            Side::B,
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: hs,
            },
        )
        .expect("in");
    let ack = signals(&answered)[0].1.clone();
    let done = r
        .direct(
            Side::A,
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: ack,
            },
        )
        .expect("in");
    let confirm = signals(&done)[0].1.clone();
    let sent = r
        .direct(
            Side::A,
            Input::Send {
                text: "right after".into(),
            },
        )
        .expect("send");
    let (id, msg) = sent
        .iter()
        .find_map(|o| match o {
            Output::SendMessage { id, msg } => Some((id.clone(), msg.clone())),
            _ => None,
        })
        .expect("sent");
    let early = r.server_message(Side::A, &id, &msg);
    let out = r
        .direct(Side::B, Input::RoomMessage { message: early })
        .expect("in");
    assert!(error_codes(&out).is_empty(), "held, not reported: {out:?}");
    let out = r
        .direct(
            Side::B,
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: confirm,
            },
        )
        .expect("in");
    assert_eq!(received_texts(&out), vec!["right after".to_owned()]);
    assert!(
        out.iter().any(|o| matches!(o, Output::SendAck { .. })),
        "and acknowledged"
    );
}
