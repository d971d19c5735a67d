//! The PROTOCOL.md §9.1 protections that keep stock peers working.

use super::*;

fn sealed(r: &mut Relay, side: Side, inner: &crate::otr::legacy::InnerMessage) -> String {
    let plain = inner.to_plaintext().expect("ser");
    let cipher = r.session(side).cipher.as_mut().expect("established");
    cipher
        .seal(&plain, &mut StdRng::seed_from_u64(99))
        .expect("seal")
}

fn inner_from_b(id: &str, user: &str, ack: &str, ts: i64) -> crate::otr::legacy::InnerMessage {
    crate::otr::legacy::InnerMessage {
        id: id.into(),
        text: "forged?".into(),
        user_id: user.into(),
        ack: ack.into(),
        ts_ms: ts,
    }
}

/// Feeds `message` to A and returns the error codes it produced.
fn to_a(r: &mut Relay, message: Value) -> Vec<String> {
    let before = r.log_a.len();
    r.feed(Side::A, Input::RoomMessage { message });
    error_codes(&r.log_a[before..])
}

#[test]
fn forged_signalling_is_reported_and_changes_nothing() {
    let mut r = Relay::established(Side::A);
    let jwk = crate::otr::legacy::EphemeralKeyPair::generate(&mut r.rng)
        .expect("key pair")
        .public_jwk()
        .to_owned();
    for payload in [
        json!({"roomId": "otherRoom", "userId": B_UID, "publicKey": jwk}),
        json!({"roomId": ROOM, "userId": "mallory000000000", "publicKey": jwk}),
    ] {
        for kind in [
            SignalKind::Handshake,
            SignalKind::Acknowledge,
            SignalKind::End,
            SignalKind::Deny,
        ] {
            let out =
                r.a.handle(
                    Input::Signal {
                        kind,
                        payload: payload.clone(),
                    },
                    r.now,
                    &mut r.rng,
                )
                .expect("net");
            assert_eq!(
                error_codes(&out),
                vec!["forged_event"],
                "{kind:?} {payload}"
            );
            assert_eq!(out.len(), 1);
        }
    }
    assert_eq!(r.a.state(), SessionState::Established);
    let own =
        r.a.handle(
            Input::Signal {
                kind: SignalKind::End,
                payload: json!({"roomId": ROOM, "userId": A_UID}),
            },
            r.now,
            &mut r.rng,
        )
        .expect("net");
    assert!(own.is_empty(), "our own events are dropped silently");
    let bad =
        r.a.handle(
            Input::Signal {
                kind: SignalKind::End,
                payload: json!({"roomId": ROOM}),
            },
            r.now,
            &mut r.rng,
        )
        .expect("net");
    assert_eq!(error_codes(&bad), vec!["malformed_event"]);
    r.send(Side::A, "still fine");
    assert_eq!(received_texts(&r.log_b), vec!["still fine"]);
}

#[test]
fn unsolicited_acknowledge_never_rekeys() {
    let mut r = Relay::established(Side::A);
    let jwk = crate::otr::legacy::EphemeralKeyPair::generate(&mut r.rng)
        .expect("key pair")
        .public_jwk()
        .to_owned();
    let ack = json!({"roomId": ROOM, "userId": B_UID, "publicKey": jwk});
    for side_state in [Side::A, Side::B] {
        let mut payload = ack.clone();
        payload["userId"] = Value::String(side_state.other().uid().into());
        let out = r
            .direct(
                side_state,
                Input::Signal {
                    kind: SignalKind::Acknowledge,
                    payload,
                },
            )
            .expect("net");
        assert_eq!(error_codes(&out), vec!["unsolicited_acknowledge"]);
    }
    r.send(Side::A, "same key");
    assert_eq!(received_texts(&r.log_b), vec!["same key"]);
    let (mut fresh, mut rng) = (
        Session::new(ctx(Side::A), SessionPolicy::default()),
        StdRng::seed_from_u64(5),
    );
    let out = fresh
        .handle(
            Input::Signal {
                kind: SignalKind::Acknowledge,
                payload: ack,
            },
            T0,
            &mut rng,
        )
        .expect("net");
    assert_eq!(error_codes(&out), vec!["unsolicited_acknowledge"]);
    assert_eq!(
        fresh.state(),
        SessionState::NotStarted,
        "not driven to error as stock clients are"
    );
}

