//! The outgoing half of a realtime path: a room's frames become envelope items, items that
//! queued up together share one frame (several messages and acks per call), a too-large list is
//! fragmented, every call waits for a pacing token, and every message ends reported: accepted by
//! the server or failed. Nothing a stock 8.x server would store is ever sent (`chat.otr` system
//! messages and `deleteOldOTRMessages` have no meaning on these paths and are skipped).

use super::envelope::{item_len, Envelope, Fragment, Item, Kind, MAX_ITEMS, MAX_PAYLOAD, VERSION};
use super::{fragment, path_a, path_b, Pacer, Path};
use crate::otr::session::SignalKind;
use crate::rocketchat::{Client, RcError};
use crate::transport::{Frame, Report, RoomAddr};
use rand::RngCore;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Attempts per frame when the connection drops or a call times out (rate limits are retried
/// inside the DDP client, after `timeToReset`, and do not count here).
const ATTEMPTS: u32 = 4;

/// Who sends, where, how.
#[derive(Debug, Clone)]
pub struct Route {
    /// The connection.
    pub client: Client,
    /// Room and peer.
    pub room: RoomAddr,
    /// Path A or B.
    pub path: Path,
    /// Our uid (the envelope's `from`).
    pub my_uid: String,
    /// Our username (path A's `args[0]`).
    pub my_username: String,
    /// The connection's pacing.
    pub pacer: Pacer,
}

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

    fn next(
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

/// Packs items in order into envelopes of at most [`MAX_PAYLOAD`] and [`MAX_ITEMS`] items (what
/// the receiver takes); an item too large alone is split into fragments (one group).
pub fn pack(numbering: &mut Numbering, from: &str, room: &str, items: Vec<Item>) -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut batch: Vec<Item> = Vec::new();
    let mut size = 2;
    for item in items {
        let len = item_len(&item) + 1;
        if !batch.is_empty() && (size + len > MAX_PAYLOAD || batch.len() == MAX_ITEMS) {
            out.push(numbering.next(from, room, std::mem::take(&mut batch), None));
            size = 2;
        }
        if len + 2 > MAX_PAYLOAD {
            let json = serde_json::to_string(&vec![item]).unwrap_or_default();
            numbering.group += 1;
            let pieces = fragment::split(&json);
            let n = pieces.len() as u32;
            for (i, d) in pieces.into_iter().enumerate() {
                let frag = Fragment {
                    id: numbering.group,
                    i: i as u32,
                    n,
                    d,
                };
                out.push(numbering.next(from, room, Vec::new(), Some(frag)));
            }
            continue;
        }
        size += len;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(numbering.next(from, room, batch, None));
    }
    out
}

impl Route {
    /// One paced call carrying `envelope`.
    pub async fn send(&self, envelope: &Envelope) -> Result<(), RcError> {
        let (method, params) = match self.path {
            Path::A => (
                path_a::METHOD,
                path_a::params(&self.room.room_id, &self.my_username, envelope.to_value()),
            ),
            Path::B => (
                path_b::METHOD,
                path_b::params(&self.room.room_id, envelope.to_value()),
            ),
        };
        self.pacer.acquire(method).await;
        self.client.call(method, params).await.map(|_| ())
    }

    async fn send_retrying(&self, envelope: &Envelope) -> Result<(), RcError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send(envelope).await {
                Err(e @ (RcError::NotConnected | RcError::Timeout { .. }))
                    if attempt < ATTEMPTS =>
                {
                    tracing::debug!(room = %self.room.room_id, error = %e, attempt, "realtime frame not sent; retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                other => return other,
            }
        }
    }
}

/// The room's task: drains what queued up, packs it, sends it, reports every message.
pub async fn run(
    route: Route,
    mut rx: mpsc::UnboundedReceiver<Frame>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut numbering = Numbering::new();
    while let Some(first) = rx.recv().await {
        let mut frames = vec![first];
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        let items: Vec<Item> = frames.iter().filter_map(item_of).collect();
        let envelopes = pack(&mut numbering, &route.my_uid, &route.room.room_id, items);
        let mut failure: Option<String> = None;
        for env in &envelopes {
            if let Err(e) = route.send_retrying(env).await {
                tracing::warn!(room = %route.room.room_id, error = %e, "realtime frame not sent");
                failure = Some(e.to_string());
                break;
            }
        }
        for frame in &frames {
            let report = match (frame, &failure) {
                (Frame::Message { id, .. }, f) => Some(Report::MessageOutcome {
                    room_id: route.room.room_id.clone(),
                    id: id.clone(),
                    ok: f.is_none(),
                    detail: f.clone().unwrap_or_default(),
                }),
                (Frame::System { .. } | Frame::DeleteOld, _) | (_, None) => None,
                (other, Some(detail)) => Some(Report::FrameFailed {
                    room_id: route.room.room_id.clone(),
                    what: super::super::outbox::frame_name(other),
                    detail: detail.clone(),
                }),
            };
            if let Some(r) = report {
                if reports.send(r).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
