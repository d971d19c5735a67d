use super::*;
use serde_json::json;

const GRACE: Duration = Duration::from_secs(5);

fn message(i: usize, len: usize) -> Item {
    Item {
        k: Kind::Message,
        p: json!({"id": format!("m{i}"), "msg": "x".repeat(len)}),
    }
}

fn ack(i: usize) -> Item {
    Item {
        k: Kind::Ack,
        p: json!({"id": format!("p{i}"), "ack": "a".repeat(120)}),
    }
}

fn item(k: Kind) -> Item {
    Item { k, p: json!({}) }
}

fn q(item: Item, at: Instant) -> Queued {
    Queued::new(item, "frame", at)
}

fn ids(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| i.p.get("id").and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

#[test]
fn messages_and_acks_share_a_frame_in_the_order_written() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    assert_eq!(room.peek(), None);
    room.push(q(message(0, 300), t0), t0, GRACE);
    room.push(q(ack(0), t0), t0, GRACE);
    room.push(q(message(1, 300), t0), t0, GRACE);
    assert_eq!(
        room.peek(),
        Some(Peek {
            class: Class::Bulk,
            full: false
        })
    );
    let p = room.take("A").expect("a frame");
    assert_eq!(ids(&p.envelope.items), ["m0", "p0", "m1"]);
    assert_eq!(p.messages, ["m0", "m1"]);
    assert_eq!(p.others, ["frame"]);
    assert!(room.in_flight() && room.peek().is_none());
    assert_eq!(room.waiting().messages, 2, "on their way, not yet accepted");
    room.landed(&p, true, t0, GRACE);
    assert!(room.is_idle());
}

#[test]
fn a_frame_is_full_at_the_payload_or_the_item_bound_and_urgent_items_raise_its_class() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    for i in 0..12 {
        room.push(q(message(i, 600), t0), t0, GRACE);
    }
    assert_eq!(room.peek().map(|p| p.full), Some(true), "12 × 650 B");
    let mut acks = RoomQueue::new("R");
    for _ in 0..MAX_ITEMS + 1 {
        acks.push(q(item(Kind::Ack), t0), t0, GRACE);
    }
    assert_eq!(acks.peek().map(|p| p.full), Some(true), "64 items");
    let p = acks.take("A").expect("frame");
    assert_eq!(p.envelope.items.len(), MAX_ITEMS);
    let mut signal = RoomQueue::new("R");
    signal.push(q(message(0, 10), t0), t0, GRACE);
    signal.push(q(item(Kind::Offer), t0), t0, GRACE);
    assert_eq!(signal.peek().map(|p| p.class), Some(Class::Urgent));
}

#[test]
fn resends_of_a_message_that_waits_or_just_left_are_dropped() {
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(1);
    let mut room = RoomQueue::new("R");
    assert_eq!(room.push(q(message(0, 10), t0), t0, GRACE), Pushed::Queued);
    assert_eq!(
        room.push(q(message(0, 10), later), later, GRACE),
        Pushed::Coalesced,
        "still queued"
    );
    let p = room.take("A").expect("frame");
    assert_eq!(
        room.push(q(message(0, 10), later), later, GRACE),
        Pushed::Coalesced,
        "on its way"
    );
    room.landed(&p, true, later, GRACE);
    assert_eq!(
        room.push(q(message(0, 10), later), later, GRACE),
        Pushed::Coalesced,
        "just left"
    );
    let after = later + GRACE;
    assert_eq!(
        room.push(q(message(0, 10), after), after, GRACE),
        Pushed::Queued,
        "a real resend"
    );
    let p = room.take("A").expect("frame");
    room.landed(&p, true, after, GRACE);
    // On a new connection, what left on the old one may be lost: its resend goes.
    room.forget_sent();
    assert_eq!(
        room.push(q(message(0, 10), after), after, GRACE),
        Pushed::Queued
    );
}