#[test]
fn invalid_public_keys_are_rejected() {
    let (mut b, mut rng) = (
        Session::new(ctx(Side::B), SessionPolicy::default()),
        StdRng::seed_from_u64(5),
    );
    let bad = json!({"roomId": ROOM, "userId": A_UID, "publicKey": "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}"});
    let out = b
        .handle(
            Input::Signal {
                kind: SignalKind::Handshake,
                payload: bad,
            },
            T0,
            &mut rng,
        )
        .expect("net");
    assert_eq!(error_codes(&out), vec!["bad_handshake"]);
    assert_eq!(b.state(), SessionState::NotStarted);
}

#[test]
fn inner_and_outer_ids_and_senders_must_match() {
    let mut r = Relay::established(Side::A);
    let now = r.now;
    let case = |id: &str, user: &str, ack: &str, ts: i64, code: &'static str| {
        (inner_from_b(id, user, ack, ts), code)
    };
    let cases = [
        case(
            "ZZZZZZZZZZZZZZZZZ",
            B_UID,
            "tok1aaaaaaaaaaaaaaaaa",
            now,
            "id_mismatch",
        ),
        case(
            "M1aaaaaaaaaaaaaaa",
            "mallory000000000",
            "tok2aaaaaaaaaaaaaaaaa",
            now,
            "sender_mismatch",
        ),
        case(
            "M2aaaaaaaaaaaaaaa",
            A_UID,
            "tok3aaaaaaaaaaaaaaaaa",
            now,
            "reflected_message",
        ),
        case(
            "M3aaaaaaaaaaaaaaa",
            B_UID,
            "tok4aaaaaaaaaaaaaaaaa",
            now - 6 * 60_000,
            "clock_skew",
        ),
        case(
            "M4aaaaaaaaaaaaaaa",
            B_UID,
            "tok5aaaaaaaaaaaaaaaaa",
            now + 6 * 60_000,
            "clock_skew",
        ),
        case(
            "M6aaaaaaaaaaaaaaa",
            B_UID,
            "tok7aaaaaaaaaaaaaaaaa",
            i64::MIN,
            "clock_skew",
        ),
    ];
    for (i, (inner, code)) in cases.into_iter().enumerate() {
        let outer_id = if code == "id_mismatch" {
            format!("OUTER{i}aaaaaaaaaaa")
        } else {
            inner.id.clone()
        };
        let msg = sealed(&mut r, Side::B, &inner);
        let m = r.server_message(Side::B, &outer_id, &msg);
        assert_eq!(to_a(&mut r, m), vec![code]);
    }
    assert!(received_texts(&r.log_a).is_empty());
    assert!(
        !r.log_a.iter().any(|o| matches!(o, Output::SendAck { .. })),
        "rejected messages are not acked"
    );
    // An outer sender who is neither of us.
    let inner = inner_from_b("M5aaaaaaaaaaaaaaa", B_UID, "tok6aaaaaaaaaaaaaaaaa", now);
    let msg = sealed(&mut r, Side::B, &inner);
    let mut m = r.server_message(Side::B, &inner.id, &msg);
    m["u"]["_id"] = json!("mallory000000000");
    assert_eq!(to_a(&mut r, m), vec!["forged_event"]);
    let mut other_room = r.server_message(Side::B, &inner.id, &msg);
    other_room["rid"] = json!("elsewhere");
    assert_eq!(to_a(&mut r, other_room), vec!["forged_event"]);
    assert_eq!(r.a.state(), SessionState::Established);
}

