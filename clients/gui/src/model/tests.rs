//! View-model tests: each one feeds updates the way the worker would and checks what is shown.

use super::*;
use otrd_proto::v1::{
    event, Alarm, ChatMessage, Delivered, ErrorEvent, Invitation, Mode, Presence, StateChange,
    Trust,
};

fn ev(kind: event::Kind) -> Update {
    Update::Event(Event {
        seq: 1,
        ts_ms: 0,
        replay: false,
        kind: Some(kind),
    })
}

fn room(peer: &str, state: SessionState) -> Room {
    Room {
        room_id: format!("r-{peer}"),
        peer: peer.into(),
        peer_user_id: format!("u-{peer}"),
        presence: Presence::Online.into(),
        state: state.into(),
        mode: Mode::Unspecified.into(),
        seq: 0,
    }
}

fn connected(rooms: Vec<Room>) -> Update {
    Update::Connected(Box::new(Snapshot {
        rooms,
        ..Snapshot::default()
    }))
}

fn state(peer: &str, s: SessionState, trust: Trust) -> Update {
    ev(event::Kind::State(StateChange {
        peer: peer.into(),
        room_id: format!("r-{peer}"),
        state: s.into(),
        mode: Mode::Native.into(),
        trust: trust.into(),
        ..StateChange::default()
    }))
}

fn msg(peer: &str, id: &str, dir: Direction, text: &str) -> Update {
    ev(event::Kind::Message(ChatMessage {
        peer: peer.into(),
        room_id: format!("r-{peer}"),
        direction: dir.into(),
        text: text.into(),
        id: id.into(),
        ts_ms: 1,
    }))
}

#[test]
fn starts_connecting_and_connects_with_the_snapshot() {
    let mut m = ViewModel::new();
    assert_eq!(m.link(), Link::Connecting);
    m.apply(connected(vec![
        room("bob", SessionState::NotStarted),
        room("amy", SessionState::Established),
    ]));
    assert_eq!(m.link(), Link::Connected);
    let names: Vec<_> = m.peers().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["amy", "bob"]);
    assert_eq!(m.selected().map(|p| p.name.as_str()), Some("amy"));
    assert_eq!(m.peer("bob").map(|p| p.presence), Some(Presence::Online));
}

#[test]
fn privacy_has_four_distinct_looks() {
    use Privacy::*;
    assert_eq!(
        Privacy::of(SessionState::NotStarted, Trust::Unknown),
        Plaintext
    );
    assert_eq!(
        Privacy::of(SessionState::Establishing, Trust::Verified),
        Plaintext
    );
    assert_eq!(
        Privacy::of(SessionState::Established, Trust::Unverified),
        PrivateUnverified
    );
    assert_eq!(
        Privacy::of(SessionState::Established, Trust::Changed),
        PrivateUnverified
    );
    assert_eq!(
        Privacy::of(SessionState::Established, Trust::Verified),
        PrivateVerified
    );
    assert_eq!(Privacy::of(SessionState::Ended, Trust::Verified), Ended);
    let labels: std::collections::HashSet<_> =
        [Plaintext, PrivateUnverified, PrivateVerified, Ended]
            .map(Privacy::label)
            .into();
    assert_eq!(labels.len(), 4);
}

#[test]
fn invitation_prompts_until_answered_or_state_moves_on() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::NotStarted)]));
    m.apply(ev(event::Kind::Invitation(Invitation {
        peer: "bob".into(),
        room_id: "r-bob".into(),
        mode: Mode::Native.into(),
        expires_ms: 10,
    })));
    assert_eq!(
        m.invitations().map(|i| i.peer.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    assert_eq!(
        m.peer("bob").map(|p| p.state),
        Some(SessionState::Requested)
    );
    m.apply(state("bob", SessionState::Established, Trust::Unverified));
    assert!(m.invitations().next().is_none());

    m.apply(ev(event::Kind::Invitation(Invitation {
        peer: "eve".into(),
        ..Invitation::default()
    })));
    m.answered("eve");
    assert!(m.invitations().next().is_none());
    assert!(m.peer("eve").is_some(), "an unknown inviter becomes a peer");
}

#[test]
fn chat_lines_get_delivered_and_failed_marks() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Established)]));
    m.apply(msg("bob", "m1", Direction::Out, "hi"));
    m.apply(msg("bob", "m2", Direction::Out, "there"));
    m.apply(msg("bob", "m3", Direction::In, "hello"));
    m.apply(msg("bob", "m3", Direction::In, "hello"));
    let delivery = |m: &ViewModel| {
        m.chat("bob")
            .iter()
            .map(|l| l.delivery.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        delivery(&m),
        [Delivery::Pending, Delivery::Pending, Delivery::Incoming]
    );
    m.apply(ev(event::Kind::Delivered(Delivered {
        peer: "bob".into(),
        room_id: "r-bob".into(),
        id: "m1".into(),
    })));
    m.apply(ev(event::Kind::Error(ErrorEvent {
        peer: "bob".into(),
        code: "send_failed".into(),
        message: "no ack".into(),
        id: "m2".into(),
        ..ErrorEvent::default()
    })));
    assert_eq!(
        delivery(&m),
        [
            Delivery::Delivered,
            Delivery::Failed("no ack".into()),
            Delivery::Incoming
        ]
    );
    assert_eq!(m.chat("bob")[2].text.as_str(), "hello");
    assert!(m
        .notices()
        .any(|n| n.error && n.text.contains("send_failed")));
}

