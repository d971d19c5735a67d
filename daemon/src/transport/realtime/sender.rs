//! What a room's frames become on a realtime path: envelope items ([`item_of`]) numbered in a
//! run ([`Numbering`]). Nothing a stock 8.x server would store is ever sent (`chat.otr` system
//! messages and `deleteOldOTRMessages` have no meaning on these paths and are skipped). Packing
//! items into envelopes, pacing and reporting are [`super::queue`]'s and
//! [`super::scheduler`]'s; [`pack`] runs the same packing in one go.

use super::envelope::{Envelope, Fragment, Item, Kind, VERSION};
use super::queue::{Queued, RoomQueue};
use crate::otr::session::SignalKind;
use crate::transport::Frame;
use rand::RngCore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Numbers envelopes of one run.
#[derive(Debug)]
pub struct Numbering {
    run: String,
    seq: u64,
    group: u64,
}

impl Numbering {
    /// A fresh run id.
    pub fn new() -> Self {
        Self {
            run: format!("{:016x}", rand::rngs::OsRng.next_u64()),
            seq: 0,
            group: 0,
        }
    }

    /// A new fragment group id.
    pub(super) fn next_group(&mut self) -> u64 {
        self.group += 1;
        self.group
    }

    /// The next envelope of the run.
    pub(super) fn next_envelope(
        &mut self,
        from: &str,
        room: &str,
        items: Vec<Item>,
        frag: Option<Fragment>,
    ) -> Envelope {
        self.seq += 1;
        Envelope {
            v: VERSION,
            from: from.into(),
            room: room.into(),
            run: self.run.clone(),
            seq: self.seq,
            items,
            frag,
        }
    }
}

impl Default for Numbering {
    fn default() -> Self {
        Self::new()
    }
}

/// The item a frame becomes on a realtime path; `None` for what these paths do not carry.
pub fn item_of(frame: &Frame) -> Option<Item> {
    match frame {
        Frame::Signal { kind, payload } => {
            let k = match kind {
                SignalKind::Handshake => Kind::Offer,
                SignalKind::Acknowledge
                    if payload.get("otrd").and_then(|o| o.get("rk")).is_some() =>
                {
                    Kind::Confirm
                }
                SignalKind::Acknowledge => Kind::Answer,
                SignalKind::Deny => Kind::Deny,
                SignalKind::End => Kind::End,
            };
            Some(Item {
                k,
                p: payload.clone(),
            })
        }
        Frame::Message { id, msg } => Some(Item {
            k: Kind::Message,
            p: json!({"id": id, "msg": msg}),
        }),
        Frame::Ack { message, ack } => {
            let id = message.get("_id").cloned().unwrap_or(Value::Null);
            Some(Item {
                k: Kind::Ack,
                p: json!({"id": id, "ack": ack}),
            })
        }
        Frame::System { .. } | Frame::DeleteOld => None,
    }
}

/// Packs items in order into envelopes of at most [`super::envelope::MAX_PAYLOAD`] and
/// [`super::envelope::MAX_ITEMS`] items (what the receiver takes), as the room queues do call by
/// call; an item too large alone is split into fragments (one group).
pub fn pack(numbering: &mut Numbering, from: &str, room: &str, items: Vec<Item>) -> Vec<Envelope> {
    let mut queue = RoomQueue::with_numbering(room, std::mem::take(numbering));
    let now = Instant::now();
    for item in items {
        queue.push(Queued::new(item, "frame", now), now, Duration::ZERO);
    }
    let mut out = Vec::new();
    while let Some(packed) = queue.take(from) {
        queue.landed(&packed, true, now, Duration::ZERO);
        out.push(packed.envelope);
    }
    *numbering = queue.into_numbering();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::realtime::envelope::{MAX_ITEMS, MAX_PAYLOAD};
    use crate::transport::realtime::fragment;

    fn msg(i: usize, len: usize) -> Item {
        Item {
            k: Kind::Message,
            p: json!({"id": format!("m{i}"), "msg": "x".repeat(len)}),
        }
    }

    #[test]
    fn packs_in_order_batches_small_items_and_fragments_large_ones() {
        let mut n = Numbering::new();
        let mut items: Vec<Item> = (0..30).map(|i| msg(i, 600)).collect();
        items.insert(10, msg(99, 20_000));
        let envs = pack(&mut n, "A", "R", items.clone());
        assert!(envs.iter().all(|e| serde_json::to_string(&e.items)
            .map(|s| s.len())
            .unwrap_or(0)
            <= MAX_PAYLOAD));
        assert!(envs
            .iter()
            .filter_map(|e| e.frag.as_ref())
            .all(|f| f.d.len() <= MAX_PAYLOAD));
        assert!(
            envs.len() < 10,
            "30 small messages need few frames: {}",
            envs.len()
        );
        let seqs: Vec<u64> = envs.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        // Unpacking gives the same items in the same order.
        let mut r = fragment::Reassembler::default();
        let mut back = Vec::new();
        for e in envs {
            match e.frag {
                Some(f) => back.extend(r.add("R", &e.run, f, 0).expect("ok").unwrap_or_default()),
                None => back.extend(e.items),
            }
        }
        assert_eq!(back, items);
    }

    #[test]
    fn many_tiny_items_never_exceed_what_the_receiver_takes() {
        let mut n = Numbering::new();
        let acks: Vec<Item> = (0..300)
            .map(|i| Item {
                k: Kind::Ack,
                p: json!({"id": i, "ack": "k"}),
            })
            .collect();
        let envs = pack(&mut n, "A", "R", acks);
        assert!(envs.iter().all(|e| e.items.len() <= MAX_ITEMS));
        assert_eq!(envs.iter().map(|e| e.items.len()).sum::<usize>(), 300);
        for e in &envs {
            assert_eq!(Envelope::from_value(&e.to_value()).as_ref(), Ok(e));
        }
    }

    #[test]
    fn signals_map_to_kinds_and_stored_frames_are_skipped() {
        let confirm = Frame::Signal {
            kind: SignalKind::Acknowledge,
            payload: json!({"otrd": {"rk": "x"}}),
        };
        assert_eq!(item_of(&confirm).map(|i| i.k), Some(Kind::Confirm));
        let answer = Frame::Signal {
            kind: SignalKind::Acknowledge,
            payload: json!({"otrd": {}}),
        };
        assert_eq!(item_of(&answer).map(|i| i.k), Some(Kind::Answer));
        let ack = Frame::Ack {
            message: json!({"_id": "m1", "msg": "c"}),
            ack: "a".into(),
        };
        assert_eq!(
            item_of(&ack).map(|i| i.p),
            Some(json!({"id": "m1", "ack": "a"}))
        );
        assert!(item_of(&Frame::DeleteOld).is_none());
        assert!(item_of(&Frame::System {
            kind: "user_joined_otr"
        })
        .is_none());
    }
}
