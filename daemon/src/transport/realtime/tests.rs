//! Inbound checks: forged, moved, replayed and truncated frames never reach a session.

use super::envelope::{Envelope, Fragment, Item, Kind, VERSION};
use super::*;
use serde_json::json;

const ME: &str = "B";
const PEER: &str = "A";

fn rooms(id: &str) -> Option<KnownRoom> {
    match id {
        "R" => Some(KnownRoom {
            room_id: "R".into(),
            peer_uid: PEER.into(),
            peer_username: "alice".into(),
        }),
        "S" => Some(KnownRoom {
            room_id: "S".into(),
            peer_uid: "C".into(),
            peer_username: "carol".into(),
        }),
        _ => None,
    }
}

fn env(from: &str, room: &str, seq: u64, items: Vec<Item>) -> Envelope {
    Envelope {
        v: VERSION,
        from: from.into(),
        room: room.into(),
        run: "run".into(),
        seq,
        items,
        frag: None,
    }
}

fn message(id: &str) -> Item {
    Item {
        k: Kind::Message,
        p: json!({"id": id, "msg": "c"}),
    }
}

fn on_a(rt: &mut Realtime, event_room: &str, e: &Envelope) -> Result<Vec<Inbound>, Rejected> {
    let args = vec![json!("alice"), json!([]), json!({"otrd": e.to_value()})];
    rt.accept(
        "stream-notify-room",
        &format!("{event_room}/user-activity"),
        &args,
        ME,
        rooms,
        0,
    )
    .expect("ours")
}

fn on_b(rt: &mut Realtime, e: &Envelope) -> Result<Vec<Inbound>, Rejected> {
    let args = path_b::params("X", e.to_value()).split_off(1);
    rt.accept(
        "stream-notify-user",
        "B/video-conference",
        &args,
        ME,
        rooms,
        0,
    )
    .expect("ours")
}

#[test]
fn a_message_becomes_the_room_message_the_relay_would_deliver() {
    let mut rt = Realtime::default();
    let out = on_a(
        &mut rt,
        "R",
        &env(
            PEER,
            "R",
            1,
            vec![
                message("m1"),
                Item {
                    k: Kind::Ack,
                    p: json!({"id": "m0", "ack": "k"}),
                },
            ],
        ),
    )
    .expect("accepted");
    let [Inbound::Session {
        input: Input::RoomMessage { message },
        path: Path::A,
        ..
    }, Inbound::Session {
        input: Input::RoomMessage { message: ack },
        ..
    }] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(message["u"]["_id"], PEER);
    assert_eq!(message["rid"], "R");
    assert_eq!(ack["u"]["_id"], ME);
    assert_eq!(ack["otrAck"], "k");
    assert_eq!(rt.path("R"), Some(Path::A), "the peer's path is adopted");
}

#[test]
fn forged_moved_replayed_and_cross_path_frames_are_rejected() {
    let mut rt = Realtime::default();
    // Wrong sender: the envelope names someone else than the room's peer.
    assert_eq!(
        on_a(&mut rt, "R", &env("C", "R", 1, vec![message("x")])).expect_err("rejected"),
        Rejected::WrongSender
    );
    // Another room: the envelope names R but travels in S's stream, or names a room we lack.
    assert_eq!(
        on_a(&mut rt, "S", &env(PEER, "R", 2, vec![message("x")])).expect_err("rejected"),
        Rejected::WrongRoom
    );
    assert_eq!(
        on_b(&mut rt, &env(PEER, "Q", 3, vec![message("x")])).expect_err("rejected"),
        Rejected::WrongRoom
    );
    // Moved to the room the sender does share with us: the sender no longer matches.
    assert_eq!(
        on_b(&mut rt, &env(PEER, "S", 4, vec![message("x")])).expect_err("rejected"),
        Rejected::WrongSender
    );
    // Replay.
    assert!(on_a(&mut rt, "R", &env(PEER, "R", 5, vec![message("m")])).is_ok());
    assert_eq!(
        on_a(&mut rt, "R", &env(PEER, "R", 5, vec![message("m")])).expect_err("rejected"),
        Rejected::Replay
    );
    // A third user writing on B as the peer while the room talks over A.
    assert_eq!(
        on_b(&mut rt, &env(PEER, "R", 6, vec![message("y")])).expect_err("rejected"),
        Rejected::WrongPath
    );
    // Probes may still come on B (path switch), and our own frames are ignored.
    let probe = env(PEER, "R", 7, vec![super::probe::request("n")]);
    assert!(matches!(
        on_b(&mut rt, &probe).as_deref(),
        Ok([Inbound::ProbeRequest { path: Path::B, .. }])
    ));
    assert!(on_a(&mut rt, "R", &env(ME, "R", 1, vec![message("z")]))
        .expect("ignored")
        .is_empty());
    // Not ours at all.
    assert!(rt
        .accept(
            "stream-notify-room",
            "R/user-activity",
            &[json!("alice"), json!(["user-typing"])],
            ME,
            rooms,
            0
        )
        .is_none());
}

#[test]
fn a_truncated_fragment_loses_only_its_group() {
    let mut rt = Realtime::default();
    let big = vec![Item {
        k: Kind::Message,
        p: json!({"id": "big", "msg": "y".repeat(20_000)}),
    }];
    let mut n = sender::Numbering::new();
    let mut envs = sender::pack(&mut n, PEER, "R", big);
    assert!(envs.len() >= 3);
    // Cut the tail of the last piece (the JSON no longer closes). A piece cut in the middle of
    // the ciphertext still parses, and then fails the AEAD in the session instead.
    if let Some(f) = envs.last_mut().and_then(|e| e.frag.as_mut()) {
        f.d.truncate(5);
    }
    let results: Vec<_> = envs.iter().map(|e| on_a(&mut rt, "R", e)).collect();
    assert!(
        matches!(results.last(), Some(Err(Rejected::Fragment(_)))),
        "{results:?}"
    );
    // A fragment claiming absurd bounds.
    let bad = Envelope {
        frag: Some(Fragment {
            id: 9,
            i: 0,
            n: 10_000,
            d: "x".into(),
        }),
        ..env(PEER, "R", 99, vec![])
    };
    assert!(matches!(
        on_a(&mut rt, "R", &bad),
        Err(Rejected::Fragment(_))
    ));
    // The next whole frame still goes through.
    assert_eq!(
        on_a(&mut rt, "R", &env(PEER, "R", 100, vec![message("after")])).map(|v| v.len()),
        Ok(1)
    );
}