#[test]
fn unread_counts_only_other_conversations_and_select_clears_it() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![
        room("amy", SessionState::Established),
        room("bob", SessionState::Established),
    ]));
    m.select("amy");
    m.apply(msg("bob", "b1", Direction::In, "psst"));
    m.apply(msg("amy", "a1", Direction::In, "hi"));
    assert_eq!(m.peer("bob").map(|p| p.unread), Some(1));
    assert_eq!(m.peer("amy").map(|p| p.unread), Some(0));
    m.select("bob");
    assert_eq!(m.peer("bob").map(|p| p.unread), Some(0));
    m.select("nobody");
    assert_eq!(m.selected().map(|p| p.name.as_str()), Some("bob"));
}

#[test]
fn ending_wipes_the_conversation_and_changes_the_look() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::NotStarted)]));
    m.apply(state("bob", SessionState::Established, Trust::Verified));
    assert_eq!(
        m.peer("bob").map(PeerView::privacy),
        Some(Privacy::PrivateVerified)
    );
    m.apply(msg("bob", "m1", Direction::In, "secret"));
    m.apply(state("bob", SessionState::Ended, Trust::Unspecified));
    assert!(m.chat("bob").is_empty());
    let bob = m.peer("bob").cloned();
    assert_eq!(bob.as_ref().map(PeerView::privacy), Some(Privacy::Ended));
    assert_eq!(
        bob.map(|b| (b.can_start(), b.can_send(), b.can_end())),
        Some((true, false, false))
    );
}

#[test]
fn disconnect_then_reconnect_replaces_everything() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Established)]));
    m.apply(msg("bob", "m1", Direction::In, "old"));
    m.apply(Update::Disconnected {
        reason: "connection refused".into(),
    });
    assert_eq!(
        m.link(),
        Link::Disconnected {
            reason: "connection refused".into()
        }
    );
    // Still showing the last picture while the worker retries.
    assert_eq!(m.chat("bob").len(), 1);
    m.apply(Update::Connecting);
    assert!(matches!(m.link(), Link::Connecting));
    m.apply(connected(vec![room("bob", SessionState::NotStarted)]));
    assert!(m.chat("bob").is_empty());
    assert_eq!(
        m.peer("bob").map(|p| p.state),
        Some(SessionState::NotStarted)
    );
    assert_eq!(m.selected().map(|p| p.name.as_str()), Some("bob"));
}

#[test]
fn verification_dialog_opens_updates_trust_and_closes() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Established)]));
    m.apply(Update::Fingerprint(GetFingerprintResponse {
        own_fingerprint: "AAAA".into(),
        peer: "bob".into(),
        peer_fingerprint: "BBBB".into(),
        trust: Trust::Unverified.into(),
        sas: "apple banana".into(),
        previous_fingerprint: String::new(),
    }));
    let v = m.verification().cloned();
    assert_eq!(
        v.as_ref().map(|v| (
            v.own_fingerprint.as_str(),
            v.peer_fingerprint.as_str(),
            v.sas.as_str()
        )),
        Some(("AAAA", "BBBB", "apple banana"))
    );
    assert_eq!(
        m.peer("bob").map(PeerView::privacy),
        Some(Privacy::PrivateUnverified)
    );
    m.apply(Update::Fingerprint(GetFingerprintResponse {
        peer: "bob".into(),
        trust: Trust::Verified.into(),
        ..GetFingerprintResponse::default()
    }));
    assert_eq!(
        m.peer("bob").map(PeerView::privacy),
        Some(Privacy::PrivateVerified)
    );
    m.close_verification();
    assert!(m.verification().is_none());
}

