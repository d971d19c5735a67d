//! Messages, acks and delivery tracking through the relay.

use super::*;

#[test]
fn messages_flow_both_ways_and_are_delivered() {
    let mut r = Relay::established(Side::A);
    let id = r.send(Side::A, "hello bob");
    assert_eq!(id.len(), 17);
    assert_eq!(received_texts(&r.log_b), vec!["hello bob"]);
    assert_eq!(delivered_ids(&r.log_a), vec![id.clone()]);
    assert!(delivered_ids(&r.log_b).is_empty());
    assert!(
        received_texts(&r.log_a).is_empty(),
        "our own echo is not shown as incoming"
    );
    let acks_by_a = r
        .log_a
        .iter()
        .filter(|o| matches!(o, Output::SendAck { .. }))
        .count();
    assert_eq!(acks_by_a, 0, "nobody acks their own message or an ack");
    r.send(Side::B, "hi alice");
    assert_eq!(received_texts(&r.log_a), vec!["hi alice"]);
    assert_eq!(r.a.info().pending_messages, 0);
}

#[test]
fn the_ack_echoes_the_message_with_the_inner_date() {
    let mut r = Relay::established(Side::A);
    r.connected = false;
    let id = r.send(Side::A, "x");
    let msg = match r
        .log_a
        .iter()
        .rev()
        .find(|o| matches!(o, Output::SendMessage { .. }))
    {
        Some(Output::SendMessage { msg, .. }) => msg.clone(),
        _ => panic!("no message"),
    };
    r.connected = true;
    r.now += 3_000; // the server stamps its own time
    let server = r.server_message(Side::A, &id, &msg);
    let out =
        r.b.handle(
            Input::RoomMessage {
                message: server.clone(),
            },
            r.now,
            &mut r.rng,
        )
        .expect("net");
    let (message, ack) = out
        .iter()
        .find_map(|o| match o {
            Output::SendAck { message, ack } => Some((message.clone(), ack.clone())),
            _ => None,
        })
        .expect("an ack");
    let mut expected = server;
    expected["ts"] = json!({"$date": T0});
    assert_eq!(message, expected, "every key kept, only ts replaced");
    assert!(ack.starts_with("{\"$binary\":\""));
}

#[test]
fn era_c_acks_under_otr_ack_are_understood_and_repeats_are_idempotent() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let id = r.send(Side::A, "x");
    let (message, ack) = r
        .log_b
        .iter()
        .find_map(|o| match o {
            Output::SendAck { message, ack } => Some((message.clone(), ack.clone())),
            _ => None,
        })
        .expect("b acked");
    let mut m = message;
    m["otr"] = json!({ "ack": ack });
    for _ in 0..3 {
        r.feed(Side::A, Input::RoomMessage { message: m.clone() });
        r.feed(Side::B, Input::RoomMessage { message: m.clone() });
    }
    assert_eq!(delivered_ids(&r.log_a), vec![id]);
    assert!(error_codes(&r.log_a).is_empty() && error_codes(&r.log_b).is_empty());
}

#[test]
fn send_fails_closed_unless_established() {
    let mut r = Relay::default_pair();
    let err =
        r.a.handle(
            Input::Send {
                text: "secret".into(),
            },
            r.now,
            &mut r.rng,
        )
        .expect_err("refused");
    assert_eq!(
        err,
        SessionError::NotEstablished {
            peer: "bob".into(),
            state: "not_started"
        }
    );
    r.cmd(
        Side::A,
        Input::Start {
            scheme: SchemePreference::Legacy,
        },
    )
    .expect("start");
    let before = r.log_a.len();
    assert!(r
        .cmd(
            Side::A,
            Input::Send {
                text: "secret".into()
            }
        )
        .is_err());
    assert_eq!(r.log_a.len(), before, "no output at all");
    assert!(crate::engine::EngineError::from(err)
        .to_string()
        .contains("nothing was sent"));
}