#[test]
fn an_end_drops_waiting_messages_and_leaves_in_one_frame_with_the_acks_that_fit() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    for i in 0..200 {
        room.push(q(message(i, 300), t0), t0, GRACE);
        room.push(q(ack(i), t0), t0, GRACE);
    }
    let pushed = room.push(q(item(Kind::End), t0), t0, GRACE);
    let Pushed::Ended { dropped } = pushed else {
        panic!("{pushed:?}");
    };
    assert_eq!(dropped.len(), 200);
    assert_eq!(dropped[0], "m0");
    assert_eq!(room.peek().map(|p| p.class), Some(Class::Control));
    let p = room.take("A").expect("frame");
    assert_eq!(p.envelope.items.last().map(|i| i.k), Some(Kind::End));
    assert!(p.envelope.items.len() <= MAX_ITEMS);
    assert!(p.envelope.items[..p.envelope.items.len() - 1]
        .iter()
        .all(|i| i.k == Kind::Ack));
    room.landed(&p, true, t0, GRACE);
    assert!(room.is_idle(), "nothing after the end");
}

#[test]
fn an_end_also_drops_a_fragmented_message_once() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 30_000), t0), t0, GRACE);
    let first = room.take("A").expect("first piece");
    assert_eq!(first.group.map(|(_, last)| last), Some(false));
    room.landed(&first, true, t0, GRACE);
    let Pushed::Ended { dropped } = room.push(q(item(Kind::End), t0), t0, GRACE) else {
        panic!("not an end");
    };
    assert_eq!(dropped, ["m0"]);
}

#[test]
fn a_large_message_goes_as_consecutive_full_fragments_and_only_the_last_decides() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 20_000), t0), t0, GRACE);
    room.push(q(message(1, 10), t0), t0, GRACE);
    let mut pieces = Vec::new();
    while let Some(p) = room.peek() {
        let packed = room.take("A").expect("piece");
        assert!(
            p.full || packed.group.is_none(),
            "every piece is a full frame"
        );
        room.landed(&packed, true, t0, GRACE);
        if packed.group.is_none() {
            assert_eq!(packed.messages, ["m1"]);
            break;
        }
        pieces.push(packed);
    }
    assert_eq!(pieces.len(), 3);
    assert!(pieces[..2].iter().all(|p| !p.decides()));
    assert!(pieces[2].decides());
    let seqs: Vec<u64> = pieces.iter().map(|p| p.envelope.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn a_failed_piece_drops_the_rest_of_its_group() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 20_000), t0), t0, GRACE);
    room.push(q(message(1, 10), t0), t0, GRACE);
    let p = room.take("A").expect("piece");
    room.landed(&p, false, t0, GRACE);
    if let Some((g, _)) = p.group {
        room.drop_group(g);
    }
    let next = room.take("A").expect("the next message");
    assert_eq!(next.messages, ["m1"]);
    assert!(next.group.is_none());
}

#[test]
fn a_requeued_envelope_goes_again_unchanged() {
    let t0 = Instant::now();
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 10), t0), t0, GRACE);
    let p = room.take("A").expect("frame");
    room.landed(&p, false, t0, GRACE);
    room.push(q(message(1, 10), t0), t0, GRACE);
    let seq = p.envelope.seq;
    room.requeue(p);
    let again = room.take("A").expect("again");
    assert_eq!(again.envelope.seq, seq);
    assert_eq!(again.messages, ["m0"]);
}

#[test]
fn expiry_takes_old_messages_and_acks_but_never_signals() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(50);
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 10), t0), t0, GRACE);
    room.push(q(ack(0), t0), t0, GRACE);
    room.push(q(item(Kind::Offer), t0), t0, GRACE);
    room.push(q(message(1, 10), t1), t1, GRACE);
    assert_eq!(room.expire(t0), ["m0"]);
    let left = room.take("A").expect("frame");
    assert_eq!(
        left.envelope.items.iter().map(|i| i.k).collect::<Vec<_>>(),
        [Kind::Offer, Kind::Message]
    );
    // A fragmented message expires once, all its pieces with it.
    let mut big = RoomQueue::new("R");
    big.push(q(message(7, 30_000), t0), t0, GRACE);
    let first = big.take("A").expect("piece");
    big.landed(&first, true, t0, GRACE);
    assert_eq!(big.expire(t0), ["m7"]);
    assert!(big.is_idle());
}

#[test]
fn waiting_counts_messages_queued_packed_and_on_their_way() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(1);
    let mut room = RoomQueue::new("R");
    room.push(q(message(0, 10), t0), t0, GRACE);
    let _flying = room.take("A").expect("frame");
    room.push(q(ack(0), t1), t1, GRACE);
    room.push(q(message(1, 30_000), t1), t1, GRACE);
    room.push(q(message(2, 10), t1), t1, GRACE);
    let w = room.waiting();
    assert_eq!((w.messages, w.items, w.oldest), (3, 3, Some(t0)));
}
