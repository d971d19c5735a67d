//! Inbound checks: forged, moved, replayed and truncated frames never reach a session.

use super::envelope::{Envelope, Fragment, Item, Kind, VERSION};
use super::*;
use serde_json::{json, Value};

const ME: &str = "B";
const PEER: &str = "A";
/// A run id as `sender::Numbering` makes it.
const RUN: &str = "00000000000a11ce";

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
        run: RUN.into(),
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
    on_b_at(rt, &e.to_value(), 0)
}

/// A raw `otrd` member on path B at `now_ms`.
fn on_b_at(rt: &mut Realtime, raw: &Value, now_ms: i64) -> Result<Vec<Inbound>, Rejected> {
    let args = path_b::params("X", raw.clone()).split_off(1);
    rt.accept(
        "stream-notify-user",
        "B/video-conference",
        &args,
        ME,
        rooms,
        now_ms,
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

#[test]
fn out_of_bounds_envelopes_are_rejected_before_anything_is_stored() {
    let mut rt = Realtime::default();
    let ok = env(PEER, "R", 1, vec![message("m")]).to_value();
    let mut cases: Vec<(Value, envelope::EnvelopeError)> = Vec::new();
    let mut oversized = ok.clone();
    oversized["items"][0]["p"]["msg"] = json!("x".repeat(envelope::MAX_ENVELOPE_BYTES));
    cases.push((oversized, envelope::EnvelopeError::TooLarge));
    let mut many = ok.clone();
    many["items"] = json!(vec![message("m"); envelope::MAX_ITEMS + 1]);
    cases.push((many, envelope::EnvelopeError::TooManyItems));
    for run in ["forged", "00000000000A11CE", "00000000000a11ce0"] {
        let mut bad = ok.clone();
        bad["run"] = json!(run);
        cases.push((bad, envelope::EnvelopeError::BadRun));
    }
    for (field, name) in [("from", "from"), ("room", "room")] {
        let mut long = ok.clone();
        long[field] = json!("A".repeat(envelope::MAX_ID_BYTES + 1));
        cases.push((long, envelope::EnvelopeError::IdTooLong(name)));
    }
    let n = cases.len() as u64;
    for (raw, why) in cases {
        assert_eq!(
            on_b_at(&mut rt, &raw, 0).expect_err("rejected"),
            Rejected::Envelope(why)
        );
    }
    assert_eq!(rt.counts().rejected, n);
    // Nothing was kept: no path chosen, the sequence number not spent, nothing buffered.
    assert_eq!(rt.path("R"), None);
    assert_eq!(rt.reassembly.buffered("R"), 0);
    assert_eq!(on_b_at(&mut rt, &ok, 0).map(|v| v.len()), Ok(1));
    assert_eq!(rt.path("R"), Some(Path::B));
}

#[test]
fn a_reassembled_group_is_held_to_the_item_bound() {
    let mut rt = Realtime::default();
    let items = vec![message("m"); envelope::MAX_ITEMS + 1];
    let json = serde_json::to_string(&items).expect("json");
    let mut pieces = fragment::split(&json);
    if pieces.len() < 2 {
        // Too small to fragment on its own: split it by hand, as a forger may.
        let (a, b) = json.split_at(json.len() / 2);
        pieces = vec![a.to_owned(), b.to_owned()];
    }
    let total = pieces.len() as u32;
    let results: Vec<_> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let e = Envelope {
                frag: Some(Fragment {
                    id: 1,
                    i: i as u32,
                    n: total,
                    d,
                }),
                ..env(PEER, "R", i as u64 + 1, vec![])
            };
            on_a(&mut rt, "R", &e)
        })
        .collect();
    assert!(
        matches!(
            results.last(),
            Some(Err(Rejected::Envelope(
                envelope::EnvelopeError::TooManyItems
            )))
        ),
        "{results:?}"
    );
}

#[test]
fn a_flood_in_the_peers_name_on_b_is_cut_before_the_session() {
    let mut rt = Realtime::default();
    // The room talks over B (A refused), so forged items there pass every claim check.
    let batch = |seq: u64| env(PEER, "R", seq, vec![message("f"); envelope::MAX_ITEMS]).to_value();
    let mut delivered = 0;
    let mut seq = 0;
    // 1,000 items a second for 10 s, in full envelopes.
    for ms in (0..10_000).step_by(64) {
        seq += 1;
        delivered += on_b_at(&mut rt, &batch(seq), ms).expect("accepted").len();
    }
    let most = (budget::SESSION_INPUTS.burst + 10.0 * budget::SESSION_INPUTS.per_sec) as usize;
    assert!(delivered <= most, "{delivered} items reached the session");
    assert_eq!(
        rt.counts().over_budget as usize,
        seq as usize * envelope::MAX_ITEMS - delivered
    );
}

#[test]
fn a_flood_on_b_for_a_room_on_a_spends_nothing_of_the_peers_budget() {
    let mut rt = Realtime::default();
    rt.set_path("R", Path::A);
    for seq in 1..=200 {
        let forged = env(PEER, "R", seq, vec![message("f"); envelope::MAX_ITEMS]);
        assert_eq!(
            on_b(&mut rt, &forged).expect_err("rejected"),
            Rejected::WrongPath
        );
    }
    // The real peer's 300 messages and 300 acks, at once, all reach the session.
    let mut delivered = 0;
    for (i, chunk) in (0..600).collect::<Vec<_>>().chunks(60).enumerate() {
        let items = chunk.iter().map(|n| message(&format!("m{n}"))).collect();
        let e = Envelope {
            run: "00000000000b0b00".into(),
            ..env(PEER, "R", i as u64 + 1, items)
        };
        delivered += on_a(&mut rt, "R", &e).expect("accepted").len();
    }
    assert_eq!(delivered, 600);
    assert_eq!(rt.counts().over_budget, 0);
}