#[test]
fn alarms_and_failures_become_notices() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Established)]));
    m.apply(ev(event::Kind::Alarm(Alarm {
        peer: "bob".into(),
        room_id: "r-bob".into(),
        code: "fingerprint_changed".into(),
        message: "new identity".into(),
    })));
    assert!(m
        .peer("bob")
        .and_then(|p| p.alarm.clone())
        .is_some_and(|a| a.contains("fingerprint_changed")));
    for i in 0..10 {
        m.apply(Update::Failed {
            action: format!("do {i}"),
            message: "nope".into(),
        });
    }
    let notices: Vec<_> = m.notices().map(|n| n.text.clone()).collect();
    assert_eq!(notices.len(), MAX_NOTICES);
    assert_eq!(
        notices.last().map(String::as_str),
        Some("Could not do 9: nope")
    );
    m.clear_notices();
    assert!(m.notices().next().is_none());
}

#[test]
fn a_requested_room_in_the_snapshot_prompts() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Requested)]));
    assert_eq!(
        m.invitations().map(|i| i.peer.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );
    m.apply(Update::Rooms(vec![room("bob", SessionState::NotStarted)]));
    assert!(m.invitations().next().is_none());
}

#[test]
fn fingerprint_failure_opens_the_dialog_with_the_reason() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::Established)]));
    m.apply(Update::FingerprintUnavailable {
        peer: "bob".into(),
        reason: "no native scheme".into(),
    });
    let v = m.verification().cloned();
    assert_eq!(
        v.and_then(|v| v.unavailable),
        Some("no native scheme".to_owned())
    );
}

fn at(seq: u64, update: Update) -> Update {
    match update {
        Update::Event(mut e) => {
            e.seq = seq;
            Update::Event(e)
        }
        other => other,
    }
}

fn session(peer: &str, s: SessionState, seq: u64) -> Update {
    Update::Session(Session {
        room_id: format!("r-{peer}"),
        peer: peer.into(),
        state: s.into(),
        mode: Mode::Native.into(),
        trust: Trust::Unverified.into(),
        seq,
        ..Session::default()
    })
}

#[test]
fn an_older_snapshot_after_a_newer_state_event_keeps_the_newer_state() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::NotStarted)]));
    // StartSession's answer was taken at seq 4 (establishing); the events for the peer's answer
    // (established, seq 5) reached the window first.
    m.apply(at(
        5,
        state("bob", SessionState::Established, Trust::Unverified),
    ));
    m.apply(session("bob", SessionState::Establishing, 4));
    assert_eq!(
        m.peer("bob").map(|p| p.state),
        Some(SessionState::Established)
    );
    // A ListRooms answer from before the event is stale too.
    let mut old_room = room("bob", SessionState::Establishing);
    old_room.seq = 3;
    old_room.presence = Presence::Away.into();
    m.apply(Update::Rooms(vec![old_room]));
    let bob = m.peer("bob").expect("bob");
    assert_eq!(bob.state, SessionState::Established);
    assert_eq!(
        bob.presence,
        Presence::Away,
        "presence is not an event: taken as is"
    );

    // A snapshot as new as the event (or newer) is applied.
    m.apply(session("bob", SessionState::Ended, 6));
    assert_eq!(m.peer("bob").map(|p| p.state), Some(SessionState::Ended));
    // And a later event wins over it in turn; an older one does not matter to snapshots.
    m.apply(at(
        7,
        state("bob", SessionState::Establishing, Trust::Unverified),
    ));
    m.apply(session("bob", SessionState::Ended, 6));
    assert_eq!(
        m.peer("bob").map(|p| p.state),
        Some(SessionState::Establishing)
    );
}

#[test]
fn a_snapshot_without_seq_is_applied_as_before() {
    let mut m = ViewModel::new();
    m.apply(connected(vec![room("bob", SessionState::NotStarted)]));
    m.apply(at(
        5,
        state("bob", SessionState::Established, Trust::Unverified),
    ));
    m.apply(session("bob", SessionState::Ended, 0));
    assert_eq!(m.peer("bob").map(|p| p.state), Some(SessionState::Ended));
}