#[test]
fn an_unacknowledged_message_is_resent_identically_then_reported_failed() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let id = r.send(Side::A, "are you there");
    let first = r
        .log_a
        .iter()
        .filter_map(|o| match o {
            Output::SendMessage { id, msg } => Some((id.clone(), msg.clone())),
            _ => None,
        })
        .collect::<Vec<_>>();
    r.advance(5_000);
    let sends: Vec<_> = r
        .log_a
        .iter()
        .filter_map(|o| match o {
            Output::SendMessage { id, msg } => Some((id.clone(), msg.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[1], first[0], "same id and ciphertext");
    assert_eq!(
        received_texts(&r.log_b),
        vec!["are you there"],
        "shown once"
    );
    for _ in 0..20 {
        r.advance(5_000);
    }
    let resends = r
        .log_a
        .iter()
        .filter(|o| matches!(o, Output::SendMessage { .. }))
        .count();
    assert_eq!(resends, 1 + 3, "bounded resends");
    let failed: Vec<_> = events(&r.log_a)
        .into_iter()
        .filter_map(|e| match e {
            EventKind::Error { code, id, .. } if code == "send_failed" => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![id]);
    assert_eq!(r.a.info().pending_messages, 0);
    let reacks = r
        .log_b
        .iter()
        .filter(|o| matches!(o, Output::SendAck { .. }))
        .count();
    assert_eq!(reacks, 1 + 3, "b re-acks each resend (bounded)");
}

#[test]
fn reconnect_resends_unacked_messages_with_the_same_id_and_ciphertext() {
    let mut r = Relay::established(Side::A);
    r.connected = false;
    let id = r.send(Side::A, "during the outage");
    r.connected = true;
    assert!(received_texts(&r.log_b).is_empty());
    r.feed(Side::A, Input::Reconnected);
    assert_eq!(received_texts(&r.log_b), vec!["during the outage"]);
    assert_eq!(delivered_ids(&r.log_a), vec![id]);
}

#[test]
fn a_refused_send_is_reported_at_once() {
    let mut r = Relay::established(Side::A);
    r.connected = false;
    let id = r.send(Side::A, "x");
    r.feed(
        Side::A,
        Input::SendResult {
            id: id.clone(),
            ok: false,
            detail: "too-many-requests".into(),
        },
    );
    assert!(events(&r.log_a).into_iter().any(
        |e| matches!(e, EventKind::Error { code, id: i, message, .. }
        if code == "send_failed" && *i == id && message.contains("too-many-requests"))
    ));
    assert_eq!(r.a.info().pending_messages, 0);
}

#[test]
fn ending_reports_pending_messages_failed() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let id = r.send(Side::A, "x");
    r.cmd(Side::A, Input::End { notify_peer: true })
        .expect("end");
    assert!(events(&r.log_a).into_iter().any(
        |e| matches!(e, EventKind::Error { code, id: i, .. } if code == "send_failed" && *i == id)
    ));
}

#[test]
fn messages_too_long_for_the_server_are_refused_before_sending() {
    let mut r = Relay::established(Side::A);
    let long = "x".repeat(4_000);
    let err =
        r.a.handle(Input::Send { text: long.into() }, r.now, &mut r.rng)
            .expect_err("refused");
    assert!(matches!(err, SessionError::TooLong { max: 5_000, .. }));
    assert_eq!(r.a.info().pending_messages, 0);
}

#[test]
fn acks_in_flight_across_a_refresh_still_count() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    let id = r.send(Side::A, "old key");
    let (message, ack) = r
        .log_b
        .iter()
        .find_map(|o| match o {
            Output::SendAck { message, ack } => Some((message.clone(), ack.clone())),
            _ => None,
        })
        .expect("acked");
    r.deliver_acks = true;
    r.cmd(Side::A, Input::Refresh).expect("refresh");
    let mut m = message;
    m["otrAck"] = Value::String(ack);
    r.feed(Side::A, Input::RoomMessage { message: m });
    assert_eq!(delivered_ids(&r.log_a), vec![id]);
}

#[test]
fn debug_output_never_shows_plaintext_or_keys() {
    let mut r = Relay::established(Side::A);
    r.deliver_acks = false;
    r.send(Side::A, "the launch code is 0000");
    let dump = format!("{:?} {:?} {:?}", r.a, r.log_a, r.log_b);
    assert!(!dump.contains("launch code"));
    assert!(dump.contains("REDACTED"));
}