#[test]
fn our_own_ciphertext_presented_as_the_peers_is_rejected() {
    let mut r = Relay::established(Side::A);
    let id = r.send(Side::A, "mine");
    let msg = r
        .log_a
        .iter()
        .find_map(|o| match o {
            Output::SendMessage { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .expect("sent");
    let reflected = r.server_message(Side::B, &id, &msg);
    assert_eq!(to_a(&mut r, reflected), vec!["reflected_message"]);
    let renamed = r.server_message(Side::B, "NEWIDaaaaaaaaaaaa", &msg);
    assert_eq!(to_a(&mut r, renamed), vec!["reflected_message"]);
    // Our ack presented as a message from the peer.
    r.send(Side::B, "theirs");
    let ack = r
        .log_a
        .iter()
        .find_map(|o| match o {
            Output::SendAck { ack, .. } => Some(ack.clone()),
            _ => None,
        })
        .expect("a acked");
    let m = r.server_message(Side::B, "ACKASMSGaaaaaaaaa", &ack);
    assert_eq!(to_a(&mut r, m), vec!["reflected_message"]);
    assert_eq!(r.a.state(), SessionState::Established);
}

#[test]
fn replayed_ids_and_ack_tokens_are_rejected() {
    let mut r = Relay::established(Side::A);
    let id = r.send(Side::B, "once");
    let msg = r
        .log_b
        .iter()
        .find_map(|o| match o {
            Output::SendMessage { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .expect("sent");
    // Same id, same ciphertext: a resend, shown once (re-acked, bounded).
    let again = r.server_message(Side::B, &id, &msg);
    assert!(to_a(&mut r, again).is_empty());
    assert_eq!(received_texts(&r.log_a), vec!["once"]);
    // Same id, other ciphertext.
    let inner = inner_from_b(&id, B_UID, "freshtokenaaaaaaaaaa", r.now);
    let other = sealed(&mut r, Side::B, &inner);
    let m = r.server_message(Side::B, &id, &other);
    assert_eq!(to_a(&mut r, m), vec!["replayed_message"]);
    // New id, but the ack token of the first message again.
    let plain = crate::otr::legacy::decrypt(
        match r.a.cipher.as_ref() {
            Some(super::super::scheme::Cipher::Legacy(k)) => k,
            _ => panic!("established with a legacy cipher"),
        },
        &msg,
    )
    .expect("dec");
    let first = crate::otr::legacy::InnerMessage::parse(&plain).expect("parse");
    let inner = inner_from_b("NEWaaaaaaaaaaaaaa", B_UID, &first.ack, r.now);
    let replay = sealed(&mut r, Side::B, &inner);
    let m = r.server_message(Side::B, "NEWaaaaaaaaaaaaaa", &replay);
    assert_eq!(to_a(&mut r, m), vec!["replayed_message"]);
    assert_eq!(received_texts(&r.log_a), vec!["once"]);
}

#[test]
fn a_wrong_ack_does_not_mark_delivery() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let id = r.send(Side::A, "x");
    let msg = r
        .log_a
        .iter()
        .find_map(|o| match o {
            Output::SendMessage { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .expect("sent");
    let payload = crate::otr::legacy::AckPayload {
        text: "notthetokenaaaaaaaaaa".into(),
        ack: "zzzzzzzzzzzzzzzzzzzz".into(),
    };
    let bad_ack =
        r.b.cipher
            .as_mut()
            .expect("est")
            .seal(
                &payload.to_plaintext().expect("ser"),
                &mut StdRng::seed_from_u64(1),
            )
            .expect("seal");
    let mut m = r.server_message(Side::A, &id, &msg);
    m["otrAck"] = Value::String(bad_ack);
    assert_eq!(to_a(&mut r, m.clone()), vec!["bad_ack"]);
    m["otrAck"] = json!("{\"$binary\":\"AAAA\"}");
    assert_eq!(to_a(&mut r, m), vec!["bad_ack"]);
    assert!(delivered_ids(&r.log_a).is_empty());
    assert_eq!(r.a.info().pending_messages, 1);
    assert_eq!(r.a.state(), SessionState::Established);
}

#[test]
fn undecryptable_message_puts_the_session_in_error() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let pending = r.send(Side::A, "x");
    let (mut other, mut rng) = (
        Session::new(ctx(Side::B), SessionPolicy::default()),
        StdRng::seed_from_u64(8),
    );
    let _ = other.handle(
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
        T0,
        &mut rng,
    );
    let key =
        crate::otr::legacy::SharedKey::from_locked(crate::secure::LockedKey::new(&mut [7u8; 16]));
    let inner = inner_from_b("BADKEYaaaaaaaaaaa", B_UID, "tokbadaaaaaaaaaaaaaa", r.now);
    let msg =
        crate::otr::legacy::encrypt(&key, inner.to_plaintext().expect("ser").expose(), &mut rng)
            .expect("enc");
    let m = r.server_message(Side::B, &inner.id, &msg);
    let codes = to_a(&mut r, m);
    assert_eq!(codes[0], "decrypt_failed");
    assert!(
        codes.contains(&"send_failed".to_owned()),
        "pending {pending} reported"
    );
    assert_eq!(r.a.state(), SessionState::Error);
    assert!(r.a.cipher.is_none());
    // Not established: an incoming message is reported unreadable, nothing else changes.
    let m = r.server_message(Side::B, "LATEaaaaaaaaaaaaa", &msg);
    assert_eq!(to_a(&mut r, m), vec!["not_established"]);
    // Ending from error tells the peer.
    r.cmd(Side::A, Input::End { notify_peer: true })
        .expect("end");
    assert_eq!(r.b.state(), SessionState::Ended);
}
